"""Configs: a recipe's TOML is its defaults; overlays, --set, flat aliases and bad keys."""

import dataclasses
import shlex
import shutil
import typing
from pathlib import Path

import pytest

from kerastune.config import to_toml
from kerastune.errors import KerastuneError
from kerastune.recipes import builtin_recipes, load_config, load_recipe, resolve

ROOT = Path(__file__).resolve().parents[1]
RECIPES = builtin_recipes()


def test_the_built_in_recipes():
    assert RECIPES == ["causal_lm", "chat_sft", "dpo", "grpo", "instruction_tuning", "lora_ppo_detox",
                       "mlm_domain_adaptation", "ppo", "reward_model", "seq2seq_qa"]


@pytest.mark.parametrize("name", RECIPES)
def test_every_toml_of_a_recipe_resolves(name):
    """The recipe's own TOML sets every key; its demo, tiny and TPU overlays name only keys it has."""
    config = load_config(name)
    assert config.recipe == name and not config.model.name.startswith("tiny-")
    demo = load_config(str(ROOT / "recipes" / "demo" / f"{name}.toml"))
    assert demo.model.name.startswith("tiny-") and demo.train.resume is True  # a demo resumes like any run
    tpu = load_config(str(ROOT / "tpu" / "configs" / f"{name}.toml"))
    assert (tpu.distribution.strategy, tpu.model.precision, tpu.data.static_shapes) == ("tpu", "mixed_bfloat16", True)


def test_a_recipe_is_loaded_once():
    assert load_recipe("seq2seq_qa") is load_recipe("seq2seq_qa")
    assert type(load_config("seq2seq_qa")) is type(load_config("seq2seq_qa"))


@pytest.mark.parametrize("name", RECIPES)
def test_the_same_intent_gives_the_same_config_however_it_is_spelled(name, tmp_path):
    """Recipe name + overlay + --set, the recipe's TOML path + the same, and a copied, renamed TOML + the same."""
    overlay = str(ROOT / "recipes" / "demo" / f"{name}.toml")
    copy = tmp_path / "mine.toml"
    shutil.copy(ROOT / "recipes" / f"{name}.toml", copy)
    sets = ["seed=7", "train.keep_checkpoints=2"]
    by_name = resolve(name, [overlay], sets)
    by_path = resolve(str(ROOT / "recipes" / f"{name}.toml"), [overlay], sets)
    by_copy = resolve(str(copy), [overlay], sets)
    assert by_name.config == by_path.config == by_copy.config
    assert by_name.config.seed == 7 and by_name.config.train.keep_checkpoints == 2
    assert "overlays/tiny" in by_name.describe() and "overlays/tiny" in by_copy.describe()


def test_tiny_models_bring_their_overlay_under_what_the_user_sets():
    seed = load_config("instruction_tuning")
    assert (seed.train.learning_rate, seed.generation.num_beams, seed.data.max_source_length) == (1e-5, 5, 400)
    tiny = load_config("instruction_tuning", "model=tiny-t5")
    assert (tiny.train.learning_rate, tiny.train.epochs, tiny.generation.num_beams) == (1e-3, 8, 1)
    mine = load_config("instruction_tuning", "model=tiny-t5", "learning_rate=5e-4")
    assert mine.train.learning_rate == 5e-4 and mine.train.epochs == 8


def test_distribution_tpu_brings_its_overlay_unless_set():
    config = load_config("seq2seq_qa", "distribution=tpu")
    assert (config.model.precision, config.data.static_shapes) == ("mixed_bfloat16", True)
    config = load_config("seq2seq_qa", "distribution.strategy=tpu", "precision=float32")
    assert (config.model.precision, config.data.static_shapes) == ("float32", True)
    with pytest.raises(KerastuneError, match="distribution must be one of none, data_parallel, model_parallel, tpu"):
        load_config("seq2seq_qa", "distribution=mirrored")


