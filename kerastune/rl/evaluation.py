"""Before / after evaluation of an RL-tuned policy: the detox notebook's, and held-out answers' reward."""

import json
from pathlib import Path

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


def greedy_answers_reward(generator, rewards, prompts, prompt_ids) -> tuple[float, list]:
    """GRPO's and PPO's before / after check: greedy answers to held-out prompts, their mean reward, and each
    answer with its reward."""
    completions = generator.generate_tokens(prompt_ids, batch_size=16)
    scores, _ = rewards(prompts, completions, 1, {})
    return float(np.mean(scores)), [{"prompt": p, "answer": a, "reward": float(s)}
                                    for p, a, s in zip(prompts, rewards.decode(completions), scores)]


def write_answers(path, answers_before, answers_after):
    """answers.json: each held-out prompt with its answer and reward before and after training."""
    rows = [{"prompt": b["prompt"], "answer_before": b["answer"], "reward_before": b["reward"],
             "answer_after": a["answer"], "reward_after": a["reward"]} for b, a in zip(answers_before, answers_after)]
    Path(path).write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
