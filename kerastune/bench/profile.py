"""Where a TensorFlow training step spends its time: `python -m kerastune.bench.profile CHECKPOINT_DIR MODEL`.

Runs the bench's training batches for MODEL (a name from workloads.MODELS,
checkpoint written by `kerastune bench` under OUT/work/MODEL) through
`model.fit`, traces two steps with TensorFlow's profiler, and groups the
ops' self time: matrix products, the optimizer update, dropout's random
numbers, softmax and losses, and the rest (element-wise ops, layout work).
This is what the bench's closing notes cite for a missed target.
"""

import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import keras
import tensorflow as tf

GROUPS = (
    ("matmul", ("MatMul", "BatchMatMul", "Einsum", "_FusedMatMul", "Conv")),
    ("optimizer", ("ResourceApply", "AssignVariable", "AssignAdd", "AssignSub", "ReadVariable")),
    ("dropout random", ("RandomUniform", "StatelessRandom", "RandomStandard", "Philox", "ThreefryBits")),
    ("softmax and loss", ("Softmax", "LogSoftmax", "SparseSoftmaxCrossEntropy", "SoftmaxCrossEntropy")),
    ("gather / scatter", ("Gather", "Scatter", "UnsortedSegment", "TensorScatter")),
)


def group_of(op_type: str) -> str:
    """The group of an op type; oneDNN kernels carry prefixes (`_MklNativeFusedMatMul`, `_FusedMatMul`)."""
    for name, kinds in GROUPS:
        if any(kind in op_type for kind in kinds):
            return name
    return "element-wise and other"


def profile_training(checkpoint: str, model_name: str, size="quick") -> dict:
    from kerastune.bench.keras_side import training_dataset
    from kerastune.bench.workloads import MODELS, workloads
    from kerastune.models import load_model
    from kerastune.training.fit import compile_for_training, without_preprocessor
    from kerastune.training.optimizer import create_optimizer

    workload = next(w for w in workloads(size)["training"] if w.model == model_name)
    model = load_model(checkpoint)
    batch = next(iter(training_dataset(MODELS[model_name][0], workload.examples(), workload.batch_size, model)))
    logdir = tempfile.mkdtemp(prefix="kerastune-profile-")
    with without_preprocessor(model):
        compile_for_training(model, create_optimizer(1e-5, 1000, 0, 0.0, model))
        model.train_on_batch(*batch)  # trace and warm up
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        for _ in range(2):
            model.train_on_batch(*batch)
        seconds = (time.perf_counter() - started) / 2
        tf.profiler.experimental.stop()
    return {"model": model_name, "step_seconds": seconds, "jit_compile": bool(model.jit_compile),
            **op_groups(logdir)}


def op_groups(logdir) -> dict:
    """Shares of the ops' summed self time per group and for the top op types (framework op stats)."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    xspace = sorted(Path(logdir).rglob("*.xplane.pb"))
    data, _ = _pywrap_profiler_plugin.xspace_to_tools_data([str(p) for p in xspace], "framework_op_stats", {})
    table = json.loads(data)[0]  # Google Charts DataTable: the first is the per-op table
    columns = [c["id"] for c in table["cols"]]
    op_type, self_time = columns.index("type"), columns.index("total_self_time")
    host = columns.index("host_or_device") if "host_or_device" in columns else None
    by_type = defaultdict(float)
    for row in table["rows"]:
        cells = [c["v"] if c else None for c in row["c"]]
        if host is not None and cells[host] not in ("Host", "Device"):
            continue
        by_type[str(cells[op_type])] += float(cells[self_time])
    whole = sum(by_type.values()) or 1.0
    groups = defaultdict(float)
    for kind, value in by_type.items():
        groups[group_of(kind)] += value / whole
    top = sorted(by_type.items(), key=lambda kv: -kv[1])[:10]
    return {"groups": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
            "top_op_types": {kind: value / whole for kind, value in top}}


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    print(json.dumps(profile_training(*sys.argv[1:3]), indent=1))
