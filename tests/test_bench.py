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
from benchmarks.flops import distilbert_forward, qwen2_forward, t5_forward
from benchmarks.workloads import DISTILBERT_TINY, QWEN2_TINY, T5_TINY, workloads

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


def test_qwen2_flops_count_every_matmul_weight_once_per_predicting_token():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    model = Qwen2ForCausalLM(Qwen2Config(**QWEN2_TINY))
    weights = linear_weights(model.modules())  # q, k, v, o, gate, up, down per layer, and the (tied) head
    length, d = 9, QWEN2_TINY["hidden_size"]
    attention = QWEN2_TINY["num_hidden_layers"] * 4 * (length - 1) ** 2 * d
    assert qwen2_forward(QWEN2_TINY, length) == 2 * (length - 1) * weights + attention


BACKENDS = ("tensorflow",)  # CI time: the JAX side runs the same worker code under KERAS_BACKEND=jax


@pytest.mark.slow
@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="the bench starts its own workers; once is enough")
def test_bench_alternates_the_sides_and_writes_the_tables(tmp_path):
    result = run_bench(tmp_path, size="tiny", backends=BACKENDS, command="test", repeats=2)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert saved["machine"]["commit"] and saved["machine"]["versions"]["torch"] and saved["machine"]["cpu_count"]
    assert saved["reused"] == [] and saved["failed"] == {}
    rows = {r["kind"] + ":" + r["name"].split(" (")[0]: r for r in result["rows"]}
    work = workloads("tiny")
    for backend in BACKENDS:
        for w in work["training"]:
            row = rows[f"training:train {w.model}"]
            assert row["repetitions"] == {"torch": 2, backend: 2}
            assert row["values"]["torch"] > 0 and row["ratios"][backend] > 0
            low, high = row["spread"][backend]
            assert low <= row["values"][backend] <= high
            assert row["details"][backend]["shapes"] >= 1
            assert 0 < rows[f"mfu:MFU train {w.model}"]["values"][backend] < 1
        for name in ("greedy", "beam4"):
            row = rows[f"generation:generate t5-tiny {name}"]
            assert row["same_outputs"][backend] == 1.0  # the same weights generate the same ids as transformers
            assert row["details"][backend]["recompilations"] == 0  # the timed passes reuse every compiled shape
            assert row["details"][backend]["compilations"] >= 1
        row = rows["generation:generate qwen2-tiny greedy"]  # a decoder-only model, prompts of different lengths
        assert row["same_outputs"][backend] == 1.0 and row["values"][backend] > 0
    pipeline = rows["pipeline:instruction-tuning pipeline end to end"]
    assert {"validation_accuracy", "test_accuracy"} <= set(pipeline["details"]["torch"][0])
    setup = {r["name"]: r for r in result["setup_rows"]}
    assert setup["train t5-tiny: peak RSS"]["values"][BACKENDS[0]] > 0.1  # GiB
    assert setup["train t5-tiny: load + first step"]["values"][BACKENDS[0]] > 0
    table = (tmp_path / "bench.md").read_text()
    assert table.count("\n| ") == len(result["rows"]) + len(result["setup_rows"]) + 4  # 2 headers, 2 separators
    assert "matmul peak" in table.lower() and "(reused)" not in table
    check_generation_profile(tmp_path / "work" / "t5-tiny")  # the profiler reads TensorFlow's traces


def synthetic_records(torch_seconds, tf_seconds, tf_run):
    """Training records of t5-tiny as the workers write them (one repetition per figure)."""
    def record(seconds, run):
        return {"setup": {"load_seconds": 1.0, "first_step_seconds": 2.0, "warmup_seconds": 9.0},
                "repeats": [{"seconds": s} for s in seconds], "finish": {"peak_rss_gib": 1.0}, "run": run}

    return {"matmul": {"torch": {"setup": {}, "repeats": [{"gflops": 100.0}], "finish": {}, "run": "now"}},
            "training/t5-tiny": {"torch": record(torch_seconds, "now"), "tensorflow": record(tf_seconds, tf_run)}}


def test_ratios_pair_each_repetition_with_its_neighbour_and_reused_sides_are_marked():
    from benchmarks.report import build_rows, markdown

    # A slow stretch in repetition 3 hit TensorFlow only: the pairs say 2x, the medians would say 1.33x.
    records = synthetic_records([10, 30, 20], [5, 15, 30], tf_run="now")
    rows, setup_rows, peak = build_rows("tiny", records, "now")
    assert rows[0]["ratios"]["tensorflow"] == pytest.approx(2.0)
    assert rows[0]["reused"] == [] and peak == 100.0
    compile_row = next(r for r in setup_rows if "compile" in r["name"])
    assert compile_row["values"]["torch"] == pytest.approx(9.0 - 20)  # warm-up pass minus the median pass

    reused = synthetic_records([10, 30, 20], [5, 15, 30], tf_run="an earlier run")
    rows, setup_rows, peak = build_rows("tiny", reused, "now")
    assert rows[0]["reused"] == ["tensorflow"]
    assert rows[0]["ratios"]["tensorflow"] == pytest.approx(20 / 15)  # not alternated: ratio of medians
    table = markdown(rows, setup_rows, peak, ["torch", "tensorflow"], "test")
    assert "(reused)" in table and "no basis for a claim" in table


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
