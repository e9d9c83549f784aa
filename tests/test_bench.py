"""`kerastune bench`: FLOP counts from the shapes, and the whole benchmark on tiny models."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import pytest
import torch
from transformers import DistilBertConfig, DistilBertForMaskedLM, T5Config, T5ForConditionalGeneration

from benchmarks import run_bench
from benchmarks.flops import distilbert_forward, t5_forward
from benchmarks.workloads import DISTILBERT_TINY, T5_TINY, workloads

ROOT = Path(__file__).resolve().parents[1]


def linear_weights(modules) -> int:
    return sum(m.weight.numel() for m in modules if isinstance(m, torch.nn.Linear))


def test_t5_flops_count_every_matmul_weight_once_per_token():
    model = T5ForConditionalGeneration(T5Config(**T5_TINY))
    encoder, decoder = linear_weights(model.encoder.modules()), linear_weights(model.decoder.modules())
    cross_kv = sum(block.layer[1].EncDecAttention.k.weight.numel() + block.layer[1].EncDecAttention.v.weight.numel()
                   for block in model.decoder.block)
    head = model.lm_head.weight.numel()
    inner = T5_TINY["num_heads"] * T5_TINY["d_kv"]
    for source, target in ((1, 1), (7, 3)):
        attention = T5_TINY["num_layers"] * 4 * inner * (source * source + target * target + target * source)
        matmuls = 2 * (source * encoder + target * (decoder - cross_kv) + source * cross_kv + target * head)
        assert t5_forward(T5_TINY, source, target) == matmuls + attention


def test_distilbert_flops_count_every_matmul_weight_once_per_token():
    model = DistilBertForMaskedLM(DistilBertConfig(**DISTILBERT_TINY))
    weights = linear_weights(model.modules())  # the layers, the MLM transform and the vocabulary projection
    length = 9
    attention = DISTILBERT_TINY["n_layers"] * 4 * length * length * DISTILBERT_TINY["dim"]
    assert distilbert_forward(DISTILBERT_TINY, length) == 2 * length * weights + attention


BACKENDS = ("tensorflow",)  # CI time: the JAX side runs the same worker code under KERAS_BACKEND=jax


@pytest.mark.slow
@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="the bench starts its own workers; once is enough")
def test_bench_runs_both_sides_and_writes_the_table(tmp_path):
    result = run_bench(tmp_path, size="tiny", backends=BACKENDS, command="test")
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    rows = {r["kind"] + ":" + r["name"].split(" (")[0]: r for r in result["rows"]}
    work = workloads("tiny")
    for backend in BACKENDS:
        for w in work["training"]:
            row = rows[f"training:train {w.model}"]
            assert row["values"]["torch"] > 0 and row["ratios"][backend] > 0
            assert row["details"][backend]["shapes"] >= 1
            assert 0 < rows[f"mfu:MFU train {w.model}"]["values"][backend] < 1
        for name in ("greedy", "beam4"):
            row = rows[f"generation:generate t5-tiny {name}"]
            assert row["same_outputs"][backend] == 1.0  # the same weights generate the same ids as transformers
            assert row["details"][backend]["recompilations"] == 0  # the second pass reuses every compiled shape
            assert row["details"][backend]["compilations"] >= 1
    pipeline = rows["pipeline:instruction-tuning pipeline end to end"]
    assert {"validation_accuracy", "test_accuracy"} <= set(pipeline["details"]["torch"])
    table = (tmp_path / "bench.md").read_text()
    assert table.count("\n| ") == len(result["rows"]) + 2  # header, separator, one line per row
    assert "matmul peak" in table
    check_generation_profile(tmp_path / "work" / "t5-tiny")  # the profiler reads TensorFlow's traces


def check_generation_profile(checkpoint):
    """`python -m benchmarks.profile CHECKPOINT greedy`: the encoder and the search timed apart, and
    XLA's kernels traced inside the search loop."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.profile", str(checkpoint), "greedy", "tiny"],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert report["encode_seconds"] > 0 and report["search_seconds"] > 0
    assert report["groups"]["matmul (XLA dot)"] > 0
    assert 0 < report["busy"] <= 1


def test_bench_without_the_reference_stack_says_what_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    from kerastune.errors import KerastuneError

    with pytest.raises(KerastuneError, match="pip install torch==2.13.0"):
        run_bench(tmp_path, size="tiny", backends=("tensorflow",))
