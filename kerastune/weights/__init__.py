"""A checkpoint directory's weights, whatever format the hub repository had.

Formats, in order of preference (the same order downloads use):
`model.safetensors`, sharded safetensors (`model.safetensors.index.json`),
`pytorch_model.bin` (zip or legacy pickle), sharded `.bin`
(`pytorch_model.bin.index.json`). `tf_model.h5` and `flax_model.msgpack`
are not read: every repository that has them also has one of the above,
or a `refs/pr/N` revision that does (pass it as the revision).

`read_weights` gives name -> array with floating weights as float32 (the
dtype kerastune's variables have); arrays are views of memory-mapped files
until then, and bfloat16 / float16 ones are converted one tensor at a time.
"""

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from kerastune.errors import KerastuneError
from kerastune.weights.safetensors_file import read_header, read_safetensors_file
from kerastune.weights.torch_file import UnsafeCheckpointError, read_torch_file

# (single file, index of shards) per format, best first.
FORMATS = (
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
)
UNREADABLE = ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index", "rust_model.ot", "model.onnx")

__all__ = ["FORMATS", "UNREADABLE", "UnsafeCheckpointError", "Weights", "choose_weight_files", "read_weights",
           "weight_files", "weight_names"]


def choose_weight_files(names) -> list[str]:
    """The files of the best format among a repository's file names (shards listed by the index later)."""
    names = set(names)
    for single, index in FORMATS:
        if single in names:
            return [single]
        if index in names:
            return [index]
    return []


def weight_files(path) -> list[Path]:
    """The checkpoint files of the best format in a directory: one file, or the shards of an index."""
    path = Path(path)
    chosen = choose_weight_files(p.name for p in path.iterdir()) if path.is_dir() else []
    if not chosen:
        present = [name for name in UNREADABLE if (path / name).exists()]
        found = f" (it has {', '.join(present)}, which kerastune does not read)" if present else ""
        raise KerastuneError(
            f"no model weights kerastune can read in {path}{found}; it needs model.safetensors or "
            "pytorch_model.bin (single or sharded with an index)"
        )
    if not chosen[0].endswith(".index.json"):
        return [path / chosen[0]]
    try:
        weight_map = json.loads((path / chosen[0]).read_text())["weight_map"]
    except (ValueError, KeyError):
        raise KerastuneError(f"{path / chosen[0]} is not a shard index (no weight_map)") from None
    shards = [path / name for name in sorted(set(weight_map.values()))]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise KerastuneError(f"{path}: shard(s) {', '.join(missing)} named in {chosen[0]} are missing")
    return shards


def _read_file(file: Path) -> dict[str, np.ndarray]:
    return read_safetensors_file(file) if file.suffix == ".safetensors" else read_torch_file(file)


class Weights(Mapping):
    """name -> array, converted to float32 (when floating) on access, so a bfloat16 checkpoint is never
    held as a whole float32 copy: converters copy one tensor at a time into Keras variables."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def __getitem__(self, name):
        array = self.tensors[name]
        floating = np.issubdtype(array.dtype, np.floating) or array.dtype.name == "bfloat16"
        if floating and array.dtype != np.float32:
            return array.astype(np.float32)
        return array

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self):
        return len(self.tensors)


def read_weights(path) -> Weights:
    """name -> array for a checkpoint directory, floating arrays as float32."""
    tensors = {}
    for file in weight_files(path):
        tensors.update(_read_file(file))
    return Weights(tensors)


def weight_names(path) -> set[str]:
    """The weight names, from safetensors headers only (a `.bin` is unpickled: it has no header)."""
    names = set()
    for file in weight_files(path):
        names.update(read_header(file) if file.suffix == ".safetensors" else read_torch_file(file))
    return names
