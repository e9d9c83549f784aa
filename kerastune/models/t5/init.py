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

from kerastune.models.t5.convert import set_backbone_weights


def transformers_init_weights(backbone, seed: int, factor: float = 1.0) -> dict:
    """HF `T5PreTrainedModel._init_weights` as a name -> array dict for this backbone's shape."""
    rng = np.random.default_rng(seed)
    d_model, d_ff = backbone.hidden_dim, backbone.intermediate_dim
    heads = backbone.num_heads
    d_kv = backbone.key_value_dim or d_model // heads
    inner = heads * d_kv

    def normal(std, out_dim, in_dim):  # HF Linear weight layout (out, in)
        return rng.normal(0.0, factor * std, (out_dim, in_dim)).astype("float32")

    weights = {"shared.weight": rng.normal(0.0, factor, (backbone.vocabulary_size, d_model)).astype("float32")}

    def attention(prefix, relative):
        weights[f"{prefix}.q.weight"] = normal((d_model * d_kv) ** -0.5, inner, d_model)
        weights[f"{prefix}.k.weight"] = normal(d_model**-0.5, inner, d_model)
        weights[f"{prefix}.v.weight"] = normal(d_model**-0.5, inner, d_model)
        weights[f"{prefix}.o.weight"] = normal(inner**-0.5, d_model, inner)
        if relative:
            weights[f"{prefix}.relative_attention_bias.weight"] = normal(d_model**-0.5, 32, heads)

    def feed_forward(prefix):
        ff = f"{prefix}.DenseReluDense"
        names = ("wi_0", "wi_1") if backbone.use_gated_activation else ("wi",)
        for name in names:
            weights[f"{ff}.{name}.weight"] = normal(d_model**-0.5, d_ff, d_model)
        weights[f"{ff}.wo.weight"] = normal(d_ff**-0.5, d_model, d_ff)
        weights[f"{prefix}.layer_norm.weight"] = np.ones(d_model, "float32")

    for stack, blocks in (("encoder", 2), ("decoder", 3)):
        for i in range(backbone.num_layers):
            p = f"{stack}.block.{i}.layer"
            attention(f"{p}.0.SelfAttention", relative=i == 0)
            weights[f"{p}.0.layer_norm.weight"] = np.ones(d_model, "float32")
            if blocks == 3:
                attention(f"{p}.1.EncDecAttention", relative=False)
                weights[f"{p}.1.layer_norm.weight"] = np.ones(d_model, "float32")
            feed_forward(f"{p}.{blocks - 1}")
        weights[f"{stack}.final_layer_norm.weight"] = np.ones(d_model, "float32")
    return weights


def initialize_like_transformers(backbone, seed: int):
    """Overwrite every weight of `backbone` with transformers' T5 initialisation."""
    weights = transformers_init_weights(backbone, seed)
    head = None
    if not backbone.tie_embedding_weights:
        head = np.random.default_rng(seed + 1).normal(0.0, 1.0, weights["shared.weight"].shape).astype("float32")
    set_backbone_weights(backbone, weights, head)
