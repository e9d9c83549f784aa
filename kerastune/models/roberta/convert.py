"""Hugging Face `RobertaForSequenceClassification` -> keras-hub `RobertaTextClassifier`.

keras-hub's converter (`RobertaBackbone.from_preset("./hf_dir")`) ports the
encoder but not two things a classifier checkpoint needs:
- the classification head (`classifier.dense` + tanh + `classifier.out_proj`
  on the `<s>` token), which keras-hub's `RobertaTextClassifier` has the same
  shape of but leaves random;
- `token_type_embeddings`: RoBERTa has one token type, so HF adds row 0 to
  every position. keras-hub has no such table; adding that row to the
  position embeddings computes the same sum.
The label names (`id2label`) are kept on the model (see `labels.py`).
"""

from pathlib import Path

import keras_hub
import numpy as np

from kerastune.errors import KerastuneError
from kerastune.models.gpt2.tokenizer import read_vocabulary
from kerastune.models.hf_loader import from_hf_directory
from kerastune.models.labels import set_labels
from kerastune.weights import read_weights

HEAD = ("classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias")


def roberta_tokenizer(vocabulary: dict, merges: list[str]):
    missing = [t for t in ("<s>", "</s>", "<pad>", "<mask>") if t not in vocabulary]
    if missing:
        raise KerastuneError(f"the RoBERTa vocabulary lacks special tokens {missing}")
    return keras_hub.models.RobertaTokenizer(vocabulary=vocabulary, merges=merges)


def text_classifier(backbone, tokenizer, id2label: dict, sequence_length=512):
    length = min(sequence_length, backbone.max_sequence_length)
    preprocessor = keras_hub.models.RobertaTextClassifierPreprocessor(tokenizer=tokenizer, sequence_length=length)
    model = keras_hub.models.RobertaTextClassifier(
        backbone=backbone, num_classes=len(id2label), preprocessor=preprocessor
    )
    return set_labels(model, id2label)


def load_roberta_classifier(path, config: dict, sequence_length=512):
    path = Path(path)
    weights = read_weights(path)
    missing = [name for name in HEAD if name not in weights]
    if missing:
        raise KerastuneError(
            f"{path} has no sequence-classification head (missing {missing[0]}); "
            "is it a RobertaForSequenceClassification checkpoint?"
        )
    id2label = {int(k): v for k, v in config.get("id2label", {}).items()}
    if len(id2label) != weights["classifier.out_proj.weight"].shape[0]:
        id2label = {i: f"LABEL_{i}" for i in range(weights["classifier.out_proj.weight"].shape[0])}
    backbone = from_hf_directory(keras_hub.models.RobertaBackbone, path)
    token_type = weights.get("roberta.embeddings.token_type_embeddings.weight")
    if token_type is not None:
        positions = backbone.embeddings.position_embedding.position_embeddings
        positions.assign(np.asarray(positions.numpy()) + token_type[0])
    model = text_classifier(backbone, roberta_tokenizer(*read_vocabulary(path)), id2label, sequence_length)
    model.pooled_dense.kernel.assign(weights["classifier.dense.weight"].T)
    model.pooled_dense.bias.assign(weights["classifier.dense.bias"])
    model.output_dense.kernel.assign(weights["classifier.out_proj.weight"].T)
    model.output_dense.bias.assign(weights["classifier.out_proj.bias"])
    return model
