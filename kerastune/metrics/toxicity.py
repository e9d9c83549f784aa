"""Toxicity and reward from a text classifier, as the detox notebook computes them.

- toxicity = P(`hate`), the softmax probability of the toxic label (what
  `evaluate.load("toxicity", ..., toxic_label="hate")` returns);
- reward = the raw `nothate` logit (the notebook's `sentiment_pipe(...,
  function_to_apply="none")[nothate]`), the PPO score.

Texts are scored in batches padded to the longest in the batch (rounded up to
a multiple of 32, so few shapes compile), truncated to the model's sequence
length like the HF pipeline's tokenizer with truncation.
"""

import keras
import numpy as np

from kerastune.errors import KerastuneError
from kerastune.models.labels import labels_of
from kerastune.runtime import compile_model_function


class ToxicityScorer:
    def __init__(self, model, toxic_label="hate", reward_label="nothate", batch_size=16, max_length=None):
        labels = labels_of(model)
        for name in (toxic_label, reward_label):
            if name not in labels.values():
                known = ", ".join(labels.values()) or "none (the classifier has no id2label)"
                raise KerastuneError(f"unknown label '{name}' for the toxicity model; its labels: {known}")
        index = {name: i for i, name in labels.items()}
        self.toxic_index, self.reward_index = index[toxic_label], index[reward_label]
        self.model = model
        self.tokenizer = model.preprocessor.tokenizer
        self.batch_size = batch_size
        self.max_length = max_length or model.preprocessor.sequence_length
        self._logits = compile_model_function(
            model, lambda ids, mask: keras.ops.cast(model({"token_ids": ids, "padding_mask": mask}), "float32")
        )

    def encode(self, texts) -> list[list[int]]:
        """`<s> text </s>` ids, truncated to `max_length` (keeping `</s>`)."""
        body = self.max_length - 2
        start, end = self.tokenizer.start_token_id, self.tokenizer.end_token_id
        return [[start] + [int(t) for t in np.asarray(p)][:body] + [end] for p in self.tokenizer(list(texts))]

    def logits(self, texts) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(labels_of(self.model))), "float32")
        out = []
        for first in range(0, len(texts), self.batch_size):
            ids = self.encode(texts[first:first + self.batch_size])
            width = min(-(-max(map(len, ids)) // 32) * 32, self.max_length)
            token_ids = np.full((len(ids), width), self.tokenizer.pad_token_id, "int32")
            mask = np.zeros((len(ids), width), "int32")
            for row, seq in enumerate(ids):
                token_ids[row, :len(seq)] = seq
                mask[row, :len(seq)] = 1
            out.append(np.asarray(self._logits(token_ids, mask)))
        return np.concatenate(out)

    def toxicity(self, texts) -> np.ndarray:
        """P(toxic label) per text."""
        logits = self.logits(texts)
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities[:, self.toxic_index]

    def rewards(self, texts) -> np.ndarray:
        """The reward label's logit per text (the PPO score)."""
        return self.logits(texts)[:, self.reward_index]


def toxicity_summary(scores) -> dict:
    """Mean and (population, as np.std) standard deviation, as the notebook prints them."""
    scores = np.asarray(scores, "float64")
    return {"mean": float(scores.mean()), "std": float(scores.std())}


def improvement_pct(before: float, after: float) -> float:
    """(before - after) / before * 100: positive when toxicity went down."""
    return float((before - after) / before * 100.0) if before else 0.0
