"""The run directory: what a run writes into `output_dir`, and how.

    config.toml          the resolved config, when the run starts (start_run)
    history.csv          a row per epoch (Keras' CSVLogger) or per PPO step (append_history)
    tensorboard/ plots/  the same curves, for TensorBoard and as PNGs (callbacks.plot_history)
    checkpoints/         epoch-NNN/ (training/checkpoints.py) and ppo/ (rl/ppo_trainer.py)
    best.json            the best epoch so far, and best.weights.h5 (callbacks.BestMetric)
    model/               the Keras preset at the end (+ labels.json for classifiers)
    metrics.json         flat name -> number at the end (write_metrics)

`load_run_model` reads a finished run back: its model and generation settings.

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

from kerastune.config import read_toml, to_toml
from kerastune.errors import KerastuneError
from kerastune.models import load_model, model_kind


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


# ---- reading a finished run ----------------------------------------------------------------------

def load_run_model(model_or_run_dir: str, num_beams=None, max_new_tokens=None, revision=""):
    """(model, generation settings) from a run directory (its config's settings) or any model.

    Explicit `num_beams` / `max_new_tokens` override the run's; `kerastune
    generate` and `kerastune export` resolve settings the same way, so they
    produce the same text.
    """
    path = Path(model_or_run_dir)
    saved = {}
    if (path / "config.toml").is_file() and (path / "model").is_dir():
        saved = read_toml(path / "config.toml")
        path = path / "model"
    elif (path / "config.toml").is_file():
        raise KerastuneError(f"run directory {path} has no model/ yet (did the run finish?)")
    model = load_model(str(path) if path.exists() else model_or_run_dir, revision=revision)
    if model_kind(model) not in ("seq2seq", "causal_lm", "masked_lm"):
        raise KerastuneError(f"generate supports seq2seq, causal and masked LMs; got {type(model).__name__}")
    generation, data = saved.get("generation", {}), saved.get("data", {})
    settings = dict(  # run directories written before configs were nested have flat keys
        max_new_tokens=max_new_tokens or generation.get("max_new_tokens", saved.get("max_new_tokens", 32)),
        num_beams=num_beams or generation.get("num_beams", saved.get("num_beams", 1)),
        max_source_length=data.get("max_source_length", saved.get("max_source_length", 512)),
    )
    return model, settings
