"""Read a `.safetensors` file as memory-mapped NumPy arrays.

The format is an 8-byte header length, a JSON header (name -> dtype, shape,
byte offsets) and the raw bytes. Mapping the file instead of reading it
means a multi-GB checkpoint is never held twice: each array is a view of
the page cache until a converter copies it into a Keras variable.
bfloat16 comes back as `ml_dtypes.bfloat16`, which NumPy and Keras read.
"""

import json
import struct
from pathlib import Path

import ml_dtypes
import numpy as np

from kerastune.errors import KerastuneError

DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def read_header(path) -> dict:
    """name -> {dtype, shape, data_offsets}, without the tensors."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise KerastuneError(f"{path} is not a safetensors file (too short)")
        (size,) = struct.unpack("<Q", head)
        if size > Path(path).stat().st_size - 8:
            raise KerastuneError(f"{path} is not a safetensors file (its header length is past the end of the file)")
        try:
            header = json.loads(f.read(size))
        except (ValueError, UnicodeDecodeError):
            raise KerastuneError(f"{path} is not a safetensors file (bad header)") from None
    header.pop("__metadata__", None)
    return header


def read_safetensors_file(path) -> dict[str, np.ndarray]:
    """name -> read-only array, a view of the memory-mapped file."""
    path = Path(path)
    header = read_header(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    (size,) = struct.unpack("<Q", bytes(mapped[:8]))
    body = 8 + size
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in DTYPES:
            raise KerastuneError(f"{path}: unsupported tensor dtype {info['dtype']} for {name}")
        start, end = info["data_offsets"]
        if body + end > len(mapped):
            raise KerastuneError(f"{path} is truncated: tensor {name} ends past the end of the file")
        tensors[name] = mapped[body + start : body + end].view(DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors


def write_safetensors_file(path, tensors: dict):
    """float32 tensors in the safetensors layout (JSON header, then raw little-endian bytes)."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = list(tensors[name].shape)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)
