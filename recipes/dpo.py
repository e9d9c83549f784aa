"""DPO: tune a causal LM to prefer the chosen answer of each preference pair over the rejected one.

What trl's `DPOTrainer` does (trl 1.16: its loss types, its tokenization, its
logged statistics), with Keras models and `model.fit`: pairs in trl's
preference formats (prompt / chosen / rejected, text or conversations, or an
implicit prompt) are tokenized in the model's chat template (a causal LM) or
as encoder prompt and decoder answers (a seq2seq model such as FLAN-T5, as
trl 0.11 did; trl 1.16 has no encoder-decoder DPO); the reference is
the model as it starts, with its LoRA adapters off, and its log-probs are
computed once, before training, so no second copy of the weights is held;
each step runs both answers of every pair in one forward pass and takes
`dpo.loss_type`'s loss (sigmoid, hinge, ipo, robust) with `dpo.beta`.
trl's statistics (`rewards/accuracies`, `rewards/margins`, ...) are logged for
the train and held-out pairs every epoch. Before and after training it
measures, on the held-out pairs, how often and by how much the model gives the
chosen answer the higher log-prob; after, trl's implicit-reward accuracy.
The tuned model is saved with its chat template.

Run: kerastune run dpo [--config FILE] [--set key=value ...]
     python recipes/dpo.py [--config FILE] [--set key=value ...]
Settings: dpo.toml beside this file.
"""

import dataclasses
import json
import typing

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
from kerastune.data.preference import (
    encode_pairs,
    encode_seq2seq_pairs,
    pair_texts,
    preference_dataset,
    read_pairs,
    seq2seq_preference_dataset,
)
from kerastune.errors import KerastuneError
from kerastune.generation.causal import start_token_id
from kerastune.models import load_recipe_model
from kerastune.models.chat_templates import load_chat_template, save_chat_template
from kerastune.models.load import model_kind
from kerastune.models.lora import adapt, merged_for_saving, parameter_report, save_adapters
from kerastune.rl.dpo import DPOModel, pair_logps, preference_stats
from kerastune.rl.dpo_math import LOSS_TYPES
from kerastune.runtime import set_precision, set_seed
from kerastune.training import BestMetric, count_batches, create_optimizer, fit, without_preprocessor
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "dpo"


@dataclasses.dataclass
class Data(PreferenceDataConfig):  # max_length: longer sequences are cut keeping the start (trl's keep_start)
    max_source_length: int  # seq2seq models: the prompt's tokens ...
    max_target_length: int  # ... and each answer's


@dataclasses.dataclass
class DPO:
    """trl's DPOConfig keys, under trl's meanings."""

    SECTION: typing.ClassVar[str] = "dpo"
    beta: float  # how far from the reference the policy may move: the implicit reward is beta * log-ratio
    loss_type: str  # sigmoid | hinge | ipo | robust
    label_smoothing: float  # robust: the assumed share of pairs whose labels are flipped

    def __post_init__(self):
        if self.loss_type not in LOSS_TYPES:
            raise KerastuneError(f"dpo.loss_type must be one of {', '.join(LOSS_TYPES)}, got '{self.loss_type}'")
        if self.beta <= 0:
            raise KerastuneError(f"dpo.beta must be > 0, got {self.beta}")
        if not 0 <= self.label_smoothing < 0.5:
            raise KerastuneError(f"dpo.label_smoothing must be in [0, 0.5), got {self.label_smoothing}")


@dataclasses.dataclass
class Train(TrainConfig):
    gradient_accumulation_steps: int  # batches per optimizer update


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    lora: LoraConfig
    data: Data
    chat: ChatConfig
    dpo: DPO
    train: Train
    eval: EvalConfig
    distribution: DistributionConfig


