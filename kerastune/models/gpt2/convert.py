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
    return {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": backbone.vocabulary_size,
        "n_positions": backbone.max_sequence_length, "n_embd": backbone.hidden_dim, "n_layer": backbone.num_layers,
        "n_head": backbone.num_heads, "n_inner": backbone.intermediate_dim, "activation_function": "gelu_new",
        "resid_pdrop": backbone.dropout, "embd_pdrop": backbone.dropout, "attn_pdrop": backbone.dropout,
        "layer_norm_epsilon": 1e-5, "bos_token_id": eos_id, "eos_token_id": eos_id, "tie_word_embeddings": True,
    }


def backbone_to_hf_weights(backbone) -> dict:
    """transformers' GPT-2 tensors (Conv1D weights are (in, out), like Keras kernels)."""
    def value(variable, shape=None):
        array = np.asarray(keras.ops.convert_to_numpy(variable), "float32")
        return array.reshape(shape) if shape else array

    dim = backbone.hidden_dim
    weights = {
        "transformer.wte.weight": value(backbone.token_embedding.embeddings),
        "transformer.wpe.weight": value(backbone.position_embedding.position_embeddings),
        "transformer.ln_f.weight": value(backbone.layer_norm.gamma),
        "transformer.ln_f.bias": value(backbone.layer_norm.beta),
    }
    for i, layer in enumerate(backbone.transformer_layers):
        attention, prefix = layer._self_attention_layer, f"transformer.h.{i}"
        projections = (attention.query_dense, attention.key_dense, attention.value_dense)
        weights.update({
            f"{prefix}.ln_1.weight": value(layer._self_attention_layer_norm.gamma),
            f"{prefix}.ln_1.bias": value(layer._self_attention_layer_norm.beta),
            f"{prefix}.attn.c_attn.weight": np.concatenate([value(p.kernel, (dim, dim)) for p in projections], 1),
            f"{prefix}.attn.c_attn.bias": np.concatenate([value(p.bias, (dim,)) for p in projections]),
            f"{prefix}.attn.c_proj.weight": value(attention.output_dense.kernel, (dim, dim)),
            f"{prefix}.attn.c_proj.bias": value(attention.output_dense.bias),
            f"{prefix}.ln_2.weight": value(layer._feedforward_layer_norm.gamma),
            f"{prefix}.ln_2.bias": value(layer._feedforward_layer_norm.beta),
            f"{prefix}.mlp.c_fc.weight": value(layer._feedforward_intermediate_dense.kernel),
            f"{prefix}.mlp.c_fc.bias": value(layer._feedforward_intermediate_dense.bias),
            f"{prefix}.mlp.c_proj.weight": value(layer._feedforward_output_dense.kernel),
            f"{prefix}.mlp.c_proj.bias": value(layer._feedforward_output_dense.bias),
        })
    return weights
