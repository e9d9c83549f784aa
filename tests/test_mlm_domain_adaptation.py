"""The mlm_domain_adaptation recipe end to end on tiny-distilbert, and fill-mask through `kerastune generate`."""

import json

import pytest
from make_reviews_sample import make_rows, write_csv

from kerastune.cli import main


@pytest.mark.slow
def test_perplexity_falls_and_generate_fills_masks(tmp_path, capsys):
    write_csv(tmp_path / "reviews" / "train.csv", make_rows(500, seed=21))
    run_dir = tmp_path / "run"
    code = main(["run", "mlm_domain_adaptation", "--set", "model=tiny-distilbert", f"dataset={tmp_path / 'reviews'}",
                 f"output_dir={run_dir}", "epochs=3", "masking=whole_word"])
    assert code == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["perplexity_after"] < 0.7 * metrics["perplexity_before"], metrics
    for name in ("history.csv", "plots/loss.png", "model", "checkpoints/epoch-0003", "tensorboard"):
        assert (run_dir / name).exists(), name
    out = capsys.readouterr().out
    assert "Fill-mask before training" in out and "Fill-mask after training" in out

    assert main(["generate", str(run_dir), "This is a great [MASK].", "The [MASK] was [MASK].", "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    masks = [line for line in lines if line.startswith("-> [MASK]")]
    assert len(masks) == 3 and all(line.count("(") == 3 for line in masks)


def test_unknown_masking_is_a_clear_error(tmp_path, capsys):
    assert main(["run", "mlm_domain_adaptation", "--set", "masking=random", f"output_dir={tmp_path}"]) == 2
    assert "masking must be 'token' or 'whole_word'" in capsys.readouterr().err
