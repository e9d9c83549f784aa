"""kerastune: fine-tuning recipes for language models in Keras 3."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerastune.models import load_model  # noqa: E402

__version__ = "0.1.0"
__all__ = ["load_model", "__version__"]
