"""PPO arithmetic against values worked out by hand (trl 0.11's formulas), and the rollout sampler's rules."""

import numpy as np
import pytest
from keras import ops

from kerastune.generation.search import sample_search
from kerastune.rl.ppo_math import (
    AdaptiveKLController,
    gae_advantages,
    kl_penalized_rewards,
    masked_var,
    ppo_losses,
    whiten,
)
from kerastune.runtime import stateless_uniform


def test_kl_penalized_rewards_put_the_score_on_the_last_real_token():
    logprobs = np.array([[-1.0, -2.0, 0.0]])
    ref_logprobs = np.array([[-1.5, -1.0, 0.0]])
    mask = np.array([[1.0, 1.0, 0.0]])
    rewards, non_score, kls = kl_penalized_rewards(np.array([2.0]), logprobs, ref_logprobs, mask, kl_coef=0.1)
    np.testing.assert_allclose(kls, [[0.5, -1.0, 0.0]])
    np.testing.assert_allclose(non_score, [[-0.05, 0.1, 0.0]])
    np.testing.assert_allclose(rewards, [[-0.05, 2.1, 0.0]])  # 0.1 + score 2 at token 2 of 2


def test_gae_by_hand():
    values = np.array([[1.0, 2.0, 0.0], [1.0, 1.0, 5.0]])
    rewards = np.array([[0.0, 0.0, 3.0], [0.0, 2.0, 9.0]])
    mask = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # row 2: the third position is padding
    advantages, returns = gae_advantages(values, rewards, mask, gamma=1.0, lam=0.5)
    # Row 1, back to front: delta_t = r_t + V_{t+1} - V_t, A_t = delta_t + lam * A_{t+1}.
    a12 = 3.0 + 0.0 - 0.0
    a11 = (0.0 + 0.0 - 2.0) + 0.5 * a12
    a10 = (0.0 + 2.0 - 1.0) + 0.5 * a11
    # Row 2: the padded position has no value and no reward.
    a21 = 2.0 + 0.0 - 1.0
    a20 = (0.0 + 1.0 - 1.0) + 0.5 * a21
    raw = np.array([[a10, a11, a12], [a20, a21, 0.0]])
    np.testing.assert_allclose(returns * mask, (raw + values) * mask)
    real = raw[mask == 1]
    mean, var = real.mean(), real.var(ddof=1)  # trl's masked_var is unbiased
    np.testing.assert_allclose(advantages[mask == 1], (real - mean) / np.sqrt(var + 1e-8), rtol=1e-6)


