"""Causal-LM fine-tuning: a Spanish GPT-2 on product descriptions, and decoding strategies before/after.
Any keras-hub causal LM runs it the same way (Llama, Qwen, Gemma, Mistral, ...: `model=ORG/NAME`).

The steps of the GPT-2 text-generation notebook, in Keras: load
`datificate/gpt2-small-spanish` and a 1% sample of amazon-esci `products`,
keep the rows with a `product_description`, split 90/10, fine-tune with
`model.fit` (10 epochs, lr 2e-5, batch 8, weight decay 0.01), evaluate
every epoch and keep the best weights (restored at the end), and generate
from "Había una vez" before and after with greedy, sampling, top-k, top-p,
beam and the notebook's epsilon-greedy decoder, plus its per-step table of
the top candidates. What changed: batches are padded to the longest text in
their bucket instead of to 512, each text ends with `<|endoftext|>` and
that token counts in the loss (the notebook pads with it and so never
teaches the model to stop), generation is compiled, and eval loss and
perplexity are measured before training too.

Run: kerastune run causal_lm [--config FILE] [--set key=value ...]
     python recipes/causal_lm.py [--config FILE] [--set key=value ...]
Settings: causal_lm.toml beside this file.
"""

import dataclasses
import json

import kerastune.quiet  # noqa: F401  (first: TensorFlow's load-time log lines only with --debug)
from kerastune.config import (
    DataConfig,
    DistributionConfig,
    EvalConfig,
    GenerationConfig,
    LMTrainConfig,
    LoraConfig,
    ModelConfig,
    RecipeConfig,
)
from kerastune.data import limit_rows, load_splits, require_columns, require_rows, split_off
from kerastune.data.causal_lm import causal_lm_dataset, drop_empty, make_examples, tokenize_texts
from kerastune.errors import KerastuneError
from kerastune.generation.causal import CausalLMGenerator, start_token_id
from kerastune.generation.trace import trace
from kerastune.metrics.perplexity import exp_loss, masked_cross_entropy
from kerastune.models import load_recipe_model
from kerastune.models.causal_training import CausalLMForTraining
from kerastune.models.lora import adapt, merged_for_saving, parameter_report, save_adapters
from kerastune.runtime import set_precision, set_seed
from kerastune.training import BestMetric, count_batches, create_optimizer, fit, without_preprocessor
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "causal_lm"


@dataclasses.dataclass
class Data(DataConfig):
    split: str
    text_columns: list[str]  # joined by a newline; rows where all are empty are dropped (and counted)
    validation_size: float  # fraction held out when the dataset has no validation split
    max_train_samples: int  # 0 = all
    max_eval_samples: int
    max_length: int  # tokens per sequence
    pack: bool  # join texts with the end token and cut into max_length blocks


@dataclasses.dataclass
class Generation(GenerationConfig):
    prompt: str
    eps: float  # epsilon-greedy: probability of taking the most likely token
    decoders: list[str]  # which of `strategies` print before and after training
    trace_steps: int  # rows of the per-step table
    trace_top_n: int


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    lora: LoraConfig
    data: Data
    train: LMTrainConfig
    eval: EvalConfig
    generation: Generation
    distribution: DistributionConfig


def strategies(generation: Generation) -> dict:
    """The notebook's decoders by name: greedy (its step table), two temperatures, top-k, top-p, beam,
    eps-greedy. `generation.decoders` picks which ones run."""
    known = {
        "greedy": dict(sampler="greedy"),
        "sample_t0.5": dict(sampler="sample", temperature=0.5),
        "sample_t0.8_top_k50": dict(sampler="sample", temperature=0.8, top_k=50),
        "top_p0.92": dict(sampler="sample", top_p=0.92),
        "beam": dict(sampler="beam", num_beams=max(generation.num_beams, 4)),
        "eps_greedy": dict(sampler="eps_greedy", eps=generation.eps),
    }
    unknown = [name for name in generation.decoders if name not in known]
    if unknown:
        raise KerastuneError(f"unknown decoder(s) {', '.join(unknown)}; available: {', '.join(known)}")
    return {name: known[name] for name in generation.decoders}


def read_texts(split, columns) -> list[str]:
    """One text per row: the non-empty text columns joined by a newline."""
    rows = zip(*(split[c] for c in columns))
    return ["\n".join(v.strip() for v in values if isinstance(v, str) and v.strip()) for values in rows]


def show_generations(generators, generation: Generation, run_dir, when) -> dict:
    print(f"\nGenerations {when} training, prompt {generation.prompt!r}:")
    texts = {}
    for name, generator in generators.items():
        if name in generation.decoders:
            texts[name] = generator.generate([generation.prompt])[0]
            print(f"--- {name}\n{texts[name]}")
    table = trace(generators["greedy"], generation.prompt, top_n=generation.trace_top_n).head(generation.trace_steps)
    table.to_csv(run_dir / f"trace_{when}.csv", index=False)
    print(f"\nStep table {when} training (greedy; trace_{when}.csv):")
    print(table.drop(columns=["token", "probability", "rank"]).to_string(index=False, max_colwidth=40))
    return texts


