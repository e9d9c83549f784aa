"""T5 cached decoding with caches laid out for fast steps and shared across beams.

keras-hub's `call_decoder_with_cache` stores keys and values as
(batch, length, heads, head_dim). Its attention contracts over head_dim with
heads as a batch axis, so XLA on CPU transposes the whole cross-attention
cache at every decoder step (measured: 14 ms against 6 ms per layer for a
beam-4 batch of 32), and beam search holds the encoder's keys and values
once per beam.

Here caches are (rows, heads, length, head_dim), keys and values apart (a
stacked (rows, 2, ...) cache made XLA copy both halves out at every step:
30% of a greedy step's op time), and the cross-attention cache is kept once
per example: the beams of an example (consecutive rows) attend to it
together, their queries grouped. Projections that share an input run as
one matmul (`project`). The layers and weights are the model's own (LoRA and
precision policies included); the search is checked token for token
against transformers in `tests/test_t5_parity.py`.
"""

import keras
import numpy as np
from keras import ops

from kerastune.models.lora.layer import LoraAdapted

NEG_INF = -1.0e9


def encode(model, encoder_ids, encoder_mask):
    """Encoder pass, then every decoder layer's cross-attention keys and values, once.

    Returns (cross_cache: per layer a (keys, values) pair, each (batch, heads,
    source, head_dim); cross_bias (batch, 1, 1, source): 0 on tokens, -1e9 on padding).
    """
    hidden = model.call_encoder(encoder_ids, encoder_mask)
    attentions = [layer.cross_attention for layer in model.backbone.decoder_transformer_layers]
    cache = [tuple(_heads_first(t, a) for t in project(hidden, a.key_projector, a.value_projector)) for a in attentions]
    bias = (1.0 - ops.cast(encoder_mask, "float32"))[:, None, None, :] * NEG_INF
    return cache, bias


def pad_source(cross_cache, cross_bias, width):
    """The encoded source as if padded to `width` tokens: zero keys and values, masked out."""
    extra = width - ops.shape(cross_bias)[-1]
    if extra <= 0:
        return cross_cache, cross_bias
    cross_cache = keras.tree.map_structure(lambda t: ops.pad(t, [(0, 0), (0, 0), (0, extra), (0, 0)]), cross_cache)
    return cross_cache, ops.pad(cross_bias, [(0, 0), (0, 0), (0, 0), (0, extra)], constant_values=NEG_INF)


def empty_self_cache(model, rows, length):
    """Per decoder layer, a (keys, values) pair of zeros (rows, heads, length, head_dim) for its self-attention."""
    layers = model.backbone.decoder_transformer_layers
    attention = layers[0].self_attention
    shape = (rows, attention.num_heads, length, attention.key_value_dim)
    # The attention's own dtype: under mixed_float16 T5's attention runs in float32 (precision.py).
    dtype = attention.key_projector.compute_dtype
    return [(ops.zeros(shape, dtype=dtype), ops.zeros(shape, dtype=dtype)) for _ in layers]


