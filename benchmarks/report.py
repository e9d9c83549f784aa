"""Turn the sides' records into bench.json rows and the markdown tables, with the targets.

A row's value for a side is the median over its repetitions, with the
fastest and slowest beside it. Its ratio against PyTorch is the median of
the repetitions' own ratios: repetition r of both sides ran back to back, so
a slow stretch of the machine cancels in each pair. A side reused from an
earlier run (`--reuse`) was not alternated with the others: its ratio is
the ratio of medians, and the table marks it.
"""

import statistics

from benchmarks.flops import real_tokens, training_flops
from benchmarks.workloads import MODELS, workloads

# kerastune / transformers + PyTorch on this CPU, TensorFlow backend; MFU as a share of the matmul peak.
TARGETS = {"training": 2.5, "generation": 3.0, "pipeline": {"tiny": 5.0, "quick": 5.0, "full": 10.0}, "mfu": 0.70}
SIDE_NAMES = {"torch": "transformers + PyTorch", "tensorflow": "kerastune TF", "jax": "kerastune JAX"}


def _same_outputs(ours, theirs) -> float:
    """Share of prompts whose generated ids agree up to and including `</s>` (pads after it ignored)."""
    def clean(row):
        row = list(row)
        row = row[: row.index(1) + 1] if 1 in row else row
        while row and row[-1] == 0:
            row.pop()
        return row

    return sum(clean(a) == clean(b) for a, b in zip(ours, theirs)) / max(len(theirs), 1)


def _measured(records: dict) -> dict:
    return {side: r for side, r in records.items() if "error" not in r and r.get("repeats")}


def matmul_peak(records: dict) -> float:
    rates = [r["gflops"] for record in _measured(records.get("matmul", {})).values() for r in record["repeats"]]
    return max(rates) if rates else float("nan")


def _row(name, unit, kind, records, rate, run_id, target, **extra) -> dict:
    """`rate(repetition) -> value` per side; higher is better, except for `kind == "pipeline"` (seconds)."""
    measured = _measured(records)
    per_side = {side: [rate(r) for r in record["repeats"]] for side, record in measured.items()}
    values = {side: statistics.median(v) for side, v in per_side.items()}
    reused = sorted(side for side, record in measured.items() if record.get("run") != run_id)
    ratios = {}
    if "torch" in values and kind != "mfu":  # MFU's ratio is the training row's
        for side in per_side:
            if side == "torch":
                continue
            ours, theirs = per_side[side], per_side["torch"]
            if kind == "pipeline":
                ours, theirs = theirs, ours  # seconds: lower is better
            if side in reused or "torch" in reused or len(ours) != len(theirs):
                ratios[side] = statistics.median(ours) / statistics.median(theirs)
            else:
                ratios[side] = statistics.median(a / b for a, b in zip(ours, theirs))
    return {"name": name, "unit": unit, "kind": kind, "values": values,
            "spread": {side: [min(v), max(v)] for side, v in per_side.items()},
            "repetitions": {side: len(v) for side, v in per_side.items()}, "ratios": ratios, "target": target,
            "reused": reused, "failed": {side: r["error"] for side, r in records.items() if "error" in r}, **extra}


def _setup_row(name, unit, records, value) -> dict:
    measured = _measured(records)
    return {"name": name, "unit": unit, "values": {side: value(record) for side, record in measured.items()}}


def _compile_seconds(record) -> float:
    """The warm-up pass minus a steady pass over the same batches: tracing, compiling, first-touch costs."""
    return record["setup"]["warmup_seconds"] - statistics.median(r["seconds"] for r in record["repeats"])


