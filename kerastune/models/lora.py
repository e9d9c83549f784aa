"""LoRA adapters on keras-hub models, with PEFT's meaning: W x + (alpha / r) * B A x on named layers.

Built on Keras core's `Dense.enable_lora(rank, lora_alpha)`. What this adds:
- targets by layer name (T5: `query_projector` / `value_projector`, which
  covers encoder and decoder, self- and cross-attention; keras-hub's
  `Backbone.enable_lora` matches none of T5's layers by default and has no
  alpha), freezing everything else;
- the notebook's parameter report;
- adapters saved and loaded alone (a small `.npz` + JSON config), and PEFT
  adapters (`adapter_config.json` + `adapter_model.safetensors`) imported;
- `adapters_disabled(model)`: the frozen base model without a second copy
  of the weights (PPO's reference model);
- merging: Keras already saves a LoRA layer's kernel merged, so a run's
  `model.save_to_preset` writes plain base weights (`merged_kernels` reads
  them without saving).

Not in Keras core, so not here: LoRA dropout (PEFT applies dropout to the
adapter input while training; evaluation is unaffected). Because Keras saves
LoRA layers merged, a weights checkpoint restored into an adapted model puts
the adapter into the base kernel and zeroes the adapter: keep adapters in
their own file (`save_adapters`) when the base must stay the base (PPO).
"""

import contextlib
import json
import re
from pathlib import Path

import keras
import numpy as np

from kerastune.errors import KerastuneError
from kerastune.weights.safetensors_file import read_safetensors_file

T5_TARGETS = ("query_projector", "value_projector")
PEFT_T5_NAMES = {"q": "query_projector", "k": "key_projector", "v": "value_projector", "o": "output_projector"}


def lora_layers(model) -> dict:
    """{path: layer} of every LoRA-enabled layer, in a stable order."""
    return {path: layer for path, layer in _named_dense_layers(model) if getattr(layer, "lora_enabled", False)}


def _named_dense_layers(model):
    """(path, layer) for every Dense layer under the model, paths like `.../self_attention/query_projector`."""
    seen = set()

    def walk(layer, prefix):
        for child in layer._flatten_layers(include_self=False, recursive=False):
            if id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}/{child.name}" if prefix else child.name
            if isinstance(child, keras.layers.Dense):
                yield path, child
            yield from walk(child, path)

    yield from walk(model.backbone if hasattr(model, "backbone") else model, "")


def enable_lora(model, rank: int, alpha: float | None = None, targets=T5_TARGETS, seed: int = 0) -> int:
    """Freeze the model and add rank-`rank` adapters to the Dense layers named in `targets`.

    A starts uniform in +-1/sqrt(fan_in) (PEFT's Kaiming-uniform), B at zero,
    so the adapted model starts equal to the base model. Returns the
    number of adapted layers; none is an error that names the targets.
    """
    backbone = model.backbone if hasattr(model, "backbone") else model
    chosen = [(p, layer) for p, layer in _named_dense_layers(model) if layer.name in targets]
    if not chosen:
        raise KerastuneError(f"no layer named {', '.join(targets)} in {type(backbone).__name__}: nothing to adapt")
    backbone.trainable = True
    for layer in backbone._flatten_layers(include_self=False):
        layer.trainable = False
    for i, (_, layer) in enumerate(chosen):
        bound = 1.0 / np.sqrt(layer.kernel.shape[0])  # PEFT: kaiming_uniform_(a=sqrt(5)) on A
        layer.trainable = True
        layer.enable_lora(rank, lora_alpha=alpha if alpha is not None else rank,
                          a_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed + i))
    return len(chosen)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters, adapters included, as PEFT counts them."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    total = trainable + sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
    return trainable, total


def parameter_report(model) -> str:
    """The notebook's `print_number_of_trainable_model_parameters`."""
    trainable, total = count_parameters(model)
    return (f"trainable model parameters: {trainable}\nall model parameters: {total}\n"
            f"percentage of trainable model parameters: {100 * trainable / total:.2f}%")


@contextlib.contextmanager
def adapters_disabled(model):
    """Run the base model: every adapter off inside the block (a traced function sees the flag at trace time)."""
    layers = list(lora_layers(model).values())
    for layer in layers:
        layer.lora_enabled = False
    try:
        yield model
    finally:
        for layer in layers:
            layer.lora_enabled = True


