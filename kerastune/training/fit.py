"""`fit`: `model.fit` with the run-directory contract: resume, checkpoints, history, plots, NaN stop.

Writes into `run_dir`: `checkpoints/epoch-NNNN/` (newest `keep` kept),
`history.csv`, `tensorboard/` and `plots/*.png`. If a checkpoint exists and
`resume` is on, training continues from the epoch after it, exactly as an
uninterrupted run would: the checkpoint holds the weights, the optimizer's
state (schedule step) and dropout's seed states, and the datasets draw
their order per epoch number (data/epochs.py). A loss that is not finite stops
the run at that step (`Diverged`), before any checkpoint of it is written.
"""

import contextlib
import math
import sys
from pathlib import Path

import keras

from kerastune.data.epochs import EpochSetter
from kerastune.errors import Diverged
from kerastune.runtime import pad_batches_for_replicas
from kerastune.training.callbacks import plot_history
from kerastune.training.checkpoints import RotatingCheckpoint, list_checkpoints, remove_checkpoints, restore_latest
from kerastune.training.losses import token_loss, token_metrics
from kerastune.training.run_dir import elapsed, keep_history, read_history, resumed_clock


class StopOnNaN(keras.callbacks.Callback):
    """Stop at the first batch whose loss is NaN or inf: raise, so no callback saves that model. A finite
    loss that climbs far above where it started (a learning rate too high) gets a warning line."""

    RISE = 3.0  # an epoch's mean loss this many times the first step's is no longer learning

    def __init__(self, checkpoint_dir):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.epoch = 0
        self.first_loss = None
        self.warned = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            last = list_checkpoints(self.checkpoint_dir)
            kept = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"
            raise Diverged(f"training diverged: loss is {loss} at epoch {self.epoch + 1}, step {batch + 1}; {kept} "
                           "(try a lower train.learning_rate)")
        if self.first_loss is None:
            self.first_loss = loss

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not self.warned and self.first_loss and loss > self.RISE * self.first_loss:
            self.warned = True
            print(f"warning: the training loss rose from {self.first_loss:.4g} (first step) to {loss:.4g} "
                  f"(epoch {epoch + 1}): train.learning_rate may be too high", file=sys.stderr)


@contextlib.contextmanager
def without_preprocessor(model):
    """Detach a keras-hub task's preprocessor: our tf.data pipeline already tokenized."""
    preprocessor = model.preprocessor
    model.preprocessor = None
    try:
        yield model
    finally:
        model.preprocessor = preprocessor


def count_batches(dataset) -> int:
    """Batches in one epoch: tf.data's count when it knows it (the recipes' datasets do: data/tokens.py
    counts bucketed batches from lengths), else one pass."""
    known = int(dataset.cardinality())
    return known if known >= 0 else sum(1 for _ in dataset)


def compile_for_training(model, optimizer):
    metrics = token_metrics() if getattr(model, "reports_token_accuracy", True) else None
    model.compile(optimizer=optimizer, loss=token_loss(), weighted_metrics=metrics)
    # Built here, eagerly: built inside the first traced train step, the optimizer's variables make
    # tf.function trace that step twice. With Adam for no decay (optimizer.py), T5-small's first
    # step went from 60 s to 29 s on 2 CPU cores.
    if not optimizer.built:
        optimizer.build(model.trainable_variables)


def fit(model, train_ds, *, epochs, run_dir, optimizer, callbacks=(), resume=True, keep_checkpoints=3,
        validation_data=None, verbose="auto"):
    """Train with checkpoints and resume. Returns the history rows (list of dicts).

    `validation_data` (a dataset like `train_ds`) adds `val_loss` each epoch.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_ds = pad_batches_for_replicas(train_ds)
    if validation_data is not None:
        validation_data = pad_batches_for_replicas(validation_data)
    history_csv = run_dir / "history.csv"
    checkpoint_dir = run_dir / "checkpoints"
    with without_preprocessor(model):
        compile_for_training(model, optimizer)
        checkpoint, state = (restore_latest(checkpoint_dir, "epoch", model.variables, optimizer) if resume
                             else (None, {}))
        initial_epoch = state.get("epoch", 0)
        if checkpoint:
            print(f"Resuming from {checkpoint} (epoch {initial_epoch} of {epochs} done)")
            keep_history(history_csv, initial_epoch)
            resumed_clock(state.get("seconds", 0.0))
        else:  # a fresh start: an old run's checkpoints must not be resumed later
            remove_checkpoints(checkpoint_dir, "epoch")
            history_csv.unlink(missing_ok=True)
            for callback in callbacks:
                if hasattr(callback, "start_fresh"):
                    callback.start_fresh()
        if initial_epoch < epochs:
            model.fit(
                train_ds,
                epochs=epochs,
                initial_epoch=initial_epoch,
                validation_data=validation_data,
                verbose=verbose,
                callbacks=[
                    EpochSetter(),
                    StopOnNaN(checkpoint_dir),
                    *callbacks,
                    keras.callbacks.CSVLogger(str(history_csv), append=initial_epoch > 0),
                    keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False),
                    RotatingCheckpoint(checkpoint_dir, keep=keep_checkpoints,
                                       extra_state=lambda: {"seconds": elapsed()}),
                ],
            )
        else:
            print(f"All {epochs} epochs already done in {run_dir}")
    plot_history(history_csv, run_dir / "plots")
    return read_history(history_csv)
