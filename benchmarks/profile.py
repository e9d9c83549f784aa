"""Where kerastune spends a bench item's time, for the closing notes' missed targets.

    python -m benchmarks.profile CHECKPOINT_DIR MODEL [SIZE]          # a training step
    python -m benchmarks.profile CHECKPOINT_DIR greedy|beam4 [SIZE]   # a generation batch (T5)

CHECKPOINT_DIR is one `kerastune bench` wrote (OUT/work/MODEL) for SIZE
(tiny, quick or full; default quick). A training step runs the bench's
batch through `train_on_batch`; a step is traced with TensorFlow's profiler
and the ops' self time is grouped: matrix products, the optimizer update,
dropout's random numbers, softmax and losses, and the rest (element-wise ops,
layout work). Under KERAS_BACKEND=jax the step is traced with XLA's
per-kernel events and grouped as the search below is. A generation batch (the longest prompts) is timed as its two
parts, the encoder (a TensorFlow graph) and the compiled search; the search
is traced with XLA's per-kernel events and its kernel time grouped into
matrix products, fused element-wise loops and the rest.
"""

import json
import os
import re
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
    """Two traced training steps on the bench's first batch: TensorFlow's op groups, or, on JAX, XLA's kernels."""
    if keras.config.backend() == "jax":  # XLA reads its flags when it first compiles: per-kernel trace events
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()
    from benchmarks.keras_side import training_dataset
    from benchmarks.workloads import MODELS, workloads
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
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        seconds = best_seconds(lambda: model.train_on_batch(*batch), repeats=2)
        # every thread's CPU time over the wall time: how many cores the step keeps busy
        cores_busy = (time.process_time() - cpu_started) / (time.perf_counter() - wall_started)
        start_trace(logdir)
        traced = best_seconds(lambda: model.train_on_batch(*batch), repeats=1)
        stop_trace()
    shape = {k: list(v.shape) for k, v in batch[0].items()}
    found = xla_kernel_groups(logdir, traced) if keras.config.backend() == "jax" else op_groups(logdir)
    return {"model": model_name, "backend": keras.config.backend(), "batch_shape": shape, "step_seconds": seconds,
            "cores_busy": cores_busy, "traced_step_seconds": traced, "jit_compile": bool(model.jit_compile), **found}


def start_trace(logdir):
    if keras.config.backend() == "jax":
        import jax

        jax.profiler.start_trace(logdir)
    else:
        tf.profiler.experimental.start(logdir)


def stop_trace():
    if keras.config.backend() == "jax":
        import jax

        jax.profiler.stop_trace()
    else:
        tf.profiler.experimental.stop()


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


def profile_generation(checkpoint: str, num_beams=1, size="quick") -> dict:
    """Encoder and search seconds for the bench's longest generation batch, and the search's XLA kernels."""
    # XLA reads its flags when it first compiles: per-kernel trace events for the search.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()
    from benchmarks.workloads import workloads
    from kerastune.data.tokens import bucket_width
    from kerastune.generation.seq2seq import Seq2SeqGenerator
    from kerastune.models import load_model

    workload = workloads(size)["generation"]
    model = load_model(checkpoint)
    generator = Seq2SeqGenerator(model, model.preprocessor.tokenizer, max_new_tokens=workload.max_new_tokens,
                                 num_beams=num_beams)
    prompts = sorted(workload.prompt_ids(), key=len)[-workload.batch_size:]  # the longest batch
    width = bucket_width(len(prompts[-1]), generator.max_source_length)
    ids, mask = generator.pad(prompts, length=width)

    def encode():
        source = generator._encoded_batch(ids, mask, width)
        keras.ops.convert_to_numpy(source[1])
        return source

    def search():
        return keras.ops.convert_to_numpy(generator._compiled_search(*source))

    source = encode()
    search()  # compile
    encode_seconds, search_seconds = best_seconds(encode), best_seconds(search)
    logdir = tempfile.mkdtemp(prefix="kerastune-profile-")
    tf.profiler.experimental.start(logdir)
    traced_seconds = best_seconds(search, repeats=1)
    tf.profiler.experimental.stop()
    return {"batch": len(prompts), "width": width, "num_beams": num_beams, "encode_seconds": encode_seconds,
            "search_seconds": search_seconds, "search_ms_per_step": 1e3 * search_seconds / workload.max_new_tokens,
            "traced_search_seconds": traced_seconds, **xla_kernel_groups(logdir, traced_seconds)}


def best_seconds(function, repeats=3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def xla_kernel_groups(logdir, wall_seconds) -> dict:
    """XLA CPU kernels' summed time, grouped; `busy`: that sum over the wall time of the threads running them.

    A kernel is an event inside a `ThunkExecutor::Execute` span (XLA runs small
    programs' kernels on the calling thread, large ones on its worker threads).
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    seconds, by_name, threads = defaultdict(float), defaultdict(float), set()
    for path in Path(logdir).rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
        for plane in space.planes:
            names = {key: meta.name for key, meta in plane.event_metadata.items()}
            for line in plane.lines:
                events = [(names.get(e.metadata_id, ""), e.offset_ps, e.duration_ps) for e in line.events]
                spans = [(start, start + length) for name, start, length in events if name == "ThunkExecutor::Execute"]
                covered = -1  # end of the last kernel counted: kernels inside it are its parts
                for name, start, length in sorted(events, key=lambda e: e[1]):
                    if name.startswith(("ThunkExecutor", "SlinkyThreadPool", "while", "end:")) or start < covered:
                        continue  # containers and waits, not kernels
                    if any(lo <= start and start + length <= hi for lo, hi in spans):
                        threads.add((plane.id, line.id))
                        seconds[kernel_group(name)] += length / 1e12
                        by_name[re.sub(r"[.\d]+$", "", name)] += length / 1e12  # `loop_fusion.12` -> kind
                        covered = start + length
    total = sum(seconds.values())
    return {"kernel_seconds": total, "busy": total / (wall_seconds * max(len(threads), 1)),
            "groups": {k: v / (total or 1.0) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])},
            "top_kernel_kinds": {k: v / (total or 1.0) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])[:12]}}


def kernel_group(name: str) -> str:
    """A kernel's group by its HLO name (`dot.12`, `loop_fusion.3`, `scatter.7`, ...)."""
    if re.match(r"(MatMul|dot|convolution)\b", name) or "matmul" in name.lower():
        return "matmul (XLA dot)"
    if "fusion" in name:
        return "fused element-wise"
    kind = re.sub(r"[.\d]+$", "", name.split(":")[0])
    return kind if kind in ("scatter", "gather", "copy", "transpose", "reduce", "sort", "rng-bit-generator",
                            "dynamic-update-slice", "select-and-scatter", "concatenate", "pad") else "other"


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    checkpoint, item = sys.argv[1:3]
    size = sys.argv[3] if len(sys.argv) > 3 else "quick"  # the workloads' size the checkpoint was written for
    if item in ("greedy", "beam4"):
        print(json.dumps(profile_generation(checkpoint, 1 if item == "greedy" else 4, size), indent=1))
    else:
        print(json.dumps(profile_training(checkpoint, item, size), indent=1))
