"""Load checkpoints with kerastune in a process where `import torch` fails, and save their logits.

Usage: python load_without_torch.py JOBS.json, each job {"dir", "inputs": {name: nested list}, "out"}.
"""

import importlib.abc
import json
import sys


class NoTorch(importlib.abc.MetaPathFinder):
    """`import torch` (or any torch submodule) raises ImportError, as on a machine without PyTorch."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked in this process")
        return None


sys.meta_path.insert(0, NoTorch())

import numpy as np  # noqa: E402

import kerastune  # noqa: E402

try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("torch imported: the test would prove nothing")

for job in json.loads(open(sys.argv[1]).read()):
    model = kerastune.load_model(job["dir"])
    inputs = {k: np.asarray(v, "int32") for k, v in job["inputs"].items()}
    np.save(job["out"], np.asarray(model(inputs), "float32"))
    print("loaded", job["dir"], type(model).__name__)
