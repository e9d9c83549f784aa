"""One side of the benchmark in a process of its own: `python -m kerastune.bench.worker SIDE WORKDIR`.

SIDE is `torch` (transformers + PyTorch) or a Keras backend name (the parent
sets KERAS_BACKEND). Reads WORKDIR/plan.json, writes WORKDIR/SIDE.json.
Separate processes keep each framework's threads and memory out of the
others' timings, and let one run hold TensorFlow and JAX results side by side.
"""

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
    # Each finished item is saved at once, so a killed run keeps it (`kerastune bench --reuse` goes on).
    partial = workdir / f"{side}.partial.json"
    results = json.loads(partial.read_text()) if partial.is_file() else {"side": side, "training": {}, "generation": {}}

    def item(key, what, measure):
        group, name = key if isinstance(key, tuple) else (None, key)
        done = results[group] if group else results
        if name in done:
            print(f"[{side}] {what}: kept from the earlier run", flush=True)
            return
        print(f"[{side}] {what}", flush=True)
        started = time.perf_counter()
        done[name] = measure()
        print(f"[{side}] {what}: {time.perf_counter() - started:.0f} s", flush=True)
        partial.write_text(json.dumps(results))

    item("matmul_gflops", "matmul peak", impl.matmul_peak)
    for w in work["training"]:
        item(("training", w.model), f"training {w.model}", lambda w=w: impl.train_throughput(w, checkpoints[w.model]))
    for name, beams in (("greedy", 1), ("beam4", 4)):
        gen = work["generation"]
        item(("generation", name), f"generation {name}",
             lambda beams=beams: impl.generation_throughput(gen, checkpoints[gen.model], beams))
    item("pipeline", "instruction-tuning pipeline", lambda: pipeline(side, impl, work, checkpoints, plan, workdir))
    return results


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
