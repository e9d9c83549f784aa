"""kerastune's reward-model loss and statistics against trl 1.16's own `RewardTrainer.compute_loss` (the pinned
test dependency), run on the same rewards."""

from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kerastune.rl.reward_math import pairwise_reward_loss


def trl_compute_loss(chosen, rejected, margin, center):
    from trl import RewardTrainer

    outputs = SimpleNamespace(logits=torch.tensor(np.concatenate([chosen, rejected]))[:, None])
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), args=SimpleNamespace(center_rewards_coefficient=center),
        _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
        accelerator=SimpleNamespace(gather=lambda x: x, gather_for_metrics=lambda x: x))
    inputs = {"input_ids": torch.ones((2 * len(chosen), 5), dtype=torch.long),
              "attention_mask": torch.ones((2 * len(chosen), 5), dtype=torch.long)}
    if margin is not None:
        inputs["margin"] = torch.tensor(margin)
    loss = RewardTrainer.compute_loss(trainer, lambda **kwargs: outputs, inputs)
    return float(loss), {name: values[-1] for name, values in trainer._metrics["train"].items()}


@pytest.mark.parametrize("with_margin, center", [(False, None), (True, None), (False, 0.01), (True, 0.05)])
def test_loss_and_statistics_equal_trl(with_margin, center):
    rng = np.random.default_rng(int(with_margin) + int(100 * (center or 0)))
    chosen, rejected = rng.normal(0.5, 1.5, 7).astype("float32"), rng.normal(0, 1.5, 7).astype("float32")
    margin = rng.uniform(0, 1, 7).astype("float32") if with_margin else None
    expected_loss, expected = trl_compute_loss(chosen, rejected, margin, center)
    loss, stats = pairwise_reward_loss(chosen, rejected, margin, center)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5, abs=1e-6)
    for name, value in stats.items():
        assert float(value) == pytest.approx(expected[name], rel=1e-5, abs=1e-6), name
    assert 0 < expected["accuracy"] < 1
