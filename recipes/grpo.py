"""GRPO: tune a causal LM on its own sampled completions, each group of them ranked by a reward.

What trl's `GRPOTrainer` does (trl 1.16: group-normalised advantages, the
clipped objective with its loss types, the optional KL term `beta`, several
updates per generation batch, its logged statistics), with Keras models: each
step samples `num_generations` completions for each of `prompts_per_step`
prompts (trl's prompt-only format, text or conversations, in the model's chat
template) in one compiled call, scores them with Python reward functions
and / or a reward model (a reward_model run; a tiny-* one is trained here
first on `reward.dataset`), and updates the policy (LoRA adapters, or every
weight). Every step is logged (history.csv, TensorBoard, plots) and
checkpointed; an interrupted run resumes at the step after its last one and
ends where an uninterrupted one would. Before and after, it answers held-out
prompts (greedy) and reports their mean reward.

Run: kerastune run grpo [--config FILE] [--set key=value ...]
     python recipes/grpo.py [--config FILE] [--set key=value ...]
Settings: grpo.toml beside this file.
"""

import dataclasses
import typing

import numpy as np

import kerastune.quiet  # noqa: F401  (first: TensorFlow's load-time log lines only with --debug)
from kerastune.config import (
    ChatConfig,
    DistributionConfig,
    HeldOutAnswersConfig,
    LoraConfig,
    ModelConfig,
    PromptDataConfig,
    RecipeConfig,
    RewardSourcesConfig,
)
from kerastune.data.prompt_only import load_prompts
from kerastune.errors import KerastuneError
from kerastune.rl.answering import load_answering_policy, load_rewards, save_answering_policy
from kerastune.rl.evaluation import greedy_answers_reward, write_answers
from kerastune.rl.grpo import GRPOPolicy, GRPOTrainer
from kerastune.rl.grpo_math import LOSS_TYPES, SCALES
from kerastune.rl.loop import batch_indices, run_steps
from kerastune.rl.rewards import check_reward_settings
from kerastune.runtime import set_precision, set_seed
from kerastune.training import create_optimizer, plot_history
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "grpo"
PROGRESS_STATS = ("reward", "reward_std", "completions/mean_length", "kl")
PLOTS = ["reward", "reward_std", "kl", "loss", "completions/mean_length", "completions/clipped_ratio",
         "frac_reward_zero_std", "clip_ratio/region_mean"]


@dataclasses.dataclass
class GRPO:
    """trl's GRPOConfig keys, under trl's meanings."""

    SECTION: typing.ClassVar[str] = "grpo"
    prompts_per_step: int  # prompts whose completions make one generation batch
    num_generations: int  # G: completions per prompt, the group their advantages are normalised in
    max_completion_length: int
    temperature: float
    top_p: float
    top_k: int
    beta: float  # KL coefficient (0: no reference pass, trl's default)
    epsilon: float  # clip range, and its lower side when epsilon_high is set
    epsilon_high: float  # upper clip (DAPO's clip-higher); 0 = epsilon
    loss_type: str  # dapo | grpo | bnpo | dr_grpo
    scale_rewards: str  # group | batch | none
    num_iterations: int  # passes over each generation batch (trl's mu)
    steps_per_generation: int  # optimizer updates per pass over a generation batch (its completions split evenly)

    def __post_init__(self):
        if self.loss_type not in LOSS_TYPES:
            raise KerastuneError(f"grpo.loss_type must be one of {', '.join(LOSS_TYPES)}, got '{self.loss_type}'")
        if self.scale_rewards not in SCALES:
            raise KerastuneError(f"grpo.scale_rewards must be one of {', '.join(SCALES)}, got "
                                 f"'{self.scale_rewards}'")
        for key, minimum in (("prompts_per_step", 1), ("num_generations", 2), ("max_completion_length", 1),
                             ("num_iterations", 1), ("steps_per_generation", 1)):
            if getattr(self, key) < minimum:
                raise KerastuneError(f"grpo.{key} must be >= {minimum}, got {getattr(self, key)}")
        if self.temperature <= 0:
            raise KerastuneError(f"grpo.temperature must be > 0 (GRPO samples), got {self.temperature}")


