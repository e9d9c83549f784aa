"""`kerastune bench`: kerastune against transformers + PyTorch, in one run, on the same weights and inputs.

Steps: write transformers checkpoints (seeded random weights) and the
pipeline's data, then run each side in a process of its own, one after the
other (`worker.py`): PyTorch first, then each Keras backend. Each side
measures training throughput of three models, greedy and beam-4 generation,
the instruction-tuning pipeline end to end, and a matmul peak. The rows,
ratios and targets go to OUT/bench.json and OUT/bench.md (`report.py`).
Needs torch and transformers (`pip install -e ".[test]"`; torch==2.13.0 is
the CPU build). This folder sits beside the `kerastune` package, not in it:
it imports torch and TensorFlow internals that the library never needs.
"""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kerastune.errors import KerastuneError

ROOT = Path(__file__).resolve().parents[1]  # the repository: `python -m benchmarks.worker` runs from here

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
    texts = {"t5": news, "gpt2": products, "distilbert": news}
    checkpoints = {}
    for model in sorted({w.model for w in work["training"]} | {work["generation"].model, work["pipeline"].model}):
        print(f"writing a {model}-shaped transformers checkpoint", flush=True)
        checkpoints[model] = str(write_checkpoint(model, workdir / model, texts[MODELS[model][0]]))
    plan = {"size": size, "checkpoints": checkpoints, "news_dir": str(news_dir), "prompt": recipe.prompt,
            "labels": recipe.labels}
    (workdir / "plan.json").write_text(json.dumps(plan, indent=1))
    return plan


def run_side(side: str, workdir: Path, per_item=True) -> dict:
    from benchmarks.worker import MORE_ITEMS

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if side != "torch":
        env["KERAS_BACKEND"] = side
    print(f"\n=== bench: {side} ===", flush=True)
    started = time.perf_counter()
    while True:  # one process per item (worker.py says why)
        command = [sys.executable, "-m", "benchmarks.worker", side, str(workdir)] + ([] if per_item else ["--all"])
        done = subprocess.run(command, env=env)
        if done.returncode != MORE_ITEMS:
            break
    if done.returncode:
        raise KerastuneError(f"the {side} side of the benchmark failed (exit {done.returncode}; see above)")
    print(f"=== {side} done in {time.perf_counter() - started:.0f} s ===", flush=True)
    return json.loads((workdir / f"{side}.json").read_text())


def run_bench(out_dir="runs/bench", size="full", backends=("tensorflow", "jax"), command="kerastune bench",
              reuse=False) -> dict:
    """Run every side, write OUT/bench.json and OUT/bench.md, return the JSON. `size`: tiny | quick | full.

    `reuse` keeps the sides an earlier run of the same size measured in OUT/work and runs only the
    missing ones (a long full run can be finished in parts; bench.json lists which sides were reused).
    """
    from benchmarks.report import build_rows, markdown

    _check_reference_stack()
    out_dir = Path(out_dir)
    workdir = out_dir / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    plan_file = workdir / "plan.json"
    same_plan = plan_file.is_file() and json.loads(plan_file.read_text()).get("size") == size
    if not (reuse and same_plan):
        for old in workdir.glob("*.json"):
            old.unlink()
        prepare(workdir, size)
    sides, reused, failed = {}, [], {}
    for side in ("torch", *backends):
        if (workdir / f"{side}.json").is_file():
            sides[side] = json.loads((workdir / f"{side}.json").read_text())
            reused.append(side)
            continue
        try:
            sides[side] = run_side(side, workdir, per_item=size != "tiny")
        except KerastuneError as error:
            if side == "torch":
                raise
            # One backend failing (killed for memory, say) still leaves a table of the others.
            print(f"error: {error}; the table leaves {side} out (its finished items: {side}.partial.json)")
            failed[side] = str(error)
    rows, peak = build_rows(size, sides)
    table = markdown(rows, peak, list(sides), command)
    result = {"command": command, "size": size, "matmul_peak_gflops": peak, "seconds": time.perf_counter() - started,
              "cpu_count": os.cpu_count(), "rows": rows,
              "side_seconds": {side: values["seconds"] for side, values in sides.items()}, "reused": reused,
              "failed": failed}
    (out_dir / "bench.json").write_text(json.dumps(result, indent=1))
    (out_dir / "bench.md").write_text(table)
    print("\n" + table)
    print(f"wrote {out_dir / 'bench.json'} and {out_dir / 'bench.md'} ({result['seconds']:.0f} s)")
    if failed:
        raise KerastuneError(f"the {', '.join(failed)} side of the benchmark failed; the table has the others")
    return result
