"""One side of the benchmark in a process of its own: `python -m kerastune.bench.worker SIDE WORKDIR`.

SIDE is `torch` (transformers + PyTorch) or a Keras backend name (the parent
sets KERAS_BACKEND). Reads WORKDIR/plan.json, writes WORKDIR/SIDE.json.
Separate processes keep each framework's threads and memory out of the
others' timings, and let one run hold TensorFlow and JAX results side by side.
"""

import contextlib
import json
import sys
import time
from pathlib import Path

from kerastune.bench.workloads import workloads


def quiet():
    """The reference stack's progress bars and notices would drown the bench's own lines."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def measure(side: str, workdir: Path) -> dict:
    quiet()
    plan = json.loads((workdir / "plan.json").read_text())
    work = workloads(plan["size"])
    checkpoints = {name: Path(p) for name, p in plan["checkpoints"].items()}
    if side == "torch":
        from kerastune.bench import reference as impl
    else:
        from kerastune.bench import keras_side as impl
    results = {"side": side, "matmul_gflops": impl.matmul_peak(), "training": {}, "generation": {}}
    for workload in work["training"]:
        with step(side, f"training {workload.model}"):
            results["training"][workload.model] = impl.train_throughput(workload, checkpoints[workload.model])
    for name, beams in (("greedy", 1), ("beam4", 4)):
        with step(side, f"generation {name}"):
            results["generation"][name] = impl.generation_throughput(
                work["generation"], checkpoints[work["generation"].model], beams)
    with step(side, "instruction-tuning pipeline"):
        results["pipeline"] = pipeline(side, impl, work, checkpoints, plan, workdir)
    return results


@contextlib.contextmanager
def step(side, what):
    print(f"[{side}] {what}", flush=True)
    started = time.perf_counter()
    yield
    print(f"[{side}] {what}: {time.perf_counter() - started:.0f} s", flush=True)


def pipeline(side, impl, work, checkpoints, plan, workdir) -> dict:
    pipeline_dir = workdir / f"pipeline-{side}"
    if side == "torch":
        import csv

        splits = {}
        for name in ("train", "validation", "test"):
            with open(Path(plan["news_dir"]) / f"{name}.csv", newline="") as f:
                splits[name] = list(csv.DictReader(f))
        return impl.notebook_pipeline(
            work["pipeline"], checkpoints[work["pipeline"].model], splits, plan["prompt"], plan["labels"], pipeline_dir)
    return impl.recipe_pipeline(work["pipeline"], checkpoints[work["pipeline"].model], plan["news_dir"], pipeline_dir)


def main(argv=None):
    side, workdir = (argv or sys.argv[1:])[:2]
    started = time.perf_counter()
    results = measure(side, Path(workdir))
    results["seconds"] = time.perf_counter() - started
    (Path(workdir) / f"{side}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
