"""Initialise a from-scratch T5 the way transformers does.

Why this exists: keras-hub's `T5Backbone` builds its token embedding with
`keras.initializers.TruncatedNormal(1.0)`, whose first argument is the
*mean*. Every token starts as nearly the same all-ones vector (mean 1.0,
std 0.044), and the untied head gets the same numbers reshaped. A model
trained from there sits on the "predict the label prior" plateau for many
epochs (in an early probe: one class for everything, 0.26 accuracy), where
the same model initialised like transformers (N(0, 1) embeddings) learns
in two or three.

The weights are drawn with NumPy from a seed and written through the HF
converter, so a `tiny-t5` starts from identical weights on every backend.
"""

import numpy as np

from kerastune.models.t5.convert import set_backbone_weights, weight_table


def transformers_init_weights(backbone, seed: int, factor: float = 1.0) -> dict:
    """HF `T5PreTrainedModel._init_weights` as a name -> array dict for this backbone's shape, drawn in
    the order of `weight_table` (transformers' order)."""
    rng = np.random.default_rng(seed)
    d_model, d_ff = backbone.hidden_dim, backbone.intermediate_dim
    d_kv = backbone.key_value_dim or d_model // backbone.num_heads
    inner = backbone.num_heads * d_kv
    std = {"q": (d_model * d_kv) ** -0.5, "k": d_model**-0.5, "v": d_model**-0.5, "o": inner**-0.5,
           "relative_attention_bias": d_model**-0.5, "wi": d_model**-0.5, "wi_0": d_model**-0.5,
           "wi_1": d_model**-0.5, "wo": d_ff**-0.5}
    weights = {}
    for name, variable, transposed in weight_table(backbone):
        shape = tuple(variable.shape)[::-1] if transposed else tuple(variable.shape)  # HF layout (out, in)
        if "layer_norm" in name:
            weights[name] = np.ones(shape, "float32")
        elif name == "shared.weight":
            weights[name] = rng.normal(0.0, factor, shape).astype("float32")
        else:
            weights[name] = rng.normal(0.0, factor * std[name.split(".")[-2]], shape).astype("float32")
    return weights


def initialize_like_transformers(backbone, seed: int):
    """Overwrite every weight of `backbone` with transformers' T5 initialisation."""
    weights = transformers_init_weights(backbone, seed)
    head = None
    if not backbone.tie_embedding_weights:
        head = np.random.default_rng(seed + 1).normal(0.0, 1.0, weights["shared.weight"].shape).astype("float32")
    set_backbone_weights(backbone, weights, head)
