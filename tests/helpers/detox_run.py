"""What a finished lora_ppo_detox run directory must hold (its end-to-end and its kill-resume tests)."""

import csv
import json

import numpy as np

import kerastune
from kerastune.cli import main
from kerastune.metrics.toxicity import ToxicityScorer


def check_detox_run(run_dir, ppo_steps: int, compare_samples: int):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("toxicity_before_mean", "toxicity_after_mean", "toxicity_improvement_pct", "rouge1_before",
                 "rouge1_after", "mean_reward_first", "mean_reward_last"):
        assert np.isfinite(metrics[name]), name
    assert 0.0 <= metrics["toxicity_before_mean"] <= 1.0 and metrics["ppo_steps"] == ppo_steps
    for name in ("history.csv", "plots/objective_kl.png", "plots/ppo_mean_scores.png", "tensorboard/ppo",
                 "adapters/summarization/adapter_model.safetensors", "adapters/detox/adapter_config.json",
                 "summarization/history.csv",
                 f"checkpoints/ppo-{ppo_steps:04d}/manifest.json"):
        assert (run_dir / name).exists(), name
    with open(run_dir / "compare.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["query", "response_before", "response_after", "reward_before", "reward_after",
                              "reward_diff"]
    diffs = [float(r["reward_diff"]) for r in table]
    assert len(table) == compare_samples and diffs == sorted(diffs, reverse=True)
    # The saved models load back: the detoxified T5 (adapters merged) and the reward model with its labels.
    reward_model = kerastune.load_model(str(run_dir / "reward_model"))
    assert ToxicityScorer(reward_model).toxicity(["#Person1# calls #Person2# stupid."]).shape == (1,)
    assert main(["generate", str(run_dir), "\nSummarize the following conversation.\n\nHi.\n\nSummary:\n",
                 "--max-new-tokens", "5"]) == 0
