"""Recipe configs: nested TOML tables parsed into small dataclasses.

A recipe's config is a dataclass of sections (`[model]`, `[data]`,
`[train]`, `[eval]`, `[generation]`, `[distribution]`, and for PPO `[lora]`,
`[ppo]`, `[reward]`), each a dataclass that library code takes whole. The
dataclasses say which keys exist and their types; the values come only from
TOML files (the recipe's own first) and `--set` overrides, so there is one
place where a default lives. A key the recipe does not have is an error that
names it, and so is a key the recipe's TOML forgot.

Keys are written nested (`[train]` then `batch_size = 8`, or `--set
train.batch_size=8`); the flat names of earlier versions (`batch_size`,
`model`, `ppo_steps`, ...) are accepted as aliases, see `FLAT_ALIASES`.
"""

import dataclasses
import difflib
import math
import tomllib
import typing
from pathlib import Path

from kerastune.errors import KerastuneError

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16", "bfloat16")  # bfloat16: weights too
DISTRIBUTIONS = ("none", "data_parallel", "model_parallel", "tpu")  # see runtime.distribution_scope
QUANTIZE_MODES = ("", "int8", "int4")  # Keras's quantizers


def _at_least(section, key: str, minimum: int):
    if getattr(section, key) < minimum:
        raise KerastuneError(f"config key '{section.SECTION}.{key}' must be >= {minimum}, got {getattr(section, key)}")


# ---- sections shared by the recipes; a recipe subclasses one to add its own keys ----

@dataclasses.dataclass
class ModelConfig:
    SECTION: typing.ClassVar[str] = "model"
    name: str  # hub id, local directory, keras-hub preset or tiny-* model
    revision: str  # branch, tag, commit or refs/pr/N of the hub repository ("" = main)
    precision: str  # auto | float32 | mixed_float16 | mixed_bfloat16
    tiny_vocab_size: int  # tiny-* models only: vocabulary trained on the recipe's texts

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise KerastuneError(f"precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")


@dataclasses.dataclass
class DataConfig:
    SECTION: typing.ClassVar[str] = "data"
    dataset: str  # hub id, local file or folder, or bucket URL
    config: str  # the hub dataset's configuration ("" = its default)
    revision: str
    static_shapes: bool  # pad to bucket edges and drop ragged batches (fixed shapes for XLA / TPU)


@dataclasses.dataclass
class PreferenceDataConfig(DataConfig):
    """[data] of the recipes that read preference pairs in trl's formats (reward_model, dpo)."""

    split: str
    prompt_column: str  # absent from the dataset: the prompt is what chosen and rejected share (trl's implicit one)
    chosen_column: str
    rejected_column: str
    validation_size: float  # fraction held out when the dataset has no validation (or test) split
    max_train_samples: int  # 0 = all
    max_eval_samples: int
    max_length: int  # tokens per prompt + answer


@dataclasses.dataclass
class PromptDataConfig(DataConfig):
    """[data] of the recipes that sample answers to prompts (grpo, ppo): trl's prompt-only format."""

    split: str
    prompt_column: str  # text, or a list of messages (trl's conversational prompt-only format)
    validation_size: float  # held-out prompts when the dataset has no validation (or test) split
    max_train_samples: int  # 0 = all
    max_eval_samples: int
    max_prompt_length: int  # prompt tokens; longer prompts keep their end (0 = no limit)


@dataclasses.dataclass
class RewardSourcesConfig:
    """[reward] of the recipes that score sampled answers (grpo, ppo): Python functions and / or a reward model."""

    SECTION: typing.ClassVar[str] = "reward"
    functions: list[str]  # Python reward functions: "module:function", "file.py:function" or a built-in name
    model: str  # a reward_model run's model/ folder; a tiny-* model is trained here on `dataset` ("" = none)
    revision: str
    dataset: str  # preference pairs for a tiny-* reward model
    epochs: int  # its training epochs
    weights: list[float]  # one per function, then the model ([] = all 1)
    batch_size: int  # sequences per reward-model call


@dataclasses.dataclass
class HeldOutAnswersConfig:
    """[eval] of the recipes that answer held-out prompts before and after training (grpo, ppo)."""

    SECTION: typing.ClassVar[str] = "eval"
    num_prompts: int  # held-out prompts answered (greedy) and scored before and after


@dataclasses.dataclass
class ChatConfig:
    SECTION: typing.ClassVar[str] = "chat"
    template: str  # a .jinja file or a checkpoint folder holding one ("" = the model's own)


