"""keras-hub's Hugging Face converters, fed by kerastune's weight readers.

keras-hub converts many HF families (GPT-2, DistilBERT, RoBERTa, Llama,
Qwen, Gemma, Mistral, ...) but reads only `model.safetensors` (single or
sharded). Its converters take the weights through a loader object with
`get_tensor(name)` / `port_weight(variable, name, hook)`; this module hands
them one that reads any format `kerastune.weights` reads
(`pytorch_model.bin` included), so every keras-hub family gets them too.
The config and tokenizer conversion stay keras-hub's, with two additions:
the RMS-norm epsilon is passed on where a converter drops it (keras-hub's
Llama 3 converter leaves every Llama at its default 1e-6 where Llama 3 has
1e-5: logits off by up to 3e-3 on a small model), and settings keras-hub's
layers cannot compute (biases in Llama's projections, another activation)
are refused by name instead of loading a different model.
"""

import inspect
from pathlib import Path

from keras_hub.src.models.backbone import Backbone
from keras_hub.src.utils.preset_utils import find_subclass, jax_memory_cleanup
from keras_hub.src.utils.transformers.preset_loader import TransformersPresetLoader
from keras_hub.src.utils.transformers.safetensor_utils import SafetensorLoader

from kerastune.errors import KerastuneError
from kerastune.models.hf_files import read_config
from kerastune.weights import read_weights


class WeightsLoader(SafetensorLoader):
    """keras-hub's loader interface over `read_weights` (keeps its prefix matching: `transformer.h.0...`)."""

    def __init__(self, path):
        super().__init__(str(path))
        self.weights = read_weights(path)

    def get_tensor(self, hf_weight_key):
        return self.weights[self.get_prefixed_key(hf_weight_key, self.weights)]


# HF settings whose other values keras-hub's layers do not compute, per model_type: (key, the values it computes).
COMPUTED = {
    "llama": (("attention_bias", (False,)), ("mlp_bias", (False,)), ("hidden_act", ("silu",))),
    "mistral": (("hidden_act", ("silu",)),),
    "qwen2": (("hidden_act", ("silu",)),),
}


def check_computed(config: dict, path):
    for key, values in COMPUTED.get(config.get("model_type"), ()):
        if key in config and config[key] not in values:
            raise KerastuneError(f"{path}: keras-hub's {config['model_type']} computes {key} = {values[0]!r} only; "
                                 f"this checkpoint has {config[key]!r}")


class _Loader(TransformersPresetLoader):
    def load_backbone(self, cls, load_weights, **kwargs):
        if "rms_norm_eps" in self.config and "layer_norm_epsilon" in inspect.signature(cls.__init__).parameters:
            kwargs.setdefault("layer_norm_epsilon", self.config["rms_norm_eps"])
        backbone = super().load_backbone(cls, load_weights=False, **kwargs)
        if load_weights:
            jax_memory_cleanup(backbone)
            with WeightsLoader(self.preset) as loader:
                self.converter.convert_weights(backbone, loader, self.config)
        return backbone


def from_hf_directory(cls, path, **kwargs):
    """`cls.from_preset(path)` for a local HF checkpoint directory, whatever its weight format.

    `cls` is a keras-hub backbone or task class (`GPT2Backbone`, `CausalLM`, ...).
    """
    path = Path(path)
    check_computed(read_config(path), path)
    try:
        loader = _Loader(str(path), read_config(path))
    except ValueError as e:  # keras-hub has no converter for this model_type
        raise KerastuneError(f"{path}: {e}") from None
    backbone_cls = loader.check_backbone_class()
    if issubclass(cls, Backbone):
        return loader.load_backbone(backbone_cls, load_weights=True, **kwargs)
    if cls.backbone_cls != backbone_cls:
        cls = find_subclass(str(path), cls, backbone_cls)
    return loader.load_task(cls, load_weights=True, load_task_weights="num_classes" not in kwargs, **kwargs)
