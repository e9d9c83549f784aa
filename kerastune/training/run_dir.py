"""The run directory contract: config.toml at the start, metrics.json at the end."""

import json
import time
from pathlib import Path

from kerastune.config import to_toml
from kerastune.runtime import backend


def start_run(config) -> Path:
    """Create `output_dir` and write the resolved config; returns the directory."""
    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(to_toml(config))
    return run_dir


def write_metrics(run_dir, config, metrics: dict, started: float) -> dict:
    """metrics.json: flat name -> number, plus recipe, backend and seconds."""
    flat = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()}
    flat.update(recipe=config.recipe, backend=backend(), seconds=round(time.time() - started, 2))
    Path(run_dir, "metrics.json").write_text(json.dumps(flat, indent=2) + "\n")
    return flat

