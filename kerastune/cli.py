"""`kerastune run | generate | export | demo | bench`.

Every failure is one line on stderr and a status: bad input (a
`KerastuneError`, an argument error, a file that cannot be read or
written) `error: ...` and 2; a diverged run 3; anything else `internal
error: ...` and 1. `--debug` shows the traceback instead.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from kerastune.errors import KerastuneError
from kerastune.generation import SAMPLERS
from kerastune.recipes import builtin_recipes

# Imports of TensorFlow, Keras and the recipes happen inside the commands, so `--help` and argument
# errors answer at once.
DEMO_DIR = Path(__file__).resolve().parents[1] / "recipes" / "demo"
RECIPES = builtin_recipes()


def cmd_run(args):
    from kerastune.config import to_toml
    from kerastune.recipes import resolve, run

    resolved = resolve(args.recipe, args.config or (), args.set or ())
    if args.print_config:
        print(to_toml(resolved.config), end="")
        return
    print(resolved.describe())
    if args.dry_run:  # the resolved settings, and what the hub has for each model and dataset; no download
        from kerastune.preflight import describe_sources

        print(to_toml(resolved.config), end="")
        for line in describe_sources(resolved.config):
            print(line)
        return
    from kerastune.preflight import preflight
    from kerastune.training.run_dir import RESUME_CHANGED

    if args.resume_changed:
        os.environ[RESUME_CHANGED] = "1"
    preflight(resolved.config)
    args.resumable = resolved.config.train.resume
    run(resolved.recipe, resolved.config)


def cmd_demo(args):
    """Every recipe's tiny offline configuration, one after the other."""
    from kerastune.recipes import resolve, run

    started = time.time()
    results = {}
    for name in args.recipes or RECIPES:
        print(f"\n=== demo: {name} (tiny model, offline) ===")
        overrides = [f"output_dir={Path(args.output_dir) / name}"] + (args.set or [])
        resolved = resolve(str(DEMO_DIR / f"{name}.toml"), (), overrides)
        print(resolved.describe())
        args.resumable = resolved.config.train.resume
        results[name] = run(resolved.recipe, resolved.config)
    print(f"\n=== demo finished in {time.time() - started:.0f} s (tiny models: they show learning, not quality) ===")
    for name, metrics in results.items():
        shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
        print(f"{name}: {shown}")


def at_least_one(args, *flags):
    """Counts given on the command line (beams, new tokens, batch size) are >= 1."""
    for flag in flags:
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise KerastuneError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")


def cmd_generate(args):
    from kerastune.generation.cli import generate_lines

    at_least_one(args, "num_beams", "max_new_tokens", "batch_size")
    for block in generate_lines(args.model, args.text, args):
        print(block)


