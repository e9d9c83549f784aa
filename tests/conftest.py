"""Shared fixtures: sample data, SentencePiece vocabularies, HF T5 checkpoints written by transformers."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes" / "data"))
sys.path.insert(0, str(Path(__file__).parent))

PROMPT = "Given the following text:{text}\nPredict its corresponding category (World, Sports, Business, Sci/Tech):"


@pytest.fixture(scope="session")
def news_rows():
    from make_news_sample import make_rows

    return make_rows(400, seed=7)


@pytest.fixture(scope="session")
def spiece_proto(news_rows):
    from kerastune.models.t5.tiny import train_sentencepiece

    return train_sentencepiece([PROMPT.format(text=r["text"]) for r in news_rows], vocab_size=500)


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
