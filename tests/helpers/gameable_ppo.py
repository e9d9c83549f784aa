"""The PPO learning tests' reward: +1 for each response token among the ones the untrained policy samples most, a
rule a policy can game token by token."""

from collections import Counter

import numpy as np


def run_gameable_ppo(trainer, queries, first_tokens: int, favoured: int, steps: int = 20):
    """PPO steps on `queries` against that rule (the `favoured` most sampled tokens of a first draw of
    `first_tokens` tokens per query): (mean reward per step, KL per step, the last step's statistics)."""
    first = trainer.generate(queries, max_new_tokens=[first_tokens] * len(queries))
    tokens = {token for token, _ in Counter(t for r in first for t in r).most_common(favoured)}
    rewards, kls = [], []
    for _ in range(steps):
        responses = trainer.generate(queries)
        stats = trainer.step(queries, responses, [sum(t in tokens for t in r) for r in responses])
        rewards.append(stats["ppo/mean_scores"])
        kls.append(stats["objective/kl"])
    print("mean reward by step", np.round(rewards, 2), "KL", np.round(kls, 1))
    return rewards, kls, stats