@dataclasses.dataclass
class Train:
    SECTION: typing.ClassVar[str] = "train"
    steps: int  # GRPO steps (generation batches)
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    resume: bool
    keep_checkpoints: int
    sft_epochs: int  # tiny-* policy only: first tuned by chat_sft on the data's chosen and rejected answers (0 = off)


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    lora: LoraConfig
    data: PromptDataConfig
    chat: ChatConfig
    grpo: GRPO
    reward: RewardSourcesConfig
    train: Train
    eval: HeldOutAnswersConfig
    distribution: DistributionConfig


def main(config: Config) -> dict:
    data, grpo, train = config.data, config.grpo, config.train
    check_reward_settings(config.reward, "GRPO")
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)

    # The prompts: a validation (or test) split, or a share of train held out for the before / after answers.
    prompts = load_prompts(data, config.eval.num_prompts, config.seed)
    train_prompts, eval_prompts = prompts.train, prompts.held_out
    print(f"{len(train_prompts)} train / {len(eval_prompts)} {prompts.held_out_name} prompts")

    # The policy (LoRA: only the adapters train), its chat template, and the rewards: functions and / or a reward
    # model (a tiny one trained here first).
    answering = load_answering_policy(RECIPE, config, prompts, run_dir, grpo.max_completion_length,
                                      temperature=grpo.temperature, top_k=grpo.top_k, top_p=grpo.top_p)
    model, generator, greedy = answering.model, answering.sampler, answering.greedy
    train_ids, eval_ids = answering.train_ids, answering.held_out_ids
    rewards = load_rewards(config, run_dir, generator.decode_answers)

    # Before: greedy answers to the held-out prompts and their mean reward.
    model.preprocessor, preprocessor = None, model.preprocessor
    reward_before, answers_before = greedy_answers_reward(greedy, rewards, eval_prompts, eval_ids)
    print(f"Held-out prompts before GRPO: mean reward {reward_before:.4f}")

    # GRPO steps: sample G completions per prompt, score, update; a checkpoint after every step.
    policy = GRPOPolicy(model, temperature=grpo.temperature, beta=grpo.beta, epsilon=grpo.epsilon,
                        epsilon_high=grpo.epsilon_high or None, loss_type=grpo.loss_type,
                        max_completion_length=grpo.max_completion_length)
    updates = train.steps * grpo.num_iterations * grpo.steps_per_generation
    optimizer = create_optimizer(train.learning_rate, updates, train.warmup_steps, train.weight_decay, model)
    trainer = GRPOTrainer(policy, generator, grpo, optimizer, rewards, seed=config.seed)

    def one_step(step):
        chosen = batch_indices(step, len(train_prompts), grpo.prompts_per_step, config.seed)
        return trainer.step([train_prompts[i] for i in chosen], [train_ids[i] for i in chosen], step,
                            {name: [values[i] for i in chosen] for name, values in prompts.columns.items()})

    history = run_steps(trainer, one_step, train.steps, run_dir, prefix="grpo", progress_stats=PROGRESS_STATS,
                        learning_rate_key="train.learning_rate", resume=train.resume, keep=train.keep_checkpoints)
    plot_history(run_dir / "history.csv", run_dir / "plots", names=PLOTS)

    # After: the same held-out prompts; the model is saved with its template.
    reward_after, answers_after = greedy_answers_reward(greedy, rewards, eval_prompts, eval_ids)
    print(f"Held-out prompts after GRPO: mean reward {reward_after:.4f}")
    write_answers(run_dir / "answers.json", answers_before, answers_after)
    model.preprocessor = preprocessor
    save_answering_policy(answering, run_dir, config.model.name)
    first, last = history[0], history[-1]
    window = max(1, len(history) // 4)
    metrics = write_metrics(run_dir, config, {
        "eval_reward_before": reward_before, "eval_reward_after": reward_after,
        "reward_first": first["reward"], "reward_last": last["reward"],
        "reward_first_quarter": float(np.mean([r["reward"] for r in history[:window]])),
        "reward_last_quarter": float(np.mean([r["reward"] for r in history[-window:]])),
        "kl_max": max(r.get("kl", 0.0) for r in history), "kl_last": last.get("kl", 0.0), "steps": len(history),
        "train_prompts": len(train_prompts),
    })
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
