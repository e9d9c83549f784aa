"""Download a model repository: the best weight format it has, and nothing else.

A hub repository often holds the same weights several times
(`model.safetensors`, `pytorch_model.bin`, `tf_model.h5`,
`flax_model.msgpack`). kerastune lists the repository first (one metadata
request, which also catches a missing repo, a gated one or a bad revision
in one line), picks safetensors, else `pytorch_model.bin` (single or
sharded), says what it is about to download and how big it is, and fetches
only those files plus the config and tokenizer files.
"""

import dataclasses
import json
from pathlib import Path

from kerastune.errors import KerastuneError
from kerastune.hub.errors import Offline, hub_errors_as_lines, not_cached
from kerastune.hub.ids import namespaced
from kerastune.weights import UNREADABLE, choose_weight_files

SIDE_FILES = (".json", ".txt", ".model", ".tiktoken", ".jinja")  # config, tokenizer, vocabulary, chat template files


@dataclasses.dataclass
class ModelFiles:
    """What `download_model` fetches from one repository at one commit."""

    repo_id: str
    revision: str
    commit: str
    weights: list[str]  # the chosen format's files (an index and its shards, or one file)
    side_files: list[str]
    sizes: dict[str, int]

    def total(self, names=None) -> int:
        return sum(self.sizes.get(n, 0) for n in (self.weights + self.side_files if names is None else names))

    def describe(self) -> str:
        weights = ", ".join(f"{n} ({human(self.sizes.get(n, 0))})" for n in self.weights)
        return (f"model {self.repo_id}@{self.revision} (commit {self.commit[:10]}): {weights} + "
                f"{len(self.side_files)} config/tokenizer files ({human(self.total(self.side_files))}); "
                f"{human(self.total())} in all")


def human(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000


def plan_model(repo_id: str, revision: str = "") -> ModelFiles:
    """The files `download_model` would fetch (metadata requests, plus the shard index of a sharded checkpoint)."""
    from huggingface_hub import HfApi, hf_hub_download

    repo_id, revision = namespaced("models", repo_id), revision or "main"
    with hub_errors_as_lines("model", repo_id, revision):
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    sizes = {s.rfilename: s.size or 0 for s in info.siblings}
    chosen = choose_weight_files(sizes)
    if not chosen:
        present = [n for n in UNREADABLE if n in sizes]
        has = f"it has {', '.join(present)}" if present else "it has no weight files"
        raise KerastuneError(
            f"the model '{repo_id}' at revision '{revision}' has no weights kerastune can read ({has}); kerastune "
            "reads model.safetensors and pytorch_model.bin (single or sharded). If a safetensors conversion is "
            "waiting in a pull request, pass its revision: model_revision=refs/pr/N"
        )
    if chosen[0].endswith(".index.json"):
        with hub_errors_as_lines("model", repo_id, revision):
            index = hf_hub_download(repo_id, chosen[0], revision=info.sha)
        chosen += sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
    side = sorted(n for n in sizes if "/" not in n and n.endswith(SIDE_FILES) and n not in chosen
                  and not n.endswith(".index.json"))
    return ModelFiles(repo_id, revision, info.sha, chosen, side, sizes)


def download_model(repo_id: str, revision: str = "") -> Path:
    """A local directory with the repository's config, tokenizer and best-format weights."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    try:
        files = plan_model(repo_id, revision)
    except Offline:
        return _from_cache(namespaced("models", repo_id), revision or "main")
    missing = [n for n in files.weights + files.side_files
               if not isinstance(try_to_load_from_cache(files.repo_id, n, revision=files.commit), str)]
    if missing:
        print(f"downloading {files.describe()}; {human(files.total(missing))} not yet in the cache")
    # By revision name, not commit: the cache then records the branch, for offline runs later.
    with hub_errors_as_lines("model", files.repo_id, files.revision):
        path = snapshot_download(files.repo_id, revision=files.revision,
                                 allow_patterns=files.weights + files.side_files)
    return Path(path)


def _from_cache(repo_id: str, revision: str) -> Path:
    """Offline: the snapshot folder an earlier download left in the cache, if there is one. (Not
    `snapshot_download(local_files_only=True)`: it wants every file of the repository, and kerastune
    downloads only one weight format.)"""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if not isinstance(config, str):
        raise not_cached("model", repo_id, revision)
    path = Path(config).parent
    print(f"no network: using the cached copy of {repo_id}@{revision} ({path})")
    return path
