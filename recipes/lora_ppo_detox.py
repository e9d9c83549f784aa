"""LoRA + PPO detoxification: make FLAN-T5's dialogue summaries less toxic against a hate-speech reward model.

The steps of the PEFT + PPO detox lab, in Keras: keep
DialogSum dialogues of 200 < chars <= 1000, wrap them in the summarization
prompt, split 80/20 without shuffling; put LoRA adapters (r 32, alpha 32)
on the attention query and value projections; (stage 1) fine-tune the
adapter for summarization and score ROUGE before/after (the notebook
downloaded such an adapter); measure toxicity = P(hate) of `query + " " +
response` from the RoBERTa hate-speech classifier; (stage 2) run PPO with
reward = the classifier's `nothate` logit of `query + response`; measure
toxicity again and compare responses before and after.
What changed: rollouts are sampled for the whole batch in one compiled call
(the notebook generated one prompt at a time), the reference model is the
policy with its adapters off (no copy), and every PPO step is logged,
plotted and checkpointed so an interrupted run resumes.

Run: kerastune run lora_ppo_detox [--config FILE] [--set key=value ...]
     python recipes/lora_ppo_detox.py [--config FILE] [--set key=value ...]
Settings: lora_ppo_detox.toml beside this file.
"""

import dataclasses
import math

import kerastune.quiet  # noqa: F401  (first: TensorFlow's load-time log lines only with --debug)
from kerastune.config import (
    DataConfig,
    DistributionConfig,
    EvalConfig,
    LoraConfig,
    ModelConfig,
    PPOConfig,
    RecipeConfig,
    RewardConfig,
    TrainConfig,
)
from kerastune.data import load_splits, prepare_tf_dataset, render, require_columns, require_rows
from kerastune.errors import KerastuneError
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.metrics import rouge
from kerastune.metrics.toxicity import ToxicityScorer, improvement_pct, toxicity_summary
from kerastune.models import load_model, load_recipe_model
from kerastune.models.labels import save_labels
from kerastune.models.load import model_kind
from kerastune.models.lora import adapt, merge_adapters, parameter_report, save_adapters
from kerastune.rl.evaluation import comparison_table, sampled_toxicity
from kerastune.rl.loop import run_ppo
from kerastune.rl.policy import Seq2SeqValuePolicy
from kerastune.rl.ppo_trainer import PPOTrainer
from kerastune.runtime import set_precision, set_seed
from kerastune.training import count_batches, create_optimizer, fit
from kerastune.training.callbacks import plot_history
from kerastune.training.classifier import train_classifier
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "lora_ppo_detox"
PPO_PLOTS = ["objective/kl", "objective/kl_coef", "objective/entropy", "ppo/mean_scores", "ppo/returns/mean",
             "ppo/policy/advantages_mean", "ppo/loss/policy", "ppo/loss/value", "ppo/policy/clipfrac"]


@dataclasses.dataclass
class Data(DataConfig):
    split: str
    dialogue_column: str
    summary_column: str
    min_dialogue_chars: int  # keep min < len(dialogue) <= max, as the lab
    max_dialogue_chars: int
    test_size: float  # the last fraction, no shuffling
    prompt: str  # a format string over {dialogue}
    max_source_length: int
    max_target_length: int


@dataclasses.dataclass
class Train(TrainConfig):
    """Stage 1, the summarization adapter; `epochs = 0` skips it (e.g. when starting from `lora.adapter`)."""

    MIN_EPOCHS = 0
    # tiny-* models only: PPO's reference is the base model, which for a random model is no summarizer
    # at all; these epochs train all its weights first, standing in for pretraining. 0 for real checkpoints.
    pretrain_epochs: int
    pretrain_learning_rate: float


@dataclasses.dataclass
class Eval(EvalConfig):
    rouge_samples: int
    toxicity_samples: int
    toxicity_max_new_tokens: int
    compare_samples: int


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    data: Data
    lora: LoraConfig
    train: Train
    reward: RewardConfig
    ppo: PPOConfig
    eval: Eval
    distribution: DistributionConfig


