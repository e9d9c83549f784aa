"""`kerastune bench`: kerastune against transformers + PyTorch, in one run, on the same weights and inputs.

Steps: write transformers checkpoints (seeded random weights) and the
pipeline's data, then measure each item (a matmul peak, training throughput
of four models, T5's greedy and beam-4 generation, a decoder-only model's
greedy generation, the instruction-tuning
pipeline end to end) on every side, each side in a process of its own
(`worker.py`), their timed repetitions alternated (`harness.py`). The rows,
ratios and targets go to OUT/bench.json and OUT/bench.md (`report.py`).
Needs torch and transformers (`pip install -e ".[test]"`; torch==2.13.0 is
the CPU build). This folder sits beside the `kerastune` package, not in it:
it imports torch and TensorFlow internals that the library never needs.
"""

import csv
import json
import time
from pathlib import Path

from kerastune.errors import KerastuneError

LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def _check_reference_stack():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise KerastuneError(
            "kerastune bench compares against transformers + PyTorch: pip install torch==2.13.0 transformers "
            "(or make install, which installs the test extras)"
        ) from None


def write_news_splits(source_dir: Path, out_dir: Path, sizes) -> Path:
    """train / validation / test CSVs of the project's news sample, the same rows for both pipelines."""
    def read(name):
        with open(source_dir / f"{name}.csv", newline="") as f:
            return list(csv.DictReader(f))

    train, test = read("train"), read("test")
    parts = {"train": train[: sizes.train], "validation": train[sizes.train : sizes.train + sizes.validation],
             "test": test[: sizes.test]}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        if len(rows) < {"train": sizes.train, "validation": sizes.validation, "test": sizes.test}[name]:
            raise KerastuneError(f"the news sample has too few rows for the {name} split")
        with open(out_dir / f"{name}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows({"text": r["text"], "label": r["label"]} for r in rows)
    return out_dir


def prepare(workdir: Path, size: str) -> dict:
    """Checkpoints and data both sides load; returns the plan the workers read."""
    from benchmarks.reference import write_checkpoint
    from benchmarks.workloads import MODELS, workloads
    from kerastune.recipes import RECIPES_DIR, load_config

    work = workloads(size)
    recipe = load_config("instruction_tuning").data
    news_dir = write_news_splits(RECIPES_DIR / "data" / "news_sample", workdir / "news", work["pipeline"])
    with open(news_dir / "train.csv", newline="") as f:
        news = [recipe.prompt.format(text=r["text"]) for r in csv.DictReader(f)] + LABELS
    with open(RECIPES_DIR / "data" / "products_sample.csv", newline="") as f:
        products = [r["product_description"] for r in csv.DictReader(f) if r.get("product_description")]
    texts = {"t5": news, "gpt2": products, "distilbert": news, "qwen2": products}
    checkpoints = {}
    models = {w.model for w in work["training"]} | {work[k].model for k in ("generation", "causal_generation",
                                                                            "pipeline")}
    for model in sorted(models):
        print(f"writing a {model}-shaped transformers checkpoint", flush=True)
        checkpoints[model] = str(write_checkpoint(model, workdir / model, texts[MODELS[model][0]]))
    return {"size": size, "checkpoints": checkpoints, "news_dir": str(news_dir), "prompt": recipe.prompt,
            "labels": recipe.labels}


def run_bench(out_dir="runs/bench", size="full", backends=("tensorflow", "jax"), command="kerastune bench",
              reuse=False, repeats=3, items=None) -> dict:
    """Measure every item on every side, alternated (harness.py), and write OUT/bench.json and OUT/bench.md.

    `size`: tiny | quick | full. `reuse` keeps what an earlier run of the same size and repetitions
    measured in OUT/work and measures only the rest (a long run finished in parts); reused figures are
    marked in both files. `items` (names as `benchmarks.worker.item_names` gives them, e.g.
    `training/qwen2.5-0.5b`) measures those alone, with the matmul peak for MFU.
    """
    from benchmarks.harness import machine, run_items
    from benchmarks.report import build_rows, markdown
    from benchmarks.worker import item_names

    _check_reference_stack()
    if repeats < 1:
        raise KerastuneError(f"repeats must be >= 1, got {repeats}")
    names = item_names(size)
    if items:
        unknown = sorted(set(items) - set(names))
        if unknown:
            raise KerastuneError(f"unknown bench item {', '.join(unknown)}; the {size} run has: {', '.join(names)}")
        names = [name for name in names if name == "matmul" or name in items]
    out_dir = Path(out_dir)
    workdir = out_dir / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run_id = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    plan_file, records_file = workdir / "plan.json", workdir / "records.json"
    plan = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
    same_plan = plan.get("size") == size and plan.get("repeats") == repeats and records_file.is_file()
    if reuse and same_plan:
        records = json.loads(records_file.read_text())
    else:
        records_file.unlink(missing_ok=True)
        plan = prepare(workdir, size)
        plan["repeats"] = repeats
        plan_file.write_text(json.dumps(plan, indent=1))
        records = {}
    sides = ["torch", *backends]
    records = run_items(names, sides, repeats, workdir, records, run_id, keep_workers=size == "tiny")
    rows, setup_rows, peak = build_rows(size, records, run_id)
    if items:  # only what was measured
        rows = [row for row in rows if row["values"] or row["failed"]]
        setup_rows = [row for row in setup_rows if row["values"]]
    failed = {item: {side: record["error"] for side, record in by_side.items() if "error" in record}
              for item, by_side in records.items() if any("error" in r for r in by_side.values())}
    about = machine()
    header = (f"`{command}`, {run_id}, commit {(about['commit'] or 'unknown')[:10]}"
              f"{' (with uncommitted changes)' if about['uncommitted_changes'] else ''}, {about['cpu']}, "
              f"{about['affinity_cpus']} CPU cores, {about['memory_gib'] or 0:.0f} GiB"
              f"{', ' + ', '.join(about['gpus']) if about['gpus'] else ', no GPU'}; "
              f"{repeats} alternated repetitions after warm-up.")
    table = markdown(rows, setup_rows, peak, sides, header)
    result = {"command": command, "date": run_id, "size": size, "repeats": repeats, "machine": about,
              "matmul_peak_gflops": peak, "seconds": time.perf_counter() - started, "rows": rows,
              "setup_rows": setup_rows, "reused": sorted({s for r in rows for s in r["reused"]}),
              "failed": failed}
    (out_dir / "bench.json").write_text(json.dumps(result, indent=1))
    (out_dir / "bench.md").write_text(table)
    print("\n" + table)
    print(f"wrote {out_dir / 'bench.json'} and {out_dir / 'bench.md'} ({result['seconds']:.0f} s)")
    if failed:
        failed_sides = sorted({side for by_side in failed.values() for side in by_side})
        raise KerastuneError(f"the {', '.join(failed_sides)} side of the benchmark failed on some items (bench.json "
                             "lists them); the tables have the rest")
    return result
