"""One item of one side of the benchmark per process: `python -m benchmarks.worker SIDE WORKDIR`.

SIDE is `torch` (transformers + PyTorch) or a Keras backend name (the parent
sets KERAS_BACKEND). Reads WORKDIR/plan.json; each call measures the next
item not yet in WORKDIR/SIDE.partial.json, saves it there and exits with
status 3 while items remain; the last call writes WORKDIR/SIDE.json.
With `--all` one process measures every item (the tests' tiny run).
A fresh process per item keeps each framework's threads and memory, and
what earlier items left behind, out of the others' timings: measured here,
greedy generation after three training runs in the same TensorFlow process
took 4.1 s where a fresh process took 3.1 s.
"""

import json
import sys
import time
from pathlib import Path

from benchmarks.workloads import workloads


def quiet():
    """The reference stack's progress bars and notices would drown the bench's own lines."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


MORE_ITEMS = 3  # exit status: an item was measured and others remain


def measure(side: str, workdir: Path, one_item=True) -> tuple[dict, bool]:
    """Measure the next missing item (every item with `one_item=False`, as the tests' tiny run does);
    returns (results so far, whether every item is measured)."""
    quiet()
    plan = json.loads((workdir / "plan.json").read_text())
    work = workloads(plan["size"])
    checkpoints = {name: Path(p) for name, p in plan["checkpoints"].items()}
    if side == "torch":
        from benchmarks import reference as impl
    else:
        from benchmarks import keras_side as impl
    # Each finished item is saved at once, so a killed run keeps it (`kerastune bench --reuse` goes on).
    partial = workdir / f"{side}.partial.json"
    results = json.loads(partial.read_text()) if partial.is_file() else {
        "side": side, "training": {}, "generation": {}, "seconds": 0.0}
    measured = []

    def item(key, what, measure):
        group, name = key if isinstance(key, tuple) else (None, key)
        done = results[group] if group else results
        if name in done or (one_item and measured):
            return
        print(f"[{side}] {what}", flush=True)
        started = time.perf_counter()
        done[name] = measure()
        seconds = time.perf_counter() - started
        results["seconds"] += seconds
        measured.append(name)
        print(f"[{side}] {what}: {seconds:.0f} s", flush=True)
        partial.write_text(json.dumps(results))

    item("matmul_gflops", "matmul peak", impl.matmul_peak)
    for w in work["training"]:
        item(("training", w.model), f"training {w.model}", lambda w=w: impl.train_throughput(w, checkpoints[w.model]))
    for name, beams in (("greedy", 1), ("beam4", 4)):
        gen = work["generation"]
        item(("generation", name), f"generation {name}",
             lambda beams=beams: impl.generation_throughput(gen, checkpoints[gen.model], beams))
    item("pipeline", "instruction-tuning pipeline", lambda: pipeline(side, impl, work, checkpoints, plan, workdir))
    return results, "pipeline" in results


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


def main(argv=None) -> int:
    args = argv or sys.argv[1:]
    side, workdir = args[:2]
    results, finished = measure(side, Path(workdir), one_item="--all" not in args)
    if not finished:
        return MORE_ITEMS
    (Path(workdir) / f"{side}.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
