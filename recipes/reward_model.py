"""Reward model: train a model to score the chosen answer of each preference pair above the rejected one.

What trl's `RewardTrainer` does (trl 1.16: its tokenization, Bradley-Terry
loss with the optional margin and centring, its logged statistics), with Keras
models and `model.fit`: pairs in trl's preference formats become two whole
sequences (prompt + answer, in the model's chat template for conversations),
pairs longer than `data.max_length` are dropped as trl drops them, and each
step scores both sequences of every pair in one forward pass. The model is a
causal LM with a new score head on its last token (what trl builds from a
causal checkpoint) or a one-label text classifier (RoBERTa-style, for text
data). Before and after training it measures on the held-out pairs how often
the chosen answer scores higher (accuracy; 0.5 is chance) and by how much.
The run's `model/` is what PPO and GRPO take as their reward.

Run: kerastune run reward_model [--config FILE] [--set key=value ...]
     python recipes/reward_model.py [--config FILE] [--set key=value ...]
Settings: reward_model.toml beside this file.
"""

import dataclasses
import json
import typing

import numpy as np

import kerastune.quiet  # noqa: F401  (first: TensorFlow's load-time log lines only with --debug)
from kerastune.config import (
    ChatConfig,
    DistributionConfig,
    EvalConfig,
    LoraConfig,
    ModelConfig,
    PreferenceDataConfig,
    RecipeConfig,
    TrainConfig,
)
from kerastune.data import held_out_split, limit_rows, load_splits, require_rows
from kerastune.data.preference import encode_pairs, pair_texts, preference_dataset, read_pairs
from kerastune.errors import KerastuneError
from kerastune.generation.causal import start_token_id
from kerastune.models import load_recipe_model
from kerastune.models.chat_templates import load_chat_template, save_chat_template
from kerastune.models.lora import adapt, merged_for_saving, parameter_report, save_adapters
from kerastune.rl.pairs import run_on_pairs
from kerastune.rl.reward_math import pairwise_reward_loss
from kerastune.rl.reward_model import RewardModel, check_reward_model, is_causal
from kerastune.runtime import set_precision, set_seed
from kerastune.training import BestMetric, count_batches, create_optimizer, fit, without_preprocessor
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "reward_model"


@dataclasses.dataclass
class Data(PreferenceDataConfig):  # max_length: longer pairs are dropped (trl's filter)
    margin_column: str  # used where the dataset has it: the loss asks for chosen - rejected > margin


@dataclasses.dataclass
class Loss:
    SECTION: typing.ClassVar[str] = "loss"
    center_rewards_coefficient: float  # trl's: adds coef * mean((r_c + r_r)^2), keeping scores near 0; 0 = off


@dataclasses.dataclass
class Train(TrainConfig):
    gradient_accumulation_steps: int  # batches per optimizer update


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    lora: LoraConfig
    data: Data
    chat: ChatConfig
    loss: Loss
    train: Train
    eval: EvalConfig
    distribution: DistributionConfig


def held_out_stats(reward_model, dataset) -> dict:
    """trl's statistics over all held-out pairs at once."""
    (scores,) = run_on_pairs(reward_model, dataset)
    _, stats = pairwise_reward_loss(scores[:, 0], scores[:, 1])
    return {name: float(value) for name, value in stats.items()}


