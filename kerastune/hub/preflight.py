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
from pathlib import Path

from kerastune.hub.datasets import plan_dataset
from kerastune.hub.errors import Offline
from kerastune.hub.ids import is_hub_id
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


def _local_kind(kind: str, value: str) -> str | None:
    """Why a value is not a hub repository, or None when it is one."""
    if value.startswith("tiny-") and kind == "model":
        return "tiny random model, built offline"
    if Path(value).expanduser().exists():
        return "local path"
    if value.startswith(("gs://", "s3://", "ram://", "kaggle://")):
        return "remote path"
    if kind == "model" and "/" not in value and not value.startswith("hf://"):
        from kerastune.models.load import _keras_hub_presets

        if value in _keras_hub_presets():
            return "keras-hub preset"
    if not is_hub_id(value.removeprefix("hf://")):
        return "not a hub id (org/name)"
    return None


def describe_sources(config) -> list[str]:
    """One line per model and dataset: what it is and, for hub repositories, what would be downloaded.
    Raises the one-line `KerastuneError` of the first hub problem."""
    values = dataclasses.asdict(config)
    lines = []
    for key, kind, value in sources(config):
        local = _local_kind(kind, value)
        if local:
            lines.append(f"{key}: {value} ({local})")
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