def dialogue_prompts(data: Data, ppo_batch_size: int):
    """The lab's `build_dataset`: filter by length, wrap in the prompt, split 80/20 without shuffling."""
    rows = load_splits(data.dataset, data.config, data.split, data.revision)["train"]
    require_columns(rows, [data.dialogue_column, data.summary_column], "train")
    require_rows(rows, "train")
    kept = [r for r in rows if isinstance(r[data.dialogue_column], str)
            and data.min_dialogue_chars < len(r[data.dialogue_column]) <= data.max_dialogue_chars]
    print(f"{len(kept)} of {len(rows)} dialogues have {data.min_dialogue_chars} < chars <= "
          f"{data.max_dialogue_chars}")
    n_test = math.ceil(len(kept) * data.test_size)
    if len(kept) - n_test < ppo_batch_size or n_test == 0:
        raise KerastuneError(f"{len(kept)} dialogues after the length filter are too few for an 80/20 split "
                             f"and PPO batches of {ppo_batch_size}")
    prompts = [render(data.prompt, {"dialogue": r[data.dialogue_column]}) for r in kept]
    summaries = [str(r[data.summary_column] or "") for r in kept]
    cut = len(kept) - n_test
    return (prompts[:cut], summaries[:cut]), (prompts[cut:], summaries[cut:])


def fit_summaries(model, tokenizer, train, config, run_dir, epochs, learning_rate):
    """`model.fit` on (prompt, summary) pairs; with LoRA enabled only the adapters train."""
    data, settings = config.data, config.train
    train_ds = prepare_tf_dataset(*train, tokenizer, settings.batch_size, max_source_length=data.max_source_length,
                                  max_target_length=data.max_target_length, seed=config.seed,
                                  static_shapes=data.static_shapes)
    optimizer = create_optimizer(learning_rate, count_batches(train_ds) * epochs, settings.warmup_steps,
                                 settings.weight_decay, model)
    fit(model, train_ds, epochs=epochs, run_dir=run_dir, optimizer=optimizer, resume=settings.resume,
        keep_checkpoints=settings.keep_checkpoints)


def summarization_stage(model, tokenizer, train, test, config, run_dir) -> dict:
    """Stage 1: fit the LoRA adapter for summarization; ROUGE on held-out dialogues before and after."""
    generator = Seq2SeqGenerator(model, tokenizer, max_new_tokens=config.data.max_target_length,
                                 max_source_length=config.data.max_source_length)
    samples, batch = config.eval.rouge_samples, config.eval.batch_size
    prompts, references = test[0][:samples], test[1][:samples]
    before = rouge(generator.generate(prompts, batch_size=batch), references)
    fit_summaries(model, tokenizer, train, config, run_dir / "summarization", config.train.epochs,
                  config.train.learning_rate)
    after = rouge(generator.generate(prompts, batch_size=batch, progress=True), references)
    print(f"ROUGE-1 on {len(prompts)} held-out dialogues: {before['rouge1']:.4f} -> {after['rouge1']:.4f}")
    return {"rouge1_before": before["rouge1"], "rouge1_after": after["rouge1"], "rougeL_before": before["rougeL"],
            "rougeL_after": after["rougeL"]}


def reward_model_for(reward: RewardConfig, run_dir):
    """The hate-speech classifier; a tiny-* one is trained here on `reward.dataset` (text, label)."""
    tiny = reward.model.startswith("tiny-")
    if tiny and not reward.dataset:
        raise KerastuneError(f"'{reward.model}' is untrained: set reward.dataset to a CSV with text,label")
    rows = load_splits(reward.dataset)["train"] if tiny else None
    if tiny:
        require_columns(rows, ["text", "label"], "reward.dataset")
    model = load_model(reward.model, texts=list(rows["text"]) if tiny else None, vocab_size=1000,
                       revision=reward.revision)
    if model_kind(model) != "classifier":
        raise KerastuneError(f"reward.model must be a text classifier; '{reward.model}' is {model_kind(model)}")
    if not tiny:
        return model, {}
    accuracy = train_classifier(model, rows["text"], rows["label"], reward.epochs, reward.learning_rate,
                                source=reward.dataset)
    model.save_to_preset(str(run_dir / "reward_model"))
    save_labels(model, run_dir / "reward_model")
    return model, {"reward_model_train_accuracy": accuracy}


