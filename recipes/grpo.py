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
import json
import typing
from pathlib import Path

import numpy as np

import kerastune.quiet  # noqa: F401  (first: TensorFlow's load-time log lines only with --debug)
from kerastune.config import ChatConfig, DataConfig, DistributionConfig, LoraConfig, ModelConfig, RecipeConfig
from kerastune.data import held_out_split, limit_rows, load_splits, require_columns, require_rows
from kerastune.data.chat import check_messages
from kerastune.data.preference import cell_value
from kerastune.errors import KerastuneError
from kerastune.generation.causal import CausalLMGenerator, start_token_id
from kerastune.generation.chat import chat_generator
from kerastune.models import load_recipe_model
from kerastune.models.chat_templates import load_chat_template, save_chat_template
from kerastune.models.lora import adapt, merged_for_saving, parameter_report, save_adapters
from kerastune.rl.grpo import GRPOPolicy, GRPOTrainer
from kerastune.rl.grpo_math import LOSS_TYPES, SCALES
from kerastune.rl.loop import batch_indices, run_steps
from kerastune.rl.rewards import Rewards, load_reward_function
from kerastune.runtime import set_precision, set_seed
from kerastune.training import create_optimizer, plot_history
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "grpo"
PROGRESS_STATS = ("reward", "reward_std", "completions/mean_length", "kl")
PLOTS = ["reward", "reward_std", "kl", "loss", "completions/mean_length", "completions/clipped_ratio",
         "frac_reward_zero_std", "clip_ratio/region_mean"]


@dataclasses.dataclass
class Data(DataConfig):
    split: str
    prompt_column: str  # text, or a list of messages (trl's conversational prompt-only format)
    validation_size: float  # held-out prompts when the dataset has no validation (or test) split
    max_train_samples: int  # 0 = all
    max_eval_samples: int
    max_prompt_length: int  # prompt tokens; longer prompts keep their end (0 = no limit)


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
class Reward:
    SECTION: typing.ClassVar[str] = "reward"
    functions: list[str]  # Python reward functions: "module:function", "file.py:function" or a built-in name
    model: str  # a reward_model run's model/ folder; a tiny-* model is trained here on `dataset` ("" = none)
    revision: str
    dataset: str  # preference pairs for a tiny-* reward model
    epochs: int  # its training epochs
    weights: list[float]  # one per function, then the model ([] = all 1)
    batch_size: int  # sequences per reward-model call


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
class Eval:
    SECTION: typing.ClassVar[str] = "eval"
    num_prompts: int  # held-out prompts answered (greedy) and scored before and after


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    lora: LoraConfig
    data: Data
    chat: ChatConfig
    grpo: GRPO
    reward: Reward
    train: Train
    eval: Eval
    distribution: DistributionConfig


def read_prompts(split, column: str, name: str) -> list:
    require_columns(split, [column], name)
    prompts = []
    for i, value in enumerate(split[column]):
        value = cell_value(value, f"{name} row {i + 1}")
        prompts.append(check_messages(value, f"{name} row {i + 1}") if isinstance(value, list) else value)
    return prompts


def prompt_tokens(prompts, chat, tokenizer, start_id, max_prompt_length) -> list[list[int]]:
    """Conversations rendered with the generation prompt in the chat template; text after the start token."""
    if isinstance(prompts[0], list):
        if chat is None:
            raise KerastuneError("conversational prompts need a chat template")
        texts = [chat.render(p, add_generation_prompt=True) for p in prompts]
        ids = [tokens for tokens, _ in chat.encode([(t, []) for t in texts], tokenizer)]
    else:
        start = [] if start_id is None else [start_id]
        ids = [start + list(np.asarray(t).tolist()) for t in tokenizer(list(prompts))]
    return [row[-max_prompt_length:] if max_prompt_length else row for row in ids]


