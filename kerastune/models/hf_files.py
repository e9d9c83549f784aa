"""Reading Hugging Face checkpoint directories: config, safetensors, hub downloads."""

import json
import struct
from pathlib import Path

import numpy as np

from kerastune.errors import KerastuneError

_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_config(path) -> dict:
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise KerastuneError(f"no config.json in model directory {path}")
    return json.loads(config_file.read_text())


def read_safetensors_file(file: Path) -> dict[str, np.ndarray]:
    """Read every tensor of a .safetensors file into float32-or-native numpy arrays.

    Written by hand (the format is a JSON header then raw bytes) so that
    bfloat16 checkpoints load without PyTorch.
    """
    data = file.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_size])
    body = memoryview(data)[8 + header_size :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = body[start:end]
        if info["dtype"] == "BF16":
            import ml_dtypes

            array = np.frombuffer(raw, dtype=ml_dtypes.bfloat16).astype(np.float32)
        elif info["dtype"] in _DTYPES:
            array = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]])
        else:
            raise KerastuneError(f"{file}: unsupported tensor dtype {info['dtype']} for {name}")
        tensors[name] = array.reshape(info["shape"])
    return tensors


def _safetensors_files(path: Path) -> list[Path]:
    """The checkpoint's .safetensors files (one, or the shards of an index)."""
    single = path / "model.safetensors"
    index = path / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        return [path / shard for shard in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    if (path / "pytorch_model.bin").is_file():
        raise KerastuneError(
            f"{path} has only pytorch_model.bin; convert it to safetensors first "
            "(transformers: model.save_pretrained(dir, safe_serialization=True))"
        )
    raise KerastuneError(f"no model.safetensors in model directory {path}")


def read_safetensors(path) -> dict[str, np.ndarray]:
    """All weights of a checkpoint directory (single file or sharded with an index)."""
    tensors = {}
    for file in _safetensors_files(Path(path)):
        tensors.update(read_safetensors_file(file))
    return tensors


def read_safetensors_names(path) -> set[str]:
    """The weight names of a checkpoint, from the file headers only."""
    names = set()
    for file in _safetensors_files(Path(path)):
        with open(file, "rb") as f:
            (header_size,) = struct.unpack("<Q", f.read(8))
            names.update(k for k in json.loads(f.read(header_size)) if k != "__metadata__")
    return names


def download(repo_id: str) -> Path:
    """Snapshot-download the files a conversion needs from the Hugging Face Hub."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "merges.txt"],
            )
        )
    except Exception as e:  # network errors, unknown repos, gated repos
        raise KerastuneError(f"could not download '{repo_id}' from the Hugging Face Hub: {e}") from None
