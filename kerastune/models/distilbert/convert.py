"""Hugging Face `DistilBertForMaskedLM` -> keras-hub `DistilBertMaskedLM`.

keras-hub's own converter (`from_preset("./hf_dir")`) ports the backbone and
the tokenizer but not the masked-LM head, which it leaves random. This
copies HF's `vocab_transform` (dense + GELU), `vocab_layer_norm` and the
`vocab_projector` bias (its weight is tied to the word embeddings, as in
keras-hub) so the logits match transformers.
"""

import keras_hub

from kerastune.errors import KerastuneError
from kerastune.models.hf_loader import from_hf_directory
from kerastune.weights import read_weights


def match_head_epsilon(model):
    """HF's `vocab_layer_norm` uses eps 1e-12; keras-hub's MaskedLMHead hard-codes 1e-5.

    On a freshly initialised head the difference moves logits by ~4e-4, so it
    is set after every construction or load (keras-hub rebuilds the head with
    its default when a preset is reloaded).
    """
    head = model.masked_lm_head
    head.layer_norm_epsilon = 1e-12
    head._intermediate_layer_norm.epsilon = 1e-12
    return model


def masked_lm_head_in_float32(model):
    """Under a mixed policy on TensorFlow, keras-hub's MaskedLMHead adds its float32 output bias to
    half-precision logits and TensorFlow refuses the mixed add. The head (one small dense layer and a
    norm; the vocabulary projection stays in half precision) runs in float32 instead, which also gives
    the loss float32 logits."""
    model.masked_lm_head.dtype_policy = "float32"
    return model


def load_distilbert_masked_lm(path, sequence_length=128):
    weights = read_weights(path)
    needed = ("vocab_transform.weight", "vocab_layer_norm.weight", "vocab_projector.bias")
    model = from_hf_directory(keras_hub.models.DistilBertMaskedLM, path)
    if not all(name in weights for name in needed):
        raise KerastuneError(f"{path} has no masked-LM head (is it a DistilBertForMaskedLM checkpoint?)")
    head = model.masked_lm_head
    head._intermediate_dense.kernel.assign(weights["vocab_transform.weight"].T)
    head._intermediate_dense.bias.assign(weights["vocab_transform.bias"])
    head._intermediate_layer_norm.gamma.assign(weights["vocab_layer_norm.weight"])
    head._intermediate_layer_norm.beta.assign(weights["vocab_layer_norm.bias"])
    head._bias.assign(weights["vocab_projector.bias"])
    model.preprocessor.sequence_length = sequence_length
    return match_head_epsilon(model)