def main(config: Config) -> dict:
    data, train_settings, generation = config.data, config.train, config.generation
    decoders = {"greedy": dict(sampler="greedy"), **strategies(generation)}  # greedy also draws the step table
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)

    # The texts: rows with something in the text columns, split 90/10.
    splits = load_splits(data.dataset, data.config, data.split, data.revision)
    require_columns(splits["train"], data.text_columns, "train")
    require_rows(splits["train"], "train")
    if "validation" not in splits:
        splits["train"], splits["validation"] = split_off(splits["train"], data.validation_size, config.seed,
                                                          "validation")
    train_texts, dropped_train = drop_empty(read_texts(limit_rows(splits["train"], data.max_train_samples),
                                                       data.text_columns))
    eval_texts, dropped_eval = drop_empty(read_texts(limit_rows(splits["validation"], data.max_eval_samples),
                                                     data.text_columns))
    print(f"{len(train_texts)} train / {len(eval_texts)} validation texts; dropped "
          f"{dropped_train + dropped_eval} empty rows ({dropped_train} train, {dropped_eval} validation)")
    if not train_texts or not eval_texts:
        raise KerastuneError(f"no non-empty text in column(s) {', '.join(data.text_columns)} of one split")

    # The model, and the texts as next-token examples.
    def load_base():
        return load_recipe_model(RECIPE, config.model.name, "causal_lm", texts=train_texts,
                                 vocab_size=config.model.tiny_vocab_size, sequence_length=data.max_length,
                                 revision=config.model.revision)

    model = load_base()
    adapted = adapt(model, config.lora, seed=config.seed)  # LoRA: only adapters train (on a quantized base)
    if adapted:
        print(parameter_report(model))
    tokenizer = model.preprocessor.tokenizer
    max_length = min(data.max_length, getattr(model.backbone, "max_sequence_length", None) or data.max_length)
    eos, start = int(tokenizer.end_token_id), start_token_id(model)  # start: None for GPT-2
    train_examples = make_examples(tokenize_texts(train_texts, tokenizer), eos, max_length, data.pack, start)
    eval_examples = make_examples(tokenize_texts(eval_texts, tokenizer), eos, max_length, data.pack, start)
    print(f"{len(train_examples)} train / {len(eval_examples)} validation sequences of at most {max_length} tokens"
          + (" (packed)" if data.pack else ""))
    train_ds = causal_lm_dataset(train_examples, train_settings.batch_size, max_length, seed=config.seed,
                                 static_shapes=data.static_shapes)
    eval_ds = causal_lm_dataset(eval_examples, config.eval.batch_size, max_length, shuffle=False)

    # Before: eval loss, perplexity, generations.
    generators = {name: CausalLMGenerator(model, tokenizer, max_new_tokens=generation.max_new_tokens,
                                          seed=config.seed, **settings) for name, settings in decoders.items()}
    loss_before = masked_cross_entropy(model, eval_ds)
    print(f"Eval loss before training: {loss_before:.4f} (perplexity {exp_loss(loss_before):.2f})")
    before = show_generations(generators, generation, run_dir, "before")

    # Fine-tune, evaluating every epoch; keep the best epoch's weights.
    accumulation = train_settings.gradient_accumulation_steps  # batches per update: the schedule counts updates
    optimizer = create_optimizer(train_settings.learning_rate,
                                 count_batches(train_ds) * train_settings.epochs // accumulation,
                                 train_settings.warmup_steps, train_settings.weight_decay, model, accumulation)
    best = BestMetric(run_dir / "best.json", monitor="val_loss", mode="min",
                      weights_path=run_dir / "best.npz")
    trainer = model
    if train_settings.remat or train_settings.loss_chunk_size:  # the memory levers (models/causal_training.py)
        trainer = CausalLMForTraining(model, remat=train_settings.remat,
                                      loss_chunk_size=train_settings.loss_chunk_size, max_length=max_length)
    fit(trainer, train_ds, epochs=train_settings.epochs, run_dir=run_dir, optimizer=optimizer,
        validation_data=eval_ds, callbacks=[best], resume=train_settings.resume,
        keep_checkpoints=train_settings.keep_checkpoints)
    with without_preprocessor(trainer):
        restored = best.restore_weights(trainer)
    if restored:
        print(f"Restored the best weights: epoch {best.best()['epoch']} (val_loss {best.best()['value']:.4f})")

    # After: the same measurements.
    loss_after = masked_cross_entropy(model, eval_ds)
    print(f"Eval loss after training: {loss_after:.4f} (perplexity {exp_loss(loss_after):.2f})")
    after = show_generations(generators, generation, run_dir, "after")
    generations = {name: {"before": before[name], "after": after[name]} for name in before}
    (run_dir / "generations.json").write_text(json.dumps(generations, indent=2, ensure_ascii=False) + "\n")

    if adapted:  # the adapters alone (PEFT's files), and the model with them merged
        save_adapters(model, run_dir / "adapters", base_model=config.model.name)
        model = merged_for_saving(model, run_dir / "adapters", load_base)
    model.save_to_preset(str(run_dir / "model"))
    metrics = write_metrics(run_dir, config, {
        "eval_loss_before": loss_before, "perplexity_before": exp_loss(loss_before),
        "eval_loss": loss_after, "perplexity": exp_loss(loss_after),
        "eval_loss_after": loss_after, "perplexity_after": exp_loss(loss_after),
        "best_epoch": best.best().get("epoch", 0), "dropped_empty_rows": dropped_train + dropped_eval,
        "train_sequences": len(train_examples), "eval_sequences": len(eval_examples),
    })
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
