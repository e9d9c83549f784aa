"""Instruction tuning: FLAN-T5 as a text-to-text news classifier (AG News).

The steps of the instruction-tuning notebook, in Keras:
load AG News, carve a validation split, build the prompt, fine-tune FLAN-T5
with `model.fit`, then score exact-match accuracy of generated label names
on validation and test. What changed: batches are padded to the longest in
their length bucket instead of to 400 tokens, the loss averages over real
target tokens like transformers, and evaluation is batched compiled beam
search instead of 54 minutes of per-batch `generate`.

Run: kerastune run instruction_tuning [--config FILE] [--set key=value ...]
"""

import dataclasses
import math
import time

from kerastune.config import BaseConfig
from kerastune.data import (
    add_validation_split,
    label_names_to_text,
    limit_rows,
    load_splits,
    prepare_tf_dataset,
    render,
    require_columns,
    require_rows,
)
from kerastune.errors import KerastuneError
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.metrics import exact_match
from kerastune.models import load_recipe_model
from kerastune.runtime import set_precision, set_seed
from kerastune.training import GenerationEvaluation, create_optimizer, fit
from kerastune.training.run_dir import start_run, write_metrics

# A tiny random model learns from scratch: the seed's lr 1e-5 for 2 epochs is for a pretrained
# FLAN-T5. These apply with `model=tiny-*` unless set explicitly.
TINY_MODEL_DEFAULTS = {
    "learning_rate": 1e-3, "epochs": 8, "warmup_steps": 30, "max_source_length": 128,
    "num_beams": 1, "max_new_tokens": 8, "tiny_vocab_size": 1000,
}

PROMPT = "Given the following text:{text}\nPredict its corresponding category (World, Sports, Business, Sci/Tech):"


@dataclasses.dataclass
class Config(BaseConfig):
    recipe: str = "instruction_tuning"
    model: str = "google/flan-t5-small"
    dataset: str = "fancyzhx/ag_news"
    output_dir: str = "runs/instruction_tuning"
    text_column: str = "text"
    label_column: str = "label"
    labels: list[str] = dataclasses.field(default_factory=lambda: ["World", "Sports", "Business", "Sci/Tech"])
    prompt: str = PROMPT
    validation_size: int = 3000
    max_train_samples: int = 10000
    max_eval_samples: int = 3000
    max_test_samples: int = 3000
    max_source_length: int = 400
    max_target_length: int = 8
    epochs: int = 2
    learning_rate: float = 1e-5
    batch_size: int = 32
    eval_batch_size: int = 32
    num_beams: int = 5
    max_new_tokens: int = 49  # the seed's max_length=50 counts T5's start token
    tiny_vocab_size: int = 4000
    show_examples: int = 5


def to_prompts(split, config):
    """The seed's `add_prompt_column` and `add_label_column`: prompts and label names."""
    prompts, targets = [], []
    for row in split:
        text = row[config.text_column]
        if not isinstance(text, str) or not text.strip():
            raise KerastuneError(f"empty text in column '{config.text_column}'")
        row = dict(row, **{config.text_column: text.replace("\\", " ")})
        prompts.append(render(config.prompt, row))
        targets.append(label_names_to_text(row[config.label_column], config.labels))
    return prompts, targets


def main(config: Config) -> dict:
    started = time.time()
    set_seed(config.seed)
    set_precision(config.precision)
    run_dir = start_run(config)

    # Step 2: load the corpus, carve validation off train, downsample.
    splits = load_splits(config.dataset, config.dataset_config, revision=config.dataset_revision)
    for name in splits:
        require_columns(splits[name], [config.text_column, config.label_column], name)
        require_rows(splits[name], name)
    splits = add_validation_split(splits, config.validation_size, config.seed)
    train = limit_rows(splits["train"].shuffle(seed=config.seed), config.max_train_samples)
    validation = limit_rows(splits["validation"], config.max_eval_samples)
    test = limit_rows(splits["test"], config.max_test_samples) if "test" in splits else None
    train_prompts, train_targets = to_prompts(train, config)
    val_prompts, val_targets = to_prompts(validation, config)
    test_prompts, test_targets = to_prompts(test, config) if test is not None else ([], [])  # checked before training
    print(f"{len(train)} train / {len(validation)} validation / {len(test) if test else 0} test rows")
    print(f"Example prompt:\n{train_prompts[0]}\nTarget: {train_targets[0]}")

    # Step 3: the model and its tokenizer.
    model = load_recipe_model(
        "instruction_tuning", config.model, "seq2seq", revision=config.model_revision,
        texts=train_prompts + train_targets,
        vocab_size=config.tiny_vocab_size,
        encoder_sequence_length=config.max_source_length,
        decoder_sequence_length=config.max_target_length,
    )
    tokenizer = model.preprocessor.tokenizer
    train_ds = prepare_tf_dataset(
        train_prompts, train_targets, tokenizer,
        batch_size=config.batch_size,
        max_source_length=config.max_source_length,
        max_target_length=config.max_target_length,
        seed=config.seed,
        static_shapes=config.static_shapes,
    )

    # Step 3 (cont.): fine-tune, scoring validation accuracy every epoch.
    steps_per_epoch = sum(1 for _ in train_ds) or math.ceil(len(train_prompts) / config.batch_size)
    optimizer = create_optimizer(
        config.learning_rate, steps_per_epoch * config.epochs, config.warmup_steps, config.weight_decay, model
    )
    generator = Seq2SeqGenerator(
        model, tokenizer,
        max_new_tokens=config.max_new_tokens,
        num_beams=config.num_beams,
        max_source_length=config.max_source_length,
    )
    evaluation = GenerationEvaluation(
        generator, val_prompts, val_targets,
        score=lambda p, r: {"accuracy": exact_match(p, r)["accuracy"]},
        batch_size=config.eval_batch_size,
    )
    history = fit(
        model, train_ds,
        epochs=config.epochs, run_dir=run_dir, optimizer=optimizer, callbacks=[evaluation],
        resume=config.resume, keep_checkpoints=config.keep_checkpoints,
    )

    # Step 4: inference and the exact-match metric on validation and test.
    metrics = {"train_loss": float(history[-1]["loss"]) if history else float("nan")}
    if evaluation.epoch == config.epochs - 1:  # the weights the last epoch's evaluation saw
        val_predictions = evaluation.predictions
    else:  # resumed after the last epoch: nothing was generated in this run
        print("Evaluating validation set...")
        val_predictions = generator.generate(val_prompts, batch_size=config.eval_batch_size, progress=True)
    metrics["validation_accuracy"] = exact_match(val_predictions, val_targets)["accuracy"]
    if test is not None:
        print("Evaluating test set...")
        test_predictions = generator.generate(test_prompts, batch_size=config.eval_batch_size, progress=True)
        metrics["test_accuracy"] = exact_match(test_predictions, test_targets)["accuracy"]
    model.save_to_preset(str(run_dir / "model"))
    metrics = write_metrics(run_dir, config, metrics, started)

    for prompt, generated, real in list(zip(val_prompts, val_predictions, val_targets))[: config.show_examples]:
        print(f"\nPrompt: {prompt}\nGenerated: {generated}\nReal: {real}")
        print(f"Is the generated text the same as the real one? {'Yes' if generated == real else 'No'}")
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics
