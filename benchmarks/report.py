"""Turn the sides' raw timings into bench.json rows and a markdown table with the targets."""

from benchmarks.flops import real_tokens, training_flops
from benchmarks.workloads import MODELS, workloads

# Ratios kerastune / transformers + PyTorch on this CPU, TensorFlow backend, and MFU.
TARGETS = {"training": 1.3, "generation": 2.0, "pipeline": 5.0, "mfu": 0.60}


def _same_outputs(ours, theirs) -> float:
    """Share of prompts whose generated ids agree up to and including `</s>` (pads after it ignored)."""
    def clean(row):
        row = list(row)
        row = row[: row.index(1) + 1] if 1 in row else row
        while row and row[-1] == 0:
            row.pop()
        return row

    return sum(clean(a) == clean(b) for a, b in zip(ours, theirs)) / max(len(theirs), 1)


def build_rows(size: str, sides: dict) -> tuple[list[dict], float]:
    """(rows, machine matmul peak in GFLOP/s); `sides` maps side name -> the worker's results."""
    work = workloads(size)
    peak = max(side["matmul_gflops"] for side in sides.values())
    keras_sides = [name for name in sides if name != "torch"]
    rows = []

    def row(name, unit, kind, values, **extra):
        ratios = {}
        for side in keras_sides:
            if kind == "pipeline":  # seconds: lower is better
                ratios[side] = values["torch"] / values[side]
            else:
                ratios[side] = values[side] / values["torch"]
        rows.append({"name": name, "unit": unit, "kind": kind, "values": values, "ratios": ratios,
                     "target": TARGETS[kind], **extra})

    for workload in work["training"]:
        family, config = MODELS[workload.model]
        examples = workload.examples()
        tokens, count = real_tokens(examples), len(examples["inputs"])
        flops = training_flops(family, config, examples)
        timings = {side: sides[side]["training"][workload.model] for side in sides}
        shape = f"batch {workload.batch_size}, {count} examples, {tokens} real tokens"
        row(f"train {workload.model} ({shape})", "tokens/s", "training",
            {side: tokens / t["seconds"] for side, t in timings.items()},
            examples_per_second={side: count / t["seconds"] for side, t in timings.items()},
            details=timings)
        rows.append({"name": f"MFU train {workload.model}", "unit": "% of peak", "kind": "mfu",
                     "values": {side: flops / t["seconds"] / 1e9 / peak for side, t in timings.items()},
                     "ratios": {}, "target": TARGETS["mfu"], "model_gflop_per_pass": flops / 1e9})
    gen = work["generation"]
    for name in ("greedy", "beam4"):
        timings = {side: sides[side]["generation"][name] for side in sides}
        reference = timings["torch"].pop("outputs")
        same = {side: _same_outputs(timings[side].pop("outputs"), reference) for side in keras_sides}
        row(f"generate {gen.model} {name} ({gen.prompts} prompts, batch {gen.batch_size}, "
            f"{gen.max_new_tokens} new tokens)", "prompts/s", "generation",
            {side: gen.prompts / t["seconds"] for side, t in timings.items()},
            same_outputs=same, details=timings)
    pipe = work["pipeline"]
    timings = {side: sides[side]["pipeline"] for side in sides}
    row(f"instruction-tuning pipeline end to end ({pipe.train} train / {pipe.validation} validation / "
        f"{pipe.test} test, {pipe.epochs} epochs)", "seconds", "pipeline",
        {side: t["seconds"] for side, t in timings.items()}, details=timings)
    return rows, peak


SIDE_NAMES = {"torch": "transformers + PyTorch", "tensorflow": "kerastune TF", "jax": "kerastune JAX"}


def markdown(rows, peak, sides: list[str], command: str) -> str:
    keras_sides = [s for s in sides if s != "torch"]
    header = ["benchmark", "unit", SIDE_NAMES["torch"]]
    for side in keras_sides:
        header += [SIDE_NAMES.get(side, side), f"{side} / torch"]
    header += ["target (TF)", "met (TF)"]
    lines = [f"`{command}`; matmul peak of this machine: {peak:.0f} GFLOP/s (fp32).", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        percent = r["kind"] == "mfu"
        shown = (lambda v: f"{100 * v:.0f}%") if percent else (lambda v: f"{v:.1f}" if v < 100 else f"{v:.0f}")
        cells = [r["name"], r["unit"], shown(r["values"]["torch"])]
        for side in keras_sides:
            ratio = r["ratios"].get(side)
            cells += [shown(r["values"][side]), f"{ratio:.2f}x" if ratio is not None else ""]
        judged = r["values"].get("tensorflow") if percent else r["ratios"].get("tensorflow")
        target = f">= {100 * r['target']:.0f}%" if percent else f">= {r['target']}x"
        cells += [target, "" if judged is None else ("yes" if judged >= r["target"] else "no")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
