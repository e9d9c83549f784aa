"""The causal_lm recipe end to end on tiny-gpt2 and tiny-llama (learned and rotary positions, no start token
and a start token), bad input, and decoding through `kerastune generate`."""

import csv
import json

import pytest
from make_products_sample import make_rows, write_csv

from kerastune.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-llama"])
def test_eval_loss_falls_best_weights_return_and_generate_traces(model, tmp_path, capsys):
    rows = make_rows(400, seed=31)
    write_csv(tmp_path / "products.csv", rows)
    run_dir = tmp_path / "run"
    code = main(["run", "causal_lm", "--set", f"model={model}", f"dataset={tmp_path / 'products.csv'}",
                 "dataset_config=''", "dataset_split=''", f"output_dir={run_dir}", "epochs=3", "max_length=64",
                 "max_new_tokens=12", "trace_steps=5", "trace_top_n=3", "decoders=greedy,eps_greedy"])
    assert code == 0
    out = capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_loss_after"] < 0.7 * metrics["eval_loss_before"], metrics
    assert metrics["perplexity"] == pytest.approx(2.718281828 ** metrics["eval_loss"], rel=1e-6)
    assert metrics["dropped_empty_rows"] == sum(1 for r in rows if not r["product_description"])

    # The best epoch's weights are the ones evaluated at the end.
    best = json.loads((run_dir / "best.json").read_text())
    assert f"Restored the best weights: epoch {best['epoch']}" in out
    assert metrics["eval_loss_after"] == pytest.approx(best["value"], rel=0.05)
    for name in ("history.csv", "plots/loss.png", "model", "best.npz", "tensorboard", "trace_after.csv"):
        assert (run_dir / name).exists(), name
    generations = json.loads((run_dir / "generations.json").read_text())
    assert list(generations) == ["greedy", "eps_greedy"]
    assert all(g["before"].startswith("Había una vez") for g in generations.values())
    with open(run_dir / "trace_before.csv") as f:
        trace = list(csv.DictReader(f))
    assert len(trace) == 5 and list(trace[0])[-1] == "Choice #3"

    assert main(["generate", str(run_dir), "Esta mochila", "Había una vez", "--sampler", "eps_greedy", "--eps",
                 "0.3", "--seed", "1", "--max-new-tokens", "4", "--trace", "2", "--trace-csv",
                 str(tmp_path / "trace.csv")]) == 0
    out = capsys.readouterr().out
    assert "-> Había una vez" in out and "Choice #2" in out
    for i in (0, 1):
        with open(tmp_path / f"trace-{i}.csv") as f:
            assert 1 <= len(list(csv.DictReader(f))) <= 4
