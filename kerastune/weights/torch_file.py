"""Read a PyTorch `pytorch_model.bin` with NumPy alone, never running pickled code.

Why by hand: many hub checkpoints (GPT-2s from before safetensors, for one)
ship only `pytorch_model.bin`, and kerastune must load them without PyTorch.
A `.bin` is `torch.save(state_dict)`: a pickle whose tensors point at raw
storages. Two layouts exist:
- zip (torch >= 1.6): `*/data.pkl` plus one uncompressed entry per storage,
  `*/data/<key>`; the entries are memory-mapped in place, not copied.
- legacy (before 1.6): four pickles (magic number, protocol, system info,
  the state dict), the list of storage keys, then each storage as an int64
  element count followed by its bytes.

The unpickler resolves only the globals a state dict needs to rebuild
tensors (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and
friends, the `torch.*Storage` types). Any other global, which is how a
malicious pickle runs code, stops the load with `UnsafeCheckpointError`.
"""

import collections
import pickle
import struct
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

from kerastune.errors import KerastuneError

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafeCheckpointError(KerastuneError):
    """A pickle asked for something other than the tensor-rebuild globals."""


class _StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
    """A storage named in the pickle; `array` (1-D, its dtype) is filled in once the bytes are located."""

    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel, self.array = dtype, key, numel, None


class _Tensor:
    """What `_rebuild_tensor_v2` returns: a view of a storage, materialised after unpickling."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        base = self.storage.array
        if not self.size:
            return base[self.offset : self.offset + 1].reshape(())
        itemsize = base.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            base[self.offset :], shape=self.size, strides=[s * itemsize for s in self.stride], writeable=False
        )


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source, storages):
        super().__init__(file)
        self.source, self.storages = source, storages

    def find_class(self, module, name):
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[(module, name)]
        raise UnsafeCheckpointError(
            f"{self.source}: refusing to load a pickle that calls {module}.{name} (only tensor data is allowed; "
            "this file may run code: get a safetensors copy)"
        )

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and saved_id and saved_id[0] == "storage"):
            raise UnsafeCheckpointError(f"{self.source}: unexpected persistent id {saved_id!r:.80}")
        storage_type, key, _location, numel = saved_id[1:5]
        view = saved_id[5] if len(saved_id) > 5 else None
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"{self.source}: storage of unknown type {storage_type!r:.80}")
        if view is not None:
            raise KerastuneError(f"{self.source}: storage views (PyTorch < 0.4 files) are not supported")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, key, numel)
        return self.storages[key]


def _state_dict(result, source) -> dict[str, np.ndarray]:
    if isinstance(result, dict) and "state_dict" in result and isinstance(result["state_dict"], dict):
        result = result["state_dict"]
    if not isinstance(result, dict):
        raise KerastuneError(f"{source} holds a {type(result).__name__}, not a state dict of tensors")
    return {str(name): value.to_numpy() for name, value in result.items() if isinstance(value, _Tensor)}


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise KerastuneError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = prefix + "byteorder"
        if byteorder in names and archive.read(byteorder).strip() != b"little":
            raise KerastuneError(f"{path} was saved on a big-endian machine; not supported")
        storages = {}
        with archive.open(pickles[0]) as f:
            result = _RestrictedUnpickler(f, path, storages).load()
        for key, storage in storages.items():
            info = archive.getinfo(f"{prefix}data/{key}")
            if info.compress_type != zipfile.ZIP_STORED:
                raw = np.frombuffer(archive.read(info), np.uint8)
            else:  # the local header (30 bytes + name + extra) precedes the bytes; map them in place
                header = bytes(mapped[info.header_offset : info.header_offset + 30])
                name_length, extra_length = struct.unpack("<HH", header[26:30])
                start = info.header_offset + 30 + name_length + extra_length
                raw = mapped[start : start + info.file_size]
            storage.array = raw[: storage.numel * storage.dtype.itemsize].view(storage.dtype)
    return _state_dict(result, path)


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    storages = {}
    with open(path, "rb") as f:
        try:
            magic = _RestrictedUnpickler(f, path, storages).load()
        except pickle.UnpicklingError:
            raise KerastuneError(f"{path} is not a PyTorch checkpoint (neither zip nor pickle)") from None
        if magic != LEGACY_MAGIC:
            raise KerastuneError(f"{path} is a pickle but not a PyTorch checkpoint (no torch magic number)")
        _RestrictedUnpickler(f, path, storages).load()  # protocol version
        sys_info = _RestrictedUnpickler(f, path, storages).load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise KerastuneError(f"{path} was saved on a big-endian machine; not supported")
        result = _RestrictedUnpickler(f, path, storages).load()
        keys = _RestrictedUnpickler(f, path, storages).load()
        offset = f.tell()
    for key in keys:
        storage = storages[str(key)]
        (numel,) = struct.unpack("<q", bytes(mapped[offset : offset + 8]))
        size = numel * storage.dtype.itemsize
        storage.array = mapped[offset + 8 : offset + 8 + size].view(storage.dtype)
        offset += 8 + size
    if offset > len(mapped):
        raise KerastuneError(f"{path} is truncated: its storages end past the end of the file")
    return _state_dict(result, path)


def read_torch_file(path) -> dict[str, np.ndarray]:
    """name -> read-only array (memory-mapped where the layout allows) of a `torch.save`d state dict."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except (KerastuneError, OSError):
        raise
    except Exception as e:  # truncated or corrupt pickles raise a variety of errors
        raise KerastuneError(f"could not read PyTorch checkpoint {path}: {type(e).__name__}: {e}") from None
