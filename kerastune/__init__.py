"""kerastune: fine-tuning recipes for language models in Keras 3."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines; `kerastune --debug` shows them

__version__ = "0.1.0"
__all__ = ["load_model", "__version__"]


def __getattr__(name):
    """`kerastune.load_model` without importing Keras for the CLI's `--help`."""
    if name == "load_model":
        from kerastune.models import load_model

        return load_model
    raise AttributeError(f"module 'kerastune' has no attribute {name!r}")
