"""The instruction_tuning recipe end to end: bad input, learning an unseen CSV, generate on the run."""

from pathlib import Path

import pytest
from make_news_sample import make_rows, write_csv

from kerastune.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["model=tiny-t5", "validation_size=50", "max_eval_samples=50", "max_test_samples=100",
        "max_source_length=128", "num_beams=1", "max_new_tokens=6", "learning_rate=1e-3",
        "warmup_steps=30", "tiny_vocab_size=800"]


@pytest.fixture(scope="module")
def unseen_csv_dir(tmp_path_factory):
    """News rows from a seed the shipped sample does not use, as train.csv + test.csv."""
    path = tmp_path_factory.mktemp("unseen")
    write_csv(path / "train.csv", make_rows(650, seed=101))
    write_csv(path / "test.csv", make_rows(100, seed=102))
    return path


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(
    "case, expected",
    [
        ("unknown_key", "unknown config key 'learning_rat'"),
        ("missing_dataset", "dataset not found"),
        ("missing_column", "has no column 'text'"),
        ("empty_dataset", "empty"),
        ("unknown_label", "not in the label set"),
        ("missing_model", "model not found"),
        ("wrong_model", "needs a seq2seq (T5) model"),
    ],
)
def test_bad_input_is_one_clear_line(case, expected, tmp_path, capsys):
    good = tmp_path / "good.csv"
    write_csv(good, make_rows(20, seed=1))
    overrides = {
        "unknown_key": ["learning_rat=1e-3"],
        "missing_dataset": [f"dataset={tmp_path / 'nope.csv'}", "model=tiny-t5"],
        "missing_column": [f"dataset={good}", "text_column=text", "label_column=label", "model=tiny-t5"],
        "empty_dataset": [f"dataset={tmp_path / 'empty.csv'}", "model=tiny-t5"],
        "unknown_label": [f"dataset={tmp_path / 'bad_label.csv'}", "model=tiny-t5", "validation_size=2"],
        "missing_model": [f"dataset={good}", f"model={tmp_path / 'no_such_model'}", "validation_size=2"],
        "wrong_model": [f"dataset={good}", "model=tiny-distilbert", "validation_size=2"],
    }[case]
    if case == "missing_column":
        (tmp_path / "good.csv").write_text("body,label\nsome text,1\n")
    (tmp_path / "empty.csv").write_text("text,label\n")
    (tmp_path / "bad_label.csv").write_text("text,label\n" + "".join(f"news item {i},{i % 5 + 3}\n" for i in range(9)))
    code, err = run_cli(["run", "instruction_tuning", "--set", f"output_dir={tmp_path / 'run'}", *overrides], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert "Traceback" not in err


@pytest.mark.slow
def test_learns_an_unseen_csv_and_generate_answers_like_the_run(tmp_path, unseen_csv_dir, capsys):
    """(Resuming a killed run exactly is test_kill_resume's.)"""
    run_dir = tmp_path / "run"
    code = main(["run", "instruction_tuning", "--set", *FAST, f"dataset={unseen_csv_dir}", f"output_dir={run_dir}",
                 "epochs=3"])
    assert code == 0, capsys.readouterr().err[-3000:]
    capsys.readouterr()

    history = (run_dir / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]
    for name in ("config.toml", "metrics.json", "model", "tensorboard", "plots/loss.png", "plots/accuracy.png"):
        assert (run_dir / name).exists(), name
    import json

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"test_accuracy", "validation_accuracy", "recipe", "backend", "seconds"} <= set(metrics)
    assert metrics["test_accuracy"] > 0.6, metrics  # chance is 0.25

    # kerastune generate on the run directory answers like the recipe's own evaluation.
    code = main(["generate", str(run_dir), "Given the following text:AP - The striker scored twice against "
                 "the league leaders.\nPredict its corresponding category (World, Sports, Business, Sci/Tech):"])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] in {"-> World", "-> Sports", "-> Business", "-> Sci/Tech"}
