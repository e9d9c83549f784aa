"""kerastune's T5 learns what transformers' T5 learns, on each Keras backend.

An early probe: keras-hub's `T5Seq2SeqLM.fit` predicted one class for
everything (0.26) where transformers reached 0.72, and a TensorFlow run
learned where a JAX run did not. The cause was keras-hub's T5 embedding
initialiser (mean 1.0, every token alike), which left training on the
"predict the label prior" plateau for a number of epochs that depended on
noise (dropout streams differ by backend). This test, run by each backend's
pass, would catch either failure again.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import sentencepiece as spm
from helpers import hf_reference
from helpers.hf_checkpoints import PROMPT
from make_news_sample import LABELS, make_rows, write_csv

from kerastune.models.t5.tiny import train_sentencepiece

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["model=tiny-t5", "epochs=4", "learning_rate=1e-3", "warmup_steps=30", "batch_size=32",
            "max_source_length=128", "num_beams=1", "max_new_tokens=6", "tiny_vocab_size=800",
            "max_eval_samples=100", "max_test_samples=200", "seed=3"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("news")
    write_csv(path / "train.csv", make_rows(650, seed=201))
    write_csv(path / "validation.csv", make_rows(100, seed=202))
    write_csv(path / "test.csv", make_rows(200, seed=203))
    return path


def transformers_accuracy(dataset_dir) -> float:
    """The same tiny T5, data, prompt and settings, trained the transformers + PyTorch way."""
    import csv

    def rows(split):
        with open(dataset_dir / f"{split}.csv") as f:
            return [
                (PROMPT.format(text=r["text"].replace("\\", " ")), LABELS[int(r["label"])])
                for r in csv.DictReader(f)
            ]

    train, test = rows("train"), rows("test")
    prompts, targets = [p for p, _ in train], [t for _, t in train]
    sp = spm.SentencePieceProcessor(model_proto=train_sentencepiece(prompts + targets, 800))
    model = hf_reference.tiny_hf_t5(sp.get_piece_size(), seed=3)
    hf_reference.train(model, hf_reference.encode(sp, prompts), hf_reference.encode(sp, targets),
                       epochs=4, lr=1e-3, batch_size=32, warmup_steps=30, seed=3)
    outputs = hf_reference.generate(model, hf_reference.encode(sp, [p for p, _ in test]), max_new_tokens=6)
    predictions = [sp.decode([t for t in out if t > 1]) for out in outputs]
    return float(np.mean([p.strip() == t for p, (_, t) in zip(predictions, test)]))


def cached_transformers_accuracy(request, dataset_dir) -> float:
    """`transformers_accuracy`, computed once per test session pair: the JAX pass reuses the TensorFlow
    pass's figure (pytest's cache, keyed by the data and settings), as the HF checkpoints are reused."""
    import hashlib

    data = b"".join((dataset_dir / f"{split}.csv").read_bytes() for split in ("train", "test"))
    key = "learning/transformers_accuracy_" + hashlib.sha256(data + " ".join(SETTINGS).encode()).hexdigest()[:16]
    accuracy = request.config.cache.get(key, None)
    if accuracy is None:
        accuracy = transformers_accuracy(dataset_dir)
        request.config.cache.set(key, accuracy)
    return accuracy


@pytest.mark.slow
def test_kerastune_learns_what_transformers_learns(dataset, tmp_path, request):
    """A run on this pass's backend (in a subprocess) against a transformers run: the same held-out
    accuracy, within 0.05."""
    backend = keras.config.backend()
    run_dir = tmp_path / backend
    result = subprocess.run(
        [sys.executable, "-m", "kerastune", "run", "instruction_tuning", "--set", *SETTINGS,
         f"dataset={dataset}", f"output_dir={run_dir}"],
        cwd=ROOT, env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["backend"] == backend
    ours, theirs = metrics["test_accuracy"], cached_transformers_accuracy(request, dataset)
    print(f"held-out accuracy: kerastune ({backend}) {ours:.3f}, transformers {theirs:.3f}")
    assert theirs > 0.5, "the reference did not learn: the test data or settings are broken"
    assert ours >= theirs - 0.05, (backend, ours, theirs)
