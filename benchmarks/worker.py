"""One side of the benchmark in a process of its own: `python -m benchmarks.worker SIDE WORKDIR`.

SIDE is `torch` (transformers + PyTorch) or a Keras backend name (the parent
sets KERAS_BACKEND). The parent (harness.py) drives it with one JSON command
per line on stdin and reads one JSON answer per line:

    {"op": "setup", "item": "training/gpt2-small"}  load and warm up -> load, first-step, warm-up seconds
    {"op": "repeat"}                                one timed pass   -> {"seconds": ...} (or GFLOP/s)
    {"op": "finish"}                                item extras (generated ids), peak memory
    {"op": "exit"}

so the parent can alternate timed passes of live, warmed-up sides
(A B A B ...). Everything the frameworks print goes to stderr; stdout
carries only the answers. A failure answers {"error": "..."}.
"""

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

from benchmarks.workloads import workloads


def quiet():
    """The reference stack's progress bars and notices would drown the bench's own lines."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def item_names(size: str) -> list[str]:
    """Every item of a run, in the order the parent measures them."""
    work = workloads(size)
    return (["matmul"] + [f"training/{w.model}" for w in work["training"]]
            + ["generation/greedy", "generation/beam4", "generation/causal-greedy", "pipeline"])


class Matmul:
    """The machine's fp32 matmul peak as this framework reaches it (best of 10 per repetition)."""

    def __init__(self, impl):
        self.impl = impl

    def setup(self):
        self.impl.matmul_peak(repeats=1)
        return {}

    def repeat(self):
        return {"gflops": self.impl.matmul_peak()}

    def finish(self):
        return {}


class Pipeline:
    """The instruction-tuning notebook (torch) or recipe (Keras) end to end; a repetition is a whole run,
    compilation included, so the parent gives each repetition a fresh process."""

    def __init__(self, side, impl, work, checkpoints, plan, workdir):
        self.side, self.impl, self.work, self.checkpoints, self.plan = side, impl, work, checkpoints, plan
        self.directory = workdir / f"pipeline-{side}"

    def setup(self):
        return {}

    def repeat(self):
        workload, path = self.work["pipeline"], self.checkpoints[self.work["pipeline"].model]
        if self.side != "torch":
            return self.impl.recipe_pipeline(workload, path, self.plan["news_dir"], self.directory)
        import csv

        splits = {}
        for name in ("train", "validation", "test"):
            with open(Path(self.plan["news_dir"]) / f"{name}.csv", newline="") as f:
                splits[name] = list(csv.DictReader(f))
        return self.impl.notebook_pipeline(workload, path, splits, self.plan["prompt"], self.plan["labels"],
                                           self.directory)

    def finish(self):
        return {}


def build_item(side, name, workdir: Path):
    plan = json.loads((workdir / "plan.json").read_text())
    work = workloads(plan["size"])
    checkpoints = {model: Path(p) for model, p in plan["checkpoints"].items()}
    if side == "torch":
        from benchmarks import reference as impl
    else:
        from benchmarks import keras_side as impl
    kind, _, detail = name.partition("/")
    if kind == "matmul":
        return Matmul(impl)
    if kind == "training":
        workload = next(w for w in work["training"] if w.model == detail)
        return impl.Training(workload, checkpoints[detail])
    if name == "generation/causal-greedy":
        gen = work["causal_generation"]
        return impl.CausalGeneration(gen, checkpoints[gen.model])
    if kind == "generation":
        gen = work["generation"]
        return impl.Generation(gen, checkpoints[gen.model], 1 if detail == "greedy" else int(detail[4:]))
    if kind == "pipeline":
        return Pipeline(side, impl, work, checkpoints, plan, workdir)
    raise ValueError(f"unknown bench item {name!r}")


def peak_memory(side) -> dict:
    """Peak resident memory of this process so far, and the accelerator's peak where there is one."""
    memory = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    try:
        if side == "torch":
            import torch

            if torch.cuda.is_available():
                memory["peak_device_gib"] = torch.cuda.max_memory_allocated() / 2**30
        elif side == "jax":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            if "peak_bytes_in_use" in stats:
                memory["peak_device_gib"] = stats["peak_bytes_in_use"] / 2**30
        else:
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                memory["peak_device_gib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30
    except Exception as error:  # a memory figure is never worth a failed run
        memory["device_memory_error"] = str(error)
    return memory


def serve(side: str, workdir: Path, commands, answer) -> None:
    item = None
    for line in commands:
        command = json.loads(line)
        op = command["op"]
        if op == "exit":
            return
        try:
            started = time.perf_counter()
            if op == "setup":
                print(f"[{side}] {command['item']}: loading and warming up", file=sys.stderr, flush=True)
                item = build_item(side, command["item"], workdir)
                result = item.setup()
            elif op == "repeat":
                result = item.repeat()
            else:
                result = {**item.finish(), **peak_memory(side)}
                item = None
            result["wall_seconds"] = time.perf_counter() - started
        except Exception as error:
            traceback.print_exc()
            result = {"error": f"{type(error).__name__}: {error}"}
        answer(result)


def main(argv=None) -> int:
    side, workdir = (argv or sys.argv[1:])[:2]
    # Answers go to the real stdout; everything else the frameworks print goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    quiet()

    def answer(result):
        answers.write(json.dumps(result) + "\n")
        answers.flush()

    answer({"ready": True, "pid": os.getpid()})
    serve(side, Path(workdir), sys.stdin, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
