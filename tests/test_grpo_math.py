"""kerastune's GRPO arithmetic against trl's own: the loss and statistics of trl 1.16's
`GRPOTrainer._compute_loss` (the pinned test dependency) run on the same log-probs, and the group-normalised
advantages as trl's `_generate_and_score_completions` forms them (its lines, with its `nanstd`)."""

from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kerastune.rl.grpo_math import LOSS_TYPES, group_advantages, grpo_loss

COMPLETIONS, TOKENS, MAX_COMPLETION_LENGTH = 8, 10, 16


def rollout(seed):
    """Log-probs of the policy, of the policy that sampled (old) and of the reference, a completion mask of
    different lengths, and advantages of both signs; the ratios reach past both clip edges."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, TOKENS + 1, COMPLETIONS)
    mask = (np.arange(TOKENS)[None, :] < lengths[:, None]).astype("float32")
    old = rng.uniform(-3.0, -0.2, (COMPLETIONS, TOKENS)).astype("float32")
    logps = (old + rng.normal(0, 0.3, old.shape)).astype("float32")
    ref = (old + rng.normal(0, 0.5, old.shape)).astype("float32")
    advantages = rng.normal(0, 1, COMPLETIONS).astype("float32")
    return logps, old, ref, mask, advantages


def trl_compute_loss(loss_type, beta, epsilon_low, epsilon_high, logps, old, ref, mask, advantages):
    from trl import GRPOTrainer

    trainer = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (torch.tensor(logps), torch.zeros(logps.shape),
                                                                    None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token", beta=beta,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1), loss_type=loss_type,
        epsilon_low=epsilon_low, epsilon_high=epsilon_high, use_vllm=False, vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1,
        max_completion_length=MAX_COMPLETION_LENGTH, _entropy_bonus_enabled=False, aux_loss_enabled=False,
        _metrics={"train": defaultdict(list)},
        accelerator=SimpleNamespace(num_processes=1, gather=lambda x: x, gather_for_metrics=lambda x: x,
                                    reduce=lambda x, reduction: x))
    inputs = {"prompt_ids": torch.ones((COMPLETIONS, 3), dtype=torch.long), "prompt_mask": torch.ones((COMPLETIONS, 3)),
              "completion_ids": torch.ones(mask.shape, dtype=torch.long), "completion_mask": torch.tensor(mask),
              "advantages": torch.tensor(advantages), "old_per_token_logps": torch.tensor(old),
              "ref_per_token_logps": torch.tensor(ref), "num_items_in_batch": torch.tensor(mask.sum())}
    loss = GRPOTrainer._compute_loss(trainer, None, inputs)
    return float(loss), {name: values[-1] for name, values in trainer._metrics["train"].items()}


@pytest.mark.parametrize("loss_type, beta, epsilon_high", [
    ("dapo", 0.0, 0.28), ("dapo", 0.04, 0.2), ("grpo", 0.0, 0.2), ("grpo", 0.04, 0.28), ("bnpo", 0.04, 0.2),
    ("dr_grpo", 0.04, 0.2)])
def test_loss_and_statistics_equal_trl(loss_type, beta, epsilon_high):
    logps, old, ref, mask, advantages = rollout(seed=len(loss_type) + int(100 * beta))
    expected_loss, expected = trl_compute_loss(loss_type, beta, 0.2, epsilon_high, logps, old, ref, mask, advantages)
    loss, stats = grpo_loss(logps, old, advantages, mask, ref_logps=ref, beta=beta, epsilon_low=0.2,
                            epsilon_high=epsilon_high, loss_type=loss_type,
                            max_completion_length=MAX_COMPLETION_LENGTH)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5, abs=1e-6)
    assert set(stats) == {name for name in expected if name.startswith(("kl", "clip_ratio/")) and
                          name not in ("clip_ratio/low_min", "clip_ratio/high_max")}
    for name, value in stats.items():
        assert float(value) == pytest.approx(expected[name], rel=1e-5, abs=1e-6), name
    assert expected["clip_ratio/low_mean"] > 0 and expected["clip_ratio/high_mean"] > 0  # both edges are tested


def trl_advantages(rewards, num_generations, scale_rewards):
    """trl's lines for "sum_then_normalize" with one reward function."""
    from trl.trainer.utils import nanstd

    rewards = torch.tensor(rewards, dtype=torch.float32)
    mean = torch.nanmean(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations, dim=0)
    if scale_rewards in ("group", "none"):
        std = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations, dim=0)
    else:
        std = nanstd(rewards).expand_as(rewards)
    advantages = rewards - mean
    return (advantages / (std + 1e-4) if scale_rewards != "none" else advantages).numpy()


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_group_advantages_equal_trl(scale_rewards):
    rewards = np.random.default_rng(3).normal(0, 2, 12)
    rewards[4:8] = 1.5  # a group whose completions all scored alike: zero advantages, not a division by zero
    ours = group_advantages(rewards, 4, scale_rewards)
    np.testing.assert_allclose(ours, trl_advantages(rewards, 4, scale_rewards), rtol=1e-5, atol=1e-6)
    assert np.all(ours[4:8] == 0)


def test_every_loss_type_is_checked_and_bad_settings_are_named():
    assert set(LOSS_TYPES) == {"grpo", "bnpo", "dr_grpo", "dapo"}
    ones = np.ones((2, 3), "float32")
    with pytest.raises(ValueError, match="unknown GRPO loss_type 'cispo'"):
        grpo_loss(ones, ones, np.ones(2), ones, loss_type="cispo")
    with pytest.raises(ValueError, match="reference's log-probs"):
        grpo_loss(ones, ones, np.ones(2), ones, beta=0.1)
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(np.ones(6), 4)
