"""Checkpoints: one format, verified on load, a damaged one skipped, nothing lost to a kill, exact resume."""

import json
import os

import keras
import numpy as np
import pytest

from kerastune.data.epochs import rows_each_epoch
from kerastune.errors import Diverged, KerastuneError
from kerastune.training import fit
from kerastune.training.checkpoints import damage, list_checkpoints, restore_latest, save_checkpoint

VOCAB, LENGTH = 11, 6


def tiny_model(seed=0):
    """Embedding -> dropout -> dense: dropout makes the seed state part of what resume must restore."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((LENGTH,), dtype="int32"), keras.layers.Embedding(VOCAB, 8),
                              keras.layers.Dropout(0.3), keras.layers.Dense(VOCAB)])
    model.preprocessor = None  # `fit` detaches a keras-hub task's preprocessor
    return model


def token_dataset(seed=0, rows=24, batch=4):
    rng = np.random.default_rng(1)
    x = rng.integers(0, VOCAB, (rows, LENGTH)).astype("int32")
    y = (x + 1) % VOCAB
    w = np.ones_like(x, dtype="float32")
    return rows_each_epoch((x, y, w), seed).batch(batch)


def weights(model):
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in model.weights]


class KillMidEpoch(keras.callbacks.Callback):
    """Interrupt the run at the third step of epoch `epoch` (0-based): after the previous epoch's checkpoint."""

    def __init__(self, epoch):
        super().__init__()
        self.kill_epoch, self.epoch = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.kill_epoch and batch == 2:
            raise KeyboardInterrupt


def train(run_dir, epochs, kill_in_epoch=None):
    model = tiny_model()
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.PolynomialDecay(0.05, 18, 0.0))
    callbacks = [KillMidEpoch(kill_in_epoch)] if kill_in_epoch is not None else []
    try:
        fit(model, token_dataset(), epochs=epochs, run_dir=run_dir, optimizer=optimizer, callbacks=callbacks,
            verbose=0)
    except KeyboardInterrupt:
        pass
    return model


def test_a_resumed_fit_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    whole = train(tmp_path / "whole", 3)
    train(tmp_path / "cut", 3, kill_in_epoch=1)
    assert [p.name for p in list_checkpoints(tmp_path / "cut" / "checkpoints")] == ["epoch-0001"]
    resumed = train(tmp_path / "cut", 3)
    for a, b in zip(weights(whole), weights(resumed)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    rows = (tmp_path / "cut" / "history.csv").read_text().splitlines()
    assert rows == (tmp_path / "whole" / "history.csv").read_text().splitlines()


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys):
    model = tiny_model()
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    directory = tmp_path / "checkpoints"
    for epoch in (1, 2, 3):
        model.layers[-1].bias.assign(np.full((VOCAB,), epoch, "float32"))
        save_checkpoint(directory, "epoch", epoch, model.variables, optimizer, {"epoch": epoch}, keep=3)
    newest = directory / "epoch-0003"
    damages = {
        "model.npz": lambda p: p.write_bytes(p.read_bytes()[:100]),  # truncated
        "optimizer.npz": lambda p: p.write_bytes(b"garbage" * 10),
        "state.json": lambda p: p.write_text("{broken"),
        "manifest.json": lambda p: p.write_text("{"),
    }
    for name, spoil in damages.items():
        backup = (newest / name).read_bytes()
        spoil(newest / name)
        assert damage(newest), name
        checkpoint, state = restore_latest(directory, "epoch", model.variables, optimizer)
        assert checkpoint.name == "epoch-0002" and state["epoch"] == 2, name
        assert float(model.layers[-1].bias.numpy()[0]) == 2.0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "epoch-0003 is damaged" in err[0] and name.split(".")[0] in err[0], err
        (newest / name).write_bytes(backup)
    (newest / "model.npz").unlink()
    assert "model.npz is missing" in damage(newest)
    assert damage(directory / "epoch-0002") is None


def test_a_kill_inside_the_checkpoint_writer_loses_nothing(tmp_path, monkeypatch):
    """The renames are the critical section: killed at any of them, a complete checkpoint is still found."""
    model = tiny_model()
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    directory = tmp_path / "checkpoints"
    for step in (1, 2):
        save_checkpoint(directory, "ppo", step, model.variables, optimizer, {"steps_done": step})
    real_replace = os.replace

    def kill_at(call):
        calls = []

        def replace(src, dst):
            calls.append(dst)
            if len(calls) == call:
                raise KeyboardInterrupt  # the process dies here
            real_replace(src, dst)
        return replace

    # (number written, rename killed, newest good checkpoint after the kill)
    for number, call, expected in ((3, 1, 2), (2, 1, 2), (2, 2, 1)):  # a new one; one written again over its name
        monkeypatch.setattr(os, "replace", kill_at(call))
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(directory, "ppo", number, model.variables, optimizer, {"steps_done": number})
        monkeypatch.setattr(os, "replace", real_replace)
        checkpoint, state = restore_latest(directory, "ppo", model.variables, optimizer)
        assert state == {"steps_done": expected}, (number, call)
        save_checkpoint(directory, "ppo", 2, model.variables, optimizer, {"steps_done": 2})  # the rerun's write


def test_a_checkpoint_from_other_settings_is_refused_by_name(tmp_path):
    model, other = tiny_model(), keras.Sequential([keras.Input((LENGTH,)), keras.layers.Dense(3)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    save_checkpoint(tmp_path, "epoch", 1, model.variables, optimizer, {"epoch": 1})
    other_optimizer = keras.optimizers.Adam()
    other_optimizer.build(other.trainable_variables)
    with pytest.raises(KerastuneError, match="other settings"):
        restore_latest(tmp_path, "epoch", other.variables, other_optimizer)


def test_a_nan_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(tmp_path):
    class PoisonAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.layers[-1].bias.assign(np.full((VOCAB,), np.nan, "float32"))

    model = tiny_model()
    with pytest.raises(Diverged, match=r"epoch 2, step 1;.*epoch-0001"):
        fit(model, token_dataset(), epochs=3, run_dir=tmp_path, optimizer=keras.optimizers.Adam(),
            callbacks=[PoisonAfterFirstEpoch()], verbose=0)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["epoch-0001"]
    state = json.loads((tmp_path / "checkpoints" / "epoch-0001" / "state.json").read_text())
    assert np.isfinite(state["logs"]["loss"])


def test_a_loss_that_climbs_far_above_its_start_is_named(tmp_path, capsys):
    """A learning rate too high can diverge to finite losses (no NaN to stop at): one warning line."""
    model = tiny_model()
    fit(model, token_dataset(), epochs=1, run_dir=tmp_path, optimizer=keras.optimizers.SGD(1e4), verbose=0)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "learning_rate may be too high" in warnings[0], warnings
