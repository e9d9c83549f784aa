"""`kerastune generate`: prompts in, generated text out, for a model or a run directory."""

from pathlib import Path

from kerastune.errors import KerastuneError
from kerastune.generation.causal import CausalLMGenerator
from kerastune.generation.chat import answer, chat_generator
from kerastune.generation.fill_mask import fill_mask, format_fill_mask
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.generation.trace import trace
from kerastune.models import model_kind
from kerastune.models.chat_templates import load_chat_template
from kerastune.training.run_dir import load_run_model, model_location


def generate_lines(model_or_run_dir: str, prompts, args) -> list[str]:
    """`kerastune generate`: for each prompt, the prompt and `-> ` lines with the output.

    Seq2seq models generate text; causal LMs continue the prompt with the
    chosen decoding strategy (and, with `--trace N`, print the step table
    with the top N candidates); masked LMs list the top-k tokens and their
    probabilities for every [MASK]. With `--chat`, each prompt is a user's
    message to a causal LM, answered in the model's chat template.
    """
    model, settings = load_run_model(model_or_run_dir, args.num_beams, args.max_new_tokens,
                                          getattr(args, "revision", ""))
    kind = model_kind(model)
    if kind == "masked_lm":
        missing = [p for p in prompts if "[MASK]" not in p]
        if missing:
            raise KerastuneError(f"a masked LM fills [MASK] tokens, and '{missing[0][:60]}' has none "
                                 "(e.g. 'This movie is [MASK].')")
        masks = fill_mask(model, prompts, args.top_k or 5)
        return [format_fill_mask(p, m) for p, m in zip(prompts, masks)]
    if kind == "seq2seq":
        if args.sampler not in (None, "greedy", "beam"):
            raise KerastuneError("seq2seq generation supports greedy and beam search (--num-beams)")
        generator = Seq2SeqGenerator(model, model.preprocessor.tokenizer, **settings)
        texts = generator.generate(prompts, batch_size=args.batch_size)
        return [f"{prompt}\n-> {text}" for prompt, text in zip(prompts, texts)]
    decoding = dict(max_new_tokens=settings["max_new_tokens"], sampler=args.sampler or "greedy",
                    temperature=args.temperature, top_k=args.top_k or 0, top_p=args.top_p, eps=args.eps,
                    num_beams=settings["num_beams"], seed=args.seed)
    if getattr(args, "chat", False):
        chat = load_chat_template(model_location(model_or_run_dir), model, getattr(args, "revision", ""))
        generator = chat_generator(model, chat, **decoding)
        texts = answer(generator, chat, [[{"role": "user", "content": p}] for p in prompts], args.batch_size)
        return [f"{prompt}\n-> {text}" for prompt, text in zip(prompts, texts)]
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, **decoding)
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
