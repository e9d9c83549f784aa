"""Load datasets from a hub id or local files, carve splits, check columns.

Local input may be one csv/json/jsonl/parquet file (its rows become `train`)
or a folder holding files named after their split (`train.csv`, `test.csv`,
`validation.csv` ...), which is how `datasets` reads a folder. The same on
`gs://` (any filesystem TensorFlow's `tf.io.gfile` reads) is copied to a local
cache first, with the TPU VM's own credentials and no extra package.
"""

import hashlib
import re
from pathlib import Path

import datasets

from kerastune.errors import KerastuneError
from kerastune.hub.datasets import load_hub_dataset
from kerastune.hub.ids import is_hub_id

FILE_TYPES = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLIT_ALIASES = {
    "train": "train", "validation": "validation", "valid": "validation", "dev": "validation", "test": "test",
}


def load_splits(dataset: str, dataset_config: str = "", split: str = "", revision: str = "") -> datasets.DatasetDict:
    """A `DatasetDict` from a hub id (at `revision`), a local file or a local folder.

    `split` (e.g. `"train[:1%]"`) loads only that slice of a hub dataset, as
    `train`, the way the seeds take a sample of a large one; see
    `kerastune.hub.datasets` for what the hub path adds to `datasets`.
    """
    datasets.disable_progress_bars()
    source = dataset_source(dataset)
    if source == "remote":
        dataset = str(copy_to_local(dataset))
    path = Path(dataset).expanduser()
    if path.is_file():
        return _load_files({"train": [str(path)]}, _file_type(path))
    if path.is_dir():
        return _load_folder(path)
    if source == "missing path":
        raise KerastuneError(f"dataset path does not exist: {dataset}")
    if source != "hub":
        raise KerastuneError(f"dataset not found: '{dataset}' is not a local file or folder, nor a hub id (org/name)")
    loaded = load_hub_dataset(dataset, dataset_config, split, revision)
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded


REMOTE = re.compile(r"^(gs|s3|ram)://")


def dataset_source(dataset: str) -> str:
    """Where `load_splits` takes `dataset` from: "remote" (a bucket), "local", "missing path" (looks like a
    path but is not there), "hub", or "" (nowhere)."""
    if REMOTE.match(dataset):
        return "remote"
    path = Path(dataset).expanduser()
    if path.is_file() or path.is_dir():
        return "local"
    if path.suffix in FILE_TYPES or dataset.startswith((".", "/", "~")):
        return "missing path"
    return "hub" if is_hub_id(dataset) else ""
CACHE = Path("~/.cache/kerastune/datasets").expanduser()


def copy_to_local(url: str) -> Path:
    """A `gs://` file or folder (its data files only) copied into a local cache, afresh on every call so
    that a changed bucket is seen. `ram://` is TensorFlow's in-memory filesystem (tests)."""
    import tensorflow as tf

    url = url.rstrip("/")
    if not tf.io.gfile.exists(url):
        raise KerastuneError(f"dataset path does not exist: {url}")
    local = CACHE / hashlib.sha256(url.encode()).hexdigest()[:16] / url.rsplit("/", 1)[-1]
    names = [n.rstrip("/") for n in tf.io.gfile.listdir(url)] if tf.io.gfile.isdir(url) else [None]
    for name in names:
        source, target = (f"{url}/{name}", local / name) if name else (url, local)
        if name and (Path(name).suffix not in FILE_TYPES or tf.io.gfile.isdir(source)):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tf.io.gfile.copy(source, str(target), overwrite=True)
    return local


def _file_type(path: Path) -> str:
    if path.suffix not in FILE_TYPES:
        raise KerastuneError(f"unsupported dataset file type '{path.suffix}' ({path}); use csv, json, jsonl or parquet")
    return FILE_TYPES[path.suffix]


def _load_folder(path: Path) -> datasets.DatasetDict:
    files, kinds = {}, set()
    for file in sorted(path.iterdir()):
        split = SPLIT_ALIASES.get(file.stem.split("-")[0].split(".")[0])
        if split and file.suffix in FILE_TYPES:
            files.setdefault(split, []).append(str(file))
            kinds.add(FILE_TYPES[file.suffix])
    if "train" not in files:
        raise KerastuneError(f"dataset folder {path} has no train.csv/json/jsonl/parquet file")
    if len(kinds) > 1:
        raise KerastuneError(f"dataset folder {path} mixes file types: {sorted(kinds)}")
    return _load_files(files, kinds.pop())


def _load_files(files: dict, kind: str) -> datasets.DatasetDict:
    try:
        return datasets.load_dataset(kind, data_files=files)
    except Exception as e:
        names = ", ".join(sum(files.values(), []))
        if "corresponds to no data" in str(e):
            raise KerastuneError(f"dataset is empty: {names} has no rows") from None
        raise KerastuneError(f"could not read dataset files {names}: {e}") from None


def require_columns(split: datasets.Dataset, columns, split_name: str):
    missing = [c for c in columns if c not in split.column_names]
    if missing:
        raise KerastuneError(
            f"dataset split '{split_name}' has no column {', '.join(repr(c) for c in missing)}; "
            f"its columns are: {', '.join(split.column_names)}"
        )


def add_validation_split(splits: datasets.DatasetDict, size: int, seed: int) -> datasets.DatasetDict:
    """Carve `size` rows off train as validation when there is no validation split."""
    if "validation" in splits:
        return splits
    if size <= 0:
        raise KerastuneError("the dataset has no validation split and validation_size is 0")
    train = splits["train"]
    if len(train) < 2:
        raise KerastuneError(f"train split has {len(train)} rows: too few to carve a validation split")
    size = min(size, len(train) // 5)  # small datasets keep 80% for training
    parts = train.train_test_split(test_size=size, shuffle=True, seed=seed)
    splits = datasets.DatasetDict(dict(splits))
    splits["train"], splits["validation"] = parts["train"], parts["test"]
    return splits


def limit_rows(split: datasets.Dataset, max_rows: int) -> datasets.Dataset:
    """The first `max_rows` rows (0 means all)."""
    if max_rows and len(split) > max_rows:
        return split.select(range(max_rows))
    return split


def require_rows(split: datasets.Dataset, split_name: str):
    if len(split) == 0:
        raise KerastuneError(f"dataset split '{split_name}' is empty")
