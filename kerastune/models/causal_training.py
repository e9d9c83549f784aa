"""A keras-hub causal LM's forward pass for training, with what `fit` needs beyond the backbone's own call.

keras-hub's backbones are functional models that run each decoder layer whole on a padding mask. Training
sometimes needs more, and `CausalLMForTraining` adds it around the same layers and weights:
- packed rows (data/packing.py): each layer gets a block-diagonal causal mask, so a token attends to the
  earlier tokens of its own segment only. With rotary positions (Llama, Qwen, Mistral) attention depends on
  distances, so an example computes the same logits packed as alone (tests/test_packing.py). Gemma's
  layers take no attention mask and GPT-2's positions are absolute: refused, batches are bucketed instead.
- rematerialization (`train.remat`): each decoder layer under `keras.remat`, its activations recomputed in
  the backward pass instead of kept (one layer's input is what stays). Keras's `RematScope` does not work
  on keras-hub's decoders (TensorFlow: wrong gradients in "full" mode, an error in "activations"; JAX: an
  error), so the layers are wrapped here, with the mask and `training` closed over.
- chunked cross-entropy (`train.loss_chunk_size`): the head and the loss `chunk_size` positions at a time,
  each chunk rematerialized, so the (batch, length, vocabulary) logits never exist whole: at Qwen's 152k
  or Gemma's 256k vocabulary they are the largest tensor in training.
Evaluation runs the model as it is. tests/test_memory_levers.py checks that the loss and gradients equal
the plain model's.
"""

import inspect

import keras
from keras import ops

from kerastune.errors import KerastuneError


def _layer_keywords(backbone) -> set:
    layers = getattr(backbone, "transformer_layers", None) or []
    return set(inspect.signature(layers[0].call).parameters) if layers else set()


def check_packing(causal_lm):
    """Raise a one-line error unless `causal_lm` can train on packed rows."""
    backbone = causal_lm.backbone
    rotary = getattr(backbone, "rope_max_wavelength", None) is not None
    if not ("decoder_attention_mask" in _layer_keywords(backbone) and rotary and _embedding(backbone)):
        raise KerastuneError(f"data.pack needs a rotary-position model whose layers take an attention mask (Llama, "
                             f"Qwen, Mistral); {type(causal_lm).__name__} has not: set data.pack = false (batches "
                             "are length-bucketed)")


def _embedding(backbone) -> str:
    """How the backbone embeds tokens before its first layer ("" when kerastune does not know it)."""
    name = type(backbone).__name__
    if name == "GPT2Backbone":
        return "tokens_and_positions"
    if name == "GemmaBackbone":
        return "scaled_tokens"
    if name in ("LlamaBackbone", "Llama3Backbone", "QwenBackbone", "Qwen3Backbone", "MistralBackbone"):
        return "tokens"
    return ""


def check_remat(causal_lm):
    """Raise a one-line error unless the decoder layers can be rematerialized: kerastune must know the
    backbone's embedding, and no dropout may run inside the layers (a recomputed layer would draw other masks
    than the forward pass did: wrong gradients on TensorFlow, an error on JAX)."""
    backbone = causal_lm.backbone
    if not _embedding(backbone):
        raise KerastuneError(f"train.remat has no layer-by-layer pass for {type(backbone).__name__} "
                             "(Llama, Qwen, Qwen3, Mistral, Gemma, GPT-2 have): set train.remat = false")
    dropout = max((layer.rate for block in backbone.transformer_layers for layer in block._flatten_layers()
                   if isinstance(layer, keras.layers.Dropout)), default=0.0)
    if dropout > 0:
        raise KerastuneError(f"train.remat needs decoder layers without dropout (this model's or LoRA's), and "
                             f"{type(backbone).__name__}'s have dropout {dropout}: set train.remat = false or "
                             "lora.dropout = 0")


def _embed(backbone, token_ids, training):
    kind = _embedding(backbone)
    if kind == "tokens_and_positions":
        tokens = backbone.token_embedding(token_ids)
        x = backbone.embeddings_add((tokens, backbone.position_embedding(tokens)))
        return backbone.embeddings_dropout(x, training=training)
    x = backbone.token_embedding(token_ids)
    if kind == "scaled_tokens":
        x = x * ops.cast(ops.sqrt(backbone.hidden_dim), x.dtype)
    return x