@dataclasses.dataclass
class TrainConfig:
    SECTION: typing.ClassVar[str] = "train"
    MIN_EPOCHS: typing.ClassVar[int] = 1
    batch_size: int
    epochs: int
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    resume: bool  # continue from output_dir's last checkpoint
    keep_checkpoints: int

    def __post_init__(self):
        _at_least(self, "batch_size", 1)
        _at_least(self, "epochs", self.MIN_EPOCHS)


@dataclasses.dataclass
class LMTrainConfig(TrainConfig):
    """[train] of the causal-LM recipes, with the memory levers."""

    gradient_accumulation_steps: int  # batches per optimizer update (1: every batch)
    remat: bool  # each decoder layer's activations recomputed in the backward pass instead of kept
    loss_chunk_size: int  # 0: whole logits; N: the head and cross-entropy N positions at a time, recomputed

    def __post_init__(self):
        super().__post_init__()
        _at_least(self, "gradient_accumulation_steps", 1)
        _at_least(self, "loss_chunk_size", 0)


@dataclasses.dataclass
class EvalConfig:
    SECTION: typing.ClassVar[str] = "eval"
    batch_size: int

    def __post_init__(self):
        _at_least(self, "batch_size", 1)


@dataclasses.dataclass
class GenerationConfig:
    SECTION: typing.ClassVar[str] = "generation"
    num_beams: int  # 1 = greedy
    max_new_tokens: int

    def __post_init__(self):
        _at_least(self, "num_beams", 1)
        _at_least(self, "max_new_tokens", 1)


@dataclasses.dataclass
class DistributionConfig:
    SECTION: typing.ClassVar[str] = "distribution"
    strategy: str  # none | data_parallel | model_parallel | tpu
    model_parallel_size: int  # devices on the mesh's `model` axis under model_parallel
    multi_host: bool  # start the multi-process runtime (JAX) first; TF reads TF_CONFIG

    def __post_init__(self):
        if self.strategy not in DISTRIBUTIONS:
            raise KerastuneError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got '{self.strategy}'")


@dataclasses.dataclass
class LoraConfig:
    """PEFT's LoraConfig keys, under PEFT's meanings (models/lora)."""

    SECTION: typing.ClassVar[str] = "lora"
    rank: int  # r; 0 = no adapters: every weight trains (where the recipe allows it)
    alpha: float  # lora_alpha: the update is scaled by alpha / rank (rsLoRA: alpha / sqrt(rank))
    dropout: float  # lora_dropout, on the adapter's input while training
    targets: list[str]  # target_modules: module names (q_proj, v_proj, ...; T5: q, v, ...) or "all-linear"
    target_regex: str  # target_modules as a string: a regex matched against full module names (replaces targets)
    use_rslora: bool
    use_dora: bool
    adapter: str  # start from a PEFT adapter directory (adapter_config.json + adapter_model.safetensors)
    quantize: str  # "" | int8 | int4: the frozen base's projections quantized under the adapters (QLoRA's idea)

    def __post_init__(self):
        _at_least(self, "rank", 0)
        if self.quantize not in QUANTIZE_MODES:
            raise KerastuneError(f"lora.quantize must be one of {', '.join(map(repr, QUANTIZE_MODES))}, "
                                 f"got '{self.quantize}'")
        if self.quantize and self.rank == 0 and not self.adapter:
            raise KerastuneError("lora.quantize needs adapters to train (lora.rank >= 1): the quantized base is frozen")
        if self.quantize and self.use_dora:
            raise KerastuneError("lora.use_dora needs the base kernels in float: it cannot go with lora.quantize")


@dataclasses.dataclass
class PPOConfig:
    """trl 0.11's PPOConfig keys that the seed's detox run sets, under trl's meanings."""

    SECTION: typing.ClassVar[str] = "ppo"
    steps: int
    learning_rate: float
    batch_size: int  # rollouts per step (global)
    mini_batch_size: int
    epochs: int  # passes over each batch
    init_kl_coef: float
    adaptive_kl: bool
    kl_target: float
    kl_horizon: int
    gamma: float
    lam: float
    cliprange: float
    cliprange_value: float
    vf_coef: float
    value_dropout: float
    output_min_length: int  # max_new_tokens per rollout, drawn from [min, max)
    output_max_length: int
    min_length: int  # transformers' min_length: counts the decoder start token

    def __post_init__(self):
        for key in ("batch_size", "mini_batch_size", "epochs"):
            _at_least(self, key, 1)
        if self.batch_size % self.mini_batch_size:
            raise KerastuneError(f"ppo.batch_size {self.batch_size} is not a multiple of ppo.mini_batch_size "
                                 f"{self.mini_batch_size}")
        if not 0 < self.output_min_length < self.output_max_length:
            raise KerastuneError(f"output lengths need 0 < min < max, got {self.output_min_length}.."
                                 f"{self.output_max_length}")


