"""Instruction tuning: FLAN-T5 as a text-to-text news classifier (AG News).

The steps of the instruction-tuning notebook, in Keras:
load AG News, carve a validation split, build the prompt, fine-tune FLAN-T5
with `model.fit`, then score exact-match accuracy of generated label names
on validation and test. What changed: batches are padded to the longest in
their length bucket instead of to 400 tokens, the loss averages over real
target tokens like transformers, and evaluation is batched compiled beam
search instead of 54 minutes of per-batch `generate`.

Run: kerastune run instruction_tuning [--config FILE] [--set key=value ...]
     python recipes/instruction_tuning.py [--config FILE] [--set key=value ...]
Settings: instruction_tuning.toml beside this file.
"""

import dataclasses

import kerastune.quiet  # noqa: F401  (first: TensorFlow's load-time log lines only with --debug)
from kerastune.config import (
    DataConfig,
    DistributionConfig,
    EvalConfig,
    GenerationConfig,
    ModelConfig,
    RecipeConfig,
    TrainConfig,
)
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
from kerastune.training import GenerationEvaluation, count_batches, create_optimizer, fit
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "instruction_tuning"


@dataclasses.dataclass
class Data(DataConfig):
    text_column: str
    label_column: str
    labels: list[str]  # label ids index this list; the model learns to write the names
    prompt: str  # a format string over the row's columns
    validation_size: int  # rows carved off train when the dataset has no validation split
    max_train_samples: int  # 0 = all
    max_eval_samples: int
    max_test_samples: int
    max_source_length: int
    max_target_length: int


@dataclasses.dataclass
class Eval(EvalConfig):
    show_examples: int


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    data: Data
    train: TrainConfig
    eval: Eval
    generation: GenerationConfig
    distribution: DistributionConfig


def to_prompts(split, data: Data):
    """The notebook's `add_prompt_column` and `add_label_column`: prompts and label names."""
    prompts, targets = [], []
    for row in split:
        text = row[data.text_column]
        if not isinstance(text, str) or not text.strip():
            raise KerastuneError(f"empty text in column '{data.text_column}'")
        row = dict(row, **{data.text_column: text.replace("\\", " ")})
        prompts.append(render(data.prompt, row))
        targets.append(label_names_to_text(row[data.label_column], data.labels))
    return prompts, targets


def main(config: Config) -> dict:
    data, train_settings, generation = config.data, config.train, config.generation
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)

    # Step 2: load the corpus, carve validation off train, downsample.
    splits = load_splits(data.dataset, data.config, revision=data.revision)
    for name in splits:
        require_columns(splits[name], [data.text_column, data.label_column], name)
        require_rows(splits[name], name)
        for label in splits[name][data.label_column]:  # an unknown label is named before any split
            label_names_to_text(label, data.labels)
    splits = add_validation_split(splits, data.validation_size, config.seed)
    train = limit_rows(splits["train"].shuffle(seed=config.seed), data.max_train_samples)
    validation = limit_rows(splits["validation"], data.max_eval_samples)
    test = limit_rows(splits["test"], data.max_test_samples) if "test" in splits else None
    train_prompts, train_targets = to_prompts(train, data)
    val_prompts, val_targets = to_prompts(validation, data)
    test_prompts, test_targets = to_prompts(test, data) if test is not None else ([], [])  # checked before training
    print(f"{len(train)} train / {len(validation)} validation / {len(test) if test else 0} test rows")
    print(f"Example prompt:\n{train_prompts[0]}\nTarget: {train_targets[0]}")

    # Step 3: the model and its tokenizer.
    model = load_recipe_model(
        RECIPE, config.model.name, "seq2seq", revision=config.model.revision,
        texts=train_prompts + train_targets,
        vocab_size=config.model.tiny_vocab_size,
        encoder_sequence_length=data.max_source_length,
        decoder_sequence_length=data.max_target_length,
    )
    tokenizer = model.preprocessor.tokenizer
    train_ds = prepare_tf_dataset(
        train_prompts, train_targets, tokenizer,
        batch_size=train_settings.batch_size,
        max_source_length=data.max_source_length,
        max_target_length=data.max_target_length,
        seed=config.seed,
        static_shapes=data.static_shapes,
    )

    # Step 3 (cont.): fine-tune, scoring validation accuracy every epoch.
    optimizer = create_optimizer(train_settings.learning_rate, count_batches(train_ds) * train_settings.epochs,
                                 train_settings.warmup_steps, train_settings.weight_decay, model)
    generator = Seq2SeqGenerator(
        model, tokenizer,
        max_new_tokens=generation.max_new_tokens,
        num_beams=generation.num_beams,
        max_source_length=data.max_source_length,
    )
    evaluation = GenerationEvaluation(
        generator, val_prompts, val_targets,
        score=lambda p, r: {"accuracy": exact_match(p, r)["accuracy"]},
        batch_size=config.eval.batch_size,
    )
    history = fit(
        model, train_ds,
        epochs=train_settings.epochs, run_dir=run_dir, optimizer=optimizer, callbacks=[evaluation],
        resume=train_settings.resume, keep_checkpoints=train_settings.keep_checkpoints,
    )

    # Step 4: inference and the exact-match metric on validation and test.
    metrics = {"train_loss": float(history[-1]["loss"]) if history else float("nan")}
    if evaluation.epoch == train_settings.epochs - 1:  # the weights the last epoch's evaluation saw
        val_predictions = evaluation.predictions
    else:  # resumed after the last epoch: nothing was generated in this run
        print("Evaluating validation set...")
        val_predictions = generator.generate(val_prompts, batch_size=config.eval.batch_size, progress=True)
    metrics["validation_accuracy"] = exact_match(val_predictions, val_targets)["accuracy"]
    if test is not None:
        print("Evaluating test set...")
        test_predictions = generator.generate(test_prompts, batch_size=config.eval.batch_size, progress=True)
        metrics["test_accuracy"] = exact_match(test_predictions, test_targets)["accuracy"]
    model.save_to_preset(str(run_dir / "model"))
    metrics = write_metrics(run_dir, config, metrics)

    for prompt, generated, real in list(zip(val_prompts, val_predictions, val_targets))[: config.eval.show_examples]:
        print(f"\nPrompt: {prompt}\nGenerated: {generated}\nReal: {real}")
        print(f"Is the generated text the same as the real one? {'Yes' if generated == real else 'No'}")
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
