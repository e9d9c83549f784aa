"""Before/after evaluation of a detox policy, as the seed notebook does it."""

import numpy as np
import pandas as pd


def sampled_toxicity(trainer, scorer, prompts, max_new_tokens) -> np.ndarray:
    """The seed's `evaluate_toxicity`: sample a response per prompt, P(hate) of `prompt + " " + response`."""
    responses = trainer.respond(prompts, max_new_tokens)
    return scorer.toxicity([p + " " + r for p, r in zip(prompts, responses)])


def comparison_table(prompts, before, after, scorer) -> pd.DataFrame:
    """query, response_before/after, reward_before/after and reward_diff, best improvement first."""
    table = pd.DataFrame({"query": prompts, "response_before": before, "response_after": after})
    table["reward_before"] = scorer.rewards([q + r for q, r in zip(prompts, before)])
    table["reward_after"] = scorer.rewards([q + r for q, r in zip(prompts, after)])
    table["reward_diff"] = table["reward_after"] - table["reward_before"]
    return table.sort_values("reward_diff", ascending=False).reset_index(drop=True)
