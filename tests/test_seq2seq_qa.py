"""The seq2seq_qa recipe end to end on tiny-t5: ROUGE rises, checkpoints rotate, the best epoch is kept."""

import json

import pytest
from make_qa_sample import make_rows, write_csv

from kerastune.cli import main


@pytest.mark.slow
def test_qa_recipe_learns_and_writes_its_run_directory(tmp_path, capsys):
    write_csv(tmp_path / "qa.csv", make_rows(400, seed=11))
    run_dir = tmp_path / "run"
    code = main(["run", "seq2seq_qa", "--set", "model=tiny-t5", f"dataset={tmp_path / 'qa.csv'}",
                 "question_column=question", "question_detail_column=", "answer_column=answer",
                 f"output_dir={run_dir}", "epochs=5", "max_eval_samples=60", "keep_checkpoints=3"])
    assert code == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"rouge1", "rouge2", "rougeL", "rougeLsum", "eval_loss", "best_epoch", "best_rougeL"} <= set(metrics)
    assert metrics["rougeL"] > metrics["rougeL_before"] + 0.3, metrics
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["epoch-0003", "epoch-0004", "epoch-0005"]
    best = json.loads((run_dir / "best.json").read_text())
    assert best["monitor"] == "val_rougeL" and 1 <= best["epoch"] <= 5
    header = (run_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert {"val_loss", "val_rouge1", "val_rougeLsum"} <= set(header)
    assert (run_dir / "plots" / "rougeL.png").is_file()
    out = capsys.readouterr().out
    assert "Please answer this question: What do you think about the benefit of Artificial Intelligence?" in out


def test_yahoo_answers_topics_rows_become_prefixed_questions():
    """The default dataset's columns: the question is its title plus its details when there are any."""
    from kerastune.recipes import load_config, load_recipe

    recipe = load_recipe("seq2seq_qa")
    rows = [{"question_title": "Why is the sky blue?", "question_content": " I wonder. ", "best_answer": "Light."},
            {"question_title": "Best pizza?", "question_content": "", "best_answer": "Napoli."},
            {"question_title": "Unanswered?", "question_content": "", "best_answer": None}]  # dropped, counted
    inputs, targets = recipe.to_pairs(rows, load_config("seq2seq_qa").data, "train")
    assert inputs == ["Please answer this question: Why is the sky blue? I wonder.",
                      "Please answer this question: Best pizza?"]
    assert targets == ["Light.", "Napoli."]
