"""A causal LM trained on packed rows (data/packing.py): attention stays inside each example.

The decoder runs as keras-hub's backbone runs it (embedding, decoder layers,
final norm, the tied or separate head), with each layer given a block-diagonal
mask: a token attends to the earlier tokens of its own segment only. With
rotary positions (Llama, Qwen, Mistral) attention depends on distances, not
absolute positions, so an example computes the same logits packed as alone
(tests/test_packing.py checks it). Families whose layers take no attention mask
(Gemma) or whose positions are absolute (GPT-2) are refused: their batches are
length-bucketed instead.
"""

import inspect

import keras
from keras import ops

from kerastune.errors import KerastuneError


def check_packing(causal_lm):
    """Raise a one-line error unless `causal_lm` can train on packed rows."""
    backbone = causal_lm.backbone
    layers = getattr(backbone, "transformer_layers", None) or []
    takes_mask = bool(layers) and "decoder_attention_mask" in inspect.signature(layers[0].call).parameters
    rotary = getattr(backbone, "rope_max_wavelength", None) is not None
    if not (takes_mask and rotary and hasattr(backbone, "token_embedding") and hasattr(backbone, "layer_norm")):
        raise KerastuneError(f"data.pack needs a rotary-position model whose layers take an attention mask (Llama, "
                             f"Qwen, Mistral); {type(causal_lm).__name__} has not: set data.pack = false (batches "
                             "are length-bucketed)")


def packed_logits(causal_lm, token_ids, segment_ids, training=False):
    backbone = causal_lm.backbone
    same_segment = ops.equal(ops.expand_dims(segment_ids, 2), ops.expand_dims(segment_ids, 1))
    mask = ops.logical_and(same_segment, ops.expand_dims(segment_ids > 0, 1))  # the layers add the causal part
    x = backbone.token_embedding(token_ids)
    for layer in backbone.transformer_layers:
        x = layer(x, decoder_attention_mask=ops.cast(mask, "int32"), training=training)
    x = backbone.layer_norm(x)
    return backbone.token_embedding(x, reverse=True)


class PackedCausalLM(keras.Model):
    """Wraps a keras-hub causal LM for `fit` on packed rows; batches without `segment_ids` (evaluation) run the
    model as it is. The weights are the wrapped model's."""

    def __init__(self, causal_lm, **kwargs):
        super().__init__(**kwargs)
        check_packing(causal_lm)
        self.causal_lm = causal_lm
        self.preprocessor = None  # `fit` detaches a task's preprocessor; this one has none

    def call(self, inputs, training=False):
        if "segment_ids" not in inputs:
            return self.causal_lm({"token_ids": inputs["token_ids"], "padding_mask": inputs["padding_mask"]},
                                  training=training)
        return packed_logits(self.causal_lm, inputs["token_ids"], inputs["segment_ids"], training)