@dataclasses.dataclass
class RewardConfig:
    SECTION: typing.ClassVar[str] = "reward"
    model: str  # a text classifier: hub id, local directory, or tiny-* (trained here on `dataset`)
    revision: str
    dataset: str  # text,label CSV; needed only to train a tiny-* reward model
    epochs: int
    learning_rate: float
    toxic_label: str
    reward_label: str  # reward = this label's logit
    batch_size: int

    def __post_init__(self):
        _at_least(self, "batch_size", 1)


@dataclasses.dataclass
class RecipeConfig:
    """The keys every recipe has at the top level; a recipe adds its sections as fields."""

    recipe: str
    output_dir: str
    seed: int


# Flat key names of earlier versions -> nested keys. Besides these, a flat key that is a key of exactly
# one section (`warmup_steps`), or SECTION_KEY (`ppo_steps`, `lora_rank`, `eval_batch_size`), finds its key.
FLAT_ALIASES = {
    "model": "model.name", "dataset": "data.dataset", "dataset_config": "data.config",
    "dataset_split": "data.split", "dataset_revision": "data.revision", "distribution": "distribution.strategy",
    "batch_size": "train.batch_size", "epochs": "train.epochs", "learning_rate": "train.learning_rate",
    "sft_batch_size": "train.batch_size", "sft_epochs": "train.epochs", "sft_learning_rate": "train.learning_rate",
    "reward_model_revision": "reward.revision", "num_beams": "generation.num_beams",
    "max_new_tokens": "generation.max_new_tokens",
}


@dataclasses.dataclass
class Schema:
    """A recipe's keys and types read from its own TOML (which sets every key): what settings can be
    checked against before the recipe's script, and Keras with it, is imported (`schema_of_toml`)."""

    types: dict  # dotted key -> type
    tables: set  # section names


def schema_of_toml(values: dict) -> Schema:
    types, tables = {}, set()
    for key, value in values.items():
        if isinstance(value, dict):
            tables.add(key)
            types.update({f"{key}.{inner}": _toml_type(v) for inner, v in value.items()})
        else:
            types[key] = _toml_type(value)
    return Schema(types, tables)


def _toml_type(value):
    return list[str] if isinstance(value, list) else type(value)


def sections(cls) -> dict:
    """Section name -> section dataclass, for a recipe's config class (or the names, for a Schema)."""
    if isinstance(cls, Schema):
        return dict.fromkeys(cls.tables)
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def key_types(cls) -> dict:
    """Every key of a recipe's config (a config class or a Schema), dotted (`train.batch_size`), -> its type."""
    if isinstance(cls, Schema):
        return dict(cls.types)
    hints = typing.get_type_hints(cls)
    types = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            types.update({f"{f.name}.{k}": v for k, v in key_types(kind).items()})
        else:
            types[f.name] = kind
    return types


