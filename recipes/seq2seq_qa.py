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
"""

import dataclasses
import math
import textwrap
import time

from kerastune.config import BaseConfig
from kerastune.data import limit_rows, load_splits, prepare_tf_dataset, require_columns, require_rows
from kerastune.errors import KerastuneError
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.metrics import rouge
from kerastune.models import load_recipe_model
from kerastune.runtime import set_precision, set_seed
from kerastune.training import BestMetric, GenerationEvaluation, create_optimizer, fit
from kerastune.training.run_dir import start_run, write_metrics

# A tiny random model learns from scratch; these apply with `model=tiny-*` unless set explicitly.
TINY_MODEL_DEFAULTS = {
    "learning_rate": 1e-3, "epochs": 10, "warmup_steps": 30, "batch_size": 16, "eval_batch_size": 32,
    "max_target_length": 64, "max_new_tokens": 32, "tiny_vocab_size": 1000,
}


@dataclasses.dataclass
class Config(BaseConfig):
    recipe: str = "seq2seq_qa"
    model: str = "google/flan-t5-base"
    dataset: str = "community-datasets/yahoo_answers_topics"
    dataset_split: str = "train[:87362]"
    output_dir: str = "runs/seq2seq_qa"
    question_column: str = "question_title"
    question_detail_column: str = "question_content"  # appended to the question when not empty ("" = none)
    answer_column: str = "best_answer"
    prefix: str = "Please answer this question: "
    test_size: float = 0.3
    max_source_length: int = 128
    max_target_length: int = 512
    learning_rate: float = 3e-4
    batch_size: int = 8
    eval_batch_size: int = 4
    weight_decay: float = 0.01
    epochs: int = 3
    keep_checkpoints: int = 3
    max_eval_samples: int = 1000
    num_beams: int = 1
    max_new_tokens: int = 128
    tiny_vocab_size: int = 4000
    sample_question: str = "What do you think about the benefit of Artificial Intelligence?"


def to_pairs(split, config):
    """The seed's `preprocess_function`, before tokenization: prefixed questions and answers."""
    inputs, targets = [], []
    for row in split:
        question, answer = row[config.question_column], row[config.answer_column]
        if not isinstance(question, str) or not question.strip():
            raise KerastuneError(f"empty question in column '{config.question_column}'")
        detail = row[config.question_detail_column] if config.question_detail_column else ""
        if isinstance(detail, str) and detail.strip():
            question = f"{question.strip()} {detail.strip()}"
        inputs.append(config.prefix + question)
        targets.append(answer if isinstance(answer, str) else "")
    return inputs, targets


def main(config: Config) -> dict:
    started = time.time()
    set_seed(config.seed)
    set_precision(config.precision)
    run_dir = start_run(config)

    # Prepare the data: the train split, 70% for training and 30% for evaluation.
    splits = load_splits(config.dataset, config.dataset_config, config.dataset_split, config.dataset_revision)
    train = splits["train"]
    columns = [config.question_column, config.question_detail_column, config.answer_column]
    require_columns(train, [c for c in columns if c], "train")
    require_rows(train, "train")
    if len(train) < 4:
        raise KerastuneError(f"train split has {len(train)} rows: too few for a {config.test_size:.0%} split")
    parts = train.train_test_split(test_size=config.test_size, seed=config.seed)
    train = limit_rows(parts["train"], config.max_train_samples)
    evaluation = limit_rows(parts["test"], config.max_eval_samples)
    train_inputs, train_targets = to_pairs(train, config)
    eval_inputs, eval_targets = to_pairs(evaluation, config)
    print(f"{len(train)} train / {len(evaluation)} evaluation rows")
    print(f"Example input: {train_inputs[0]}\nExample answer: {train_targets[0]}")

    # Load the model and its tokenizer.
    model = load_recipe_model(
        "seq2seq_qa", config.model, "seq2seq", revision=config.model_revision,
        texts=train_inputs + train_targets,
        vocab_size=config.tiny_vocab_size,
        encoder_sequence_length=config.max_source_length,
        decoder_sequence_length=config.max_target_length,
    )
    tokenizer = model.preprocessor.tokenizer
    data = dict(max_source_length=config.max_source_length, max_target_length=config.max_target_length,
                static_shapes=config.static_shapes)
    train_ds = prepare_tf_dataset(train_inputs, train_targets, tokenizer, config.batch_size, seed=config.seed, **data)
    eval_ds = prepare_tf_dataset(eval_inputs, eval_targets, tokenizer, config.eval_batch_size, shuffle=False, **data)

    # Train, scoring ROUGE on generated answers every epoch.
    generator = Seq2SeqGenerator(
        model, tokenizer, max_new_tokens=config.max_new_tokens, num_beams=config.num_beams,
        max_source_length=config.max_source_length,
    )
    untrained = rouge(generator.generate(eval_inputs, batch_size=config.eval_batch_size), eval_targets)
    print("ROUGE before training: " + ", ".join(f"{k} {v:.4f}" for k, v in untrained.items()))
    steps_per_epoch = sum(1 for _ in train_ds) or math.ceil(len(train_inputs) / config.batch_size)
    optimizer = create_optimizer(
        config.learning_rate, steps_per_epoch * config.epochs, config.warmup_steps, config.weight_decay, model
    )
    evaluation_callback = GenerationEvaluation(
        generator, eval_inputs, eval_targets, score=rouge, batch_size=config.eval_batch_size
    )
    best = BestMetric(run_dir / "best.json", monitor="val_rougeL")
    history = fit(
        model, train_ds,
        epochs=config.epochs, run_dir=run_dir, optimizer=optimizer, callbacks=[evaluation_callback, best],
        validation_data=eval_ds, resume=config.resume, keep_checkpoints=config.keep_checkpoints,
    )

    # Final scores, the model, and the notebook's sample question.
    predictions = generator.generate(eval_inputs, batch_size=config.eval_batch_size, progress=True)
    metrics = rouge(predictions, eval_targets)
    metrics["eval_loss"] = float(history[-1]["val_loss"]) if history else float("nan")
    metrics.update({f"{k}_before": v for k, v in untrained.items()})
    metrics.update(best_epoch=best.best().get("epoch", 0), best_rougeL=best.best().get("value", 0.0))
    model.save_to_preset(str(run_dir / "model"))
    metrics = write_metrics(run_dir, config, metrics, started)

    for question, answer, reference in list(zip(eval_inputs, predictions, eval_targets))[:3]:
        print(f"\nQuestion: {question}\nGenerated: {answer}\nReference: {reference}")
    answer = generator.generate([config.prefix + config.sample_question])[0]
    print(f"\n{config.prefix}{config.sample_question}\n" + textwrap.fill(answer, width=80))
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics
