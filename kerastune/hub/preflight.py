"""What a run will fetch from the hub, found before anything is downloaded.

`kerastune run` asks the hub about every model and dataset the config names
(metadata only) before the recipe starts, so a missing repository, a gated
one, a bad revision or a script-only dataset is one line at once, not after
a gigabyte of data, and the user sees what will be downloaded and how big
it is. `kerastune run --dry-run` prints the same and stops.

Config keys: `model` / `*_model` name models (revision in `KEY_revision`),
`dataset` / `*_dataset` name datasets (`KEY_config`, `KEY_split`,
`KEY_revision`). Tiny models, local paths, bucket URLs and keras-hub preset
names are not hub repositories and are shown as they are.
"""

import dataclasses

from kerastune.hub.datasets import plan_dataset
from kerastune.hub.errors import Offline
from kerastune.hub.models import plan_model


def sources(config) -> list[tuple[str, str, str]]:
    """(key, kind, value) for every model and dataset key with a value."""
    found = []
    for key, value in dataclasses.asdict(config).items():
        if not isinstance(value, str) or not value:
            continue
        if key == "model" or key.endswith("_model"):
            found.append((key, "model", value))
        elif key == "dataset" or key.endswith("_dataset"):
            found.append((key, "dataset", value))
    return found


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
    values = dataclasses.asdict(config)
    lines = []
    for key, kind, value in sources(config):
        source = _source(kind, value)
        if source != "hub":
            lines.append(f"{key}: {value} ({NOT_HUB[source]})")
        elif kind == "model":
            plan = plan_model(value.removeprefix("hf://"), values.get(f"{key}_revision", ""))
            lines.append(f"{key}: " + plan.describe())
        else:
            split = values.get(f"{key}_split", "")
            plan = plan_dataset(value, values.get(f"{key}_config", ""), values.get(f"{key}_revision", ""))
            lines.append(f"{key}: " + plan.describe(split) + (f"; split {split}" if split else ""))
    return lines


def preflight(config):
    """Before a run: print what will come from the hub; offline, say the cache will be used."""
    try:
        for line in describe_sources(config):
            print(line)
    except Offline:
        print("no network: models and datasets must come from the local cache")