def dotted_key(cls, key: str, origin: str) -> str:
    """The nested key a config-file or `--set` key names, or an error that names it."""
    types = key_types(cls)
    if key in types:
        return key
    candidates = [FLAT_ALIASES.get(key, "")]
    section, _, rest = key.partition("_")
    candidates.append(f"{section}.{rest}")
    owners = [k for k in types if k.split(".")[-1] == key]
    candidates.extend(owners if len(owners) == 1 else [])
    for candidate in candidates:
        if candidate in types:
            return candidate
    names = list(types) + [alias for alias, target in FLAT_ALIASES.items() if target in types]
    close = difflib.get_close_matches(key, names, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; valid keys: {', '.join(types)}"
    absent = f": this recipe has no {FLAT_ALIASES[key]}" if key in FLAT_ALIASES else ""
    raise KerastuneError(f"unknown config key '{key}' (from {origin}){absent}{hint}")


def flatten(cls, values: dict, origin: str) -> dict:
    """A TOML document (nested tables, flat aliases or both) as {dotted key: value}."""
    flat = {}
    section_names = sections(cls)
    for key, value in values.items():
        if isinstance(value, dict) and key in section_names:
            for inner, inner_value in value.items():
                flat[dotted_key(cls, f"{key}.{inner}", origin)] = inner_value
        elif isinstance(value, dict):
            raise KerastuneError(f"unknown config table [{key}] (from {origin}); tables: {', '.join(section_names)}")
        else:
            flat[dotted_key(cls, key, origin)] = value
    return flat


def parse_override(cls, text: str) -> tuple[str, object]:
    """`key=value` from `--set`: the value as a TOML literal (numbers, booleans, arrays) or else a string."""
    if "=" not in text:
        raise KerastuneError(f"--set expects key=value, got '{text}'")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return dotted_key(cls, key.strip(), "--set"), value


def _coerce(key: str, value, kind):
    """A TOML or command-line value as the key's declared type."""
    try:
        if kind is bool:
            if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.strip().lower() in ("true", "1", "yes")
            if isinstance(value, bool):
                return value
            raise ValueError(value)
        if isinstance(value, bool) and kind in (int, float):  # true is no number of epochs
            raise ValueError(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
        if typing.get_origin(kind) is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            (item,) = typing.get_args(kind)
            return [item(v) for v in value]
    except (TypeError, ValueError):
        raise KerastuneError(f"config key '{key}' expects {getattr(kind, '__name__', kind)}, got {value!r}") from None
    return value


def check_values(cls, values: dict):
    """Each given value has its key's type and range (no key needs to be there): the checks `build` makes."""
    types = key_types(cls)
    for key, value in values.items():
        check_range(key, _coerce(key, value, types[key]))


def build(cls, values: dict):
    """A recipe config from {dotted key: value}; every key of `cls` must have a value."""
    types = key_types(cls)
    missing = [k for k in types if k not in values]
    if missing:
        raise KerastuneError(f"config is missing key(s) {', '.join(missing)} (a recipe's TOML sets every key)")
    typed = {k: _coerce(k, values[k], kind) for k, kind in types.items()}
    for key, value in typed.items():
        check_range(key, value)
    return _instantiate(cls, typed, "")


# The range of a number follows from its key's last part: a rule here covers that key in every recipe.
AT_LEAST_ONE = {"batch_size", "mini_batch_size", "chunk_size", "max_length", "max_source_length",
                "max_target_length", "max_new_tokens", "num_beams", "model_parallel_size", "steps",
                "output_max_length", "trace_top_n", "toxicity_max_new_tokens"}
POSITIVE = {"learning_rate", "pretrain_learning_rate", "alpha", "kl_target", "cliprange", "cliprange_value",
            "temperature"}
FRACTIONS = {"test_size", "validation_size"}  # a float one is a share in (0, 1); an int one a row count
PROBABILITIES = {"value_dropout", "dropout", "eps", "gamma", "lam", "top_p"}
MINIMUM = {"tiny_vocab_size": 300}  # byte-level BPE holds the 256 bytes before any merge


def check_range(key: str, value):
    """Numbers in range: finite; counts >= 0 (sizes, lengths, beams >= 1); rates > 0; shares in (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    leaf = key.rsplit(".", 1)[-1]
    problem = None
    if not math.isfinite(value):
        problem = "a finite number"
    elif leaf in MINIMUM and value < MINIMUM[leaf]:
        problem = f">= {MINIMUM[leaf]}"
    elif leaf in AT_LEAST_ONE and value < 1:
        problem = ">= 1"
    elif leaf in POSITIVE and value <= 0:
        problem = "> 0"
    elif leaf in FRACTIONS and isinstance(value, float) and not 0 < value < 1:
        problem = "a fraction in (0, 1)"
    elif leaf in PROBABILITIES and not 0 <= value <= 1:
        problem = "in [0, 1]"
    elif value < 0:
        problem = ">= 0"
    if problem:
        raise KerastuneError(f"config key '{key}' must be {problem}, got {value!r}")


def _instantiate(cls, typed: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        nested = dataclasses.is_dataclass(kind)
        kwargs[f.name] = _instantiate(kind, typed, f"{prefix}{f.name}.") if nested else typed[prefix + f.name]
    return cls(**kwargs)


def read_toml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise KerastuneError(f"config file not found: {path}")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise KerastuneError(f"config file {path} is not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KerastuneError(f"config file {path} cannot be read: {e}") from None


def to_toml(config) -> str:
    """A config as TOML: top-level keys, then one table per section (the run directory's config.toml)."""
    top, tables = [], []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            tables.append(f"\n[{f.name}]")
            tables += [f"{k} = {_toml_value(v)}" for k, v in dataclasses.asdict(value).items()]
        else:
            top.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(top + tables) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'
