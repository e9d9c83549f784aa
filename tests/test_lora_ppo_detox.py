"""The lora_ppo_detox recipe end to end on tiny models (every stage, every output file), and bad input."""

import csv
import json

import numpy as np
import pytest
from make_dialogues_sample import make_rows, write_csv
from make_toxicity_sample import make_rows as make_labelled_rows

import kerastune
from kerastune.cli import main
from kerastune.metrics.toxicity import ToxicityScorer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("detox_data")
    write_csv(path / "dialogues.csv", make_rows(80, seed=5))
    write_csv(path / "toxicity.csv", make_labelled_rows(160, seed=5))
    return path


def run(data, run_dir, *settings):
    return main(["run", "lora_ppo_detox", "--set", "model=tiny-t5", f"dataset={data / 'dialogues.csv'}",
                 "dataset_split=''", "reward_model=tiny-roberta", f"reward_dataset={data / 'toxicity.csv'}",
                 f"output_dir={run_dir}", "tiny_vocab_size=400", "pretrain_epochs=0", "sft_epochs=1",
                 "reward_epochs=1", "ppo_steps=2", "rouge_samples=8", "toxicity_samples=8", "compare_samples=5",
                 "output_min_length=6", "output_max_length=12", "toxicity_max_new_tokens=12", *settings])


@pytest.mark.slow
def test_every_stage_runs_and_writes_its_outputs(data, tmp_path):
    run_dir = tmp_path / "run"
    assert run(data, run_dir) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("toxicity_before_mean", "toxicity_after_mean", "toxicity_improvement_pct", "rouge1_before",
                 "rouge1_after", "mean_reward_first", "mean_reward_last"):
        assert np.isfinite(metrics[name]), name
    assert 0.0 <= metrics["toxicity_before_mean"] <= 1.0 and metrics["ppo_steps"] == 2
    for name in ("history.csv", "plots/objective_kl.png", "plots/ppo_mean_scores.png", "tensorboard/ppo",
                 "adapters/summarization.npz", "adapters/detox.npz", "summarization/history.csv",
                 "checkpoints/ppo-0002/manifest.json"):
        assert (run_dir / name).exists(), name
    with open(run_dir / "compare.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["query", "response_before", "response_after", "reward_before", "reward_after",
                              "reward_diff"]
    diffs = [float(r["reward_diff"]) for r in table]
    assert len(table) == 5 and diffs == sorted(diffs, reverse=True)
    # The saved models load back: the detoxified T5 (adapters merged) and the reward model with its labels.
    reward_model = kerastune.load_model(str(run_dir / "reward_model"))
    assert ToxicityScorer(reward_model).toxicity(["#Person1# calls #Person2# stupid."]).shape == (1,)
    assert main(["generate", str(run_dir), "\nSummarize the following conversation.\n\nHi.\n\nSummary:\n",
                 "--max-new-tokens", "5"]) == 0


def test_bad_input_is_named_before_any_training(data, tmp_path, capsys):
    rows = make_labelled_rows(40, seed=1)
    rows[3]["label"] = "offensive"
    write_csv(tmp_path / "labels.csv", rows)
    assert run(data, tmp_path / "a", f"reward_dataset={tmp_path / 'labels.csv'}") == 2
    assert "unknown label(s) ['offensive']" in capsys.readouterr().err
    assert run(data, tmp_path / "b", "dialogue_column=conversation") == 2
    assert "conversation" in capsys.readouterr().err
    assert run(data, tmp_path / "c", "reward_model=tiny-t5") == 2
    assert "must be a text classifier" in capsys.readouterr().err
