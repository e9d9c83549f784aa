"""LoRA adapters in PEFT's own files: `adapter_config.json` + `adapter_model.safetensors`.

An adapter kerastune trains loads in PEFT (`PeftModel.from_pretrained` on the
transformers model of the same checkpoint) and a PEFT adapter loads here, with
the same outputs: the weights are PEFT's `lora_A` (r, inputs), `lora_B`
(outputs, r) and DoRA's `lora_magnitude_vector`, under the module names of
targets.py. kerastune's runs save their adapters this way too.
"""

import json
import re
from pathlib import Path

import keras
import numpy as np

from kerastune.errors import KerastuneError
from kerastune.models.lora.targets import ALL_LINEAR, enable_lora, family, lora_layers, targets
from kerastune.weights.safetensors_file import read_safetensors_file, write_safetensors_file

PREFIX = "base_model.model."
TASK_TYPES = {"t5": "SEQ_2_SEQ_LM", "causal": "CAUSAL_LM"}
UNSUPPORTED = {"rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": None, "modules_to_save": None}


def _short(name: str) -> str:
    """A module name from the decoder layers on, so `model.language_model.layers.0...` finds `model.layers.0...`."""
    return name[name.find("layers."):] if "layers." in name else name


def save_adapters(model, directory, base_model: str = "") -> Path:
    """Write the model's adapters as a PEFT adapter directory; returns it."""
    layers = lora_layers(model)
    if not layers:
        raise KerastuneError("the model has no LoRA adapters to save")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, layer in layers.items():
        tensors[f"{PREFIX}{name}.lora_A.weight"] = keras.ops.convert_to_numpy(layer.lora_a).T
        tensors[f"{PREFIX}{name}.lora_B.weight"] = keras.ops.convert_to_numpy(layer.lora_b).T
        if layer.dora:
            tensors[f"{PREFIX}{name}.lora_magnitude_vector"] = keras.ops.convert_to_numpy(layer.magnitude)
    write_safetensors_file(directory / "adapter_model.safetensors", tensors)
    first = next(iter(layers.values()))
    modules = sorted({name.rsplit(".", 1)[-1] for name in layers})
    if sorted(t.name for t in targets(model) if t.module in modules) == sorted(layers):
        target_modules = modules  # every layer with these module names: PEFT's list form
    else:  # a subset of layers: PEFT's regex form, the full names
        target_modules = "|".join(re.escape(name) for name in layers)
    config = {
        "peft_type": "LORA", "task_type": TASK_TYPES[family(model)], "base_model_name_or_path": base_model or None,
        "r": first.rank, "lora_alpha": first.alpha, "lora_dropout": first.dropout.rate if first.dropout else 0.0,
        "target_modules": target_modules, "use_rslora": first.rslora, "use_dora": first.dora, "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
        **UNSUPPORTED,
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_adapter_config(directory) -> dict:
    """The adapter's PEFT config, checked for what kerastune can load."""
    config_file = Path(directory) / "adapter_config.json"
    if not config_file.is_file():
        raise KerastuneError(f"no adapter_config.json in {directory}")
    try:
        config = json.loads(config_file.read_text())
    except ValueError as error:
        raise KerastuneError(f"{config_file} is not JSON: {error}") from None
    if config.get("peft_type", "LORA") != "LORA":
        raise KerastuneError(f"{directory} is a {config['peft_type']} adapter, not LoRA")
    for key, default in UNSUPPORTED.items():
        if config.get(key) not in (default, None, {}, []):
            raise KerastuneError(f"{config_file}: {key} is not supported by kerastune's LoRA")
    if config.get("bias", "none") != "none":
        raise KerastuneError(f"{config_file}: bias '{config['bias']}' is not supported (only 'none')")
    return config


def load_adapters(model, directory, seed: int = 0):
    """Load a PEFT adapter: adapt the layers it names (if the model has no adapters yet), then set its weights."""
    directory = Path(directory)
    config = read_adapter_config(directory)
    if not lora_layers(model):
        modules = config["target_modules"]  # names, or PEFT's string form: "all-linear" or a regex
        regex = modules if isinstance(modules, str) and modules != ALL_LINEAR else ""
        names = (ALL_LINEAR,) if modules == ALL_LINEAR else () if regex else tuple(modules)
        enable_lora(model, config["r"], config["lora_alpha"], names, regex, dropout=config.get("lora_dropout", 0.0),
                    rslora=config.get("use_rslora", False), dora=config.get("use_dora", False), seed=seed)
    weights_file = directory / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise KerastuneError(f"no adapter_model.safetensors in {directory}")
    layers = {_short(name): layer for name, layer in lora_layers(model).items()}
    loaded = set()
    for key, value in read_safetensors_file(weights_file).items():
        module, _, kind = key.removeprefix(PREFIX).rpartition(".lora_")
        layer = layers.get(_short(module))
        if layer is None:
            raise KerastuneError(f"adapter weight {key} has no adapted layer in this model")
        value = np.asarray(value, "float32")
        if kind.startswith("A"):
            variable, value = layer.lora_a, value.T
        elif kind.startswith("B"):
            variable, value = layer.lora_b, value.T
        elif kind.startswith("magnitude") and layer.dora:
            variable = layer.magnitude
        else:
            raise KerastuneError(f"adapter weight {key} is not a LoRA weight kerastune knows")
        if tuple(variable.shape) != value.shape:
            raise KerastuneError(f"adapter weight {key} has shape {value.shape}, not {tuple(variable.shape)}")
        variable.assign(value)
        loaded.add((_short(module), kind[0]))
    missing = [name for name in layers if (name, "A") not in loaded or (name, "B") not in loaded]
    if missing:
        raise KerastuneError(f"{weights_file} has no weights for {missing[0]} (and {len(missing) - 1} more)")
