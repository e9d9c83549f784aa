"""Fit a keras-hub text classifier on (text, label name) pairs: how the detox demo makes its reward model."""

import keras
import numpy as np

from kerastune.errors import KerastuneError
from kerastune.models.labels import labels_of


def train_classifier(model, texts, labels, epochs, learning_rate, batch_size=32, source="the data") -> float:
    """Train on raw texts (the model's preprocessor tokenizes) and label names from its `id2label`.

    A label name the classifier does not have is an error naming it. Returns the last epoch's accuracy.
    """
    index = {name: i for i, name in labels_of(model).items()}
    unknown = sorted({str(label) for label in labels} - set(index))
    if unknown:
        raise KerastuneError(f"unknown label(s) {unknown} in {source}; expected {sorted(index)}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x=list(texts), y=np.array([index[str(label)] for label in labels]), batch_size=batch_size,
                        epochs=epochs, verbose=2)
    return float(history.history["accuracy"][-1])
