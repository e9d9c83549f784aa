"""Perplexity: exp of the mean masked cross-entropy, over every masked token of a dataset.

Averaged over tokens (not over batch means), so it does not depend on the
batch size. With a fixed-mask evaluation dataset the numbers before and after
training are comparable.
"""

import math

import keras
import numpy as np

from kerastune.runtime import compile_model_function


def masked_cross_entropy(model, dataset) -> float:
    def batch_totals(x, y, weight):
        logits = keras.ops.cast(model(x, training=False), "float32")
        losses = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        return keras.ops.sum(losses * weight), keras.ops.sum(weight)

    compiled = compile_model_function(model, batch_totals)
    total = count = 0.0
    for x, y, weight in dataset.as_numpy_iterator():
        loss_sum, weight_sum = compiled(x, y, weight)
        total += float(np.asarray(loss_sum))
        count += float(np.asarray(weight_sum))
    return total / max(count, 1.0)


def exp_loss(loss: float) -> float:
    """exp(loss), `inf` where it overflows (a diverged model) instead of an OverflowError."""
    return math.exp(loss) if loss < 709.0 else math.inf


def perplexity(model, dataset) -> float:
    return exp_loss(masked_cross_entropy(model, dataset))
