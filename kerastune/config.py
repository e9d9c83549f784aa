"""Recipe configs: a dataclass per recipe, a TOML file, `--set key=value` overrides.

The dataclass says which keys exist, their types and defaults (the seed
notebook's settings). A TOML file and command-line overrides are applied on
top, in that order. An unknown key is an error that names the key and lists
the valid ones, so a typo never silently falls back to a default.
"""

import dataclasses
import tomllib
import typing
from pathlib import Path

from kerastune.errors import KerastuneError
from kerastune.runtime import DISTRIBUTIONS


@dataclasses.dataclass
class BaseConfig:
    """Keys every recipe shares; a recipe adds its own and changes the defaults to its notebook's."""

    recipe: str = ""
    model: str = ""
    dataset: str = ""
    dataset_config: str = ""
    model_revision: str = ""  # a branch, tag, commit or refs/pr/N of the model's hub repository ("" = main)
    dataset_revision: str = ""  # the same for the dataset's
    output_dir: str = "runs/run"
    seed: int = 42
    batch_size: int = 32
    eval_batch_size: int = 32
    epochs: int = 1
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    precision: str = "float32"
    distribution: str = "none"  # none | data_parallel | model_parallel | tpu (runtime.distribution_scope)
    model_parallel_size: int = 2  # devices on the mesh's `model` axis under model_parallel
    multi_host: bool = False  # start the multi-process runtime (JAX) first; TF reads TF_CONFIG
    static_shapes: bool = False  # pad to bucket edges and drop ragged batches (fixed shapes for XLA / TPU)
    max_train_samples: int = 0
    max_eval_samples: int = 0
    keep_checkpoints: int = 3
    resume: bool = True
    # Generation settings used by evaluation and `kerastune generate`.
    num_beams: int = 1
    max_new_tokens: int = 16
    sampler: str = "greedy"


PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SAMPLERS = ("greedy", "sample", "top_k", "top_p", "beam", "eps_greedy")  # see generation/samplers.py


def _field_types(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(key: str, value, kind):
    """Convert a TOML or command-line value to the field's declared type."""
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("true", "1", "yes"):
                    return True
                if lowered in ("false", "0", "no"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
        if origin is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            (item,) = typing.get_args(kind)
            return [item(v) for v in value]
    except (TypeError, ValueError):
        raise KerastuneError(
            f"config key '{key}' expects {getattr(kind, '__name__', kind)}, got {value!r}"
        ) from None
    return value


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise KerastuneError(f"--set expects key=value, got '{text}'")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:  # TOML literal: numbers, booleans, quoted strings, arrays.
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def read_toml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise KerastuneError(f"config file not found: {path}")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise KerastuneError(f"config file {path} is not valid TOML: {e}") from None


def build_config(cls, file_values: dict | None = None, overrides=()):
    """Defaults of `cls`, then values from a TOML file, then `key=value` overrides."""
    types = _field_types(cls)
    values = {}
    sources = [(k, v, "config file") for k, v in (file_values or {}).items()]
    sources += [(*_parse_override(o), "--set") for o in overrides]
    for key, value, origin in sources:
        if key not in types:
            valid = ", ".join(sorted(types))
            raise KerastuneError(
                f"unknown config key '{key}' (from {origin}); valid keys: {valid}"
            )
        values[key] = _coerce(key, value, types[key])
    config = cls(**values)
    validate(config)
    return config


def validate(config):
    if config.precision not in PRECISIONS:
        raise KerastuneError(
            f"precision must be one of {', '.join(PRECISIONS)}, got '{config.precision}'"
        )
    if config.distribution not in DISTRIBUTIONS:
        raise KerastuneError(
            f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got '{config.distribution}'"
        )
    for key in ("batch_size", "eval_batch_size", "epochs"):
        if getattr(config, key) < 1:
            raise KerastuneError(f"config key '{key}' must be >= 1, got {getattr(config, key)}")
    if config.num_beams < 1:
        raise KerastuneError(f"num_beams must be >= 1, got {config.num_beams}")


def to_toml(config) -> str:
    """Serialise a config back to TOML (the run directory's `config.toml`)."""
    lines = []
    for key, value in dataclasses.asdict(config).items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'
