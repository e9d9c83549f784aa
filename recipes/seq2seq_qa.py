"""Seq2seq question answering: fine-tune FLAN-T5 on question/answer pairs, scored with ROUGE.

The steps of the FLAN-T5 question-answering notebook, in Keras: load
Yahoo! Answers question/answer pairs, split 70/30, prefix each question with "Please answer this
question: ", fine-tune with `model.fit` (lr 3e-4, batch 8, weight decay
0.01, 3 epochs, keep the last 3 checkpoints), generate answers for the
evaluation split every epoch and score ROUGE-1/2/L/Lsum with stemming, then
answer a sample question. What changed: batches are padded per length
bucket, generation is one compiled batched search, and the evaluation split
is capped (`max_eval_samples`) so an epoch's ROUGE does not take hours.
The notebook's `yahoo_answers_qa` is now only a loading script, which
`datasets` >= 4 refuses; the default is `community-datasets/yahoo_answers_topics`
(parquet, the same site's questions with their best answers): the question
is its title plus its details where there are any, and the first 87,362
rows are kept, the size of `yahoo_answers_qa`.

Run: kerastune run seq2seq_qa [--config FILE] [--set key=value ...]
     python recipes/seq2seq_qa.py [--config FILE] [--set key=value ...]
Settings: seq2seq_qa.toml beside this file.
"""

import dataclasses
import textwrap

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
from kerastune.data import limit_rows, load_splits, prepare_tf_dataset, require_columns, require_rows, split_off
from kerastune.errors import KerastuneError
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.metrics import rouge
from kerastune.models import load_recipe_model
from kerastune.runtime import set_precision, set_seed
from kerastune.training import BestMetric, GenerationEvaluation, count_batches, create_optimizer, fit
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "seq2seq_qa"


@dataclasses.dataclass
class Data(DataConfig):
    split: str
    question_column: str
    question_detail_column: str  # appended to the question when not empty ("" = none)
    answer_column: str
    prefix: str
    test_size: float  # fraction of the train split held out for evaluation
    max_train_samples: int  # 0 = all
    max_eval_samples: int
    max_source_length: int
    max_target_length: int


@dataclasses.dataclass
class Generation(GenerationConfig):
    sample_question: str  # answered at the end, as the notebook does


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    data: Data
    train: TrainConfig
    eval: EvalConfig
    generation: Generation
    distribution: DistributionConfig


def to_pairs(split, data: Data, name: str):
    """The notebook's `preprocess_function`, before tokenization: prefixed questions and answers. Rows
    without an answer teach nothing and score nothing: they are dropped, and counted."""
    inputs, targets, dropped = [], [], 0
    for row in split:
        question, answer = row[data.question_column], row[data.answer_column]
        if not isinstance(question, str) or not question.strip():
            raise KerastuneError(f"empty question in column '{data.question_column}'")
        if not isinstance(answer, str) or not answer.strip():
            dropped += 1
            continue
        detail = row[data.question_detail_column] if data.question_detail_column else ""
        if isinstance(detail, str) and detail.strip():
            question = f"{question.strip()} {detail.strip()}"
        inputs.append(data.prefix + question)
        targets.append(answer)
    if not inputs:
        raise KerastuneError(f"no {name} row has an answer in column '{data.answer_column}'")
    if dropped:
        print(f"dropped {dropped} {name} rows without an answer in column '{data.answer_column}'")
    return inputs, targets


def main(config: Config) -> dict:
    data, train_settings, generation = config.data, config.train, config.generation
    eval_batch = config.eval.batch_size
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)

    # Prepare the data: the train split, 70% for training and 30% for evaluation.
    splits = load_splits(data.dataset, data.config, data.split, data.revision)
    train = splits["train"]
    columns = [data.question_column, data.question_detail_column, data.answer_column]
    require_columns(train, [c for c in columns if c], "train")
    require_rows(train, "train")
    train, evaluation = split_off(train, data.test_size, config.seed, "evaluation")
    train = limit_rows(train, data.max_train_samples)
    evaluation = limit_rows(evaluation, data.max_eval_samples)
    train_inputs, train_targets = to_pairs(train, data, "train")
    eval_inputs, eval_targets = to_pairs(evaluation, data, "evaluation")
    print(f"{len(train_inputs)} train / {len(eval_inputs)} evaluation rows")
    print(f"Example input: {train_inputs[0]}\nExample answer: {train_targets[0]}")

    # Load the model and its tokenizer.
    model = load_recipe_model(
        RECIPE, config.model.name, "seq2seq", revision=config.model.revision,
        texts=train_inputs + train_targets,
        vocab_size=config.model.tiny_vocab_size,
        encoder_sequence_length=data.max_source_length,
        decoder_sequence_length=data.max_target_length,
    )
    tokenizer = model.preprocessor.tokenizer
    lengths = dict(max_source_length=data.max_source_length, max_target_length=data.max_target_length,
                   static_shapes=data.static_shapes)
    train_ds = prepare_tf_dataset(train_inputs, train_targets, tokenizer, train_settings.batch_size, seed=config.seed,
                                  **lengths)
    eval_ds = prepare_tf_dataset(eval_inputs, eval_targets, tokenizer, eval_batch, shuffle=False, **lengths)

    # Train, scoring ROUGE on generated answers every epoch.
    generator = Seq2SeqGenerator(
        model, tokenizer, max_new_tokens=generation.max_new_tokens, num_beams=generation.num_beams,
        max_source_length=data.max_source_length,
    )
    untrained = rouge(generator.generate(eval_inputs, batch_size=eval_batch), eval_targets)
    print("ROUGE before training: " + ", ".join(f"{k} {v:.4f}" for k, v in untrained.items()))
    optimizer = create_optimizer(train_settings.learning_rate, count_batches(train_ds) * train_settings.epochs,
                                 train_settings.warmup_steps, train_settings.weight_decay, model)
    evaluation_callback = GenerationEvaluation(generator, eval_inputs, eval_targets, score=rouge, batch_size=eval_batch)
    best = BestMetric(run_dir / "best.json", monitor="val_rougeL")
    history = fit(
        model, train_ds,
        epochs=train_settings.epochs, run_dir=run_dir, optimizer=optimizer, callbacks=[evaluation_callback, best],
        validation_data=eval_ds, resume=train_settings.resume, keep_checkpoints=train_settings.keep_checkpoints,
    )

    # Final scores, the model, and the notebook's sample question.
    predictions = generator.generate(eval_inputs, batch_size=eval_batch, progress=True)
    metrics = rouge(predictions, eval_targets)
    metrics["eval_loss"] = float(history[-1]["val_loss"]) if history else float("nan")
    metrics.update({f"{k}_before": v for k, v in untrained.items()})
    metrics.update(best_epoch=best.best().get("epoch", 0), best_rougeL=best.best().get("value", 0.0))
    model.save_to_preset(str(run_dir / "model"))
    metrics = write_metrics(run_dir, config, metrics)

    for question, answer, reference in list(zip(eval_inputs, predictions, eval_targets))[:3]:
        print(f"\nQuestion: {question}\nGenerated: {answer}\nReference: {reference}")
    answer = generator.generate([data.prefix + generation.sample_question])[0]
    print(f"\n{data.prefix}{generation.sample_question}\n" + textwrap.fill(answer, width=80))
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
