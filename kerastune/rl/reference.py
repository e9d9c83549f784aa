"""The reference model of PPO's and GRPO's KL term, without a second copy of the model on the device.

Under LoRA the reference is the model with its adapters off (what trl does under PEFT). Under full
fine-tuning it is the starting weights, kept in host memory and swapped in for the reference pass only.
"""

import contextlib

import numpy as np

from kerastune.models.lora import adapters_disabled, lora_layers


def reference_context(model):
    """A function returning a context manager inside which `model` computes as its reference. Call this when
    `model` still has its starting weights (before any update, or before a checkpoint is restored)."""
    if lora_layers(model):
        return lambda: adapters_disabled(model)
    starting = [np.asarray(v) for v in model.trainable_variables]

    @contextlib.contextmanager
    def starting_weights_in():
        variables = model.trainable_variables
        current = [np.asarray(v) for v in variables]
        for variable, value in zip(variables, starting):
            variable.assign(value)
        try:
            yield
        finally:
            for variable, value in zip(variables, current):
                variable.assign(value)

    return starting_weights_in
