"""Bad input, as a careless user gives it: exit status 2 and one line that names the problem, no traceback.

Every case runs the real command in-process (`kerastune.cli.main`) and stops before any training."""

import os
import shutil
from pathlib import Path

import pytest

from kerastune.cli import main

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "recipes" / "data" / "news_sample"
PRODUCTS = ROOT / "recipes" / "data" / "products_sample.csv"


def check(argv, capsys, *names, status=2):
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == status, (code, err[-2000:])
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


# ---- settings: checked before any work (`--print-config` resolves and validates, then stops) ----------

SETTINGS = [
    ("instruction_tuning", "learning_rate=nan", "train.learning_rate"),
    ("instruction_tuning", "learning_rate=-1e-3", "train.learning_rate"),
    ("instruction_tuning", "learning_rate=0", "train.learning_rate"),
    ("instruction_tuning", "weight_decay=inf", "train.weight_decay"),
    ("instruction_tuning", "epochs=true", "train.epochs"),
    ("instruction_tuning", "epochs=2.5", "train.epochs"),
    ("instruction_tuning", "batch_size=0", "train.batch_size"),
    ("instruction_tuning", "warmup_steps=-1", "train.warmup_steps"),
    ("instruction_tuning", "resume=2", "train.resume"),
    ("instruction_tuning", "max_new_tokens=0", "generation.max_new_tokens"),
    ("instruction_tuning", "num_beams=0", "generation.num_beams"),
    ("instruction_tuning", "max_train_samples=-5", "data.max_train_samples"),
    ("instruction_tuning", "max_source_length=0", "data.max_source_length"),
    ("seq2seq_qa", "test_size=0", "data.test_size"),
    ("seq2seq_qa", "test_size=1.5", "data.test_size"),
    ("causal_lm", "validation_size=1", "data.validation_size"),
    ("causal_lm", "model=tiny-gpt2 tiny_vocab_size=5", "model.tiny_vocab_size"),
    ("lora_ppo_detox", "ppo.value_dropout=1.5", "ppo.value_dropout"),
    ("lora_ppo_detox", "ppo.gamma=-1", "ppo.gamma"),
    ("mlm_domain_adaptation", "chunk_size=0", "data.chunk_size"),
]


@pytest.mark.parametrize("recipe,overrides,key", SETTINGS, ids=[f"{r}:{o}" for r, o, _ in SETTINGS])
def test_a_bad_setting_is_one_line_naming_the_key(recipe, overrides, key, capsys):
    check(["run", recipe, "--print-config", "--set", *overrides.split()], capsys, key)


# ---- data: checked after loading, before splitting or any model ------------------------------------------

def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def news_rows(n, label="1"):
    lines = (NEWS / "train.csv").read_text().splitlines()
    return "\n".join(lines[:1] + [f"{line.rsplit(',', 1)[0]},{label}" for line in lines[1:n + 1]]) + "\n"


DATA = {
    "two rows": (lambda d: write(d / "two.csv", news_rows(2)), "instruction_tuning", ("2 rows",)),
    "a label out of range in two rows": (lambda d: write(d / "bad.csv", news_rows(2, label="9")), "instruction_tuning",
                                         ("label", "9")),
    "one row": (lambda d: write(d / "one.csv", "product_description\nUna frase.\n"), "causal_lm", ("1 row",)),
    "duplicated columns": (lambda d: write(d / "dup.csv", "text,label,label\nhello,1,2\n"), "instruction_tuning",
                           ("dup.csv", "label")),
    "a zero-byte file": (lambda d: write(d / "zero.csv", ""), "instruction_tuning", ("zero.csv", "empty")),
    "latin-1 text": (lambda d: write(d / "latin.csv", "text,label\ncafé olé,1\n", "latin-1"), "instruction_tuning",
                     ("latin.csv", "UTF-8")),
    "an empty validation file": (lambda d: (shutil.copytree(NEWS, d / "news"),
                                            write(d / "news" / "validation.csv", "text,label\n"))[0],
                                 "instruction_tuning", ("validation.csv", "no rows")),
    "a test file with other columns": (lambda d: (shutil.copytree(NEWS, d / "news"),
                                                  write(d / "news" / "test.csv", "sentence,category\nhi,1\n"))[0],
                                       "instruction_tuning", ("test", "text")),
    "a missing path": (lambda d: d / "nowhere.csv", "instruction_tuning", ("nowhere.csv",)),
}


@pytest.mark.parametrize("case", list(DATA))
def test_bad_data_is_one_line_naming_the_file_or_column(case, tmp_path, capsys):
    make, recipe, names = DATA[case]
    dataset = make(tmp_path)
    model = "tiny-gpt2" if recipe == "causal_lm" else "tiny-t5"
    check(["run", recipe, "--set", f"model={model}", f"dataset={dataset}", f"output_dir={tmp_path / 'run'}"],
          capsys, *names)


def test_an_output_dir_that_is_a_file(tmp_path, capsys):
    blocker = write(tmp_path / "taken", "")
    check(["run", "instruction_tuning", "--set", "model=tiny-t5", f"dataset={NEWS}", f"output_dir={blocker}"],
          capsys, "taken", "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_an_output_dir_that_cannot_be_written(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    check(["run", "instruction_tuning", "--set", "model=tiny-t5", f"dataset={NEWS}", f"output_dir={locked / 'run'}"],
          capsys, "cannot be written")