def main(config: Config) -> dict:
    data, train_settings = config.data, config.train
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)

    # The pairs: a validation (or test) split, or 10% of train held out.
    splits = load_splits(data.dataset, data.config, data.split, data.revision)
    require_rows(splits["train"], "train")
    held_out = held_out_split(splits, data.validation_size, config.seed)
    columns = dict(prompt_column=data.prompt_column, chosen_column=data.chosen_column,
                   rejected_column=data.rejected_column)
    train_split = limit_rows(splits["train"], data.max_train_samples)
    eval_split = limit_rows(splits[held_out], data.max_eval_samples)
    train_pairs, dropped_train = read_pairs(train_split, "train", **columns)
    eval_pairs, dropped_eval = read_pairs(eval_split, held_out, **columns)
    print(f"{len(train_pairs)} train / {len(eval_pairs)} {held_out} pairs; dropped {dropped_train + dropped_eval} "
          "with an empty answer")

    # The model: a causal LM gets a score head; a classifier must have one output. LoRA: the adapters and the head
    # train.
    def load_base():  # a tiny-roberta gets one label, `reward`; other builders do not take `labels`
        return load_recipe_model(RECIPE, config.model.name, ("causal_lm", "classifier"),
                                 texts=pair_texts(train_pairs), vocab_size=config.model.tiny_vocab_size,
                                 sequence_length=data.max_length,
                                 revision=config.model.revision, labels=("reward",))

    model = load_base()
    check_reward_model(model, config.model.name)
    adapted = adapt(model, config.lora, seed=config.seed)
    reward_model = RewardModel(model, config.loss.center_rewards_coefficient or None, seed=config.seed)
    if adapted:
        print(parameter_report(model))
    tokenizer = model.preprocessor.tokenizer
    conversational = any(p.conversational for p in train_pairs + eval_pairs)
    if conversational and not is_causal(model):
        raise KerastuneError(f"'{config.model.name}' is a text classifier without a chat template: give it "
                             "preference pairs as text (trl's standard format), not as messages")
    chat = load_chat_template(config.model.name, model, config.model.revision, config.chat.template) \
        if conversational else None
    max_length = min(data.max_length, getattr(model.backbone, "max_sequence_length", None) or data.max_length)
    start = start_token_id(model) if is_causal(model) else int(tokenizer.start_token_id)
    encoding = dict(tokenizer=tokenizer, max_length=max_length, chat=chat, start_id=start,
                    end_id=int(tokenizer.end_token_id), drop_long=True)
    train_encoded, _, train_dropped = encode_pairs(train_pairs, **encoding)
    eval_encoded, _, eval_dropped = encode_pairs(eval_pairs, **encoding)
    print(f"{len(train_encoded)} train / {len(eval_encoded)} {held_out} pairs of at most {max_length} tokens "
          f"{'in the chat template' if conversational else 'as plain text'}; {train_dropped + eval_dropped} pairs "
          "dropped (longer than max_length)")
    if not train_encoded or not eval_encoded:
        raise KerastuneError(f"no pair fits in max_length = {max_length} tokens in one split")
    train_extra = {}
    if data.margin_column in train_split.column_names:
        if len(train_encoded) != len(train_split):
            raise KerastuneError(f"the '{data.margin_column}' column needs every train pair kept: "
                                 f"{len(train_split) - len(train_encoded)} were dropped")
        train_extra["margin"] = np.asarray(train_split[data.margin_column], "float32")
        print(f"margins from the '{data.margin_column}' column")

    # Before: held-out accuracy of the untrained scores.
    pairs_ds = dict(max_length=max_length, shift=False)
    eval_indexed = preference_dataset(eval_encoded, config.eval.batch_size, shuffle=False,
                                      extra={"index": list(range(len(eval_encoded)))}, **pairs_ds)
    with without_preprocessor(model):
        before = held_out_stats(reward_model, eval_indexed)
    print(f"Held-out pairs before training: chosen scored higher in {before['accuracy']:.1%}, margin "
          f"{before['margin']:.4f}")

    # Train, evaluating on the held-out pairs every epoch; keep the best epoch's weights.
    train_ds = preference_dataset(train_encoded, train_settings.batch_size, seed=config.seed,
                                  static_shapes=data.static_shapes, extra=train_extra, **pairs_ds)
    eval_ds = preference_dataset(eval_encoded, config.eval.batch_size, shuffle=False, **pairs_ds)
    accumulation = train_settings.gradient_accumulation_steps
    optimizer = create_optimizer(train_settings.learning_rate,
                                 count_batches(train_ds) * train_settings.epochs // accumulation,
                                 train_settings.warmup_steps, train_settings.weight_decay, model, accumulation)
    best = BestMetric(run_dir / "best.json", monitor="val_loss", mode="min", weights_path=run_dir / "best.npz")
    fit(reward_model, train_ds, epochs=train_settings.epochs, run_dir=run_dir, optimizer=optimizer,
        validation_data=eval_ds, callbacks=[best], resume=train_settings.resume,
        keep_checkpoints=train_settings.keep_checkpoints)
    restored = best.restore_weights(reward_model)
    if restored:
        print(f"Restored the best weights: epoch {best.best()['epoch']} (val_loss {best.best()['value']:.4f})")

    # After: the held-out pairs again; the reward model is saved for PPO and GRPO.
    with without_preprocessor(model):
        after = held_out_stats(reward_model, eval_indexed)
    print(f"Held-out pairs after training: chosen scored higher in {after['accuracy']:.1%}, margin "
          f"{after['margin']:.4f}")
    if adapted:  # the adapters alone (PEFT's files); the saved model has them merged
        save_adapters(model, run_dir / "adapters", base_model=config.model.name)
        reward_model.model = merged_for_saving(model, run_dir / "adapters", load_base)
    reward_model.save(run_dir / "model")
    if chat is not None:
        save_chat_template(run_dir / "model", chat)
    (run_dir / "preferences.json").write_text(json.dumps({"before": before, "after": after}, indent=2) + "\n")
    metrics = write_metrics(run_dir, config, {
        **{f"eval_{k}_before": v for k, v in before.items()}, **{f"eval_{k}_after": v for k, v in after.items()},
        "eval_accuracy": after["accuracy"], "best_epoch": best.best().get("epoch", 0),
        "train_pairs": len(train_encoded), "eval_pairs": len(eval_encoded),
        "dropped_too_long": train_dropped + eval_dropped,
    })
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float) and "after" in k))
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
