"""The run directory: what a run writes into `output_dir`, and how.

    config.toml          the resolved config, when the run starts (start_run)
    history.csv          a row per epoch (Keras' CSVLogger) or per PPO step (append_history)
    tensorboard/ plots/  the same curves, for TensorBoard and as PNGs (callbacks.plot_history)
    checkpoints/         epoch-NNN/ (training/checkpoints.py) and ppo/ (rl/ppo_trainer.py)
    best.json            the best epoch so far, and best.weights.h5 (callbacks.BestMetric)
    model/               the Keras preset at the end (+ labels.json for classifiers)
    metrics.json         flat name -> number at the end (write_metrics)

Anything a killed run must never leave half-written (checkpoints, best
weights, JSON files) goes through `atomic_path`: written under a hidden
temporary name beside its final one, then renamed in one step.
"""

import contextlib
import csv
import json
import os
import shutil
import time
from pathlib import Path

from kerastune.config import to_toml


@contextlib.contextmanager
def atomic_path(final, folder=False):
    """Yield a temporary path beside `final` (a folder if `folder`); on success it becomes `final`.

    The temporary name keeps `final`'s suffix (`.partial-best.weights.h5`), which Keras' savers check."""
    final = Path(final)
    partial = final.with_name(f".partial-{final.name}")
    _remove(partial)
    if folder:
        partial.mkdir(parents=True)
    else:
        partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield partial
    except BaseException:
        _remove(partial)
        raise
    if folder:
        _remove(final)  # a folder cannot be renamed over a non-empty one
    os.replace(partial, final)


def _remove(path: Path):
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_text(path, text: str):
    with atomic_path(path) as partial:
        partial.write_text(text)


def start_run(config) -> Path:
    """Create `output_dir` and write the resolved config; returns the directory."""
    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.toml", to_toml(config))
    return run_dir


def write_metrics(run_dir, config, metrics: dict, started: float) -> dict:
    """metrics.json: flat name -> number, plus recipe, backend and seconds."""
    import keras

    flat = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()}
    flat.update(recipe=config.recipe, backend=keras.config.backend(), seconds=round(time.time() - started, 2))
    write_text(Path(run_dir, "metrics.json"), json.dumps(flat, indent=2) + "\n")
    return flat


# ---- history.csv ---------------------------------------------------------------------------------

def read_history(path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_history(path, row: dict):
    path = Path(path)
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def keep_history(path, rows_to_keep: int):
    """Keep the first rows only: those of epochs or steps that were checkpointed (a resumed run
    continues from its checkpoint, and a killed run may have logged rows after it)."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, newline="") as f:
        header = next(csv.reader(f), None)
    rows = read_history(path)[:rows_to_keep]
    with atomic_path(path) as partial, open(partial, "w", newline="") as f:
        if header:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