def test_whiten_and_masked_variance():
    values = np.array([[1.0, 2.0, 3.0, 100.0]])
    mask = np.array([[1.0, 1.0, 1.0, 0.0]])
    assert masked_var(values, mask) == pytest.approx(1.0)  # (1 + 0 + 1) / 3 * 3 / 2
    np.testing.assert_allclose(whiten(values, mask)[0, :3], [-1.0, 0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(whiten(values, mask, shift_mean=False)[0, :3], [1.0, 2.0, 3.0], atol=1e-7)


def test_adaptive_kl_controller():
    controller = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10000)
    controller.update(current_kl=12.0, n_steps=16)  # error clipped to +0.2
    assert controller.value == pytest.approx(0.2 * (1 + 0.2 * 16 / 10000))
    controller.update(current_kl=5.7, n_steps=16)  # error 5.7 / 6 - 1 = -0.05
    assert controller.value == pytest.approx(0.2 * (1 + 0.2 * 16 / 10000) * (1 - 0.05 * 16 / 10000))


def test_clipped_losses_by_hand():
    logprobs, old_logprobs = np.array([[-1.0, -2.0]]), np.array([[-1.5, -1.0]])
    values, old_values, returns = np.array([[0.5, 1.0]]), np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]])
    advantages, mask = np.array([[1.0, -2.0]]), np.ones((1, 2))
    loss, stats = ppo_losses(logprobs, values, old_logprobs, old_values, advantages, returns, mask,
                             cliprange=0.2, cliprange_value=0.2, vf_coef=0.1)
    stats = {k: float(ops.convert_to_numpy(v)) for k, v in stats.items()}
    # ratio = (e^0.5, e^-1) -> clipped (1.2, 0.8); per token max(-A * r, -A * clip(r)) = (-1.2, 1.6).
    assert stats["loss/policy"] == pytest.approx((-1.2 + 1.6) / 2, abs=1e-6)
    assert stats["policy/clipfrac"] == pytest.approx(1.0)
    # values clipped to old +- 0.2 = (0.2, 1.0): max((v - R)^2, (v_clip - R)^2) = (0.64, 1.0).
    assert stats["loss/value"] == pytest.approx(0.5 * (0.64 + 1.0) / 2, abs=1e-6)
    assert stats["val/clipfrac"] == pytest.approx(0.5)
    assert float(ops.convert_to_numpy(loss)) == pytest.approx(0.2 + 0.1 * 0.41, abs=1e-6)
    assert stats["policy/approxkl"] == pytest.approx(0.5 * (0.25 + 1.0) / 2, abs=1e-6)
    assert stats["policy/policykl"] == pytest.approx((-0.5 + 1.0) / 2, abs=1e-6)
    # A batch far off-policy (mean ratio > 10) is skipped, as trl does.
    far = ppo_losses(logprobs, values, old_logprobs - 5.0, old_values, advantages, returns, mask)[0]
    assert float(ops.convert_to_numpy(far)) == 0.0


def fixed_model(probabilities):
    """prefill / step callables of a "model" whose next-token distribution never changes."""
    log_probs = np.log(np.asarray(probabilities, "float32"))

    def prefill(ids, mask):
        return ops.convert_to_tensor(np.tile(log_probs, (ids.shape[0], 1))), ()

    def step(tokens, reorder, index, state):
        return prefill(tokens[:, None], None)[0], state

    return prefill, step


def sample(probabilities, rows, max_new_tokens, row_limits, min_new_tokens, seed):
    ids = np.ones((rows, 4), "int32")
    out, lengths = sample_search(*fixed_model(probabilities), (ids, ids), max_new_tokens=max_new_tokens, eos_id=1,
                                 pad_id=0, row_limits=ops.convert_to_tensor(row_limits, "int32"),
                                 min_new_tokens=min_new_tokens, seed=ops.convert_to_tensor(seed, "int32"),
                                 uniform=stateless_uniform)
    return np.asarray(ops.convert_to_numpy(out)), np.asarray(ops.convert_to_numpy(lengths))


def test_sampler_keeps_min_length_and_row_limits_and_draws_from_the_softmax():
    eos, pad = 1, 0
    # </s> nearly certain whenever it is allowed.
    out, lengths = sample([1e-9, 0.999, 0.2e-3, 0.5e-3, 0.3e-3], 3, 12, [2, 12, 12], min_new_tokens=4, seed=[3, 4])
    np.testing.assert_array_equal(lengths, [2, 5, 5])  # row 0 hits its limit; the others end at 4 + </s>
    assert (out[1:, :4] != eos).all() and (out[1:, 4] == eos).all() and (out[:, 5:] == pad).all()

    # With </s> never allowed, tokens follow the softmax: p(2, 3, 4) = (0.2, 0.5, 0.3).
    out, _ = sample([1e-12, 1e-12, 0.2, 0.5, 0.3], 500, 8, [8] * 500, min_new_tokens=8, seed=[5, 6])
    counts = np.bincount(out.ravel(), minlength=5)[2:] / out.size
    np.testing.assert_allclose(counts, [0.2, 0.5, 0.3], atol=0.025)
    again, _ = sample([1e-12, 1e-12, 0.2, 0.5, 0.3], 500, 8, [8] * 500, min_new_tokens=8, seed=[5, 6])
    np.testing.assert_array_equal(out, again)  # same seed, same draws
