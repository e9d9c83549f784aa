"""GPT-2 byte-level BPE vocabularies: read from a checkpoint, or train one offline.

keras-hub's `GPT2Tokenizer` wants a vocabulary dict and a list of merges.
Older hub checkpoints ship `vocab.json` + `merges.txt`; transformers 5 saves
only `tokenizer.json`, which holds both. Training uses the `tokenizers`
library (a keras-hub dependency) with GPT-2's byte-level pre-tokenizer, so
keras-hub and transformers split text into the same ids.
"""

import json
from pathlib import Path

import keras_hub

from kerastune.errors import KerastuneError

END_OF_TEXT = "<|endoftext|>"


def read_vocabulary(path) -> tuple[dict, list[str]]:
    """(vocabulary, merges) from `vocab.json` + `merges.txt` or a BPE `tokenizer.json`."""
    path = Path(path)
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        vocabulary = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
        lines = (path / "merges.txt").read_text(encoding="utf-8").splitlines()
        return vocabulary, [m for m in lines if m and not m.startswith("#version")]
    if (path / "tokenizer.json").is_file():
        model = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))["model"]
        if model.get("type") != "BPE":
            raise KerastuneError(f"{path}/tokenizer.json is a {model.get('type')} tokenizer, not GPT-2's BPE")
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        return dict(model["vocab"]), merges
    raise KerastuneError(f"{path} has no GPT-2 tokenizer (vocab.json + merges.txt, or tokenizer.json)")


def gpt2_tokenizer(vocabulary: dict, merges: list[str]):
    if END_OF_TEXT not in vocabulary:
        raise KerastuneError(f"the GPT-2 vocabulary has no {END_OF_TEXT} token")
    return keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=merges)


def train_byte_level_bpe(texts, vocab_size=2000, special_tokens=(END_OF_TEXT,)) -> tuple[dict, list[str]]:
    """A GPT-2-style vocabulary (special tokens first, 256 byte symbols, merges) trained on `texts`.

    GPT-2's special token is `<|endoftext|>` = 0; RoBERTa, which uses the same
    byte-level BPE, passes its own. Deterministic for the same texts, so a
    resumed run rebuilds the same ids.
    """
    from tokenizers import ByteLevelBPETokenizer

    texts = [t for t in texts if t and t.strip()] or ["a tiny model for tests and demos"]
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=list(special_tokens),
                                show_progress=False)
    saved = json.loads(trainer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in saved["merges"]]
    return dict(saved["vocab"]), merges


def write_vocabulary(vocabulary: dict, merges: list[str], path):
    """`vocab.json` + `merges.txt`, the files GPT-2 checkpoints on the hub carry."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
