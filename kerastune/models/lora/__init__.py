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
           "load_adapters", "lora_layers", "merge_adapters", "merged_for_saving", "parameter_report",
           "quantize_base", "read_adapter_config", "save_adapters", "select", "targets"]


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
    """A recipe's `[lora]` section applied: the base's projections quantized (`lora.quantize`), then PEFT's
    adapter from `lora.adapter` (its own r, alpha and targets, as `PeftModel.from_pretrained` takes them) or
    fresh adapters. False when `lora.rank` is 0 and there is no adapter: every weight trains."""
    if lora.rank == 0 and not lora.adapter:
        return False
    if lora.quantize:
        quantize_base(model, lora.quantize)
    if lora.adapter:
        load_adapters(model, lora.adapter, seed=seed)
    else:
        enable_lora(model, lora.rank, lora.alpha, lora.targets, lora.target_regex, lora.dropout, lora.use_rslora,
                    lora.use_dora, seed=seed)
    return True


def quantize_base(model, mode: str) -> int:
    """Quantize every projection in the transformer layers (Keras's int8 / int4 quantizers), as QLoRA quantizes
    the linear layers; embeddings, norms and the output head stay in float. Returns the number quantized."""
    layers = [target.layer for target in targets(model)]
    for layer in layers:
        layer.quantize(mode)
    return len(layers)


def merged_for_saving(model, adapter_dir, load_float_base=None):
    """The model to save as a plain preset, every adapter folded into its kernel. A quantized base is left
    behind: `load_float_base()` loads the float model again and the adapters saved in `adapter_dir` go on it,
    as PEFT users merge a QLoRA adapter into the float base."""
    if load_float_base is not None and any(getattr(a.base, "quantization_mode", None)
                                           for a in lora_layers(model).values()):
        model = load_float_base()
        load_adapters(model, adapter_dir)
    merge_adapters(model)
    return model
