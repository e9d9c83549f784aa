"""kerastune's DPO loss and statistics against trl's own: trl 1.16's `DPOTrainer._compute_loss` (the pinned test
dependency) run on the same per-token log-probabilities, for every loss type kerastune has."""

from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kerastune.rl.dpo_math import LOSS_TYPES, dpo_loss

PAIRS, LENGTH = 6, 12


def pairs_data(seed):
    """Per-token log-probs of policy and reference for chosen and rejected completions (prompt tokens first,
    then completions of different lengths), and the completion mask."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((2 * PAIRS, LENGTH), "int64")
    for row in range(2 * PAIRS):
        start = int(rng.integers(2, 5))
        mask[row, start : start + int(rng.integers(2, LENGTH - start + 1))] = 1
    shifted = mask[:, 1:]  # log p(token t + 1) sits at position t
    policy = rng.uniform(-4.0, -0.1, (2 * PAIRS, LENGTH - 1)) * shifted
    reference = policy + rng.normal(0, 0.8, policy.shape) * shifted
    return mask, policy.astype("float32"), reference.astype("float32")


def trl_compute_loss(loss_type, beta, label_smoothing, mask, policy, reference):
    """trl's `_compute_loss` itself, with the model's fused-head outputs given and the reference log-probs
    precomputed (as trl does for a frozen reference)."""
    from trl import DPOTrainer

    outputs = SimpleNamespace(log_probs=torch.tensor(policy), entropy=torch.zeros(policy.shape),
                              mean_logits=torch.zeros(policy.shape), is_top1=torch.zeros(policy.shape, dtype=bool))
    reference_logps = torch.tensor(reference.sum(axis=1))
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True,
        f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0], beta=beta,
        label_smoothing=label_smoothing, use_weighting=False, _metrics={"train": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1,
        accelerator=SimpleNamespace(device="cpu", gather=lambda x: x, gather_for_metrics=lambda x: x))
    inputs = {"input_ids": torch.ones(mask.shape, dtype=torch.long), "attention_mask": torch.ones(mask.shape),
              "completion_mask": torch.tensor(mask), "ref_chosen_logps": reference_logps[:PAIRS],
              "ref_rejected_logps": reference_logps[PAIRS:]}
    loss = DPOTrainer._compute_loss(trainer, lambda **kwargs: outputs, inputs, return_outputs=False)
    return float(loss), {name: values[-1] for name, values in trainer._metrics["train"].items()}


@pytest.mark.parametrize("loss_type, beta, label_smoothing", [
    ("sigmoid", 0.1, 0.0), ("sigmoid", 0.5, 0.0), ("hinge", 0.1, 0.0), ("hinge", 2.0, 0.0), ("ipo", 0.1, 0.0),
    ("ipo", 1.0, 0.0), ("robust", 0.1, 0.1), ("robust", 0.5, 0.3)])
def test_loss_and_statistics_equal_trl(loss_type, beta, label_smoothing):
    mask, policy, reference = pairs_data(seed=len(loss_type) + int(10 * beta))
    expected_loss, expected_stats = trl_compute_loss(loss_type, beta, label_smoothing, mask, policy, reference)
    logps, ref_logps, lengths = policy.sum(axis=1), reference.sum(axis=1), mask.sum(axis=1)
    loss, stats = dpo_loss(logps[:PAIRS], logps[PAIRS:], ref_logps[:PAIRS], ref_logps[PAIRS:], beta=beta,
                           loss_type=loss_type, label_smoothing=label_smoothing, chosen_lengths=lengths[:PAIRS],
                           rejected_lengths=lengths[PAIRS:])
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5, abs=1e-6)
    for name, value in stats.items():
        assert float(value) == pytest.approx(expected_stats[name], rel=1e-5, abs=1e-6), name
    assert 0.0 < expected_stats["rewards/accuracies"] < 1.0  # the data has pairs both ways


def test_every_loss_type_is_checked_and_bad_settings_are_named():
    assert set(LOSS_TYPES) == {"sigmoid", "hinge", "ipo", "robust"}
    ones = np.ones(2, "float32")
    with pytest.raises(ValueError, match="unknown DPO loss_type 'kto'"):
        dpo_loss(ones, ones, ones, ones, loss_type="kto")
    with pytest.raises(ValueError, match="token counts"):
        dpo_loss(ones, ones, ones, ones, loss_type="ipo")
    with pytest.raises(ValueError, match="label_smoothing < 0.5"):
        dpo_loss(ones, ones, ones, ones, loss_type="robust", label_smoothing=0.5)