def test_flat_names_are_aliases_of_nested_keys():
    flat = load_config("lora_ppo_detox", "ppo_steps=3", "ppo_batch_size=8", "mini_batch_size=2", "sft_epochs=0",
                       "lora_rank=4", "reward_model=tiny-roberta", "reward_model_revision=v1", "eval_batch_size=2",
                       "model_revision=refs/pr/1", "dataset_split=train[:10]")
    nested = load_config("lora_ppo_detox", "ppo.steps=3", "ppo.batch_size=8", "ppo.mini_batch_size=2",
                         "train.epochs=0", "lora.rank=4", "reward.model=tiny-roberta", "reward.revision=v1",
                         "eval.batch_size=2", "model.revision=refs/pr/1", "data.split=train[:10]")
    assert flat == nested
    assert (flat.ppo.steps, flat.lora.rank, flat.reward.revision, flat.data.split) == (3, 4, "v1", "train[:10]")


def test_an_old_flat_config_file_still_works(tmp_path):
    (tmp_path / "old.toml").write_text('epochs = 3\nlearning_rate = 1e-3\nlabels = ["a", "b"]\nmodel = "x/y"\n')
    config = load_config("instruction_tuning", config_files=[tmp_path / "old.toml"])
    assert (config.train.epochs, config.train.learning_rate, config.data.labels, config.model.name) == (
        3, 1e-3, ["a", "b"], "x/y")


def test_overrides_are_typed():
    config = load_config("instruction_tuning", "epochs=3", "learning_rate=1e-3", "labels=a,b", "resume=false")
    assert config.train.epochs == 3 and config.train.learning_rate == 1e-3
    assert config.data.labels == ["a", "b"] and config.train.resume is False


@pytest.mark.parametrize("override, message", [
    ("learning_rat=1e-3", "unknown config key 'learning_rat' .*did you mean .*learning_rate"),
    ("train.foo=1", "unknown config key 'train.foo'"),
    ("max_new_tokens=3", "this recipe has no generation.max_new_tokens"),  # PPO's responses have their own
    ("batch_size=many", "config key 'train.batch_size' expects int"),
    ("precision=float8", "precision must be one of"),
    ("batch_size=0", "'train.batch_size' must be >= 1"),
    ("ppo.mini_batch_size=5", "ppo.batch_size 16 is not a multiple of ppo.mini_batch_size 5"),
    ("nonsense", "--set expects key=value"),
])
def test_bad_keys_and_values_are_one_clear_error(override, message):
    with pytest.raises(KerastuneError, match=message):
        load_config("lora_ppo_detox", override)


def test_a_key_the_recipe_does_not_use_is_an_error_and_so_is_a_missing_one(tmp_path):
    (tmp_path / "ignored.toml").write_text("[ppo]\nsteps = 3\n")
    with pytest.raises(KerastuneError, match=r"unknown config table \[ppo\]"):
        load_config("seq2seq_qa", config_files=[tmp_path / "ignored.toml"])
    copy = tmp_path / "copy.py"
    shutil.copy(ROOT / "recipes" / "seq2seq_qa.py", copy)
    (tmp_path / "copy.toml").write_text((ROOT / "recipes" / "seq2seq_qa.toml").read_text()
                                        .replace("warmup_steps = 0\n", ""))
    with pytest.raises(KerastuneError, match="config is missing key.*train.warmup_steps"):
        load_config(str(copy))


def test_the_resolved_config_written_to_a_run_reproduces_it(tmp_path):
    config = load_config("causal_lm", "model=tiny-gpt2", "epochs=7", "decoders=greedy,beam")
    (tmp_path / "config.toml").write_text(to_toml(config))
    again = load_config(str(tmp_path / "config.toml"))
    assert dataclasses.asdict(again) == dataclasses.asdict(config)


def test_distribution_tpu_without_a_tpu_is_a_clear_error():
    from kerastune.runtime import distribution_scope

    with pytest.raises(KerastuneError, match="distribution=tpu: .*(no TPU|sees no TPU)"):
        with distribution_scope("tpu"):
            pass