def decode_step(model, tokens, index, self_cache, cross_cache, cross_bias):
    """One decoder step for `tokens` (rows,) at position `index`.

    Rows are examples x beams, beams of one example consecutive; the number of
    beams is rows // examples of `cross_bias`. Caches are lists, one (keys,
    values) pair per layer. Returns (logits (rows, vocab), self_cache with
    this step's keys and values written at `index`).
    """
    backbone = model.backbone
    layers = backbone.decoder_transformer_layers
    length = ops.shape(self_cache[0][0])[2]
    x = backbone.token_embedding(tokens[:, None])  # (rows, 1, hidden)
    # The relative position bias and causal mask, computed once as keras-hub's first layer does.
    bias = layers[0].self_attention.compute_bias(1, length, query_start_index=index)
    bias = ops.cast(bias, "float32") + ops.where(ops.arange(length) <= index, 0.0, NEG_INF)[None, None, None, :]
    updated = []
    for i, layer in enumerate(layers):
        x = ops.cast(x, layer.compute_dtype)  # what calling the layer would do (Keras autocasts inputs)
        attention = layer.self_attention
        h = layer.self_attention_layer_norm(x)
        query, keys, values = (_heads_first(t, attention) for t in project(
            h, attention.query_projector, attention.key_projector, attention.value_projector))
        keys, values = (ops.slice_update(cache, [0, 0, index, 0], new)
                        for cache, new in zip(self_cache[i], (keys, values)))
        updated.append((keys, values))
        x = x + attention.output_projector(_heads_last(_attend(query, keys, values, bias), attention))

        attention = layer.cross_attention
        h = layer.cross_attention_layer_norm(x)
        query = ops.reshape(attention.query_projector(h), (ops.shape(cross_bias)[0], -1, attention.num_heads,
                                                           attention.key_value_dim))
        query = ops.transpose(query, (0, 2, 1, 3))  # (examples, heads, beams, head_dim)
        out = _attend(query, *cross_cache[i], cross_bias)
        x = x + attention.output_projector(_heads_last(out, attention, rows=ops.shape(tokens)[0]))

        x = x + _feed_forward(layer, x)
    x = backbone.decoder_layer_norm(x)
    return model._logits(x)[:, 0, :], updated


def _feed_forward(layer, x):
    h = layer.layer_norm(x)
    if layer.use_gated_activation:
        activation, gate = project(h, layer.input_projector, layer.gate_projector)
        h = activation * gate
    else:
        h = layer.input_projector(h)
    return layer.output_projector(h)


def project(x, *layers):
    """`[layer(x) for layer in layers]` for Dense layers that share an input, as one matmul.

    At decoding's few rows a matmul's fixed cost outweighs its FLOPs (XLA on CPU:
    about 0.4 ms for any of a T5-small step's products), so fewer, wider products
    are faster. Each layer's kernel is its own (its LoRA adapter folded in) in its compute dtype.
    """
    dense = [layer.base if isinstance(layer, LoraAdapted) else layer for layer in layers]
    if len(layers) == 1 or any(layer.quantization_mode for layer in dense):
        return [layer(x) for layer in layers]
    kernel = ops.concatenate([ops.cast(_kernel(layer), layer.compute_dtype) for layer in layers], axis=-1)
    splits = np.cumsum([layer.units for layer in dense])[:-1]
    parts = ops.split(ops.matmul(ops.cast(x, kernel.dtype), kernel), splits, axis=-1)
    outputs = []
    for layer, part in zip(dense, parts):
        part = part if layer.bias is None else part + ops.cast(layer.bias, part.dtype)
        outputs.append(layer.activation(part))
    return outputs


def _kernel(layer):
    """A Dense layer's kernel, with its LoRA adapter folded in when it has one that is on."""
    if isinstance(layer, LoraAdapted):
        return layer.merged_kernel() if layer.enabled else layer.base.kernel
    return layer.kernel


def _attend(query, keys, values, bias):
    """softmax(q k^T + bias) v over (b, heads, q, head_dim) tensors; T5 does not scale by 1/sqrt(d)."""
    scores = ops.einsum("bnqd,bnkd->bnqk", query, keys)
    weights = ops.softmax(scores + ops.cast(bias, scores.dtype), axis=-1)
    return ops.einsum("bnqk,bnkd->bnqd", weights, values)


def _heads_first(x, attention):
    """(rows, length, heads * head_dim) -> (rows, heads, length, head_dim)."""
    x = ops.reshape(x, (ops.shape(x)[0], -1, attention.num_heads, attention.key_value_dim))
    return ops.transpose(x, (0, 2, 1, 3))


def _heads_last(x, attention, rows=None):
    """(b, heads, q, head_dim) -> (rows, 1, heads * head_dim); b x q = rows, one query per row."""
    x = ops.transpose(x, (0, 2, 1, 3))
    return ops.reshape(x, (ops.shape(x)[0] if rows is None else rows, -1, attention.inner_dim))
