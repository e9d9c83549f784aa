"""LoRA adapters on keras-hub models, with PEFT's meaning and PEFT's files.

- layer.py: one adapted projection (`base(x) + scale * B A dropout(x)`, rsLoRA, DoRA);
- targets.py: which projections, under PEFT's module names; enable, switch off, merge;
- peft_format.py: adapters saved and loaded as PEFT adapter directories.

Adapters stay outside the base kernels while training, so the base model is
always there (`adapters_disabled`: PPO's and DPO's reference without a second
copy). `merge_adapters` folds them in before a model is saved as a plain
preset or exported.
"""

import numpy as np

from kerastune.models.lora.layer import LoraAdapted
from kerastune.models.lora.peft_format import load_adapters, read_adapter_config, save_adapters
from kerastune.models.lora.targets import (
    ALL_LINEAR,
    adapters_disabled,
    enable_lora,
    lora_layers,
    merge_adapters,
    select,
    targets,
)

__all__ = ["ALL_LINEAR", "LoraAdapted", "adapt", "adapters_disabled", "count_parameters", "enable_lora",
           "load_adapters", "lora_layers", "merge_adapters", "parameter_report", "read_adapter_config",
           "save_adapters", "select", "targets"]


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters, adapters included, as PEFT's `print_trainable_parameters` counts them."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    total = trainable + sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
    return trainable, total


def parameter_report(model) -> str:
    """The detox notebook's `print_number_of_trainable_model_parameters`."""
    trainable, total = count_parameters(model)
    return (f"trainable model parameters: {trainable}\nall model parameters: {total}\n"
            f"percentage of trainable model parameters: {100 * trainable / total:.2f}%")


def adapt(model, lora, seed: int = 0) -> bool:
    """A recipe's `[lora]` section applied: PEFT's adapter from `lora.adapter` (its own r, alpha and targets, as
    `PeftModel.from_pretrained` takes them), or fresh adapters; False when `lora.rank` is 0 (no adapters)."""
    if lora.adapter:
        load_adapters(model, lora.adapter, seed=seed)
        return True
    if lora.rank == 0:
        return False
    enable_lora(model, lora.rank, lora.alpha, lora.targets, lora.target_regex, lora.dropout, lora.use_rslora,
                lora.use_dora, seed=seed)
    return True
