"""Shared fixtures: sample data, SentencePiece vocabularies, HF T5 checkpoints written by transformers."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Simulated devices, only for the distribution tests, which `make test` runs in a pytest process of their
# own with KERASTUNE_TEST_DEVICES=1 (every other test keeps the machine's one CPU device). Set before JAX or
# TensorFlow starts: JAX splits the host into 8 CPU devices, TensorFlow into 4 logical CPUs
# (MirroredStrategy compiles every replica's copy of a step, so fewer keep CI short).
SIMULATED_DEVICES = os.environ.get("KERASTUNE_TEST_DEVICES") == "1"
if SIMULATED_DEVICES:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 4
    )
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes" / "data"))
sys.path.insert(0, str(Path(__file__).parent))

# The Hugging Face Hub the tests see is tests/local_hub.py on 127.0.0.1, with a cache of their own. The
# port is reserved now, before anything imports huggingface_hub (which reads HF_ENDPOINT once); until a
# test starts the hub (the `local_hub` fixture) connections to it are refused, as with no network.
from local_hub import LocalHub, reserve_port  # noqa: E402

_HUB_SOCKET = reserve_port()
_CACHE = tempfile.mkdtemp(prefix="kerastune-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:%d" % _HUB_SOCKET.getsockname()[1]
os.environ["HF_HOME"] = os.path.join(_CACHE, "huggingface")
os.environ["KERASTUNE_CACHE"] = os.path.join(_CACHE, "kerastune")
for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.pop(name, None)


@pytest.fixture(scope="session")
def local_hub():
    with LocalHub(_HUB_SOCKET) as hub:
        yield hub

PROMPT = "Given the following text:{text}\nPredict its corresponding category (World, Sports, Business, Sci/Tech):"


@pytest.fixture(scope="session")
def news_rows():
    from make_news_sample import make_rows

    return make_rows(400, seed=7)


@pytest.fixture(scope="session")
def spiece_proto(news_rows):
    from kerastune.models.t5.tiny import train_sentencepiece

    return train_sentencepiece([PROMPT.format(text=r["text"]) for r in news_rows], vocab_size=500)


def trained_hf_t5(request, proto, **kwargs):
    """`write_hf_t5` with training, once per test session pair: the directory goes into pytest's cache,
    keyed by the settings and the vocabulary, so the JAX pass reuses what the TensorFlow pass trained
    (minutes of PyTorch training). Returns (directory, transformers model loaded from it)."""
    import hashlib
    import json

    from transformers import T5ForConditionalGeneration

    key = hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode() + proto).hexdigest()[:16]
    path = Path(request.config.cache.mkdir(f"hf_t5_{key}"))
    if not (path / "done").is_file():
        write_hf_t5(path, proto, **kwargs)
        (path / "done").write_text("")
    return path, T5ForConditionalGeneration.from_pretrained(str(path)).eval()


def write_hf_t5(path, proto, seed=0, train_steps=0, copy_words=(1, 6), **config):
    """A transformers T5 saved with `save_pretrained`, plus `spiece.model`.

    Random weights make a T5 repeat one token forever; `train_steps` of a
    copy-the-first-words task make it emit varied tokens and stop at
    different steps, which is what generation parity needs to be tested on.
    """
    import random

    import hf_reference
    import sentencepiece as spm
    from make_news_sample import make_rows

    sp = spm.SentencePieceProcessor(model_proto=proto)
    model = hf_reference.tiny_hf_t5(sp.get_piece_size(), seed=seed, **config)
    if train_steps:
        rng = random.Random(seed)
        rows = make_rows(train_steps * 16, seed=seed)
        sources = [r["text"] for r in rows]
        targets = [" ".join(t.split()[2 : 2 + rng.randint(*copy_words)]) for t in sources]
        hf_reference.train(
            model, hf_reference.encode(sp, sources), hf_reference.encode(sp, targets),
            epochs=1, lr=3e-3, batch_size=16, seed=seed,
        )
    model.eval()
    model.save_pretrained(path)
    Path(path, "spiece.model").write_bytes(proto)
    return model


@pytest.fixture(scope="session")
def product_texts():
    from make_products_sample import make_rows

    return [r["product_description"] for r in make_rows(300, seed=5) if r["product_description"]]


def write_hf_gpt2(path, texts, vocab_size=400, seed=0, train_steps=0, **config):
    """A transformers GPT2LMHeadModel saved with `save_pretrained`, plus `vocab.json` / `merges.txt`.

    `train_steps` of next-token training on single sentences ending in
    `<|endoftext|>` give peaked distributions and outputs that stop at
    different steps, which generation parity needs.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from kerastune.models.gpt2.tokenizer import train_byte_level_bpe, write_vocabulary

    vocabulary, merges = train_byte_level_bpe(texts, vocab_size)
    write_vocabulary(vocabulary, merges, path)
    torch.manual_seed(seed)
    settings = dict(n_positions=128, n_embd=64, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocabulary), **{**settings, **config}))
    model.config.save_pretrained(path)  # AutoTokenizer reads model_type from config.json
    if train_steps:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        sentences = [s.strip() + "." for t in texts for s in t.split(".") if s.strip()]
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for step in range(train_steps):
            ids = tokenizer(sentences[step % len(sentences)])["input_ids"] + [0]
            batch = torch.tensor([ids])
            model(batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    model.save_pretrained(path)
    return model


@pytest.fixture(scope="session")
def hf_gpt2(tmp_path_factory, product_texts):
    """(directory, transformers model) of a briefly trained tiny GPT-2."""
    path = tmp_path_factory.mktemp("hf_gpt2")
    return path, write_hf_gpt2(path, product_texts, train_steps=120)
