"""Load a hub dataset the way `datasets.load_dataset` does, with the failures a real user meets handled.

- A bare legacy id (`imdb`) is resolved to its namespaced one first.
- One metadata request up front: a missing, gated or unreachable repository
  or a bad revision is one line at once (`datasets` alone retries for ~20 s
  when offline). Offline, a dataset already in the cache still loads.
- A repository that holds only a loading script (which `datasets` >= 4
  refuses to run) is named as such, with a dataset to use instead.
- Before downloading, it says which files and how many bytes.
- A slice from the start of a split (`train[:1%]`, `train[:5000]`) of a
  parquet dataset is streamed: only the rows it needs are read, not the
  whole config (1.15 GB for amazon-esci `products`, to keep 1%). The rows
  are kept under `~/.cache/kerastune/slices` (or `$KERASTUNE_CACHE/slices`), keyed by the commit, so a
  rerun reads them back instead of streaming again.
"""

import contextlib
import dataclasses
import hashlib
import os
import re
from pathlib import Path

import datasets

from kerastune.errors import KerastuneError
from kerastune.hub.errors import Offline, explain, hub_errors_as_lines
from kerastune.hub.ids import SCRIPT_ONLY, namespaced
from kerastune.hub.models import human

SLICE = re.compile(r"^(\w+)\[:(\d+)(%?)\]$")
SLICE_CACHE = Path(os.environ.get("KERASTUNE_CACHE", "~/.cache/kerastune")).expanduser() / "slices"


@dataclasses.dataclass
class DatasetFiles:
    repo_id: str
    config: str
    revision: str
    commit: str
    split_files: dict  # split -> [(path in the repo, size in bytes)]

    def describe(self, split: str = "") -> str:
        name = SLICE.match(split).group(1) if SLICE.match(split) else split.split("[")[0]
        chosen = {s: f for s, f in self.split_files.items() if not name or s == name}
        size = sum(b for files in chosen.values() for _, b in files)
        count = sum(len(files) for files in chosen.values())
        splits = ", ".join(f"{s} ({len(f)} files)" for s, f in chosen.items())
        config = f", config '{self.config}'" if self.config else ""
        return (f"dataset {self.repo_id}@{self.revision} (commit {self.commit[:10]}{config}): {splits}; "
                f"{count} data files, {human(size)}")


def plan_dataset(repo_id: str, config: str = "", revision: str = "") -> DatasetFiles:
    """Which data files each split of the dataset has, and their sizes (metadata requests only)."""
    from huggingface_hub import HfApi

    repo_id, revision = namespaced("datasets", repo_id), revision or "main"
    if repo_id in SCRIPT_ONLY:  # known, so refused offline too
        raise _script_only(repo_id)
    with hub_errors_as_lines("dataset", repo_id, revision):
        info = HfApi().dataset_info(repo_id, revision=revision, files_metadata=True)
    sizes = {s.rfilename: s.size or 0 for s in info.siblings}
    try:
        builder = datasets.load_dataset_builder(repo_id, config or None, revision=info.sha)
    except Exception as e:
        raise _dataset_error(e, repo_id, config, revision) from None
    split_files = {}
    for split, urls in (builder.config.data_files or {}).items():
        paths = [str(url).split(f"@{info.sha}/", 1)[-1] for url in urls]
        split_files[str(split)] = [(p, sizes.get(p, 0)) for p in paths]
    return DatasetFiles(repo_id, config, revision, info.sha, split_files)


