"""Kill a recipe run again and again, rerun it, and compare with an uninterrupted run (test_kill_resume*)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "recipes" / "data"
HELPERS = ROOT / "tests" / "helpers"


def command(recipe, settings, run_dir):
    return [sys.executable, "-m", "kerastune", "run", recipe, "--set", *settings, f"output_dir={run_dir}"]


def checkpoints_done(run_dir) -> int:
    """Complete checkpoints under `run_dir`, in any stage's folder. A checkpoint being written lives in a
    dot-folder that is renamed while we look, so those are skipped (os.walk ignores folders that vanish)."""
    done = 0
    for folder, subfolders, files in os.walk(run_dir):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        done += "manifest.json" in files
    return done


def run_and_kill(cmd, run_dir, after: int, delay: float) -> str:
    """Start `cmd`; `delay` s after the `after`-th checkpoint is complete, SIGKILL it. Returns how it ended."""
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.time() + 600
    while checkpoints_done(run_dir) < after and process.poll() is None:
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.05)
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()
    stderr = process.stderr.read()
    assert process.returncode in (0, -signal.SIGKILL), stderr[-3000:]
    return "killed" if process.returncode else "finished"


def weights(run_dir) -> dict:
    found = {}
    with h5py.File(Path(run_dir) / "model" / "model.weights.h5", "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return found


def check_kills_change_nothing(recipe, settings, kill_after, tmp_path):
    """An uninterrupted run, then a run killed a random 0-1.5 s after each count in `kill_after` of complete
    checkpoints and rerun each time: the same final weights (within 1e-6) and metrics."""
    whole = subprocess.run(command(recipe, settings, tmp_path / "whole"), cwd=ROOT, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-3000:]

    rng = random.Random(recipe)
    cut = tmp_path / "cut"
    endings = [run_and_kill(command(recipe, settings, cut), cut, after, rng.uniform(0, 1.5)) for after in kill_after]
    assert "killed" in endings
    final = subprocess.run(command(recipe, settings, cut), cwd=ROOT, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-3000:]

    expected, got = weights(tmp_path / "whole"), weights(cut)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6, err_msg=name)
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "whole", cut)]
    for m in metrics:
        m.pop("seconds")
    assert metrics[1] == pytest.approx(metrics[0], abs=1e-6)
    return tmp_path / "whole"
