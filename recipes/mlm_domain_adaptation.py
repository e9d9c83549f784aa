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
     python recipes/mlm_domain_adaptation.py [--config FILE] [--set key=value ...]
Settings: mlm_domain_adaptation.toml beside this file.
"""

import dataclasses
import math

import kerastune.quiet  # noqa: F401  (first: TensorFlow's load-time log lines only with --debug)
from kerastune.config import DataConfig, DistributionConfig, EvalConfig, ModelConfig, RecipeConfig, TrainConfig
from kerastune.data import load_splits, require_columns, require_rows
from kerastune.data.masking import masked_lm_dataset
from kerastune.data.mlm import tokenize_and_chunk
from kerastune.errors import KerastuneError
from kerastune.generation.fill_mask import fill_mask, format_fill_mask
from kerastune.metrics.perplexity import perplexity
from kerastune.models import load_recipe_model
from kerastune.runtime import set_precision, set_seed
from kerastune.training import count_batches, create_optimizer, fit
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "mlm_domain_adaptation"
MASKINGS = ("token", "whole_word")


@dataclasses.dataclass
class Data(DataConfig):
    text_column: str
    chunk_size: int  # tokens per chunk, after concatenating the texts
    masking: str  # "token" (15% of tokens, 80/10/10) or "whole_word" (20% of words)
    train_chunks: int  # downsampled to at most this many
    test_chunks: int

    def __post_init__(self):
        if self.masking not in MASKINGS:
            raise KerastuneError(f"masking must be 'token' or 'whole_word', got '{self.masking}'")


@dataclasses.dataclass
class Eval(EvalConfig):
    fill_mask_text: str  # its top-5 completions are shown before and after


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    data: Data
    train: TrainConfig
    eval: Eval
    distribution: DistributionConfig


def show_fill_mask(model, text, when):
    print(f"\nFill-mask {when} training:")
    per_mask = fill_mask(model, [text])[0]
    print(format_fill_mask(text, per_mask))
    return [token for token, _ in per_mask[0]] if per_mask else []


def main(config: Config) -> dict:
    data, train_settings = config.data, config.train
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)

    # Load the reviews and the model (a tiny model gets a vocabulary trained on them).
    splits = load_splits(data.dataset, data.config, revision=data.revision)
    train = splits["train"]
    require_columns(train, [data.text_column], "train")
    require_rows(train, "train")
    model = load_recipe_model(
        RECIPE, config.model.name, "masked_lm", revision=config.model.revision,
        texts=train[data.text_column][:20000], vocab_size=config.model.tiny_vocab_size,
        sequence_length=data.chunk_size,
    )
    tokenizer = model.preprocessor.tokenizer

    # Tokenize keeping word ids, concatenate, chunk, downsample.
    chunks = tokenize_and_chunk(train, tokenizer, data.text_column, data.chunk_size)
    if len(chunks) < 2:
        raise KerastuneError(f"only {len(chunks)} chunks of {data.chunk_size} tokens: the dataset is too small")
    test_size = min(data.test_chunks, max(1, len(chunks) // 10))
    train_size = min(data.train_chunks, len(chunks) - test_size)
    parts = chunks.train_test_split(train_size=train_size, test_size=test_size, seed=config.seed)
    print(f"{len(chunks)} chunks of {data.chunk_size} tokens; {train_size} train / {test_size} test")
    train_ds = masked_lm_dataset(parts["train"], tokenizer, train_settings.batch_size, data.masking, seed=config.seed,
                                 drop_remainder=data.static_shapes)
    test_ds = masked_lm_dataset(parts["test"], tokenizer, config.eval.batch_size, data.masking, seed=config.seed + 1,
                                shuffle=False, fixed_masks=True)

    # Perplexity and fill-mask before, fine-tune, and again after.
    before = perplexity(model, test_ds)
    print(f"Perplexity before training: {before:.2f}")
    top_before = show_fill_mask(model, config.eval.fill_mask_text, "before")
    optimizer = create_optimizer(train_settings.learning_rate, count_batches(train_ds) * train_settings.epochs,
                                 train_settings.warmup_steps, train_settings.weight_decay, model)
    fit(model, train_ds, epochs=train_settings.epochs, run_dir=run_dir, optimizer=optimizer, validation_data=test_ds,
        resume=train_settings.resume, keep_checkpoints=train_settings.keep_checkpoints)
    after = perplexity(model, test_ds)
    print(f"Perplexity after training: {after:.2f}")
    top_after = show_fill_mask(model, config.eval.fill_mask_text, "after")

    model.save_to_preset(str(run_dir / "model"))
    metrics = write_metrics(run_dir, config, {
        "perplexity_before": before, "perplexity_after": after,
        "eval_loss_before": math.log(before), "eval_loss_after": math.log(after),
        "fill_mask_before": " ".join(top_before), "fill_mask_after": " ".join(top_after),
    })
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
