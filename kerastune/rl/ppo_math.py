"""The arithmetic of PPO as trl 0.11's `PPOTrainer` does it (the seed notebook's library).

- per-token rewards: -kl_coef * (logp - logp_ref) at every response token,
  plus the reward model's score at the last one (`compute_rewards`);
- GAE with gamma and lambda over the response tokens, returns = advantages
  + values, advantages whitened over the batch (`compute_advantages`);
- clipped policy loss and clipped value loss (`loss`), in `keras.ops` so
  Keras differentiates them on every backend;
- the adaptive KL controller of Ziegler et al. (`AdaptiveKLController`).

Arrays are (batch, response_tokens) with a 0/1 `mask` over real tokens.
Rewards and advantages are computed once per step on the whole batch in
NumPy (no gradient flows through them); the losses run per minibatch.
"""

import numpy as np
from keras import ops

WHITEN_EPS = 1e-8


# ---- NumPy: statistics over masked arrays ---------------------------------------

def masked_mean(values, mask) -> float:
    return float((values * mask).sum() / mask.sum())


def masked_var(values, mask, unbiased=True) -> float:
    """trl's masked variance: mean squared deviation, times n / (n - 1) when unbiased."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    count = mask.sum()
    return float(variance * count / (count - 1)) if unbiased and count > 1 else float(variance)


def whiten(values, mask, shift_mean=True) -> np.ndarray:
    """(values - mean) / sqrt(var + 1e-8) over the masked entries; the mean is added back if not shift_mean."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) / np.sqrt(var + WHITEN_EPS)
    return whitened if shift_mean else whitened + mean


# ---- NumPy: rewards and advantages ------------------------------------------------

def kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, kl_coef):
    """(rewards, non_score_rewards, kls): -kl_coef * kl per token, the score added at each row's last token."""
    kls = (logprobs - ref_logprobs) * mask
    non_score = -kl_coef * kls
    rewards = non_score.copy()
    last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
    rewards[np.arange(len(scores)), last] += scores
    return rewards, non_score, kls


def gae_advantages(values, rewards, mask, gamma=1.0, lam=0.95):
    """(advantages whitened, returns) by generalised advantage estimation, back to front."""
    values, rewards = values * mask, rewards * mask
    length = rewards.shape[1]
    advantages = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[0], rewards.dtype)
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t < length - 1 else 0.0
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    returns = advantages + values
    return whiten(advantages, mask), returns


class AdaptiveKLController:
    """kl_coef *= 1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon, after every PPO step."""

    def __init__(self, init_kl_coef=0.2, target=6.0, horizon=10000):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl, n_steps):
        error = np.clip(current_kl / self.target - 1, -0.2, 0.2)
        self.value *= 1 + error * n_steps / self.horizon


class FixedKLController:
    def __init__(self, kl_coef=0.2):
        self.value = kl_coef

    def update(self, current_kl, n_steps):
        pass


# ---- keras.ops: the PPO losses ----------------------------------------------------

def _mean(values, mask):
    return ops.sum(values * mask) / ops.sum(mask)


def _var(values, mask):
    mean = _mean(values, mask)
    count = ops.sum(mask)
    return _mean((values - mean) ** 2, mask) * count / ops.maximum(count - 1, 1.0)


def ppo_losses(logprobs, values, old_logprobs, old_values, advantages, returns, mask,
               cliprange=0.2, cliprange_value=0.2, vf_coef=0.1, ratio_threshold=10.0):
    """(loss, stats): clipped policy loss + vf_coef * clipped value loss, with trl's statistics.

    Like trl, the whole loss is zeroed when the mean ratio exceeds
    `ratio_threshold` (a batch too far off-policy to learn from).
    """
    logprobs, values, old_logprobs, old_values, advantages, returns, mask = (
        ops.cast(a, "float32") for a in (logprobs, values, old_logprobs, old_values, advantages, returns, mask))
    clipped_values = ops.clip(values, old_values - cliprange_value, old_values + cliprange_value)
    vf_losses1 = (values - returns) ** 2
    vf_losses2 = (clipped_values - returns) ** 2
    vf_loss = 0.5 * _mean(ops.maximum(vf_losses1, vf_losses2), mask)
    ratio = ops.exp(logprobs - old_logprobs)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * ops.clip(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = _mean(ops.maximum(pg_losses, pg_losses2), mask)
    keep = ops.cast(_mean(ratio, mask) <= ratio_threshold, "float32")
    pg_loss, vf_loss = pg_loss * keep, vf_loss * keep
    stats = {
        "loss/policy": pg_loss,
        "loss/value": vf_loss,
        "loss/total": pg_loss + vf_coef * vf_loss,
        "policy/approxkl": 0.5 * _mean((logprobs - old_logprobs) ** 2, mask),
        "policy/policykl": _mean(old_logprobs - logprobs, mask),
        "policy/clipfrac": _mean(ops.cast(pg_losses2 > pg_losses, "float32"), mask),
        "policy/advantages_mean": _mean(advantages, mask),
        "returns/mean": _mean(returns, mask),
        "returns/var": _var(returns, mask),
        "val/vpred": _mean(values, mask),
        "val/error": _mean((values - returns) ** 2, mask),
        "val/clipfrac": _mean(ops.cast(vf_losses2 > vf_losses1, "float32"), mask),
        "val/mean": _mean(old_values, mask),
        "val/var": _var(old_values, mask),
    }
    return pg_loss + vf_coef * vf_loss, stats


def entropy_from_logits(logits):
    """Per-position entropy of softmax(logits): logsumexp - sum(p * logits)."""
    probabilities = ops.softmax(logits, axis=-1)
    return ops.logsumexp(logits, axis=-1) - ops.sum(probabilities * logits, axis=-1)
