"""What a run will fetch from the hub, found before anything is downloaded.

`kerastune run` asks the hub about every model and dataset the config names
(metadata only) before the recipe starts, so a missing repository, a gated
one, a bad revision or a script-only dataset is one line at once, not after
a gigabyte of data, and the user sees what will be downloaded and how big
it is. `kerastune run --dry-run` prints the same and stops.

Config keys: `model.name` and `reward.model` name models (with their
section's `revision`); `data.dataset` names a dataset (with `data.config`,
`data.split`, `data.revision`), `reward.dataset` a local one. Tiny models,
local paths, bucket URLs and keras-hub preset names are not hub repositories
and are shown as they are.
"""

import dataclasses

from kerastune.hub.datasets import plan_dataset
from kerastune.hub.errors import Offline
from kerastune.hub.models import plan_model


@dataclasses.dataclass
class Source:
    key: str  # the config key that names it
    kind: str  # "model" or "dataset"
    value: str
    revision: str = ""
    config: str = ""  # datasets: the hub configuration
    split: str = ""


def sources(config) -> list[Source]:
    """Every model and dataset the config names (those with a value)."""
    data = config.data
    found = [Source("model.name", "model", config.model.name, config.model.revision),
             Source("data.dataset", "dataset", data.dataset, data.revision, data.config, getattr(data, "split", ""))]
    reward = getattr(config, "reward", None)
    if reward is not None:
        found += [Source("reward.model", "model", reward.model, reward.revision),
                  Source("reward.dataset", "dataset", reward.dataset)]
    return [source for source in found if source.value]


NOT_HUB = {"tiny": "tiny random model, built offline", "local": "local path", "remote": "bucket, copied at run time",
           "keras-hub preset": "keras-hub preset", "missing path": "path not found", "": "not a path, preset or hub id"}


def _source(kind: str, value: str) -> str:
    """What the loader would do with the value (`model_source` / `dataset_source`)."""
    if kind == "model":
        from kerastune.models.load import model_source

        return model_source(value)
    from kerastune.data.load import dataset_source

    return dataset_source(value)


def describe_sources(config) -> list[str]:
    """One line per model and dataset: what it is and, for hub repositories, what would be downloaded.
    Raises the one-line `KerastuneError` of the first hub problem."""
    lines = []
    for source in sources(config):
        found = _source(source.kind, source.value)
        if found != "hub":
            lines.append(f"{source.key}: {source.value} ({NOT_HUB[found]})")
        elif source.kind == "model":
            plan = plan_model(source.value.removeprefix("hf://"), source.revision)
            lines.append(f"{source.key}: " + plan.describe())
        else:
            plan = plan_dataset(source.value, source.config, source.revision)
            split = source.split
            lines.append(f"{source.key}: " + plan.describe(split) + (f"; split {split}" if split else ""))
    return lines


def preflight(config):
    """Before a run: print what will come from the hub; offline, say the cache will be used."""
    try:
        for line in describe_sources(config):
            print(line)
    except Offline:
        print("no network: models and datasets must come from the local cache")
