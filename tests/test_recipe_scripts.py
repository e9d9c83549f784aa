"""A recipe is a script a user can copy, edit and run; the CLI starts fast and quietly."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from make_reviews_sample import make_rows, write_csv

ROOT = Path(__file__).resolve().parents[1]
KERASTUNE = [sys.executable, "-m", "kerastune"]
# What TensorFlow's and XLA's native libraries print as they load, before any log level applies.
TF_LOG_LINE = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl|.*cpu_feature_guard|"
                         r".*oneDNN custom operations|.*cuda drivers)", re.MULTILINE)


def run(command, cwd=ROOT):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # conftest quiets the test process; the CLI must do it itself
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="CI time: finding and running a copied script does not depend on the backend")
def test_a_copied_and_edited_recipe_runs_with_kerastune_run(tmp_path):
    copy = tmp_path / "my_mlm.py"
    source = (ROOT / "recipes" / "mlm_domain_adaptation.py").read_text()
    line = '"fill_mask_after": " ".join(top_after),'
    edited = source.replace(line, line + ' "edited": 1,')
    assert edited != source
    copy.write_text(edited)
    write_csv(tmp_path / "reviews" / "train.csv", make_rows(150, seed=3))
    out = tmp_path / "run"
    done = run([*KERASTUNE, "run", str(copy), "--config", str(ROOT / "recipes" / "demo" / "mlm_domain_adaptation.toml"),
                "--set", f"dataset={tmp_path / 'reviews'}", "epochs=1", f"output_dir={out}"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["edited"] == 1
    # No copy of the TOML beside the script: the built-in recipe's TOML is the defaults, then the layers.
    assert "config: " + str(ROOT / "recipes" / "mlm_domain_adaptation.toml") in done.stdout
    assert "overlays/tiny/mlm_domain_adaptation.toml (model tiny-distilbert)" in done.stdout
    assert not TF_LOG_LINE.search(done.stdout + done.stderr), (done.stdout + done.stderr)[:3000]


def test_a_recipe_script_runs_with_python_and_its_own_toml(tmp_path):
    shutil.copy(ROOT / "recipes" / "seq2seq_qa.py", tmp_path / "qa.py")
    toml = (ROOT / "recipes" / "seq2seq_qa.toml").read_text().replace("epochs = 3", "epochs = 5")
    (tmp_path / "qa.toml").write_text(toml)
    done = run([sys.executable, str(tmp_path / "qa.py"), "--print-config", "--set", "model=tiny-t5",
                "eval.batch_size=3"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # qa.toml's 5 epochs are the defaults; the tiny overlay (10 epochs) goes on top, --set on top of that.
    assert "\n[train]\nbatch_size = 16\nepochs = 10\n" in done.stdout and "\n[eval]\nbatch_size = 3\n" in done.stdout
    assert not TF_LOG_LINE.search(done.stdout + done.stderr)
    bad = run([sys.executable, str(tmp_path / "qa.py"), "--set", "epoch=1"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: unknown config key 'epoch'")


def test_help_and_argument_errors_do_not_load_keras():
    probe = ("import sys\nfrom kerastune.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'keras_hub', 'torch') if m in sys.modules))")
    done = run([sys.executable, "-c", probe])
    assert done.returncode == 0 and done.stdout.strip().endswith("[]"), done.stdout + done.stderr
    bad = run([*KERASTUNE, "run"])
    assert bad.returncode == 2 and "the following arguments are required: recipe" in bad.stderr
    assert not TF_LOG_LINE.search(bad.stderr)
