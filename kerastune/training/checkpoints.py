"""Epoch checkpoints (weights + optimizer state), rotation, and resume.

A checkpoint is a folder `checkpoints/epoch-NNN/` with `model.weights.h5`,
`optimizer.npz` and `state.json` (epoch, logs). It is written under a
temporary name and renamed when complete (run_dir.atomic_path), so a run
killed mid-save leaves the previous checkpoint intact. A model with LoRA adapters is saved with
them switched off (Keras would merge them into the kernels, and zero them
on load) plus `adapters.npz`, so a resumed run keeps base and adapter apart. Rerunning the same command finds the newest
complete checkpoint and continues from the epoch after it.
"""

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from kerastune.models.lora import adapters_disabled, load_adapters, lora_layers, save_adapters
from kerastune.runtime import variable_values
from kerastune.training.run_dir import atomic_path


def list_checkpoints(directory) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob("epoch-[0-9][0-9][0-9]") if (p / "state.json").is_file()]
    return sorted(found)


def save_checkpoint(directory, model, optimizer, epoch: int, logs: dict, keep: int = 3) -> Path:
    final = Path(directory) / f"epoch-{epoch:03d}"
    with atomic_path(final, folder=True) as partial:
        with adapters_disabled(model):
            model.save_weights(partial / "model.weights.h5")
        if lora_layers(model):
            save_adapters(model, partial / "adapters")
        np.savez(partial / "optimizer.npz", *variable_values(optimizer.variables))
        state = {"epoch": epoch, "logs": {k: float(v) for k, v in (logs or {}).items()}}
        (partial / "state.json").write_text(json.dumps(state, indent=2))
    for old in list_checkpoints(final.parent)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def restore_checkpoint(checkpoint, model, optimizer) -> dict:
    """Load weights and optimizer state; returns the checkpoint's state (epoch, logs)."""
    checkpoint = Path(checkpoint)
    with adapters_disabled(model):
        model.load_weights(checkpoint / "model.weights.h5")
    if (checkpoint / "adapters.npz").is_file():
        load_adapters(model, checkpoint / "adapters")
    optimizer.build(model.trainable_variables)
    saved = np.load(checkpoint / "optimizer.npz")
    values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if len(values) != len(optimizer.variables):
        raise ValueError(f"{checkpoint}: optimizer state does not match this model")
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)
    return json.loads((checkpoint / "state.json").read_text())


class RotatingCheckpoint(keras.callbacks.Callback):
    """Save a checkpoint at the end of every epoch, keeping the newest `keep`."""

    def __init__(self, directory, keep=3):
        super().__init__()
        self.directory = Path(directory)
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        # Keras counts epochs from 0; folders count completed epochs from 1.
        save_checkpoint(self.directory, self.model, self.model.optimizer, epoch + 1, logs, self.keep)
