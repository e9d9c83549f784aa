"""Finding a recipe, loading it, and resolving its config from layered TOML files.

A recipe is a script (`recipes/NAME.py`: `RECIPE`, `Config`, `main(config)`)
plus its TOML (`recipes/NAME.toml`), which holds every default. A run's config
is that TOML with layers on top, each one winning over the ones before:

1. the recipe's TOML (or a copied TOML that sets every key, which replaces it);
2. `recipes/overlays/tiny/NAME.toml` when the user picks a `tiny-*` model
   (a random model learns from scratch: a larger learning rate, more epochs);
3. `recipes/overlays/tpu.toml` when the user picks `distribution.strategy = "tpu"`;
4. a TOML given in place of the recipe name that sets only some keys
   (`recipes/demo/NAME.toml`, `tpu/configs/NAME.toml`), then each `--config`
   file, then each `--set key=value`.

Steps 2 and 3 sit under everything the user wrote, so `--set` always wins and
the same intent gives the same config however it is spelled. A run's
`config.toml` sets every key, so it is step 1 and reruns as it ran.
"""

import dataclasses
import importlib.util
import sys
from pathlib import Path

from kerastune.config import build, check_values, flatten, key_types, parse_override, read_toml, schema_of_toml
from kerastune.errors import KerastuneError

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
OVERLAYS_DIR = RECIPES_DIR / "overlays"
_loaded: dict[Path, object] = {}  # resolved script path -> module: a recipe is loaded once per process


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.py") if not p.name.startswith("_"))


def register(module):
    """Remember a recipe module already imported (a script run as `__main__`), so it is not loaded twice."""
    _loaded[Path(module.__file__).resolve()] = module


def load_script(path) -> object:
    """Import a recipe script by path; it must define RECIPE, Config and main."""
    path = Path(path).expanduser().resolve()
    if path in _loaded:
        return _loaded[path]
    if not path.is_file():
        raise KerastuneError(f"recipe script not found: {path}")
    name = f"kerastune_recipe_{path.stem}" if path.parent == RECIPES_DIR else f"kerastune_recipe_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    missing = [attr for attr in ("RECIPE", "Config", "main") if not hasattr(module, attr)]
    if missing:
        del sys.modules[name]
        raise KerastuneError(f"{path} is not a recipe: it does not define {', '.join(missing)}")
    _loaded[path] = module
    return module


def load_recipe(name: str):
    """A built-in recipe by name."""
    if name not in builtin_recipes():
        raise KerastuneError(f"unknown recipe '{name}'; available: {', '.join(builtin_recipes())}")
    return load_script(RECIPES_DIR / f"{name}.py")


@dataclasses.dataclass
class Layer:
    source: str  # where the values came from, for the log line
    values: dict  # dotted key -> value

    def __str__(self):
        return self.source


@dataclasses.dataclass
class Resolved:
    recipe: object  # the recipe module
    config: object
    layers: list

    def describe(self) -> str:
        return "config: " + " < ".join(str(layer) for layer in self.layers)


# Keys naming files a run reads: a relative path in a config file is relative to that file.
INPUT_PATHS = ("model.name", "data.dataset", "reward.model", "reward.dataset", "lora.adapter", "chat.template")


def _toml_layer(cls, path, recipe_name: str) -> Layer:
    values = read_toml(path)
    named = values.pop("recipe", recipe_name)
    if named != recipe_name:
        raise KerastuneError(f"config {path} is for recipe '{named}', not '{recipe_name}'")
    flat = flatten(cls, values, f"config file {path}")
    for key in INPUT_PATHS:
        value = flat.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            beside = Path(path).parent / value
            if beside.exists():
                flat[key] = str(beside.resolve())
    return Layer(str(path), flat)


