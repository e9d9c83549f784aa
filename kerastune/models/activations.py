"""Activations that Hugging Face models use and Keras names differently."""

import keras


@keras.saving.register_keras_serializable(package="kerastune")
def gelu_new(x):
    """GELU with the tanh approximation: HF's `gelu_new` (FLAN-T5's gated-gelu).

    Keras's `"gelu"` string is the exact erf GELU; the two differ by ~1e-3,
    enough to break logit parity with transformers.
    """
    return keras.activations.gelu(x, approximate=True)


HF_ACTIVATIONS = {
    "relu": "relu",
    "gelu_new": gelu_new,
    "gelu_pytorch_tanh": gelu_new,
    "gelu": "gelu",
    "silu": "silu",
}
