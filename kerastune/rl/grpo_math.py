"""The arithmetic of GRPO as trl 1.16's `GRPOTrainer` does it (token-level importance sampling, one process).

- Advantages (`group_advantages`, trl's `_generate_and_score_completions`, "sum_then_normalize"): each
  prompt's G completions form a group; advantage = (reward - the group's mean) / (std + 1e-4), the std
  being the group's (`scale_rewards="group"`, the default), the whole batch's (`"batch"`), or none.
  The std is the unbiased one (trl's `nanstd`).
- Loss (`grpo_loss`, trl's `_compute_loss`): with ratio = exp(logp - old_logp) per completion token,
  the clipped objective -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A), plus
  beta * (exp(ref - logp) - (ref - logp) - 1) (the k3 estimate of KL to the reference) when beta > 0,
  aggregated as `loss_type` says:
  `grpo`: each sequence's token mean, then the mean over sequences;
  `bnpo`: the mean over every completion token of the batch;
  `dr_grpo`: the sum over tokens / (sequences * max_completion_length);
  `dapo` (trl's default): the sum over tokens / the completion tokens of the whole generation batch
  (`num_items`; the batch's own when not given, where it equals `bnpo`).
- Statistics: trl's names, `kl` (token mean, when beta > 0) and `clip_ratio/low_mean`,
  `clip_ratio/high_mean`, `clip_ratio/region_mean` (token means of where the clip was active).

Arrays are (completions, completion tokens) with a 0/1 `mask`; the loss is in `keras.ops`, so Keras
differentiates it on every backend; advantages are computed once per generation batch in NumPy.
"""

import numpy as np
from keras import ops

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALES = ("group", "batch", "none")


def group_advantages(rewards, num_generations: int, scale_rewards="group") -> np.ndarray:
    """Advantages of completions laid out prompt by prompt (G consecutive completions per prompt)."""
    if scale_rewards not in SCALES:
        raise ValueError(f"scale_rewards must be one of {', '.join(SCALES)}; got {scale_rewards!r}")
    rewards = np.asarray(rewards, "float64")
    if rewards.size % num_generations:
        raise ValueError(f"{rewards.size} rewards do not split into groups of {num_generations}")
    grouped = rewards.reshape(-1, num_generations)
    advantages = (grouped - grouped.mean(axis=1, keepdims=True)).reshape(-1)
    if scale_rewards == "group":
        std = np.repeat(grouped.std(axis=1, ddof=1) if num_generations > 1 else np.zeros(len(grouped)),
                        num_generations)
    elif scale_rewards == "batch":
        std = np.full(rewards.shape, rewards.std(ddof=1) if rewards.size > 1 else 0.0)
    else:
        return advantages.astype("float32")
    return (advantages / (std + 1e-4)).astype("float32")


def grpo_loss(logps, old_logps, advantages, mask, ref_logps=None, beta=0.0, epsilon_low=0.2, epsilon_high=None,
              loss_type="dapo", max_completion_length=None, num_items=None):
    """(loss, {trl's statistic name: value}); `logps`, `old_logps`, `ref_logps`, `mask` are (n, tokens),
    `advantages` (n,)."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown GRPO loss_type {loss_type!r}; kerastune has {', '.join(LOSS_TYPES)}")
    if beta and ref_logps is None:
        raise ValueError("a KL term (beta > 0) needs the reference's log-probs")
    if loss_type == "dr_grpo" and not max_completion_length:
        raise ValueError("the dr_grpo loss needs max_completion_length")
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    logps = ops.cast(logps, "float32")
    mask = ops.cast(mask, "float32")
    advantages = ops.cast(advantages, "float32")[:, None]
    ratio = ops.exp(logps - ops.cast(old_logps, "float32"))
    clipped = ops.clip(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
    per_token = -ops.minimum(ratio * advantages, clipped * advantages)
    stats = {}

    def token_mean(values):
        return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)

    if beta:
        gap = ops.cast(ref_logps, "float32") - logps
        kl = ops.exp(gap) - gap - 1.0
        per_token = per_token + beta * kl
        stats["kl"] = ops.stop_gradient(token_mean(kl))
    if loss_type == "grpo":
        loss = ops.mean(ops.sum(per_token * mask, axis=-1) / ops.maximum(ops.sum(mask, axis=-1), 1.0))
    elif loss_type == "bnpo":
        loss = token_mean(per_token)
    elif loss_type == "dr_grpo":
        loss = ops.sum(per_token * mask) / (ops.cast(ops.shape(mask)[0], "float32") * max_completion_length)
    else:
        items = ops.sum(mask) if num_items is None else ops.cast(num_items, "float32")
        loss = ops.sum(per_token * mask) / ops.maximum(items, 1.0)
    ratio = ops.stop_gradient(ratio)
    low = ops.cast(ops.logical_and(ratio < 1.0 - epsilon_low, advantages < 0), "float32")
    high = ops.cast(ops.logical_and(ratio > 1.0 + epsilon_high, advantages > 0), "float32")
    stats["clip_ratio/low_mean"] = token_mean(low)
    stats["clip_ratio/high_mean"] = token_mean(high)
    stats["clip_ratio/region_mean"] = token_mean(ops.maximum(low, high))
    return loss, stats
