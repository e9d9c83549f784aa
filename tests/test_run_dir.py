"""The run directory: a rerun with other settings refuses to resume, a fresh start clears the old run."""

import json

import pytest

from kerastune.errors import KerastuneError
from kerastune.recipes import load_config
from kerastune.training.run_dir import RESUME_CHANGED, start_run, write_metrics


def config(tmp_path, *overrides):
    return load_config("instruction_tuning", "model=tiny-t5", f"output_dir={tmp_path}", *overrides)


def test_a_rerun_with_other_settings_names_them_and_does_not_resume(tmp_path, monkeypatch):
    monkeypatch.delenv(RESUME_CHANGED, raising=False)
    start_run(config(tmp_path))
    (tmp_path / "checkpoints" / "epoch-0001").mkdir(parents=True)  # the first run made progress
    with pytest.raises(KerastuneError, match=r"train.learning_rate: 0.001 -> 0.01.*resume=false"):
        start_run(config(tmp_path, "learning_rate=0.01"))
    assert "learning_rate = 0.001" in (tmp_path / "config.toml").read_text()  # the record is kept
    start_run(config(tmp_path, "keep_checkpoints=5"))  # how a run checkpoints may change
    monkeypatch.setenv(RESUME_CHANGED, "1")  # --resume-changed: continue with the new settings
    start_run(config(tmp_path, "learning_rate=0.01"))
    assert "learning_rate = 0.01" in (tmp_path / "config.toml").read_text()


def test_resume_false_starts_over(tmp_path):
    start_run(config(tmp_path))
    for name in ("checkpoints/epoch-0001/state.json", "history.csv", "best.json", "summarization/history.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    start_run(config(tmp_path, "resume=false"))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "history.csv").exists()
    assert not (tmp_path / "summarization" / "history.csv").exists() and not (tmp_path / "best.json").exists()


def test_a_folder_that_is_no_run_directory_is_never_cleared(tmp_path):
    (tmp_path / "mine" / "checkpoints").mkdir(parents=True)  # a user's own files, no config.toml
    (tmp_path / "history.csv").write_text("mine")
    start_run(config(tmp_path, "resume=false"))
    assert (tmp_path / "mine" / "checkpoints").is_dir() and (tmp_path / "history.csv").read_text() == "mine"


def test_metrics_json_is_valid_json_when_a_value_is_not_finite(tmp_path):
    cfg = config(tmp_path)
    start_run(cfg)
    metrics = write_metrics(tmp_path, cfg, {"perplexity": float("inf"), "eval_loss": float("nan"), "accuracy": 0.5})
    written = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert written["perplexity"] is None and written["eval_loss"] is None and written["accuracy"] == 0.5
    assert metrics["perplexity"] == float("inf")
