"""`fit`: `model.fit` with the run-directory contract: resume, checkpoints, history, plots.

Writes into `run_dir`: `checkpoints/epoch-NNN/` (newest `keep` kept),
`history.csv`, `tensorboard/` and `plots/*.png`. If a checkpoint exists and
`resume` is on, training continues from the epoch after it.
"""

import contextlib
from pathlib import Path

import keras

from kerastune.runtime import pad_batches_for_replicas
from kerastune.training.callbacks import plot_history
from kerastune.training.checkpoints import RotatingCheckpoint, list_checkpoints, restore_checkpoint
from kerastune.training.losses import token_loss, token_metrics
from kerastune.training.run_dir import keep_history, read_history


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
    model.compile(optimizer=optimizer, loss=token_loss(), weighted_metrics=token_metrics())
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
        initial_epoch = 0
        checkpoints = list_checkpoints(checkpoint_dir) if resume else []
        if checkpoints:
            state = restore_checkpoint(checkpoints[-1], model, optimizer)
            initial_epoch = state["epoch"]
            print(f"Resuming from {checkpoints[-1]} (epoch {initial_epoch} of {epochs} done)")
            keep_history(history_csv, initial_epoch)
        else:
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
                    *callbacks,
                    keras.callbacks.CSVLogger(str(history_csv), append=initial_epoch > 0),
                    keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False),
                    RotatingCheckpoint(checkpoint_dir, keep=keep_checkpoints),
                ],
            )
        else:
            print(f"All {epochs} epochs already done in {run_dir}")
    plot_history(history_csv, run_dir / "plots")
    return read_history(history_csv)