def save_adapters(model, path) -> Path:
    """The adapters alone: `PATH.npz` (A and B per layer) and `PATH.json` (rank, alpha, layer paths)."""
    layers = lora_layers(model)
    if not layers:
        raise KerastuneError("the model has no LoRA adapters to save")
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, layer in enumerate(layers.values()):
        arrays[f"{i}_a"] = keras.ops.convert_to_numpy(layer.lora_kernel_a)
        arrays[f"{i}_b"] = keras.ops.convert_to_numpy(layer.lora_kernel_b)
    np.savez(path.with_suffix(".npz"), **arrays)
    first = next(iter(layers.values()))
    config = {"rank": first.lora_rank, "alpha": first.lora_alpha, "layers": list(layers)}
    path.with_suffix(".json").write_text(json.dumps(config, indent=2))
    return path.with_suffix(".npz")


def load_adapters(model, path):
    """Load adapters saved by `save_adapters`, enabling them on the same layers first if needed."""
    path = Path(path).with_suffix("")
    if not path.with_suffix(".json").is_file():
        raise KerastuneError(f"no adapter config {path.with_suffix('.json')}")
    config = json.loads(path.with_suffix(".json").read_text())
    if not lora_layers(model):
        names = tuple(sorted({p.rsplit("/", 1)[-1] for p in config["layers"]}))
        enable_lora(model, config["rank"], config["alpha"], names)
    layers = lora_layers(model)
    if list(layers) != config["layers"]:
        raise KerastuneError(f"adapters in {path} were made for other layers than this model's")
    arrays = np.load(path.with_suffix(".npz"))
    for i, layer in enumerate(layers.values()):
        layer.lora_kernel_a.assign(arrays[f"{i}_a"])
        layer.lora_kernel_b.assign(arrays[f"{i}_b"])


def merged_kernels(model) -> dict:
    """{path: kernel with the adapter merged}: what saving the model writes for each adapted layer."""
    return {path: keras.ops.convert_to_numpy(layer.kernel) for path, layer in lora_layers(model).items()}


def _t5_layer_for_peft_key(backbone, key: str):
    """The keras-hub T5 Dense layer a PEFT weight name refers to (None if it is not a T5 attention weight)."""
    match = re.search(r"(encoder|decoder)\.block\.(\d+)\.layer\.(\d+)\.(SelfAttention|EncDecAttention)\.(\w+)\.lora_",
                      key)
    if not match:
        return None
    stack, block, _, kind, module = match.groups()
    layers = backbone.encoder_transformer_layers if stack == "encoder" else backbone.decoder_transformer_layers
    attention = layers[int(block)].self_attention if kind == "SelfAttention" else layers[int(block)].cross_attention
    return getattr(attention, PEFT_T5_NAMES[module])


def import_peft_adapter(model, path):
    """Load a PEFT LoRA adapter for T5 (`adapter_config.json` + `adapter_model.safetensors`)."""
    path = Path(path)
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise KerastuneError(f"no adapter_config.json in {path}")
    config = json.loads(config_file.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise KerastuneError(f"{path} is a {config['peft_type']} adapter, not LoRA")
    unknown = [m for m in config["target_modules"] if m not in PEFT_T5_NAMES]
    if unknown:
        raise KerastuneError(f"adapter targets {unknown}; kerastune maps T5 attention modules {list(PEFT_T5_NAMES)}")
    if config.get("use_rslora") or config.get("use_dora"):
        raise KerastuneError("rsLoRA / DoRA adapters are not supported")
    targets = tuple(PEFT_T5_NAMES[m] for m in config["target_modules"])
    if not lora_layers(model):
        enable_lora(model, config["r"], config["lora_alpha"], targets)
    if not (path / "adapter_model.safetensors").is_file():
        raise KerastuneError(f"no adapter_model.safetensors in {path}")
    adapter = read_safetensors_file(path / "adapter_model.safetensors")
    weights = {k: v.astype("float32") for k, v in adapter.items() if ".lora_" in k}
    if not weights:
        raise KerastuneError(f"{path} holds no LoRA weights")
    for key, value in weights.items():
        layer = _t5_layer_for_peft_key(model.backbone, key)
        if layer is None or not getattr(layer, "lora_enabled", False):
            raise KerastuneError(f"adapter weight {key} has no adapted layer in this model")
        if ".lora_A." in key:  # PEFT Linear weights are (out, in); Keras kernels (in, out)
            layer.lora_kernel_a.assign(value.T)
        else:
            layer.lora_kernel_b.assign(value.T)
