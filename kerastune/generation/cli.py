"""`kerastune generate`: prompts in, generated text out, for a model or a run directory."""

from pathlib import Path

from kerastune.config import read_toml
from kerastune.errors import KerastuneError
from kerastune.generation.causal import CausalLMGenerator
from kerastune.generation.fill_mask import fill_mask, format_fill_mask
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.generation.trace import trace
from kerastune.models import load_model, model_kind


def load_for_generation(model_or_run_dir: str, num_beams=None, max_new_tokens=None, revision=""):
    """(model, generation settings) from a run directory (its config's settings) or any model.

    Explicit `num_beams` / `max_new_tokens` override the run's; `kerastune
    generate` and `kerastune export` resolve settings the same way, so they
    produce the same text.
    """
    path = Path(model_or_run_dir)
    saved = {}
    if (path / "config.toml").is_file() and (path / "model").is_dir():
        saved = read_toml(path / "config.toml")
        path = path / "model"
    elif (path / "config.toml").is_file():
        raise KerastuneError(f"run directory {path} has no model/ yet (did the run finish?)")
    model = load_model(str(path) if path.exists() else model_or_run_dir, revision=revision)
    if model_kind(model) not in ("seq2seq", "causal_lm", "masked_lm"):
        raise KerastuneError(f"generate supports seq2seq, causal and masked LMs; got {type(model).__name__}")
    generation, data = saved.get("generation", {}), saved.get("data", {})
    settings = dict(  # run directories written before configs were nested have flat keys
        max_new_tokens=max_new_tokens or generation.get("max_new_tokens", saved.get("max_new_tokens", 32)),
        num_beams=num_beams or generation.get("num_beams", saved.get("num_beams", 1)),
        max_source_length=data.get("max_source_length", saved.get("max_source_length", 512)),
    )
    return model, settings


def generate_lines(model_or_run_dir: str, prompts, args) -> list[str]:
    """`kerastune generate`: for each prompt, the prompt and `-> ` lines with the output.

    Seq2seq models generate text; causal LMs continue the prompt with the
    chosen decoding strategy (and, with `--trace N`, print the step table
    with the top N candidates); masked LMs list the top-k tokens and their
    probabilities for every [MASK].
    """
    model, settings = load_for_generation(model_or_run_dir, args.num_beams, args.max_new_tokens,
                                          getattr(args, "revision", ""))
    kind = model_kind(model)
    if kind == "masked_lm":
        masks = fill_mask(model, prompts, args.top_k or 5)
        return [format_fill_mask(p, m) for p, m in zip(prompts, masks)]
    if kind == "seq2seq":
        if args.sampler not in (None, "greedy", "beam"):
            raise KerastuneError("seq2seq generation supports greedy and beam search (--num-beams)")
        generator = Seq2SeqGenerator(model, model.preprocessor.tokenizer, **settings)
        texts = generator.generate(prompts, batch_size=args.batch_size)
        return [f"{prompt}\n-> {text}" for prompt, text in zip(prompts, texts)]
    generator = CausalLMGenerator(
        model, model.preprocessor.tokenizer, max_new_tokens=settings["max_new_tokens"],
        sampler=args.sampler or "greedy", temperature=args.temperature, top_k=args.top_k or 0, top_p=args.top_p,
        eps=args.eps, num_beams=settings["num_beams"], seed=args.seed,
    )
    if not args.trace:
        texts = generator.generate(prompts, batch_size=args.batch_size)
        return [f"{prompt}\n-> {text}" for prompt, text in zip(prompts, texts)]
    blocks = []
    for i, prompt in enumerate(prompts):
        table = trace(generator, prompt, top_n=args.trace)
        if args.trace_csv:
            out = Path(args.trace_csv if len(prompts) == 1 else f"{Path(args.trace_csv).with_suffix('')}-{i}.csv")
            table.to_csv(out, index=False)
        shown = table.drop(columns=["probability", "rank"]).to_string(index=False, max_colwidth=40)
        blocks.append(f"{prompt}\n-> {table.attrs['text']}\n{shown}")
    return blocks
