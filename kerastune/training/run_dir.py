"""The run directory: what a run writes into `output_dir`, and how.

    config.toml          the resolved config, when the run starts (start_run)
    history.csv          a row per epoch (Keras' CSVLogger) or per PPO step (append_history)
    tensorboard/ plots/  the same curves, for TensorBoard and as PNGs (callbacks.plot_history)
    checkpoints/         epoch-NNNN/ and ppo-NNNN/, one format (training/checkpoints.py)
    best.json            the best epoch so far, and best.npz, its weights (callbacks.BestMetric)
    model/               the Keras preset at the end (+ labels.json for classifiers)
    metrics.json         flat name -> number at the end (write_metrics)

`load_run_model` reads a finished run back: its model and generation settings.

Anything a killed run must never leave half-written (checkpoints, best
weights, JSON files) goes through `atomic_path`: written under a hidden
temporary name beside its final one, then renamed in one step.

`start_run` refuses to resume a run directory that was made with other
settings (it names the keys that differ), and clears the old run's progress
when `train.resume` is off. The run's clock (`elapsed`) counts the seconds
of the work a finished run holds: a resumed run adds its own to those its
checkpoint recorded.
"""

import contextlib
import csv
import json
import math
import os
import shutil
import time
import tomllib
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
    if folder and final.exists():  # a folder cannot be renamed over a non-empty one: move the old one aside
        old = final.with_name(f".old-{final.name}")
        _remove(old)
        os.replace(final, old)
        os.replace(partial, final)
        _remove(old)
    else:
        os.replace(partial, final)


def _remove(path: Path):
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_text(path, text: str):
    with atomic_path(path) as partial:
        partial.write_text(text)


# Keys a resumed run may change: where it runs, and how it checkpoints.
RESUMABLE_CHANGES = ("output_dir", "train.resume", "train.keep_checkpoints", "distribution.")
# What a run leaves in its directory that a fresh start must not find (sub-runs: detox's stages).
PROGRESS = ("checkpoints", "history.csv", "best.json", "best.npz", "metrics.json")
RESUME_CHANGED = "KERASTUNE_RESUME_CHANGED"  # set by `--resume-changed`: continue with the new settings

_clock = {"started": time.time(), "before": 0.0}


def start_run(config) -> Path:
    """Create `output_dir` (checking that it can be written), check or clear what an earlier run left,
    write the resolved config; returns the directory."""
    run_dir = Path(config.output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise KerastuneError(f"output_dir {run_dir} is a file, not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise KerastuneError(f"output_dir {run_dir} cannot be written: {e.strerror or e}") from None
    if config.train.resume and has_progress(run_dir):
        changed = changed_settings(run_dir / "config.toml", config)
        if changed and not os.environ.get(RESUME_CHANGED):
            raise KerastuneError(
                f"{run_dir} holds a run made with other settings ({'; '.join(changed)}): rerun with "
                "--set resume=false to start over, another output_dir, or --resume-changed to continue anyway")
    elif not config.train.resume:
        clear_progress(run_dir)
    write_text(run_dir / "config.toml", to_toml(config))
    _clock.update(started=time.time(), before=0.0)
    return run_dir


def _progress(run_dir) -> list[Path]:
    """What an earlier run left in `run_dir` or its stage folders (one level down). Only in a run directory
    (one with config.toml): an output_dir pointed at a folder of one's own is never cleared."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        return []
    folders = [run_dir] + [p for p in run_dir.iterdir() if p.is_dir()]
    return [folder / name for folder in folders for name in PROGRESS if (folder / name).exists()]


def has_progress(run_dir) -> bool:
    return bool(_progress(run_dir))


def clear_progress(run_dir):
    for path in _progress(run_dir):
        _remove(path)


def changed_settings(saved_toml, config) -> list[str]:
    """`key: old -> new` for each setting that differs from the run directory's config.toml."""
    from kerastune.config import flatten

    if not Path(saved_toml).is_file():
        return ["its config.toml is missing"]
    try:
        saved = flatten(type(config), read_toml(saved_toml), str(saved_toml))
    except KerastuneError as e:
        return [str(e)]
    current = flatten(type(config), tomllib.loads(to_toml(config)), "the config")
    return [f"{key}: {saved.get(key)!r} -> {current.get(key)!r}" for key in sorted(set(saved) | set(current))
            if saved.get(key) != current.get(key) and not key.startswith(RESUMABLE_CHANGES)]


def elapsed() -> float:
    """Seconds of work in this run: this process's since `start_run`, plus a resumed checkpoint's."""
    return _clock["before"] + time.time() - _clock["started"]


def resumed_clock(seconds: float):
    """A checkpoint was restored: the work it holds took `seconds`; count this process's from now."""
    _clock.update(started=time.time(), before=float(seconds))


def write_metrics(run_dir, config, metrics: dict) -> dict:
    """metrics.json: flat name -> number, plus recipe, backend and seconds. Valid JSON: a value that is
    not finite (a perplexity that overflowed) is written as null."""
    import keras

    flat = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()}
    flat.update(recipe=config.recipe, backend=keras.config.backend(), seconds=round(elapsed(), 2))
    written = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in flat.items()}
    write_text(Path(run_dir, "metrics.json"), json.dumps(written, indent=2, allow_nan=False) + "\n")
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

def model_location(model_or_run_dir: str) -> str:
    """Where `load_run_model` takes the model from: a run directory's `model/`, else the name as given."""
    path = Path(model_or_run_dir)
    return str(path / "model") if (path / "config.toml").is_file() else model_or_run_dir


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
