"""Class names of a text classifier (HF's `id2label`), kept on the model and beside its preset.

keras-hub classifiers know only `num_classes`; the toxicity metric needs to
know which output is `hate` and which is `nothate`, so the names travel with
the model: an attribute in memory, `id2label.json` in a saved preset.
"""

import json
from pathlib import Path

LABELS_FILE = "id2label.json"


def set_labels(model, id2label: dict):
    model.id2label = {int(k): str(v) for k, v in id2label.items()}
    return model


def labels_of(model) -> dict:
    return getattr(model, "id2label", None) or {}


def save_labels(model, preset_dir):
    (Path(preset_dir) / LABELS_FILE).write_text(json.dumps(labels_of(model), indent=1))


def read_labels(preset_dir) -> dict:
    path = Path(preset_dir) / LABELS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
