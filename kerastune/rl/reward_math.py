"""The arithmetic of reward modelling on preference pairs as trl 1.16's `RewardTrainer.compute_loss` does it.

The Bradley-Terry loss -log sigmoid(r_chosen - r_rejected - margin), averaged over the pairs (the
margin only where the data gives one), plus `center_rewards_coefficient * mean((r_c + r_r)^2)` when
set (it keeps the rewards near zero). Statistics under trl's names: `accuracy` (chosen scored above
rejected), `margin` (mean r_c - r_r), `min_reward`, `mean_reward`, `max_reward` over both. In
`keras.ops`, so Keras differentiates the loss on every backend.
"""

from keras import ops


def pairwise_reward_loss(chosen_rewards, rejected_rewards, margin=None, center_rewards_coefficient=None):
    """(mean loss, {trl's statistic name: value}); the rewards are (pairs,)."""
    chosen = ops.cast(chosen_rewards, "float32")
    rejected = ops.cast(rejected_rewards, "float32")
    gap = chosen - rejected
    loss = -ops.mean(ops.log_sigmoid(gap if margin is None else gap - ops.cast(margin, "float32")))
    if center_rewards_coefficient is not None:
        loss = loss + center_rewards_coefficient * ops.mean((chosen + rejected) ** 2)
    both = ops.stop_gradient(ops.concatenate([chosen, rejected]))
    gap = ops.stop_gradient(gap)
    stats = {"min_reward": ops.min(both), "mean_reward": ops.mean(both), "max_reward": ops.max(both),
             "accuracy": ops.mean(ops.cast(gap > 0, "float32")), "margin": ops.mean(gap)}
    return loss, stats