def build_rows(size: str, records: dict, run_id: str) -> tuple[list[dict], list[dict], float]:
    """(steady-state rows, start-up and memory rows, matmul peak GFLOP/s) from {item: {side: record}}."""
    work = workloads(size)
    peak = matmul_peak(records)
    rows, setup_rows = [], []
    for workload in work["training"]:
        family, config = MODELS[workload.model]
        examples = workload.examples()
        tokens, count = real_tokens(examples), len(examples["inputs"])
        flops = training_flops(family, config, examples)
        item = records.get(f"training/{workload.model}", {})
        shape = f"batch {workload.batch_size}, {count} examples, {tokens} real tokens"
        rows.append(_row(f"train {workload.model} ({shape})", "tokens/s", "training", item,
                         lambda r: tokens / r["seconds"], run_id, TARGETS["training"],
                         details={side: {**record["setup"], **record["finish"]}
                                  for side, record in _measured(item).items()}))
        rows.append(_row(f"MFU train {workload.model}", "% of peak", "mfu", item,
                         lambda r: flops / r["seconds"] / 1e9 / peak, run_id, TARGETS["mfu"],
                         model_gflop_per_pass=flops / 1e9))
        setup_rows += [
            _setup_row(f"train {workload.model}: load + first step", "s", item,
                       lambda r: r["setup"]["load_seconds"] + r["setup"]["first_step_seconds"]),
            _setup_row(f"train {workload.model}: compile (warm-up pass - steady pass)", "s", item, _compile_seconds),
            _setup_row(f"train {workload.model}: peak RSS", "GiB", item, lambda r: r["finish"]["peak_rss_gib"]),
        ]
    gen = work["generation"]
    for name in ("greedy", "beam4"):
        item = records.get(f"generation/{name}", {})
        measured = _measured(item)
        reference = measured.get("torch", {}).get("finish", {}).get("outputs")
        same = {side: _same_outputs(record["finish"]["outputs"], reference)
                for side, record in measured.items() if side != "torch" and reference is not None}
        details = {side: {k: v for k, v in {**record["setup"], **record["finish"]}.items() if k != "outputs"}
                   for side, record in measured.items()}
        rows.append(_row(f"generate {gen.model} {name} ({gen.prompts} prompts, batch {gen.batch_size}, "
                         f"{gen.max_new_tokens} new tokens)", "prompts/s", "generation", item,
                         lambda r: gen.prompts / r["seconds"], run_id, TARGETS["generation"],
                         same_outputs=same, details=details))
        setup_rows += [
            _setup_row(f"generate {name}: load", "s", item, lambda r: r["setup"]["load_seconds"]),
            _setup_row(f"generate {name}: compile (warm-up pass - steady pass)", "s", item, _compile_seconds),
            _setup_row(f"generate {name}: peak RSS", "GiB", item, lambda r: r["finish"]["peak_rss_gib"]),
        ]
    causal = work["causal_generation"]
    item = records.get("generation/causal-greedy", {})
    measured = _measured(item)
    reference = measured.get("torch", {}).get("finish", {}).get("outputs")
    new_tokens = sum(map(len, reference)) if reference else causal.prompts * causal.max_new_tokens
    same = {side: sum(a == b for a, b in zip(record["finish"]["outputs"], reference)) / len(reference)
            for side, record in measured.items() if side != "torch" and reference}
    rows.append(_row(f"generate {causal.model} greedy ({causal.prompts} prompts of different lengths, batch "
                     f"{causal.batch_size}, {causal.max_new_tokens} new tokens)", "new tokens/s", "generation", item,
                     lambda r: new_tokens / r["seconds"], run_id, TARGETS["generation"], same_outputs=same,
                     details={side: {k: v for k, v in {**record["setup"], **record["finish"]}.items()
                                     if k != "outputs"} for side, record in measured.items()}))
    setup_rows += [
        _setup_row(f"generate {causal.model} greedy: load", "s", item, lambda r: r["setup"]["load_seconds"]),
        _setup_row(f"generate {causal.model} greedy: peak RSS", "GiB", item, lambda r: r["finish"]["peak_rss_gib"]),
    ]
    pipe = work["pipeline"]
    item = records.get("pipeline", {})
    rows.append(_row(f"instruction-tuning pipeline end to end ({pipe.train} train / {pipe.validation} validation / "
                     f"{pipe.test} test, {pipe.epochs} epochs)", "seconds", "pipeline", item,
                     lambda r: r["seconds"], run_id, TARGETS["pipeline"][size],
                     details={side: record["repeats"] for side, record in _measured(item).items()}))
    setup_rows.append(_setup_row("pipeline: peak RSS", "GiB", item, lambda r: r["finish"]["peak_rss_gib"]))
    return rows, setup_rows, peak


def _number(value) -> str:
    return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"


def markdown(rows, setup_rows, peak, sides: list[str], header: str) -> str:
    keras_sides = [s for s in sides if s != "torch"]
    columns = ["benchmark", "unit", SIDE_NAMES["torch"]]
    for side in keras_sides:
        columns += [SIDE_NAMES.get(side, side), f"{side} / torch"]
    columns += ["target (TF)", "met (TF)"]
    lines = [header, "", f"Matmul peak of this machine: {peak:.0f} GFLOP/s (fp32). Each cell: the median of the "
             "repetitions (fastest-slowest); ratios: the median of the repetitions' own ratios.", "",
             "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    reused_any = False
    for r in rows:
        percent = r["kind"] == "mfu"

        def shown(value):
            return f"{100 * value:.0f}%" if percent else _number(value)

        def cell(side):
            if side in r["failed"]:
                return "failed"
            if side not in r["values"]:
                return ""
            low, high = r["spread"][side]
            text = shown(r["values"][side]) + ("" if low == high else f" ({shown(low)}-{shown(high)})")
            return text + (" (reused)" if side in r["reused"] else "")

        reused_any = reused_any or bool(r["reused"])
        cells = [r["name"], r["unit"], cell("torch")]
        for side in keras_sides:
            ratio = r["ratios"].get(side)
            cells += [cell(side), f"{ratio:.2f}x" if ratio is not None else ""]
        judged = r["values"].get("tensorflow") if percent else r["ratios"].get("tensorflow")
        target = f">= {100 * r['target']:.0f}%" if percent else f">= {r['target']}x"
        cells += [target, "" if judged is None else ("yes" if judged >= r["target"] else "no")]
        lines.append("| " + " | ".join(cells) + " |")
    if reused_any:
        lines += ["", "(reused): measured by an earlier run (`--reuse`), not alternated with this run's sides; "
                  "its ratios are ratios of medians and are no basis for a claim."]
    lines += ["", "Start-up and memory (one figure per side; compile counts and shapes are in bench.json):", "",
              "| item | unit | " + " | ".join(SIDE_NAMES.get(s, s) for s in sides) + " |",
              "|" + " --- |" * (len(sides) + 2)]
    for r in setup_rows:
        cells = [r["name"], r["unit"]] + [_number(r["values"][s]) if s in r["values"] else "" for s in sides]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