def resolve(recipe_or_path, config_files=(), overrides=()) -> Resolved:
    """The recipe module and its config from a recipe name, a script path, a TOML path, or a module."""
    first_toml = None
    if isinstance(recipe_or_path, str) and recipe_or_path.endswith(".toml"):
        first_toml = Path(recipe_or_path)
        named = read_toml(first_toml).get("recipe")
        if not named:
            raise KerastuneError(f"{first_toml} does not say which recipe it configures (recipe = \"...\")")
        recipe = load_recipe(named)
    elif isinstance(recipe_or_path, str) and recipe_or_path.endswith(".py"):
        recipe = load_script(recipe_or_path)
    elif isinstance(recipe_or_path, str):
        recipe = load_recipe(recipe_or_path)
    else:
        recipe = recipe_or_path
    cls, name = recipe.Config, recipe.RECIPE

    script = Path(recipe.__file__)
    own = script.with_suffix(".toml")
    base = _toml_layer(cls, own if own.is_file() else RECIPES_DIR / f"{name}.toml", name)
    user = [_toml_layer(cls, first_toml, name)] if first_toml else []
    user += [_toml_layer(cls, path, name) for path in config_files]
    sets = dict(parse_override(cls, text) for text in overrides)
    user += [Layer("--set " + " ".join(overrides), sets)] if sets else []

    # A user file that sets every key is the defaults; the automatic overlays go on top of it.
    every_key = set(key_types(cls)) - {"recipe"}
    complete = [i for i, layer in enumerate(user) if every_key <= set(layer.values)]
    if complete:
        base, user = user[complete[-1]], user[complete[-1] + 1:]
    picked = _merge(user)  # an overlay applies when the user picks a tiny model or the TPU, not the defaults
    overlays = []
    model = str(picked.get("model.name", ""))
    if model.startswith("tiny-") and (OVERLAYS_DIR / "tiny" / f"{name}.toml").is_file():
        overlays.append(_toml_layer(cls, OVERLAYS_DIR / "tiny" / f"{name}.toml", name))
        overlays[-1].source += f" (model {model})"
    if picked.get("distribution.strategy") == "tpu":
        overlays.append(_toml_layer(cls, OVERLAYS_DIR / "tpu.toml", name))
    layers = [base, *overlays, *user]
    values = _merge(layers)
    values["recipe"] = name
    return Resolved(recipe, build(cls, values), layers)


def _merge(layers) -> dict:
    values = {}
    for layer in layers:
        values.update(layer.values)
    return values


def precheck(recipe_or_path, config_files=(), overrides=()):
    """The settings' keys, types and ranges checked against the recipe's TOML alone, before its script (and
    Keras) is imported, so a mistyped key is answered at once; `resolve` checks everything again."""
    base = None
    if recipe_or_path.endswith(".toml"):
        named = read_toml(recipe_or_path).get("recipe")
        base = RECIPES_DIR / f"{named}.toml" if named in builtin_recipes() else None
    elif recipe_or_path.endswith(".py"):
        base = Path(recipe_or_path).with_suffix(".toml")
    elif recipe_or_path in builtin_recipes():
        base = RECIPES_DIR / f"{recipe_or_path}.toml"
    if base is None or not base.is_file():
        return  # resolve says what is wrong
    values = read_toml(base)
    values.pop("recipe", None)
    schema = schema_of_toml(values)
    for path in ([recipe_or_path] if recipe_or_path.endswith(".toml") else []) + list(config_files):
        layer = read_toml(path)
        layer.pop("recipe", None)
        check_values(schema, flatten(schema, layer, f"config file {path}"))
    check_values(schema, dict(parse_override(schema, text) for text in overrides))


def load_config(recipe_or_path, *overrides, config_files=()):
    """The resolved config alone (tests, notebooks): `load_config("seq2seq_qa", "model=tiny-t5")`."""
    return resolve(recipe_or_path, config_files, overrides).config


def global_batch(config) -> int:
    """Rows per step: PPO's rollouts, GRPO's completions, or the training batch."""
    if hasattr(config, "ppo"):
        return config.ppo.batch_size
    if hasattr(config, "grpo"):
        return config.grpo.prompts_per_step * config.grpo.num_generations
    return config.train.batch_size


def run(recipe, config) -> dict:
    """`recipe.main(config)` on the devices `config.distribution` names (runtime.distribution_scope)."""
    from kerastune.runtime import describe_distribution, distribution_scope

    dist = config.distribution
    with distribution_scope(dist.strategy, dist.model_parallel_size, dist.multi_host):
        print(describe_distribution(dist.strategy, global_batch(config)))
        return recipe.main(config)
