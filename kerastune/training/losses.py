"""Token losses that average like transformers does.

Keras's default reduction divides the summed loss by every position, padding
included; transformers averages over the non-ignored tokens only. With
`mean_with_sample_weight` and a 0/1 padding weight the two agree, and the
seeds' learning rates mean what they meant there.
"""

import keras


def token_loss():
    """Mean cross-entropy over the target tokens whose sample weight is 1."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")


def token_metrics():
    return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")]
