"""`kerastune run | generate | export | demo | bench`.

Bad input (a `KerastuneError`) prints one line, `error: ...`, and exits with
status 2; `--debug` shows the traceback instead.
"""

import argparse
import importlib.util
import sys
import time
import warnings
from pathlib import Path

from kerastune.config import SAMPLERS
from kerastune.errors import KerastuneError

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
RECIPES = ("instruction_tuning", "seq2seq_qa", "lora_ppo_detox", "mlm_domain_adaptation", "causal_lm")
DEMO_DIR = RECIPES_DIR / "demo"
TPU_DEFAULTS = {"precision": "mixed_bfloat16", "static_shapes": True}  # under distribution=tpu, unless set


def load_recipe(name: str):
    """Import `recipes/NAME.py` (a recipe is a script, not a package module)."""
    path = RECIPES_DIR / f"{name}.py"
    if name not in RECIPES or not path.is_file():
        raise KerastuneError(f"unknown recipe '{name}'; available: {', '.join(RECIPES)}")
    spec = importlib.util.spec_from_file_location(f"kerastune_recipes.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolve_config(recipe_or_toml: str, config_file=None, overrides=()):
    """(recipe module, config) from a recipe name or a TOML file naming its recipe."""
    from kerastune.config import build_config, read_toml

    values = {}
    if recipe_or_toml.endswith(".toml"):
        values = read_toml(recipe_or_toml)
        name = values.get("recipe")
        if not name:
            raise KerastuneError(f"{recipe_or_toml} does not say which recipe it configures (recipe = \"...\")")
    else:
        name = recipe_or_toml
    recipe = load_recipe(name)
    if config_file:
        values.update(read_toml(config_file))
    values.setdefault("recipe", name)
    if values["recipe"] != name:
        raise KerastuneError(f"config is for recipe '{values['recipe']}', not '{name}'")
    config = build_config(recipe.Config, values, overrides)
    given = set(values) | {o.split("=", 1)[0].strip() for o in overrides}
    # The seed's settings fine-tune a pretrained model; a tiny random one learns from scratch and
    # needs its own. A TPU wants bfloat16 and fixed shapes. Values the user gave still win.
    defaults = dict(getattr(recipe, "TINY_MODEL_DEFAULTS", {})) if config.model.startswith("tiny-") else {}
    if config.distribution == "tpu":
        defaults.update(TPU_DEFAULTS)
    applied = {k: v for k, v in defaults.items() if k not in given}
    if applied:
        what = "tiny model: from-scratch defaults" if config.model.startswith("tiny-") else "distribution=tpu: defaults"
        print(f"{what} " + " ".join(f"{k}={v}" for k, v in applied.items()))
        config = build_config(recipe.Config, {**applied, **values}, overrides)
    return recipe, config


def run_recipe(recipe, config) -> dict:
    """`recipe.main(config)` on the devices `config.distribution` names (runtime.distribution_scope)."""
    from kerastune.runtime import describe_distribution, distribution_scope

    with distribution_scope(config.distribution, config.model_parallel_size, config.multi_host):
        print(describe_distribution(config.distribution, config.batch_size))
        return recipe.main(config)


def cmd_run(args):
    from kerastune.config import to_toml
    from kerastune.hub.preflight import describe_sources, preflight

    recipe, config = resolve_config(args.recipe, args.config, args.set or [])
    if args.dry_run:  # the resolved settings, and what the hub has for each model and dataset; no download
        print(to_toml(config), end="")
        for line in describe_sources(config):
            print(line)
        return
    preflight(config)
    run_recipe(recipe, config)


def cmd_demo(args):
    """Every recipe's tiny offline configuration, one after the other."""
    started = time.time()
    results = {}
    for name in args.recipes or RECIPES:
        print(f"\n=== demo: {name} (tiny model, offline) ===")
        overrides = [f"output_dir={Path(args.output_dir) / name}"] + (args.set or [])
        recipe, config = resolve_config(str(DEMO_DIR / f"{name}.toml"), None, overrides)
        results[name] = run_recipe(recipe, config)
    print(f"\n=== demo finished in {time.time() - started:.0f} s (tiny models: they show learning, not quality) ===")
    for name, metrics in results.items():
        shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
        print(f"{name}: {shown}")


def cmd_generate(args):
    from kerastune.generation.cli import generate_lines

    for block in generate_lines(args.model, args.text, args):
        print(block)


def cmd_export(args):
    """SavedModel for TF Serving (default) or a Hugging Face directory."""
    import os
    import subprocess

    import keras

    if args.format == "savedmodel" and keras.config.backend() != "tensorflow":
        # The model/ preset is backend-neutral; the serving graph is built on TensorFlow.
        print("SavedModel export runs on TensorFlow; re-running under KERAS_BACKEND=tensorflow")
        command = [sys.executable, "-m", "kerastune", "export", args.model, "--out", str(args.out)]
        for flag, value in (("--num-beams", args.num_beams), ("--max-new-tokens", args.max_new_tokens)):
            command += [flag, str(value)] if value else []
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        if subprocess.run(command, env=env).returncode:
            raise KerastuneError("export under the TensorFlow backend failed (see above)")
        return
    from kerastune.generation.cli import load_for_generation
    from kerastune.models import model_kind

    model, settings = load_for_generation(args.model, args.num_beams, args.max_new_tokens)
    if args.format == "hf":
        from kerastune.export.hf_format import export_hf

        export_hf(model, args.out)
    elif model_kind(model) == "causal_lm":
        from kerastune.export.saved_model import export_causal_lm

        export_causal_lm(model, args.out, max_new_tokens=settings["max_new_tokens"], num_beams=settings["num_beams"])
    else:
        from kerastune.export.saved_model import export_seq2seq

        export_seq2seq(model, args.out, **settings)
    print(f"wrote {args.format} export to {args.out}")


def cmd_bench(args):
    """kerastune against transformers + PyTorch (kerastune/bench)."""
    from kerastune.bench import run_bench

    command = "kerastune bench" + (" --quick" if args.quick else "")
    if tuple(args.backends) != ("tensorflow", "jax"):
        command += " --backends " + " ".join(args.backends)
    command += " --reuse" if args.reuse else ""
    run_bench(args.output_dir, size="quick" if args.quick else "full", backends=args.backends, command=command,
              reuse=args.reuse)


def build_parser():
    parser = argparse.ArgumentParser(prog="kerastune", description="Fine-tuning recipes for Keras 3.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a recipe")
    run.add_argument("recipe", help=f"one of {', '.join(RECIPES)}, or a TOML file with recipe = ...")
    run.add_argument("--config", help="TOML file with settings")
    run.add_argument("--set", nargs="+", metavar="KEY=VALUE", action="extend", help="override settings")
    run.add_argument("--dry-run", action="store_true",
                     help="print the resolved config and what would be downloaded (hub metadata only), then stop")
    run.set_defaults(func=cmd_run)

    gen = sub.add_parser("generate", help="generate text with a model or a run directory's model")
    gen.add_argument("model", help="run directory, model directory, tiny-* name or hub id")
    gen.add_argument("text", nargs="+")
    gen.add_argument("--sampler", choices=SAMPLERS, default=None, help="causal LMs: decoding strategy (greedy)")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=None,
                     help="causal LMs: sample among the k likeliest (0 = off); masked LMs: candidates per [MASK] (5)")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: smallest set with this mass")
    gen.add_argument("--eps", type=float, default=0.5, help="eps_greedy: probability of the most likely token")
    gen.add_argument("--num-beams", type=int, default=None)
    gen.add_argument("--max-new-tokens", type=int, default=None)
    gen.add_argument("--seed", type=int, default=None, help="sampling seed (same seed, same text)")
    gen.add_argument("--trace", type=int, default=0, metavar="N",
                     help="causal LMs: print each step's text so far and top N candidates")
    gen.add_argument("--trace-csv", default=None, help="also write the step table to this CSV file")
    gen.add_argument("--batch-size", type=int, default=8)
    gen.add_argument("--revision", default="", help="hub ids: a branch, tag, commit or refs/pr/N (default main)")
    gen.set_defaults(func=cmd_generate)

    export = sub.add_parser("export", help="export a run's model: SavedModel for TF Serving, or HF format")
    export.add_argument("model", help="run directory (or model directory / id)")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--format", choices=("savedmodel", "hf"), default="savedmodel")
    export.add_argument("--num-beams", type=int, default=None, help="beam search in the SavedModel (default: run's)")
    export.add_argument("--max-new-tokens", type=int, default=None)
    export.set_defaults(func=cmd_export)

    demo = sub.add_parser("demo", help="run every recipe offline on tiny models")
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--recipes", nargs="+", choices=RECIPES)
    demo.add_argument("--set", nargs="+", metavar="KEY=VALUE", action="extend")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="speed against transformers + PyTorch: bench.json and a markdown table")
    bench.add_argument("--quick", action="store_true", help="fewer and shorter batches (a few minutes)")
    bench.add_argument("--backends", nargs="+", choices=("tensorflow", "jax"), default=["tensorflow", "jax"],
                       help="Keras backends to measure (each against the same PyTorch run)")
    bench.add_argument("--output-dir", default="runs/bench")
    bench.add_argument("--reuse", action="store_true",
                       help="keep the sides a run of the same size already measured in OUTPUT_DIR/work")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.debug:
        warnings.filterwarnings("ignore")
    try:
        args.func(args)
    except KerastuneError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
