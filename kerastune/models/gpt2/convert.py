"""Hugging Face GPT-2 checkpoint -> keras-hub `GPT2CausalLM`, through keras-hub's own converter.

keras-hub ports the weights (`GPT2Backbone.from_preset("./hf_dir")`); this
adds what it leaves out: checks that the checkpoint is one keras-hub's GPT-2
computes exactly (tied head, GELU-tanh, 4x MLP, eps 1e-5), and a tokenizer
from `tokenizer.json` when the checkpoint (as transformers 5 saves it) has no
`vocab.json` / `merges.txt`. `backbone_to_hf_weights` goes back, for HF export.
"""

from pathlib import Path

import keras
import keras_hub
import numpy as np
from keras_hub.src.utils.transformers.export.gpt2 import get_gpt2_config, get_gpt2_weights_map

from kerastune.errors import KerastuneError
from kerastune.models.gpt2.tokenizer import gpt2_tokenizer, read_vocabulary
from kerastune.models.hf_loader import from_hf_directory
from kerastune.weights import weight_names

SUPPORTED = {
    "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
    "layer_norm_epsilon": (1e-5,),
    "scale_attn_weights": (True,),
    "scale_attn_by_inverse_layer_idx": (False,),
    "reorder_and_upcast_attn": (False,),
}


def check_config(config: dict, path, weight_names: set):
    if config.get("model_type") != "gpt2":
        raise KerastuneError(f"{path} is not a GPT-2 checkpoint (model_type {config.get('model_type')!r})")
    for key, allowed in SUPPORTED.items():
        if key in config and config[key] not in allowed:
            raise KerastuneError(f"{path}: keras-hub's GPT-2 needs {key} in {allowed}, got {config[key]!r}")
    if config.get("n_inner") not in (None, 4 * config["n_embd"]):
        raise KerastuneError(f"{path}: keras-hub's GPT-2 needs n_inner = 4 * n_embd, got {config['n_inner']}")
    if config.get("tie_word_embeddings", True) is False and "lm_head.weight" in weight_names:
        raise KerastuneError(f"{path}: keras-hub's GPT-2 ties the LM head to the embeddings; this one is untied")


def load_gpt2(path, config: dict, sequence_length=512):
    """A `GPT2CausalLM` with its preprocessor (no start token: transformers adds none)."""
    path = Path(path)
    check_config(config, path, weight_names(path))
    backbone = from_hf_directory(keras_hub.models.GPT2Backbone, path)
    tokenizer = gpt2_tokenizer(*read_vocabulary(path))
    return causal_lm(backbone, tokenizer, sequence_length)


def causal_lm(backbone, tokenizer, sequence_length):
    length = min(sequence_length, backbone.max_sequence_length)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer=tokenizer, sequence_length=length, add_start_token=False
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)


# ---- the other way: keras-hub GPT-2 -> transformers GPT2LMHeadModel (for `kerastune export --format hf`) ----


def hf_config(backbone, eos_id: int) -> dict:
    """keras-hub's GPT2Config, with this tokenizer's end token (keras-hub writes GPT-2's 50256) and the
    tied head named."""
    return {**get_gpt2_config(backbone), "architectures": ["GPT2LMHeadModel"], "bos_token_id": eos_id,
            "eos_token_id": eos_id, "tie_word_embeddings": True}


def backbone_to_hf_weights(backbone) -> dict:
    """keras-hub's GPT-2 weight map as float32 arrays (Conv1D weights are (in, out), like Keras kernels)."""
    return {name: np.asarray(keras.ops.convert_to_numpy(variable), "float32")
            for name, variable in get_gpt2_weights_map(backbone).items()}
