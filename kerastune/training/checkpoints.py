"""Checkpoints: one format for every trainer (`fit`'s epochs, PPO's steps), rotated, verified, resumed.

A checkpoint is a folder `checkpoints/PREFIX-NNNN/` (`epoch-0003`, `ppo-0012`):

    model.npz      every model variable in `model.variables` order: weights, LoRA adapters (kept apart
                   from the kernels they adapt) and dropout's random-seed states
    optimizer.npz  the optimizer's variables, its step count included (a schedule resumes where it was)
    state.json     the trainer's own state: epoch or step, logs, RNG states, seconds spent
    manifest.json  written last: size and sha256 of the three files above

A checkpoint is written under a temporary name and renamed when complete, to
a name no earlier checkpoint has, so nothing is deleted before its
replacement exists; the oldest are removed afterwards, keeping `keep`. On
resume the newest checkpoint whose files match its manifest is used; a
damaged one is reported in one line and the one before it is tried.
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

import keras
import numpy as np

from kerastune.errors import KerastuneError
from kerastune.runtime import variable_values
from kerastune.training.run_dir import atomic_path

FILES = ("model.npz", "optimizer.npz", "state.json")


def list_checkpoints(directory, prefix="epoch") -> list[Path]:
    """Finished checkpoints (a manifest written), oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob(f"{prefix}-*") if p.name[len(prefix) + 1:].isdigit()
             and (p / "manifest.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(prefix) + 1:]))


def save_checkpoint(directory, prefix: str, number: int, variables, optimizer, state: dict, keep: int = 3) -> Path:
    """Write `directory/PREFIX-NNNN/` atomically, then remove all but the newest `keep`.

    `variables`: the model's (`model.variables`), or what a trainer changes (PPO: the adapters and the
    value head, with dropout's seed state) when the rest is restored elsewhere."""
    final = Path(directory) / f"{prefix}-{number:04d}"
    with atomic_path(final, folder=True) as partial:
        save_arrays(partial / "model.npz", variables)
        save_arrays(partial / "optimizer.npz", optimizer.variables)
        (partial / "state.json").write_text(json.dumps(state, indent=2, allow_nan=False))
        manifest = {name: {"bytes": (partial / name).stat().st_size, "sha256": _sha256(partial / name)}
                    for name in FILES}
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if keep > 0:
        for old in list_checkpoints(directory, prefix)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def damage(checkpoint) -> str | None:
    """What is wrong with a checkpoint's files (None when they match the manifest)."""
    checkpoint = Path(checkpoint)
    try:
        manifest = json.loads((checkpoint / "manifest.json").read_text())
        for name in FILES:
            path = checkpoint / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != manifest[name]["bytes"]:
                return f"{name} has {path.stat().st_size} bytes, the manifest says {manifest[name]['bytes']}"
            if _sha256(path) != manifest[name]["sha256"]:
                return f"{name} does not match its checksum"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"manifest.json cannot be read ({e})"
    return None


def restore_checkpoint(checkpoint, variables, optimizer) -> dict:
    """Load model and optimizer variables (the optimizer built); returns the checkpoint's state.json."""
    checkpoint = Path(checkpoint)
    pairs = [*_checked_pairs(checkpoint / "model.npz", variables, "model"),
             *_checked_pairs(checkpoint / "optimizer.npz", optimizer.variables, "optimizer")]
    _assign(pairs)  # only once every shape has been checked
    return json.loads((checkpoint / "state.json").read_text())


def restore_latest(directory, prefix, variables, optimizer) -> tuple[Path | None, dict]:
    """Restore the newest good checkpoint: (its path, its state), or (None, {}) when there is none."""
    for checkpoint in reversed(list_checkpoints(directory, prefix)):
        problem = damage(checkpoint)
        if problem is None:
            return checkpoint, restore_checkpoint(checkpoint, variables, optimizer)
        print(f"warning: checkpoint {checkpoint} is damaged ({problem}); trying the one before it", file=sys.stderr)
    return None, {}


def remove_checkpoints(directory, prefix):
    for checkpoint in Path(directory).glob(f"{prefix}-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)


def save_arrays(path, variables):
    """Variables' values to an .npz, in order (the one array format of checkpoints and best weights)."""
    arrays = {}
    for i, value in enumerate(variable_values(variables)):
        # bfloat16 has no NumPy type of its own: stored as float32, which holds it exactly
        arrays[f"{i:05d}"] = value.astype("float32") if value.dtype.kind == "V" or value.dtype.name == "bfloat16" \
            else value
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a temporary name
        np.savez(f, **arrays)


def load_arrays(path, variables, what="model"):
    """Assign an .npz written by `save_arrays` back, after checking every shape."""
    _assign(_checked_pairs(path, variables, what))


def _assign(pairs):
    for variable, value in pairs:
        variable.assign(value)


def _checked_pairs(path, variables, what) -> list:
    with np.load(path) as saved:
        values = [saved[name] for name in sorted(saved.files)]
    if len(values) != len(variables):
        raise KerastuneError(f"{path} holds {len(values)} {what} variables, this run has {len(variables)}: "
                             "it was written with other settings (model, LoRA targets or rank)")
    for variable, value in zip(variables, values):
        if tuple(value.shape) != tuple(variable.shape):
            raise KerastuneError(f"{path}: {what} variable {variable.path} has shape {tuple(value.shape)} there and "
                                 f"{tuple(variable.shape)} in this run: it was written with other settings")
    return list(zip(variables, values))


def finite_logs(logs) -> dict:
    """Logs as JSON can hold them: a value that is not finite becomes None."""
    return {k: (float(v) if np.isfinite(float(v)) else None) for k, v in (logs or {}).items()}


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RotatingCheckpoint(keras.callbacks.Callback):
    """Save a checkpoint at the end of every epoch, keeping the newest `keep`.

    `extra_state()` adds to state.json what the trainer needs beyond the logs (seconds spent)."""

    def __init__(self, directory, keep=3, extra_state=dict):
        super().__init__()
        self.directory = Path(directory)
        self.keep = keep
        self.extra_state = extra_state

    def on_epoch_end(self, epoch, logs=None):
        # Keras counts epochs from 0; checkpoints count completed epochs from 1.
        state = {"epoch": epoch + 1, "logs": finite_logs(logs), **self.extra_state()}
        save_checkpoint(self.directory, "epoch", epoch + 1, self.model.variables, self.model.optimizer, state,
                        self.keep)