def main(config: Config) -> dict:
    data, lora, ppo, evaluation = config.data, config.lora, config.ppo, config.eval
    if lora.rank == 0 and not lora.adapter:
        raise KerastuneError("lora.rank must be >= 1 in lora_ppo_detox: PPO trains the adapters")
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)
    metrics = {}

    # Dialogues -> prompts; 80/20 split.
    train, test = dialogue_prompts(data, ppo.batch_size)
    print(f"{len(train[0])} train / {len(test[0])} test prompts. Example:{train[0][0]}")

    # The reward model and the toxicity metric (first, so a wrong label or model fails before any training).
    reward_model, reward_metrics = reward_model_for(config.reward, run_dir)
    metrics.update(reward_metrics)
    scorer = ToxicityScorer(reward_model, config.reward.toxic_label, config.reward.reward_label,
                            config.reward.batch_size)

    # The policy: the model with LoRA adapters on the attention query and value projections.
    model = load_recipe_model(RECIPE, config.model.name, "seq2seq", texts=train[0] + train[1],
                              vocab_size=config.model.tiny_vocab_size, encoder_sequence_length=data.max_source_length,
                              decoder_sequence_length=data.max_target_length, revision=config.model.revision)
    tokenizer = model.preprocessor.tokenizer
    if config.train.pretrain_epochs > 0:  # a random base is no reference for PPO's KL: see `pretrain_epochs`
        print("Training every weight of the base model on the summaries first (a stand-in for pretraining)")
        fit_summaries(model, tokenizer, train, config, run_dir / "pretrain", config.train.pretrain_epochs,
                      config.train.pretrain_learning_rate)
    adapt(model, lora, seed=config.seed)
    print(parameter_report(model))

    # Stage 1: the summarization adapter.
    if config.train.epochs > 0:
        metrics.update(summarization_stage(model, tokenizer, train, test, config, run_dir))
        save_adapters(model, run_dir / "adapters" / "summarization", base_model=config.model.name)

    # The PPO trainer: policy + value head; the reference is the same model with adapters off.
    policy = Seq2SeqValuePolicy(model, ppo.value_dropout, ppo.cliprange, ppo.cliprange_value, ppo.vf_coef,
                                seed=config.seed)
    trainer = PPOTrainer(policy, tokenizer, ppo, max_source_length=data.max_source_length, seed=config.seed)
    print(f"PPO model parameters to be updated (value head + {policy.value_dense.count_params()} params):")
    print(parameter_report(policy))

    # Toxicity before detoxification, and the "before" side of the comparison table.
    tox_prompts, compare_prompts = test[0][:evaluation.toxicity_samples], test[0][:evaluation.compare_samples]
    tox_before = toxicity_summary(sampled_toxicity(trainer, scorer, tox_prompts, evaluation.toxicity_max_new_tokens))
    print(f"toxicity [mean, std] before detox: [{tox_before['mean']:.6f}, {tox_before['std']:.6f}]")
    responses_before = trainer.respond(compare_prompts)

    # Stage 2: PPO against the reward model (reward = the `nothate` logit of query + response).
    rows = run_ppo(trainer, train[0], lambda q, r: scorer.rewards([a + b for a, b in zip(q, r)]),
                   steps=ppo.steps, run_dir=run_dir, resume=config.train.resume, seed=config.seed,
                   keep=config.train.keep_checkpoints)
    plot_history(run_dir / "history.csv", run_dir / "plots", names=PPO_PLOTS)

    # Toxicity after, the comparison table, the adapters and the merged model.
    tox_after = toxicity_summary(sampled_toxicity(trainer, scorer, tox_prompts, evaluation.toxicity_max_new_tokens))
    print(f"toxicity [mean, std] after detox: [{tox_after['mean']:.6f}, {tox_after['std']:.6f}]")
    table = comparison_table(compare_prompts, responses_before, trainer.respond(compare_prompts), scorer)
    table.to_csv(run_dir / "compare.csv", index=False)
    save_adapters(model, run_dir / "adapters" / "detox", base_model=config.model.name)
    merge_adapters(model)  # the saved model is a plain one, the adapters in its kernels
    model.save_to_preset(str(run_dir / "model"))

    metrics.update(
        toxicity_before_mean=tox_before["mean"], toxicity_before_std=tox_before["std"],
        toxicity_after_mean=tox_after["mean"], toxicity_after_std=tox_after["std"],
        toxicity_improvement_pct=improvement_pct(tox_before["mean"], tox_after["mean"]),
        toxicity_std_improvement_pct=improvement_pct(tox_before["std"], tox_after["std"]),
        mean_reward_first=rows[0]["ppo/mean_scores"], mean_reward_last=rows[-1]["ppo/mean_scores"],
        kl_first=rows[0]["objective/kl"], kl_last=rows[-1]["objective/kl"], ppo_steps=len(rows),
    )
    metrics = write_metrics(run_dir, config, metrics)
    print("Percentage improvement of toxicity score after detoxification:")
    print(f"mean: {metrics['toxicity_improvement_pct']:.2f}%\nstd: {metrics['toxicity_std_improvement_pct']:.2f}%")
    print(table[["reward_before", "reward_after", "reward_diff"]].head(10).to_string())
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
