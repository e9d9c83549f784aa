"""The arithmetic of DPO as trl 1.16's `DPOTrainer` does it (`_compute_loss`, reverse-KL DPO).

Inputs are per-pair sequence log-probabilities: the sum of log p(token) over each completion's
tokens, for the policy and for the reference (the policy with its adapters off, or a frozen copy).
With the log-ratios r_c = logp_c - ref_c and r_r = logp_r - ref_r and d = r_c - r_r:

- `sigmoid` (DPO):          -log sigmoid(beta * d)
- `hinge` (SLiC):           relu(1 - beta * d)
- `ipo`:                    (d' - 1 / (2 beta))^2, where d' uses the log-ratios divided by each
                            completion's token count (trl's length normalisation)
- `robust` (rDPO):          (-(1 - eps) log sigmoid(beta d) + eps log sigmoid(-beta d)) / (1 - 2 eps)

each averaged over the pairs. The statistics are trl's logged names: `rewards/chosen` and
`rewards/rejected` (beta * the log-ratios), `rewards/accuracies`, `rewards/margins`, `logps/chosen`,
`logps/rejected`, all means over the pairs. In `keras.ops`, so Keras differentiates the loss on
every backend.
"""

from keras import ops

LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust")


def dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1, loss_type="sigmoid",
             label_smoothing=0.0, chosen_lengths=None, rejected_lengths=None):
    """(mean loss, {trl's statistic name: value}) for a batch of pairs; every argument is (pairs,).

    `chosen_lengths` / `rejected_lengths`: completion token counts, which `ipo` needs.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; kerastune has {', '.join(LOSS_TYPES)}")
    chosen_ratio = ops.cast(chosen_logps, "float32") - ops.cast(ref_chosen_logps, "float32")
    rejected_ratio = ops.cast(rejected_logps, "float32") - ops.cast(ref_rejected_logps, "float32")
    delta = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = -ops.log_sigmoid(beta * delta)
    elif loss_type == "hinge":
        losses = ops.relu(1.0 - beta * delta)
    elif loss_type == "ipo":
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("the ipo loss needs the completions' token counts (chosen_lengths, rejected_lengths)")
        per_token = (chosen_ratio / ops.maximum(ops.cast(chosen_lengths, "float32"), 1.0)
                     - rejected_ratio / ops.maximum(ops.cast(rejected_lengths, "float32"), 1.0))
        losses = (per_token - 1.0 / (2.0 * beta)) ** 2
    else:
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"the robust loss needs 0 <= label_smoothing < 0.5, got {label_smoothing}")
        clean = -(1.0 - label_smoothing) * ops.log_sigmoid(beta * delta)
        flipped = -label_smoothing * ops.log_sigmoid(-beta * delta)
        losses = (clean - flipped) / (1.0 - 2.0 * label_smoothing)
    chosen_rewards = ops.stop_gradient(beta * chosen_ratio)
    rejected_rewards = ops.stop_gradient(beta * rejected_ratio)
    stats = {
        "rewards/chosen": ops.mean(chosen_rewards),
        "rewards/rejected": ops.mean(rejected_rewards),
        "rewards/accuracies": ops.mean(ops.cast(chosen_rewards > rejected_rewards, "float32")),
        "rewards/margins": ops.mean(chosen_rewards - rejected_rewards),
        "logps/chosen": ops.mean(ops.stop_gradient(ops.cast(chosen_logps, "float32"))),
        "logps/rejected": ops.mean(ops.stop_gradient(ops.cast(rejected_logps, "float32"))),
    }
    return ops.mean(losses), stats