def test_default_hub_ids_are_ones_the_pinned_libraries_load():
    """Every model and dataset a recipe names by default (its TOML, its TPU overlay) is a namespaced hub id
    (`datasets` breaks on bare ones) and not a script-only dataset (`datasets` >= 4 refuses loading scripts), or
    the output of the recipe that comes first in a pipeline (grpo's and ppo's reward model: the reward_model run's)."""
    from kerastune.hub.ids import HUB_ID, SCRIPT_ONLY
    from kerastune.preflight import sources

    configs = [load_config(name) for name in RECIPES]
    configs += [load_config(str(path)) for path in sorted((ROOT / "tpu" / "configs").glob("*.toml"))]
    checked = set()
    for config in configs:
        for source in sources(config):
            if config.recipe in ("grpo", "ppo") and (source.key, source.value) == ("reward.model",
                                                                                   "runs/reward_model/model"):
                assert load_config("reward_model").output_dir + "/model" == source.value
                continue
            assert HUB_ID.match(source.value), f"{config.recipe}: {source.key} = {source.value!r} is not org/name"
            assert source.value not in SCRIPT_ONLY, f"{config.recipe}: {source.key} = {source.value!r} is a script"
            checked.add(source.value)
    assert {"stanfordnlp/imdb", "community-datasets/yahoo_answers_topics", "distilbert/distilbert-base-uncased",
            "datificate/gpt2-small-spanish", "milistu/amazon-esci-data"} <= checked


def readme_run_commands():
    """Every `kerastune run ...` line in the README files' code blocks, as argument lists."""
    commands = []
    for readme in (ROOT / "README.md", ROOT / "tpu" / "README.md"):
        for line in readme.read_text().splitlines():
            line = line.strip().strip("`")
            if line.startswith("kerastune run "):
                commands.append(shlex.split(line.split(" #")[0].split("`")[0])[1:])
    return commands


def test_every_run_command_in_the_readme_resolves(tmp_path, capsys):
    """Users' commands keep working: each resolves to a config (with --print-config: nothing runs)."""
    from kerastune.cli import main

    (tmp_path / "my_settings.toml").write_text("[train]\nepochs = 1\n")
    (tmp_path / "my_lm").mkdir()
    shutil.copy(ROOT / "recipes" / "causal_lm.py", tmp_path / "my_lm")  # the README's copied recipe
    commands = readme_run_commands()
    assert len(commands) >= 12
    for command in commands:
        command = [str(tmp_path / a) if a.startswith(("my_settings.toml", "my_lm/")) else a for a in command]
        command = [a for a in command if a != "--dry-run"]
        assert main([*command, "--print-config"]) == 0, (command, capsys.readouterr().err)


def test_paths_in_a_config_file_are_relative_to_it(tmp_path, monkeypatch):
    """The demo configs name their data beside them, so `kerastune run recipes/demo/X.toml` works anywhere."""
    monkeypatch.chdir(tmp_path)
    for name in RECIPES:
        config = load_config(str(ROOT / "recipes" / "demo" / f"{name}.toml"))
        assert Path(config.data.dataset).exists(), (name, config.data.dataset)
    copy = tmp_path / "mine.toml"
    copy.write_text('recipe = "causal_lm"\n[data]\ndataset = "texts.csv"\n')
    assert load_config(str(copy)).data.dataset == "texts.csv"  # not beside the file: left as written
    (tmp_path / "texts.csv").write_text("text\nhola\n")
    assert load_config(str(copy)).data.dataset == str(tmp_path / "texts.csv")


@pytest.mark.parametrize("name", RECIPES)
def test_a_recipe_toml_has_the_types_of_its_config(name):
    """Settings are checked against the recipe's TOML before its script is imported (`precheck`): the TOML's
    value types must be the config's."""
    from kerastune.config import key_types, schema_of_toml
    from kerastune.config import read_toml as read

    values = read(ROOT / "recipes" / f"{name}.toml")
    values.pop("recipe")
    declared = {k: v for k, v in key_types(load_recipe(name).Config).items() if k != "recipe"}
    found = schema_of_toml(values).types
    for table, settings in values.items():  # an empty TOML list says nothing of its items' type
        for key, value in (settings.items() if isinstance(settings, dict) else ()):
            if value == [] and typing.get_origin(declared.get(f"{table}.{key}")) is list:
                found[f"{table}.{key}"] = declared[f"{table}.{key}"]
    assert found == declared


def test_a_bad_setting_is_answered_before_keras_is_imported():
    import subprocess
    import sys

    code = ("import sys; from kerastune.cli import main; status = main(['run', 'instruction_tuning', '--set', "
            "'lerning_rate=1']); print(status, 'keras' in sys.modules, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.split() == ["2", "False", "False"], done.stdout + done.stderr
    assert "lerning_rate" in done.stderr and "learning_rate" in done.stderr
