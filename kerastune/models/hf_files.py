"""Reading Hugging Face checkpoint directories: `config.json` (weights: `kerastune.weights`)."""

import json
from pathlib import Path

from kerastune.errors import KerastuneError


def read_config(path) -> dict:
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise KerastuneError(f"no config.json in model directory {path}")
    try:
        return json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise KerastuneError(f"{config_file} is not valid JSON: {e}") from None
