"""Config: defaults, TOML files, --set overrides, unknown keys named."""

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from kerastune.config import build_config, read_toml, to_toml
from kerastune.errors import KerastuneError

ROOT = Path(__file__).resolve().parents[1]


def recipe_config_class(name="instruction_tuning"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Config


@pytest.mark.parametrize("name", ["instruction_tuning", "seq2seq_qa", "mlm_domain_adaptation"])
def test_recipe_toml_states_the_dataclass_defaults(name):
    Config = recipe_config_class(name)
    assert build_config(Config, read_toml(ROOT / "recipes" / f"{name}.toml")) == Config()


def test_seed_settings():
    tuning = recipe_config_class()()
    assert (tuning.learning_rate, tuning.batch_size, tuning.epochs, tuning.num_beams) == (1e-5, 32, 2, 5)
    assert tuning.labels == ["World", "Sports", "Business", "Sci/Tech"]
    qa = recipe_config_class("seq2seq_qa")()
    assert (qa.learning_rate, qa.batch_size, qa.eval_batch_size, qa.weight_decay, qa.epochs) == (3e-4, 8, 4, 0.01, 3)
    assert (qa.max_source_length, qa.max_target_length, qa.test_size, qa.keep_checkpoints) == (128, 512, 0.3, 3)
    assert qa.prefix == "Please answer this question: "
    mlm = recipe_config_class("mlm_domain_adaptation")()
    assert (mlm.learning_rate, mlm.weight_decay, mlm.warmup_steps, mlm.batch_size, mlm.chunk_size) == (
        2e-5, 0.01, 1000, 32, 128)
    assert (mlm.train_chunks, mlm.test_chunks, mlm.fill_mask_text) == (10000, 1000, "This is a great [MASK].")


def test_overrides_are_typed():
    Config = recipe_config_class()
    config = build_config(Config, {}, ["epochs=3", "learning_rate=1e-3", "labels=a,b", "resume=false", "model=x/y"])
    assert config.epochs == 3 and config.learning_rate == 1e-3
    assert config.labels == ["a", "b"] and config.resume is False and config.model == "x/y"


def test_unknown_key_names_the_key_and_the_valid_ones():
    Config = recipe_config_class()
    with pytest.raises(KerastuneError) as error:
        build_config(Config, {}, ["learning_rat=1e-3"])
    message = str(error.value)
    assert "learning_rat" in message and "learning_rate" in message and "valid keys" in message


@pytest.mark.parametrize("override", ["epochs=many", "precision=float8", "batch_size=0", "nonsense"])
def test_bad_values_are_rejected(override):
    with pytest.raises(KerastuneError):
        build_config(recipe_config_class(), {}, [override])


def test_resolved_config_round_trips_through_toml(tmp_path):
    Config = recipe_config_class()
    config = build_config(Config, {}, ["epochs=7"])
    (tmp_path / "c.toml").write_text(to_toml(config))
    again = build_config(Config, read_toml(tmp_path / "c.toml"))
    assert dataclasses.asdict(again) == dataclasses.asdict(config)


def test_tiny_models_get_from_scratch_defaults_unless_given():
    from kerastune.cli import resolve_config

    _, seed_config = resolve_config("instruction_tuning")
    assert seed_config.learning_rate == 1e-5 and seed_config.num_beams == 5
    _, tiny = resolve_config("instruction_tuning", None, ["model=tiny-t5"])
    assert tiny.learning_rate == 1e-3 and tiny.epochs == 8 and tiny.num_beams == 1
    _, mine = resolve_config("instruction_tuning", None, ["model=tiny-t5", "learning_rate=5e-4"])
    assert mine.learning_rate == 5e-4 and mine.epochs == 8


@pytest.mark.parametrize("name", ["instruction_tuning", "seq2seq_qa", "lora_ppo_detox", "mlm_domain_adaptation",
                                  "causal_lm"])
def test_tpu_configs_resolve_to_bfloat16_on_the_tpu(name):
    from kerastune.cli import resolve_config

    _, config = resolve_config(str(ROOT / "tpu" / "configs" / f"{name}.toml"))
    assert (config.recipe, config.distribution, config.precision) == (name, "tpu", "mixed_bfloat16")
    assert config.model and not config.model.startswith("tiny-")


def test_distribution_tpu_brings_its_defaults_unless_set():
    from kerastune.cli import resolve_config

    _, config = resolve_config("seq2seq_qa", overrides=["distribution=tpu"])
    assert (config.precision, config.static_shapes) == ("mixed_bfloat16", True)
    _, config = resolve_config("seq2seq_qa", overrides=["distribution=tpu", "precision=float32"])
    assert (config.precision, config.static_shapes) == ("float32", True)
    with pytest.raises(KerastuneError, match="distribution must be one of none, data_parallel, model_parallel, tpu"):
        resolve_config("seq2seq_qa", overrides=["distribution=mirrored"])


def test_distribution_tpu_without_a_tpu_is_a_clear_error():
    from kerastune.runtime import distribution_scope

    with pytest.raises(KerastuneError, match="distribution=tpu: .*(no TPU|sees no TPU)"):
        with distribution_scope("tpu"):
            pass


def test_default_hub_ids_are_ones_the_pinned_libraries_load():
    """Every model and dataset a recipe names by default (its dataclass, its TOML, its TPU TOML) is a
    namespaced hub id (`datasets` breaks on bare ones) and not a script-only dataset (`datasets` >= 4 refuses
    to run loading scripts)."""
    from kerastune.hub.ids import HUB_ID, SCRIPT_ONLY
    from kerastune.hub.preflight import sources

    files = sorted((ROOT / "recipes").glob("*.toml")) + sorted((ROOT / "tpu" / "configs").glob("*.toml"))
    configs = [build_config(recipe_config_class(read_toml(f)["recipe"]), read_toml(f)) for f in files]
    configs += [recipe_config_class(name)() for name in ("instruction_tuning", "seq2seq_qa", "lora_ppo_detox",
                                                         "mlm_domain_adaptation", "causal_lm")]
    checked = set()
    for config in configs:
        for key, _, value in sources(config):
            assert HUB_ID.match(value), f"{config.recipe}: {key} = {value!r} is not namespaced (org/name)"
            assert value not in SCRIPT_ONLY, f"{config.recipe}: {key} = {value!r} is a script-only dataset"
            checked.add(value)
    assert {"stanfordnlp/imdb", "community-datasets/yahoo_answers_topics", "distilbert/distilbert-base-uncased",
            "datificate/gpt2-small-spanish", "milistu/amazon-esci-data"} <= checked