def hidden_states(causal_lm, token_ids, padding_mask, segment_ids=None, remat=False, training=False):
    """The backbone's output, computed layer by layer: with a block-diagonal mask for packed rows
    (`segment_ids`), and each decoder layer rematerialized when `remat`."""
    backbone = causal_lm.backbone
    if segment_ids is not None:
        same_segment = ops.equal(ops.expand_dims(segment_ids, 2), ops.expand_dims(segment_ids, 1))
        mask = ops.cast(ops.logical_and(same_segment, ops.expand_dims(segment_ids > 0, 1)), "int32")
        keyword = "decoder_attention_mask"  # the layers add the causal part
    else:
        mask = padding_mask
        keyword = "decoder_padding_mask" if "decoder_padding_mask" in _layer_keywords(backbone) else "padding_mask"
    x = _embed(backbone, token_ids, training)
    for layer in backbone.transformer_layers:
        def run_layer(h, layer_mask, layer=layer):
            return layer(h, **{keyword: layer_mask}, training=training)

        x = keras.remat(run_layer)(x, mask) if remat else run_layer(x, mask)
    return backbone.layer_norm(x)


def head_logits(causal_lm, hidden):
    """What a keras-hub causal LM does after its backbone: the (tied or separate) head, which applies Gemma 2's
    soft cap on the logits itself."""
    return causal_lm.backbone.token_embedding(hidden, reverse=True)


def packed_logits(causal_lm, token_ids, segment_ids, training=False):
    return head_logits(causal_lm, hidden_states(causal_lm, token_ids, None, segment_ids, training=training))


def chunked_cross_entropy(causal_lm, hidden, labels, weights, chunk_size: int, max_length: int):
    """The recipes' token loss (mean cross-entropy over the weighted tokens) from the final hidden states, the
    logits made `chunk_size` positions at a time, each chunk rematerialized. The head's (hidden, vocabulary)
    kernel is made once and passed in: made inside, each chunk would hold a transposed copy of a tied head."""
    head = causal_lm.backbone.token_embedding
    kernel = ops.transpose(head.embeddings) if head.tie_weights else head.reverse_embeddings
    weights = ops.cast(weights, "float32")

    @keras.remat
    def chunk_loss(chunk_hidden, head_kernel, chunk_labels, chunk_weights):
        logits = ops.matmul(chunk_hidden, ops.cast(head_kernel, chunk_hidden.dtype))
        if head.logit_soft_cap is not None:  # Gemma 2's cap, as the head applies it
            logits = ops.tanh(logits / head.logit_soft_cap) * head.logit_soft_cap
        losses = keras.losses.sparse_categorical_crossentropy(chunk_labels, ops.cast(logits, "float32"),
                                                              from_logits=True)
        return ops.sum(losses * chunk_weights)

    # Chunks up to the longest a batch can be: with bucketed batches the traced length can be unknown, and a
    # chunk past a shorter batch's end is empty (its loss 0).
    total = 0.0
    for start in range(0, hidden.shape[1] or max_length, chunk_size):
        end = start + chunk_size
        total = total + chunk_loss(hidden[:, start:end], kernel, labels[:, start:end], weights[:, start:end])
    return total / ops.maximum(ops.sum(weights), 1.0)


class CausalLMForTraining(keras.Model):
    """Wraps a keras-hub causal LM for `fit` with packed rows (batches with `segment_ids`), rematerialized
    layers and / or a chunked loss; batches for evaluation run the model as it is. The weights are the wrapped
    model's. With a chunked loss there are no whole logits, so token accuracy is not measured while training."""

    def __init__(self, causal_lm, packed=False, remat=False, loss_chunk_size=0, max_length=0, **kwargs):
        super().__init__(**kwargs)
        if packed:
            check_packing(causal_lm)
        if remat:
            check_remat(causal_lm)
        self.causal_lm = causal_lm
        self.remat, self.loss_chunk_size, self.max_length = remat, loss_chunk_size, max_length
        self.preprocessor = None  # `fit` detaches a task's preprocessor; this one has none
        self.reports_token_accuracy = not loss_chunk_size

    def call(self, inputs, training=False):
        segment_ids = inputs.get("segment_ids")
        if not training and segment_ids is None:
            return self.causal_lm({"token_ids": inputs["token_ids"], "padding_mask": inputs["padding_mask"]},
                                  training=False)
        if segment_ids is None and not self.remat:
            hidden = self.causal_lm.backbone({"token_ids": inputs["token_ids"],
                                              "padding_mask": inputs["padding_mask"]}, training=training)
        else:
            hidden = hidden_states(self.causal_lm, inputs["token_ids"], inputs.get("padding_mask"), segment_ids,
                                   self.remat, training)
        return hidden if self.loss_chunk_size and training else head_logits(self.causal_lm, hidden)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not (training and self.loss_chunk_size):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        return chunked_cross_entropy(self.causal_lm, y_pred, y, sample_weight, self.loss_chunk_size, self.max_length)