def cmd_export(args):
    """SavedModel for TF Serving (default) or a Hugging Face directory."""
    import os
    import subprocess

    import keras

    at_least_one(args, "num_beams", "max_new_tokens")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise KerastuneError(f"--out {out} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KerastuneError(f"--out {out} cannot be written: {e.strerror or e}") from None

    if args.format == "savedmodel" and keras.config.backend() != "tensorflow":
        # The model/ preset is backend-neutral; the serving graph is built on TensorFlow.
        print("SavedModel export runs on TensorFlow; re-running under KERAS_BACKEND=tensorflow")
        command = [sys.executable, "-m", "kerastune", "export", args.model, "--out", str(args.out)]
        for flag, value in (("--num-beams", args.num_beams), ("--max-new-tokens", args.max_new_tokens)):
            command += [flag, str(value)] if value else []
        command += ["--chat"] if args.chat else []
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        if subprocess.run(command, env=env).returncode:
            raise KerastuneError("export under the TensorFlow backend failed (see above)")
        return
    from kerastune.models import model_kind
    from kerastune.training.run_dir import load_run_model

    model, settings = load_run_model(args.model, args.num_beams, args.max_new_tokens)
    if args.format == "hf":
        from kerastune.export.hf_format import export_hf

        export_hf(model, args.out)
    elif model_kind(model) == "causal_lm":
        from kerastune.export.saved_model import export_causal_lm
        from kerastune.models.chat_templates import SAVED_FILE, load_chat_template
        from kerastune.training.run_dir import model_location

        location = model_location(args.model)
        chat = (load_chat_template(location, model) if args.chat or (Path(location) / SAVED_FILE).is_file()
                else None)
        export_causal_lm(model, args.out, max_new_tokens=settings["max_new_tokens"], num_beams=settings["num_beams"],
                         chat=chat)
    else:
        from kerastune.export.saved_model import export_seq2seq

        export_seq2seq(model, args.out, **settings)
    print(f"wrote {args.format} export to {args.out}")


def cmd_bench(args):
    """kerastune against transformers + PyTorch: the repository's benchmarks/ folder (not part of the package)."""
    at_least_one(args, "repeats")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.memory:  # the memory levers' table (benchmarks/memory.py), one Keras backend
        from benchmarks.memory import run_memory_table

        run_memory_table(args.output_dir, quick=args.quick, backend=args.backends[0])
        return
    from benchmarks import run_bench

    command = "kerastune bench" + (" --quick" if args.quick else "")
    if tuple(args.backends) != ("tensorflow", "jax"):
        command += " --backends " + " ".join(args.backends)
    command += f" --repeats {args.repeats}" if args.repeats != 3 else ""
    command += " --reuse" if args.reuse else ""
    command += " --items " + " ".join(args.items) if args.items else ""
    run_bench(args.output_dir, size="quick" if args.quick else "full", backends=args.backends, command=command,
              reuse=args.reuse, repeats=args.repeats, items=args.items)


def add_run_arguments(parser):
    parser.add_argument("--config", action="append", metavar="FILE",
                        help="TOML file with settings, layered on the recipe's own (repeatable)")
    parser.add_argument("--set", nargs="+", metavar="KEY=VALUE", action="extend",
                        help="override settings: train.epochs=3 (or the flat name, epochs=3)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as TOML, then stop")
    parser.add_argument("--resume-changed", action="store_true",
                        help="resume output_dir's run although its settings differ from this config's")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved config and what would be downloaded (hub metadata only), then stop")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as one `error:` line (status 2) like every other bad input."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = OneLineParser(prog="kerastune", description="Fine-tuning recipes for Keras 3.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser("run", help="run a recipe")
    add_run_arguments(run)
    run.add_argument("recipe", help=f"a recipe name ({', '.join(RECIPES)}), a recipe script (.py), "
                                    "or a TOML file with recipe = ...")
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
    gen.add_argument("--chat", action="store_true",
                     help="causal LMs: each text is a user's message, answered in the model's chat template")
    gen.add_argument("--revision", default="", help="hub ids: a branch, tag, commit or refs/pr/N (default main)")
    gen.set_defaults(func=cmd_generate)

    export = sub.add_parser("export", help="export a run's model: SavedModel for TF Serving, or HF format")
    export.add_argument("model", help="run directory (or model directory / id)")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--format", choices=("savedmodel", "hf"), default="savedmodel")
    export.add_argument("--num-beams", type=int, default=None, help="beam search in the SavedModel (default: run's)")
    export.add_argument("--max-new-tokens", type=int, default=None)
    export.add_argument("--chat", action="store_true",
                        help="causal LMs: serve user messages in the model's chat template (a chat_sft run's model "
                             "does by itself)")
    export.set_defaults(func=cmd_export)

    demo = sub.add_parser("demo", help="run every recipe offline on tiny models")
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--recipes", nargs="+", choices=RECIPES)
    demo.add_argument("--set", nargs="+", metavar="KEY=VALUE", action="extend")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="speed against transformers + PyTorch: bench.json and a markdown table")
    bench.add_argument("--quick", action="store_true",
                       help="fewer and shorter batches (43 minutes for three sides on 2 CPU cores)")
    bench.add_argument("--backends", nargs="+", choices=("tensorflow", "jax"), default=["tensorflow", "jax"],
                       help="Keras backends to measure (each against the same PyTorch run)")
    bench.add_argument("--output-dir", default="runs/bench")
    bench.add_argument("--repeats", type=int, default=3,
                       help="timed repetitions per item and side, alternated between the sides (default 3)")
    bench.add_argument("--reuse", action="store_true",
                       help="keep what a run of the same size already measured in OUTPUT_DIR/work (marked as "
                       "reused: not alternated with the rest)")
    bench.add_argument("--items", nargs="+", metavar="ITEM",
                       help="measure these items only (e.g. training/qwen2.5-0.5b generation/causal-greedy; an "
                       "unknown name lists the rest), with the matmul peak")
    bench.add_argument("--memory", action="store_true",
                       help="instead: peak memory, tokens/s and eval loss of a ~0.5B Qwen under each memory lever, "
                       "LoRA and int8 / int4 + LoRA (on the first of --backends)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or an argument error already printed on one line
        return e.code
    return execute(args)


def execute(args) -> int:
    """Run a parsed command; every failure is one line and a status (see the module docstring)."""
    if args.debug:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # TensorFlow's C++ log lines
    try:
        if getattr(args, "recipe", None):  # settings checked before Keras is imported: answered at once
            from kerastune.recipes import precheck

            precheck(args.recipe, args.config or (), args.set or ())
        if not args.debug:
            import kerastune.quiet  # noqa: F401
        args.func(args)
    except KeyboardInterrupt:
        resumable = getattr(args, "resumable", False)  # set by run and demo once the config says so
        print("interrupted" + ("; rerun the same command to resume from the last checkpoint" if resumable else ""),
              file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        status, line = one_line(e)
        print(line, file=sys.stderr)
        return status
    return 0


def one_line(error: Exception) -> tuple[int, str]:
    """(exit status, message) for an exception that reached the command line."""
    if isinstance(error, KerastuneError):
        return getattr(error, "exit_status", 2), f"error: {error}"
    if isinstance(error, OSError):  # a file the user named, or one a run writes (permissions, a full disk)
        where = f"{error.filename}: " if error.filename else ""
        return 2, f"error: {where}{error.strerror or error}"
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return 1, f"internal error: {type(error).__name__}: {first} (rerun with --debug for the traceback)"


def run_script(module_name: str):
    """A recipe script's `__main__`: `python my_recipe.py [--config FILE] [--set key=value ...]`."""
    from kerastune.recipes import register

    module = sys.modules[module_name]
    register(module)
    parser = OneLineParser(prog=Path(module.__file__).name, description=(module.__doc__ or "").split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    add_run_arguments(parser)
    args = parser.parse_args()
    args.recipe, args.func = module.__file__, cmd_run
    sys.exit(execute(args))


if __name__ == "__main__":
    sys.exit(main())