def load_hub_dataset(repo_id: str, config: str = "", split: str = "", revision: str = ""):
    """`datasets.load_dataset(repo_id, config, split=split, revision=revision)`, as the module docstring says."""
    try:
        plan = plan_dataset(repo_id, config, revision)
    except Offline as offline:
        return _load_offline(namespaced("datasets", repo_id), config, split, revision or "main", offline)
    print(plan.describe(split))
    sliced = SLICE.match(split or "")
    name = sliced.group(1) if sliced else ""
    if sliced and name in plan.split_files and all(p.endswith(".parquet") for p, _ in plan.split_files[name]):
        return _first_rows(plan, name, int(sliced.group(2)), bool(sliced.group(3)))
    try:
        return datasets.load_dataset(plan.repo_id, config or None, split=split or None, revision=plan.commit)
    except Exception as e:
        raise _dataset_error(e, plan.repo_id, config, plan.revision) from None


def _first_rows(plan: DatasetFiles, split: str, stop: int, percent: bool) -> datasets.Dataset:
    """`split[:stop]` or `split[:stop%]` by streaming the parquet files, cached by commit."""
    key = hashlib.sha256(f"{plan.repo_id}@{plan.commit}/{plan.config}/{split}[:{stop}{'%' if percent else ''}]"
                         .encode()).hexdigest()[:16]
    cached = SLICE_CACHE / key
    if (cached / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(cached))
    with hub_errors_as_lines("dataset", plan.repo_id, plan.revision):
        if percent:
            total = _parquet_rows(plan, split)
            count = round(stop * total / 100)  # what `datasets` does for split="train[:N%]" (rounding "closest")
            print(f"streaming the first {stop}% of {split}: {count} of {total} rows")
            stop = count
        else:
            print(f"streaming the first {stop} rows of {split}")
        stream = datasets.load_dataset(plan.repo_id, plan.config or None, split=split, streaming=True,
                                       revision=plan.commit)
        rows = list(stream.take(stop))
    if not rows:
        raise KerastuneError(f"{split}[:{stop}] of dataset '{plan.repo_id}' has no rows")
    sliced = datasets.Dataset.from_list(rows, features=stream.features)
    sliced.save_to_disk(str(cached))
    return sliced


def _parquet_rows(plan: DatasetFiles, split: str) -> int:
    """Rows in a split, from the parquet footers (a few kB read per file)."""
    import pyarrow.parquet as pq
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem()
    total = 0
    for path, _ in plan.split_files[split]:
        with fs.open(f"datasets/{plan.repo_id}@{plan.commit}/{path}", block_size=2**16) as f:  # 64 kB reads
            total += pq.ParquetFile(f).metadata.num_rows
    return total


def _load_offline(repo_id, config, split, revision, offline: Offline):
    """No network: `datasets` in offline mode reads what an earlier run cached, if anything."""
    import huggingface_hub.constants

    with _offline_mode(huggingface_hub.constants, datasets.config):
        try:
            loaded = datasets.load_dataset(repo_id, config or None, split=split or None, revision=revision)
        except Exception:
            raise offline from None
    print(f"no network: using the cached copy of dataset {repo_id}")
    return loaded


@contextlib.contextmanager
def _offline_mode(*modules):
    saved = [m.HF_HUB_OFFLINE for m in modules]
    for m in modules:
        m.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for m, value in zip(modules, saved):
            m.HF_HUB_OFFLINE = value


def _script_only(repo_id: str) -> KerastuneError:
    instead = SCRIPT_ONLY.get(repo_id)
    use = f"; use '{instead}' (data files) instead" if instead else "; use a dataset that has data files"
    return KerastuneError(f"the dataset '{repo_id}' is only a loading script, which datasets >= 4 no longer "
                          f"runs{use}")


def _dataset_error(error: Exception, repo_id: str, config: str, revision: str) -> KerastuneError:
    text = str(error)
    if "Dataset scripts are no longer supported" in text:
        return _script_only(repo_id)
    if "BuilderConfig" in text and "not found" in text:
        return KerastuneError(f"the dataset '{repo_id}' has no config '{config}' ({text.split('. ', 1)[-1]})")
    if "doesn't exist" in text and "Revision" in text:
        return KerastuneError(f"the dataset '{repo_id}' has no revision '{revision}'")
    return explain(error, "dataset", repo_id, revision)