def tiny_reward_model(config: Config, run_dir: Path) -> str:
    """A tiny-* reward model trained here by the reward_model recipe on `reward.dataset`; its model/ folder."""
    from kerastune.recipes import resolve, run

    reward = config.reward
    if not reward.dataset:
        raise KerastuneError(f"'{reward.model}' is untrained: set reward.dataset to preference pairs to train it on")
    out = run_dir / "reward_model"
    print(f"Training the tiny reward model '{reward.model}' on {reward.dataset} first")
    resolved = resolve("reward_model", (), [f"model.name={reward.model}", f"data.dataset={reward.dataset}",
                                            f"output_dir={out}", f"train.epochs={reward.epochs}",
                                            f"seed={config.seed}", f"train.resume={str(config.train.resume).lower()}"])
    run(resolved.recipe, resolved.config)
    return str(out / "model")


def tiny_policy_sft(config: Config, run_dir: Path, split) -> str:
    """A tiny-* policy tuned first by the chat_sft recipe on the data's chosen and rejected answers, both, so that
    it writes answers of either kind and GRPO has something to choose from (a stand-in for an instruct model; a
    random one writes noise that every reward scores alike). Its model/ folder."""
    from kerastune.recipes import resolve, run

    missing = [c for c in ("chosen", "rejected") if c not in split.column_names]
    if missing:
        raise KerastuneError(f"train.sft_epochs needs 'chosen' and 'rejected' answers in the data (missing "
                             f"'{missing[0]}'): set train.sft_epochs = 0")
    data = config.data
    rows = [{"prompt": prompt, "completion": answer} for prompt, chosen, rejected in
            zip(split[data.prompt_column], split["chosen"], split["rejected"]) for answer in (chosen, rejected)]
    out = run_dir / "sft"
    out.mkdir(parents=True, exist_ok=True)
    (out / "answers.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    print(f"Tuning the tiny policy on {len(rows)} chosen and rejected answers first (chat_sft)")
    resolved = resolve("chat_sft", (), [f"model.name={config.model.name}", f"data.dataset={out / 'answers.jsonl'}",
                                        f"output_dir={out}", f"train.epochs={config.train.sft_epochs}",
                                        f"seed={config.seed}", f"train.resume={str(config.train.resume).lower()}",
                                        f"model.tiny_vocab_size={config.model.tiny_vocab_size}",
                                        "generation.num_prompts=1", "generation.max_new_tokens=8"])
    run(resolved.recipe, resolved.config)
    return str(out / "model")


def mean_reward(generator, rewards, prompts, prompt_ids) -> tuple[float, list]:
    """Greedy answers to held-out prompts and their mean reward."""
    completions = generator.generate_tokens(prompt_ids, batch_size=16)
    scores, _ = rewards(prompts, completions, 1, {})
    return float(np.mean(scores)), [{"prompt": p, "answer": a, "reward": float(s)}
                                    for p, a, s in zip(prompts, rewards.decode(completions), scores)]


def main(config: Config) -> dict:
    data, grpo, train = config.data, config.grpo, config.train
    if not config.reward.functions and not config.reward.model:
        raise KerastuneError("GRPO needs a reward: set reward.functions and / or reward.model")
    for name in config.reward.functions:  # each one importable before any work
        load_reward_function(name)
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)

    # The prompts: a validation (or test) split, or a share of train held out for the before / after answers.
    splits = load_splits(data.dataset, data.config, data.split, data.revision)
    require_rows(splits["train"], "train")
    held_out = held_out_split(splits, data.validation_size, config.seed)
    train_split = limit_rows(splits["train"], data.max_train_samples)
    eval_split = limit_rows(splits[held_out], data.max_eval_samples or config.eval.num_prompts)
    train_prompts = read_prompts(train_split, data.prompt_column, "train")
    eval_prompts = read_prompts(eval_split, data.prompt_column, held_out)[:config.eval.num_prompts]
    columns = {c: list(train_split[c]) for c in train_split.column_names if c != data.prompt_column}
    print(f"{len(train_prompts)} train / {len(eval_prompts)} {held_out} prompts")

    # The reward: functions and / or a reward model (a tiny one trained here first).
    reward_model = config.reward.model
    if reward_model.startswith("tiny-"):
        reward_model = tiny_reward_model(config, run_dir)

    # The policy (LoRA: only the adapters train) and its chat template.
    texts = [m["content"] for p in train_prompts for m in (p if isinstance(p, list) else [{"content": p}])]
    model_name = config.model.name
    if model_name.startswith("tiny-") and train.sft_epochs:
        model_name = tiny_policy_sft(config, run_dir, train_split)

    def load_base():
        return load_recipe_model(RECIPE, model_name, "causal_lm", texts=texts,
                                 vocab_size=config.model.tiny_vocab_size,
                                 sequence_length=(data.max_prompt_length or 512) + grpo.max_completion_length,
                                 revision=config.model.revision)

    model = load_base()
    adapted = adapt(model, config.lora, seed=config.seed)
    if adapted:
        print(parameter_report(model))
    tokenizer = model.preprocessor.tokenizer
    conversational = isinstance(train_prompts[0], list)
    chat = load_chat_template(model_name, model, config.model.revision, config.chat.template) \
        if conversational else None
    sampling = dict(max_new_tokens=grpo.max_completion_length, seed=config.seed)
    if chat is not None:
        generator = chat_generator(model, chat, sampler="sample", temperature=grpo.temperature, top_k=grpo.top_k,
                                   top_p=grpo.top_p, **sampling)
        greedy = chat_generator(model, chat, sampler="greedy", **sampling)
    else:
        generator = CausalLMGenerator(model, tokenizer, sampler="sample", temperature=grpo.temperature,
                                      top_k=grpo.top_k, top_p=grpo.top_p, **sampling)
        greedy = CausalLMGenerator(model, tokenizer, sampler="greedy", **sampling)

    def decode(completions):
        return generator.decode([[t for t in c if t != generator.eos_id] for c in completions])

    rewards = Rewards(config.reward.functions, [reward_model] if reward_model else [], config.reward.weights,
                      decode=decode, batch_size=config.reward.batch_size)
    start_id = start_token_id(model)
    train_ids = prompt_tokens(train_prompts, chat, tokenizer, start_id, data.max_prompt_length)
    eval_ids = prompt_tokens(eval_prompts, chat, tokenizer, start_id, data.max_prompt_length)

    # Before: greedy answers to the held-out prompts and their mean reward.
    model.preprocessor, preprocessor = None, model.preprocessor
    reward_before, answers_before = mean_reward(greedy, rewards, eval_prompts, eval_ids)
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
                            {name: [values[i] for i in chosen] for name, values in columns.items()})

    history = run_steps(trainer, one_step, train.steps, run_dir, prefix="grpo", progress_stats=PROGRESS_STATS,
                        learning_rate_key="train.learning_rate", resume=train.resume, keep=train.keep_checkpoints)
    plot_history(run_dir / "history.csv", run_dir / "plots", names=PLOTS)

    # After: the same held-out prompts; the model is saved with its template.
    reward_after, answers_after = mean_reward(greedy, rewards, eval_prompts, eval_ids)
    print(f"Held-out prompts after GRPO: mean reward {reward_after:.4f}")
    answers = [{"prompt": b["prompt"], "answer_before": b["answer"], "reward_before": b["reward"],
                "answer_after": a["answer"], "reward_after": a["reward"]}
               for b, a in zip(answers_before, answers_after)]
    (run_dir / "answers.json").write_text(json.dumps(answers, indent=2, ensure_ascii=False) + "\n")
    model.preprocessor = preprocessor
    if adapted:
        save_adapters(model, run_dir / "adapters", base_model=config.model.name)
        model = merged_for_saving(model, run_dir / "adapters", load_base)
    model.save_to_preset(str(run_dir / "model"))
    if chat is not None:
        save_chat_template(run_dir / "model", chat)
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
