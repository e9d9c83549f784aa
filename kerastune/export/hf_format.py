"""Hugging Face format export: `config.json`, `model.safetensors` and tokenizer files.

transformers loads the directory with `T5ForConditionalGeneration.from_pretrained`
and `AutoTokenizer.from_pretrained`, so a model fine-tuned in kerastune goes
back to the PyTorch ecosystem unchanged.
"""

import json
from pathlib import Path

import numpy as np

from kerastune.errors import KerastuneError
from kerastune.models import model_kind
from kerastune.models.t5.convert import backbone_to_hf_weights, hf_config


def _write_safetensors(path: Path, tensors: dict):
    """float32 tensors in the safetensors layout (JSON header, then raw little-endian bytes)."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = list(tensors[name].shape)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)


def export_hf(model, out_dir) -> Path:
    """Write a transformers-loadable T5 checkpoint directory."""
    if model_kind(model) != "seq2seq":
        raise KerastuneError(f"HF export supports seq2seq (T5) models so far; got {type(model).__name__}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    backbone = model.backbone
    (out_dir / "config.json").write_text(json.dumps(hf_config(backbone), indent=2))
    _write_safetensors(out_dir / "model.safetensors", backbone_to_hf_weights(backbone))
    tokenizer = model.preprocessor.tokenizer
    proto = tokenizer.proto
    proto = proto if isinstance(proto, bytes) else Path(proto).read_bytes()
    (out_dir / "spiece.model").write_bytes(proto)
    extra_ids = max(0, min(100, backbone.vocabulary_size - tokenizer.vocabulary_size()))
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
        "extra_ids": extra_ids, "model_max_length": 512,
    }, indent=2))
    return out_dir