def show(stats: dict, when: str):
    print(f"Held-out pairs {when} training: the model prefers the chosen answer in "
          f"{stats['logps/accuracy']:.1%} of them, by {stats['logps/margin']:.3f} nats on average"
          + (f"; trl's reward accuracy {stats['rewards/accuracies']:.1%}, margin {stats['rewards/margins']:.4f}"
             if when == "after" else ""))


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
    train_pairs, dropped_train = read_pairs(limit_rows(splits["train"], data.max_train_samples), "train", **columns)
    eval_pairs, dropped_eval = read_pairs(limit_rows(splits[held_out], data.max_eval_samples), held_out, **columns)
    print(f"{len(train_pairs)} train / {len(eval_pairs)} {held_out} pairs; dropped {dropped_train + dropped_eval} "
          "with an empty answer")

    # The model (LoRA: only the adapters train) and its chat template; the pairs as tokens.
    def load_base():
        return load_recipe_model(RECIPE, config.model.name, ("causal_lm", "seq2seq"),
                                 texts=pair_texts(train_pairs), vocab_size=config.model.tiny_vocab_size,
                                 sequence_length=data.max_length,
                                 encoder_sequence_length=data.max_source_length,
                                 decoder_sequence_length=data.max_target_length, revision=config.model.revision)

    model = load_base()
    adapted = adapt(model, config.lora, seed=config.seed)
    if adapted:
        print(parameter_report(model))
    tokenizer = model.preprocessor.tokenizer
    seq2seq = model_kind(model) == "seq2seq"
    conversational = any(p.conversational for p in train_pairs + eval_pairs)
    chat = load_chat_template(config.model.name, model, config.model.revision, config.chat.template) \
        if conversational and not seq2seq else None
    end_id = int(tokenizer.end_token_id)
    if seq2seq:
        max_length = max(data.max_source_length, data.max_target_length)
        train_encoded, train_cut = encode_seq2seq_pairs(train_pairs, tokenizer, end_id, data.max_source_length,
                                                        data.max_target_length)
        eval_encoded, eval_cut = encode_seq2seq_pairs(eval_pairs, tokenizer, end_id, data.max_source_length,
                                                      data.max_target_length)
        train_dropped = eval_dropped = 0
        batches = seq2seq_preference_dataset
    else:
        max_length = min(data.max_length, getattr(model.backbone, "max_sequence_length", None) or data.max_length)
        encoding = dict(tokenizer=tokenizer, max_length=max_length, chat=chat, start_id=start_token_id(model),
                        end_id=end_id)
        train_encoded, train_cut, train_dropped = encode_pairs(train_pairs, **encoding)
        eval_encoded, eval_cut, eval_dropped = encode_pairs(eval_pairs, **encoding)
        batches = preference_dataset
    shape = "as encoder prompt and decoder answers" if seq2seq else \
        "in the chat template" if conversational else "as plain text"
    print(f"{len(train_encoded)} train / {len(eval_encoded)} {held_out} pairs {shape}; {train_cut + eval_cut} "
          f"sequences cut at their maximum length, {train_dropped + eval_dropped} pairs dropped (the prompt fills "
          "max_length)")
    if not train_encoded or not eval_encoded:
        raise KerastuneError("no pair has an answer token within max_length in one split")

    # The reference's log-probs, once: the model as it starts, adapters off.
    dpo_model = DPOModel(model, **dataclasses.asdict(config.dpo))
    settings = dataclasses.asdict(config.dpo)

    def indexed(encoded):
        return batches(encoded, config.eval.batch_size, max_length, shuffle=False,
                       extra={"index": list(range(len(encoded)))})

    with without_preprocessor(model):
        train_reference, _ = pair_logps(dpo_model, indexed(train_encoded), reference=True)
        eval_reference, eval_counts = pair_logps(dpo_model, indexed(eval_encoded), reference=True)
        before = preference_stats(*pair_logps(dpo_model, indexed(eval_encoded)), eval_reference, **settings)
    show(before, "before")

    # DPO, evaluating on the held-out pairs every epoch; keep the best epoch's weights.
    train_ds = batches(train_encoded, train_settings.batch_size, max_length, seed=config.seed,
                       static_shapes=data.static_shapes, extra={"reference_logps": train_reference})
    eval_ds = batches(eval_encoded, config.eval.batch_size, max_length, shuffle=False,
                      extra={"reference_logps": eval_reference})
    accumulation = train_settings.gradient_accumulation_steps
    optimizer = create_optimizer(train_settings.learning_rate,
                                 count_batches(train_ds) * train_settings.epochs // accumulation,
                                 train_settings.warmup_steps, train_settings.weight_decay, model, accumulation)
    best = BestMetric(run_dir / "best.json", monitor="val_loss", mode="min", weights_path=run_dir / "best.npz")
    fit(dpo_model, train_ds, epochs=train_settings.epochs, run_dir=run_dir, optimizer=optimizer,
        validation_data=eval_ds, callbacks=[best], resume=train_settings.resume,
        keep_checkpoints=train_settings.keep_checkpoints)
    restored = best.restore_weights(dpo_model)
    if restored:
        print(f"Restored the best weights: epoch {best.best()['epoch']} (val_loss {best.best()['value']:.4f})")

    # After: the held-out pairs again; the model is saved with its template.
    with without_preprocessor(model):
        after = preference_stats(*pair_logps(dpo_model, indexed(eval_encoded)), eval_reference, **settings)
    show(after, "after")
    if adapted:  # the adapters alone (PEFT's files), and the model with them merged
        save_adapters(model, run_dir / "adapters", base_model=config.model.name)
        model = merged_for_saving(model, run_dir / "adapters", load_base)
    model.save_to_preset(str(run_dir / "model"))
    if chat is not None:
        save_chat_template(run_dir / "model", chat)
    results = {f"eval_{name.replace('/', '_')}_{when}": value
               for when, stats in (("before", before), ("after", after)) for name, value in stats.items()}
    (run_dir / "preferences.json").write_text(json.dumps({"before": before, "after": after}, indent=2) + "\n")
    metrics = write_metrics(run_dir, config, {
        **results, "eval_loss": after["loss"], "best_epoch": best.best().get("epoch", 0),
        "train_pairs": len(train_encoded), "eval_pairs": len(eval_encoded), "cut_at_max_length": train_cut + eval_cut,
        "dropped_prompt_too_long": train_dropped + eval_dropped, "mean_answer_tokens": float(eval_counts.mean()),
    })
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float) and "after" in k))
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
