"""PPO: tune a causal LM (GPT-2, Llama, Qwen, Gemma, ...) on its own sampled answers, each scored by a reward.

What trl 0.11's `PPOTrainer` does (the library of the detox notebook, since
removed from trl) for a decoder-only model: each step samples one answer for
each of `ppo.batch_size` prompts (trl's prompt-only format, text or
conversations, in the model's chat template), `max_new_tokens` drawn per
prompt from [output_min_length, output_max_length); scores it with Python
reward functions and / or a reward model (a reward_model run; a tiny-* one is
trained here first on `reward.dataset`); and runs trl 0.11's step: KL-penalised
per-token rewards against the reference, GAE, `ppo.epochs` passes of the
clipped policy and value losses over minibatches, the adaptive KL coefficient.
The value head reads the model's last hidden state at each answer token. The
reference is the model with its LoRA adapters off or, under full
fine-tuning, its starting weights swapped in: no second model on the device.
Every step is logged (history.csv, TensorBoard, plots) and checkpointed; an
interrupted run resumes at the step after its last one and ends where an
uninterrupted one would. Before and after, it answers held-out prompts
(greedy) and reports their mean reward.

Run: kerastune run ppo [--config FILE] [--set key=value ...]
     python recipes/ppo.py [--config FILE] [--set key=value ...]
Settings: ppo.toml beside this file.
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
    PPOConfig,
    PromptDataConfig,
    RecipeConfig,
    RewardSourcesConfig,
)
from kerastune.data.prompt_only import load_prompts
from kerastune.errors import KerastuneError
from kerastune.models.lora import parameter_report
from kerastune.rl.answering import load_answering_policy, load_rewards, save_answering_policy
from kerastune.rl.evaluation import greedy_answers_reward, write_answers
from kerastune.rl.loop import PROGRESS_STATS, batch_indices, run_steps
from kerastune.rl.policy import CausalValuePolicy
from kerastune.rl.ppo_trainer import CausalPPOTrainer
from kerastune.rl.rewards import check_reward_settings
from kerastune.runtime import set_precision, set_seed
from kerastune.training import plot_history
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "ppo"
PLOTS = ["objective/kl", "objective/kl_coef", "objective/entropy", "ppo/mean_scores", "ppo/returns/mean",
         "ppo/policy/advantages_mean", "ppo/loss/policy", "ppo/loss/value", "ppo/policy/clipfrac",
         "tokens/responses_len_mean"]


@dataclasses.dataclass
class Train:
    SECTION: typing.ClassVar[str] = "train"
    resume: bool
    keep_checkpoints: int
    sft_epochs: int  # tiny-* policy only: first tuned by chat_sft on the data's chosen and rejected answers (0 = off)


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    lora: LoraConfig
    data: PromptDataConfig
    chat: ChatConfig
    ppo: PPOConfig
    reward: RewardSourcesConfig
    train: Train
    eval: HeldOutAnswersConfig
    distribution: DistributionConfig


def main(config: Config) -> dict:
    data, ppo, train = config.data, config.ppo, config.train
    check_reward_settings(config.reward, "PPO")
    CausalPPOTrainer.check_settings(ppo)
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)

    # The prompts: a validation (or test) split, or a share of train held out for the before / after answers.
    prompts = load_prompts(data, config.eval.num_prompts, config.seed)
    train_prompts, eval_prompts = prompts.train, prompts.held_out
    if len(train_prompts) < ppo.batch_size:
        raise KerastuneError(f"PPO needs at least ppo.batch_size={ppo.batch_size} train prompts, got "
                             f"{len(train_prompts)}")
    print(f"{len(train_prompts)} train / {len(eval_prompts)} {prompts.held_out_name} prompts")

    # The policy (LoRA: only the adapters and the value head train), its chat template, and the rewards: functions
    # and / or a reward model (a tiny one trained here first). Plain sampling, as trl's PPO examples generate
    # (top_k 0, top_p 1), up to the longest answer the length sampler draws.
    answering = load_answering_policy(RECIPE, config, prompts, run_dir, ppo.output_max_length - 1)
    model, generator, greedy = answering.model, answering.sampler, answering.greedy
    train_ids, eval_ids = answering.train_ids, answering.held_out_ids
    rewards = load_rewards(config, run_dir, generator.decode_answers)

    # Before: greedy answers to the held-out prompts and their mean reward.
    model.preprocessor, preprocessor = None, model.preprocessor
    reward_before, answers_before = greedy_answers_reward(greedy, rewards, eval_prompts, eval_ids)
    print(f"Held-out prompts before PPO: mean reward {reward_before:.4f}")

    # PPO steps: sample an answer per prompt, score it, trl 0.11's step; a checkpoint after every step.
    policy = CausalValuePolicy(model, ppo.value_dropout, ppo.cliprange, ppo.cliprange_value, ppo.vf_coef,
                               seed=config.seed)
    trainer = CausalPPOTrainer(policy, generator, ppo, seed=config.seed)
    print(f"PPO model parameters to be updated (value head + {policy.value_dense.count_params()} params):")
    print(parameter_report(policy))

    def one_step(step):
        chosen = batch_indices(step, len(train_prompts), ppo.batch_size, config.seed)
        query_ids = [train_ids[i] for i in chosen]
        responses = trainer.generate(query_ids)
        scores, per_source = rewards([train_prompts[i] for i in chosen], responses, 1,
                                     {name: [values[i] for i in chosen] for name, values in prompts.columns.items()})
        stats = trainer.step(query_ids, responses, scores)
        return {**stats, **{f"rewards/{name}/mean": value for name, value in per_source.items()}}

    history = run_steps(trainer, one_step, ppo.steps, run_dir, prefix="ppo", progress_stats=PROGRESS_STATS,
                        learning_rate_key="ppo.learning_rate", resume=train.resume, keep=train.keep_checkpoints)
    plot_history(run_dir / "history.csv", run_dir / "plots", names=PLOTS)

    # After: the same held-out prompts; the model is saved with its template (the value head is not part of it).
    reward_after, answers_after = greedy_answers_reward(greedy, rewards, eval_prompts, eval_ids)
    print(f"Held-out prompts after PPO: mean reward {reward_after:.4f}")
    write_answers(run_dir / "answers.json", answers_before, answers_after)
    model.preprocessor = preprocessor
    save_answering_policy(answering, run_dir, config.model.name)
    scores = [r["ppo/mean_scores"] for r in history]
    window = max(1, len(history) // 4)
    metrics = write_metrics(run_dir, config, {
        "eval_reward_before": reward_before, "eval_reward_after": reward_after,
        "mean_reward_first": scores[0], "mean_reward_last": scores[-1],
        "mean_reward_first_quarter": float(np.mean(scores[:window])),
        "mean_reward_last_quarter": float(np.mean(scores[-window:])),
        "kl_first": history[0]["objective/kl"], "kl_last": history[-1]["objective/kl"],
        "kl_max": max(r["objective/kl"] for r in history), "ppo_steps": len(history),
        "train_prompts": len(train_prompts),
    })
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
