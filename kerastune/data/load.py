"""Load datasets from a hub id or local files, carve splits, check columns.

Local input may be one csv/json/jsonl/parquet file (its rows become `train`)
or a folder holding files named after their split (`train.csv`, `test.csv`,
`validation.csv` ...), which is how `datasets` reads a folder. The same on
`gs://` (any filesystem TensorFlow's `tf.io.gfile` reads) is copied to a local
cache first, with the TPU VM's own credentials and no extra package.
"""

import csv
import hashlib
import io
import math
import re
from pathlib import Path

import datasets

from kerastune.errors import KerastuneError
from kerastune.hub.datasets import load_hub_dataset
from kerastune.hub.ids import is_hub_id, looks_local

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
        raise KerastuneError(f"dataset not found: {dataset} does not exist")
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
    if path.suffix in FILE_TYPES or looks_local(dataset):
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
    """Each split on its own (splits may have different columns), each file checked first, so a problem
    names its file."""
    splits = {}
    for split, names in files.items():
        for name in names:
            check_file(Path(name), kind)
        try:
            loaded = datasets.load_dataset(kind, data_files={split: names})[split]
        except Exception as e:
            if "corresponds to no data" in str(e):
                raise KerastuneError(f"{', '.join(names)} has no rows") from None
            cause = e.__cause__ or e.__context__ or e
            message = (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
            raise KerastuneError(f"could not read {', '.join(names)}: {message}") from None
        if len(loaded) == 0:
            raise KerastuneError(f"{', '.join(names)} has no rows")
        splits[split] = loaded
    return datasets.DatasetDict(splits)


def check_file(path: Path, kind: str):
    """A data file that is empty, not UTF-8, or (CSV) has a column name twice: one line naming it."""
    if path.stat().st_size == 0:
        raise KerastuneError(f"{path} is empty (0 bytes)")
    if kind == "parquet":
        return
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not a character cut at the end of the sample
            raise KerastuneError(f"{path} is not UTF-8 text (byte 0x{head[e.start]:02x} at offset {e.start}); "
                                 "save it as UTF-8") from None
    if kind == "csv":
        header = next(csv.reader(io.StringIO(head.decode("utf-8", errors="replace"))), [])
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:
            raise KerastuneError(f"{path} has the column(s) {', '.join(repr(n) for n in twice)} more than once")


def require_columns(split: datasets.Dataset, columns, split_name: str):
    missing = [c for c in columns if c not in split.column_names]
    if missing:
        raise KerastuneError(
            f"dataset split '{split_name}' has no column {', '.join(repr(c) for c in missing)}; "
            f"its columns are: {', '.join(split.column_names)}"
        )


def add_validation_split(splits: datasets.DatasetDict, size: int, seed: int) -> datasets.DatasetDict:
    """Carve `size` rows off train as validation when there is no validation split (at most a fifth)."""
    if "validation" in splits:
        return splits
    if size <= 0:
        raise KerastuneError("the dataset has no validation split and validation_size is 0")
    rows = len(splits["train"])
    if rows < 5:
        raise KerastuneError(f"the train split has {rows} rows: too few to carve a validation split off it "
                             "(at least 5: four fifths train, one fifth validation)")
    splits = datasets.DatasetDict(dict(splits))
    splits["train"], splits["validation"] = split_off(splits["train"], min(size, rows // 5), seed, "validation")
    return splits


def held_out_split(splits, size, seed: int) -> str:
    """The name of the split to evaluate on: `validation`, else `test`, else `size` of train held out (in place,
    as `validation`)."""
    for name in ("validation", "test"):
        if name in splits:
            return name
    splits["train"], splits["validation"] = split_off(splits["train"], size, seed, "validation")
    return "validation"


def split_off(split: datasets.Dataset, size, seed: int, what: str, split_name="train"):
    """(rest, held out): `size` rows (an int) or that share (a float) held out, in a seeded shuffle. An error
    with the numbers when either part would be empty."""
    rows = len(split)
    held = math.ceil(rows * size) if isinstance(size, float) else int(size)
    if held < 1 or rows - held < 1:
        raise KerastuneError(f"the {split_name} split has {rows} row(s): holding out {size} for {what} leaves "
                             f"{rows - held} to train on and {held} for {what}; both need at least one")
    parts = split.train_test_split(test_size=held, shuffle=True, seed=seed)
    return parts["train"], parts["test"]


def limit_rows(split: datasets.Dataset, max_rows: int) -> datasets.Dataset:
    """The first `max_rows` rows (0 means all)."""
    if max_rows and len(split) > max_rows:
        return split.select(range(max_rows))
    return split


def require_rows(split: datasets.Dataset, split_name: str):
    if len(split) == 0:
        raise KerastuneError(f"dataset split '{split_name}' is empty")
