"""Import first to keep TensorFlow's load-time log lines off the terminal (`--debug` shows them).

TensorFlow's native libraries log as they load (oneDNN, CUDA probing, CPU
features) before any log level applies, so this module imports Keras and
keras-hub (which load them) with the process's stderr pointed at /dev/null;
an import error still shows, once stderr is back. `kerastune` commands and
the recipe scripts import it before anything else; library users who want
TensorFlow's lines simply do not.
"""

import os
import sys
import warnings

if "--debug" in sys.argv[1:]:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
else:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401
        import keras_hub  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