# ---- generate and export ---------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value", [("--num-beams", "0"), ("--num-beams", "-3"), ("--max-new-tokens", "0"),
                                        ("--max-new-tokens", "-5"), ("--batch-size", "0")])
def test_generate_refuses_counts_below_one(flag, value, capsys):
    check(["generate", "tiny-t5", "hello", flag, value], capsys, flag)


def test_a_path_that_does_not_exist_is_not_a_hub_id(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    check(["generate", "runs/typo", "hello"], capsys, "runs/typo", "not found")


@pytest.mark.parametrize("flag,value", [("--num-beams", "0"), ("--max-new-tokens", "-1")])
def test_export_refuses_counts_below_one(flag, value, tmp_path, capsys):
    check(["export", "tiny-t5", "--out", str(tmp_path / "out"), flag, value], capsys, flag)


def test_an_unknown_flag_is_one_line(capsys):
    check(["generate", "tiny-t5", "hello", "--beams", "2"], capsys, "--beams")


def test_export_to_an_existing_file(tmp_path, capsys):
    target = write(tmp_path / "out", "not a folder")
    check(["export", "tiny-t5", "--out", str(target)], capsys, "out", "is a file")


def test_an_unreadable_config_file(tmp_path, capsys):
    broken = write(tmp_path / "broken.toml", "recipe = \n")
    check(["run", str(broken)], capsys, "broken.toml")


# ---- model files ------------------------------------------------------------------------------------------

SPOILED_WEIGHTS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "zero bytes": lambda p: p.write_bytes(b""),
    "a garbage header": lambda p: p.write_bytes(b"\xff" * 8 + p.read_bytes()[8:]),
    "a header that is not JSON": lambda p: p.write_bytes((16).to_bytes(8, "little") + b"\xe9not json at all" +
                                                        p.read_bytes()[24:]),
}


@pytest.mark.parametrize("spoil", list(SPOILED_WEIGHTS))
def test_corrupt_hf_weights_are_one_line_naming_the_file(spoil, tmp_path, capsys, product_texts):
    from helpers.hf_checkpoints import write_hf_gpt2

    write_hf_gpt2(tmp_path / "gpt2", product_texts[:20], seed=1)
    SPOILED_WEIGHTS[spoil](tmp_path / "gpt2" / "model.safetensors")
    check(["generate", str(tmp_path / "gpt2"), "Había una vez"], capsys, "model.safetensors")


def test_a_model_of_another_kind_is_named(tmp_path, capsys):
    check(["run", "causal_lm", "--set", "model=tiny-distilbert", f"dataset={PRODUCTS}", "max_train_samples=16",
           f"output_dir={tmp_path / 'run'}"], capsys, "causal LM", "tiny-distilbert", "masked_lm")


def test_a_setting_keras_hub_does_not_compute_is_named(tmp_path, capsys, product_texts):
    """A Llama with biased projections would load as a different model: refused, naming the setting."""
    import json

    from helpers.hf_checkpoints import write_hf_decoder

    write_hf_decoder(tmp_path / "llama", "llama", product_texts[:20])
    config = json.loads((tmp_path / "llama" / "config.json").read_text())
    (tmp_path / "llama" / "config.json").write_text(json.dumps({**config, "attention_bias": True}))
    check(["generate", str(tmp_path / "llama"), "Había una vez"], capsys, "attention_bias", "llama")


def test_fill_mask_needs_a_mask(capsys):
    check(["generate", "tiny-distilbert", "no mask here"], capsys, "[MASK]")


def test_rows_without_an_answer_are_dropped_and_counted(capsys):
    import datasets

    from kerastune.errors import KerastuneError
    from kerastune.recipes import load_config, load_recipe

    data = load_config("seq2seq_qa", "question_column=question", "question_detail_column=",
                       "answer_column=answer").data
    rows = datasets.Dataset.from_dict({"question": ["Why?", "How?", "Who?"], "answer": ["Because.", None, " "]})
    inputs, targets = load_recipe("seq2seq_qa").to_pairs(rows, data, "train")
    assert targets == ["Because."] and len(inputs) == 1
    assert "dropped 2 train rows without an answer" in capsys.readouterr().out
    with pytest.raises(KerastuneError, match="no train row has an answer"):
        load_recipe("seq2seq_qa").to_pairs(rows.select([1, 2]), data, "train")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="CI time: test_checkpoints stops a NaN run on every backend")
def test_a_diverging_run_stops_at_the_first_nan_with_status_3(tmp_path, capsys):
    run_dir = tmp_path / "run"
    line = check(["run", str(ROOT / "recipes" / "demo" / "instruction_tuning.toml"), "--set", "learning_rate=1e12",
                  "epochs=2", "max_train_samples=128", "validation_size=16", "max_eval_samples=16",
                  "max_test_samples=16", f"output_dir={run_dir}"], capsys, "diverged", "learning_rate", status=3)
    assert "epoch 1" in line
    assert not (run_dir / "model").exists() and not (run_dir / "metrics.json").exists()  # no NaN model is saved
