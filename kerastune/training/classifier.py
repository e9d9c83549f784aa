"""Fit a keras-hub text classifier on (text, label name) pairs: how the detox demo makes its reward model."""

import keras
import numpy as np
import tensorflow as tf

from kerastune.errors import KerastuneError
from kerastune.models.labels import labels_of
from kerastune.runtime import pad_batches_for_replicas
from kerastune.training.fit import without_preprocessor


def train_classifier(model, texts, labels, epochs, learning_rate, batch_size=32, source="the data", seed=0) -> float:
    """Train on raw texts (the model's preprocessor tokenizes, in tf.data) and label names from its `id2label`.

    A label name the classifier does not have is an error naming it. Returns the last epoch's accuracy.
    Rows are reshuffled every epoch, and batches padded for the replicas of a distribution in force.
    """
    index = {name: i for i, name in labels_of(model).items()}
    unknown = sorted({str(label) for label in labels} - set(index))
    if unknown:
        raise KerastuneError(f"unknown label(s) {unknown} in {source}; expected {sorted(index)}")
    ids = np.array([index[str(label)] for label in labels], "int32")
    rows = tf.data.Dataset.from_tensor_slices((list(texts), ids, np.ones(len(ids), "float32")))
    batches = rows.shuffle(len(ids), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    batches = pad_batches_for_replicas(batches.map(model.preprocessor, num_parallel_calls=tf.data.AUTOTUNE))
    with without_preprocessor(model):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      weighted_metrics=["accuracy"])
        history = model.fit(batches.prefetch(tf.data.AUTOTUNE), epochs=epochs, verbose=2)
    return float(history.history["accuracy"][-1])
