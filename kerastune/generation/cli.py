"""`kerastune generate`: prompts in, generated text out, for a model or a run directory."""

from pathlib import Path

from kerastune.config import read_toml
from kerastune.errors import KerastuneError
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.models import load_model, model_kind


def generate_from(model_or_run_dir: str, prompts, args) -> list[str]:
    """Generate with a run's saved model (its config's settings by default) or any model."""
    path = Path(model_or_run_dir)
    settings = {}
    if (path / "config.toml").is_file() and (path / "model").is_dir():
        settings = read_toml(path / "config.toml")
        path = path / "model"
    elif (path / "config.toml").is_file():
        raise KerastuneError(f"run directory {path} has no model/ yet (did the run finish?)")
    model = load_model(str(path) if path.exists() else model_or_run_dir)
    if model_kind(model) != "seq2seq":
        raise KerastuneError(f"generate supports seq2seq (T5) models so far; got {type(model).__name__}")
    generator = Seq2SeqGenerator(
        model,
        model.preprocessor.tokenizer,
        max_new_tokens=args.max_new_tokens or settings.get("max_new_tokens", 32),
        num_beams=args.num_beams or settings.get("num_beams", 1),
        max_source_length=settings.get("max_source_length", 512),
    )
    return generator.generate(prompts, batch_size=args.batch_size)
