"""Masked-LM domain adaptation: DistilBERT on movie reviews, token or whole-word masking, perplexity.

The steps of the course notebook "fine-tuning a masked language
model" (its TensorFlow version), in Keras 3: tokenize IMDb keeping word ids,
concatenate and cut into 128-token chunks, downsample to 10,000 train /
1,000 test chunks, mask on the fly (15% of tokens, or 20% of whole words),
fine-tune with AdamW (lr 2e-5, weight decay 0.01, warmup capped to the run,
linear decay), and report perplexity before and after plus the top 5
completions of "This is a great [MASK].". What changed: labels are -100
outside the masked positions for whole-word masking too, perplexity is
measured on a fixed mask so before and after are comparable, and masks are
drawn fresh every epoch inside tf.data.

Run: kerastune run mlm_domain_adaptation [--config FILE] [--set key=value ...]
"""

import dataclasses
import math
import time

from kerastune.config import BaseConfig
from kerastune.data import load_splits, require_columns, require_rows
from kerastune.data.masking import masked_lm_dataset
from kerastune.data.mlm import tokenize_and_chunk
from kerastune.errors import KerastuneError
from kerastune.generation.fill_mask import fill_mask, format_fill_mask
from kerastune.metrics.perplexity import perplexity
from kerastune.models import load_recipe_model
from kerastune.runtime import set_precision, set_seed
from kerastune.training import create_optimizer, fit
from kerastune.training.run_dir import start_run, write_metrics

# A tiny random model learns from scratch; these apply with `model=tiny-*` unless set explicitly.
TINY_MODEL_DEFAULTS = {"learning_rate": 1e-3, "epochs": 6, "warmup_steps": 20, "chunk_size": 64,
                       "tiny_vocab_size": 1000}


@dataclasses.dataclass
class Config(BaseConfig):
    recipe: str = "mlm_domain_adaptation"
    model: str = "distilbert/distilbert-base-uncased"
    dataset: str = "stanfordnlp/imdb"
    output_dir: str = "runs/mlm_domain_adaptation"
    text_column: str = "text"
    chunk_size: int = 128
    masking: str = "token"  # "token" (15% of tokens, 80/10/10) or "whole_word" (20% of words)
    train_chunks: int = 10000
    test_chunks: int = 1000
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    batch_size: int = 32
    epochs: int = 1
    precision: str = "auto"  # mixed_float16 on a GPU, float32 elsewhere
    tiny_vocab_size: int = 4000
    fill_mask_text: str = "This is a great [MASK]."


def show_fill_mask(model, config, when):
    print(f"\nFill-mask {when} training:")
    per_mask = fill_mask(model, [config.fill_mask_text])[0]
    print(format_fill_mask(config.fill_mask_text, per_mask))
    return [token for token, _ in per_mask[0]] if per_mask else []


def main(config: Config) -> dict:
    started = time.time()
    if config.masking not in ("token", "whole_word"):
        raise KerastuneError(f"masking must be 'token' or 'whole_word', got '{config.masking}'")
    set_seed(config.seed)
    set_precision(config.precision)
    run_dir = start_run(config)

    # Load the reviews and the model (a tiny model gets a vocabulary trained on them).
    splits = load_splits(config.dataset, config.dataset_config, revision=config.dataset_revision)
    train = splits["train"]
    require_columns(train, [config.text_column], "train")
    require_rows(train, "train")
    model = load_recipe_model(
        "mlm_domain_adaptation", config.model, "masked_lm", revision=config.model_revision,
        texts=train[config.text_column][:20000], vocab_size=config.tiny_vocab_size, sequence_length=config.chunk_size,
    )
    tokenizer = model.preprocessor.tokenizer

    # Tokenize keeping word ids, concatenate, chunk, downsample.
    chunks = tokenize_and_chunk(train, tokenizer, config.text_column, config.chunk_size)
    if len(chunks) < 2:
        raise KerastuneError(f"only {len(chunks)} chunks of {config.chunk_size} tokens: the dataset is too small")
    test_size = min(config.test_chunks, max(1, len(chunks) // 10))
    train_size = min(config.train_chunks, len(chunks) - test_size)
    parts = chunks.train_test_split(train_size=train_size, test_size=test_size, seed=config.seed)
    print(f"{len(chunks)} chunks of {config.chunk_size} tokens; {train_size} train / {test_size} test")
    train_ds = masked_lm_dataset(parts["train"], tokenizer, config.batch_size, config.masking, seed=config.seed)
    test_ds = masked_lm_dataset(parts["test"], tokenizer, config.batch_size, config.masking, seed=config.seed + 1,
                                shuffle=False, fixed_masks=True)

    # Perplexity and fill-mask before, fine-tune, and again after.
    before = perplexity(model, test_ds)
    print(f"Perplexity before training: {before:.2f}")
    top_before = show_fill_mask(model, config, "before")
    steps = math.ceil(train_size / config.batch_size) * config.epochs
    optimizer = create_optimizer(config.learning_rate, steps, config.warmup_steps, config.weight_decay, model)
    fit(model, train_ds, epochs=config.epochs, run_dir=run_dir, optimizer=optimizer, validation_data=test_ds,
        resume=config.resume, keep_checkpoints=config.keep_checkpoints)
    after = perplexity(model, test_ds)
    print(f"Perplexity after training: {after:.2f}")
    top_after = show_fill_mask(model, config, "after")

    model.save_to_preset(str(run_dir / "model"))
    metrics = write_metrics(run_dir, config, {
        "perplexity_before": before, "perplexity_after": after,
        "eval_loss_before": math.log(before), "eval_loss_after": math.log(after),
        "fill_mask_before": " ".join(top_before), "fill_mask_after": " ".join(top_after),
    }, started)
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics
