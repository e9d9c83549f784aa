"""Hugging Face format export: `config.json`, `model.safetensors` and tokenizer files.

transformers loads the directory with `AutoModelForSeq2SeqLM` (T5) or
`AutoModelForCausalLM` (GPT-2, Llama, Qwen, Gemma, Mistral) and
`AutoTokenizer.from_pretrained`, so a model fine-tuned in kerastune goes back
to the PyTorch ecosystem unchanged. T5, GPT-2 and Gemma (1 and 2) are kerastune's
own writers; the other causal LMs go through keras-hub's exporters.
"""

import json
from pathlib import Path

from kerastune.errors import KerastuneError
from kerastune.models import model_kind
from kerastune.models.gemma import convert as gemma_convert
from kerastune.models.gpt2 import convert as gpt2_convert
from kerastune.models.gpt2.tokenizer import END_OF_TEXT, write_vocabulary
from kerastune.models.t5.convert import backbone_to_hf_weights, hf_config
from kerastune.weights.safetensors_file import write_safetensors_file


def export_hf(model, out_dir) -> Path:
    """Write a transformers-loadable checkpoint directory (T5 or a causal LM)."""
    out_dir = Path(out_dir)
    if model_kind(model) == "causal_lm" and type(model.backbone).__name__ == "GPT2Backbone":
        return _export_gpt2(model, out_dir)
    if model_kind(model) == "causal_lm" and type(model.backbone).__name__ == "GemmaBackbone":
        return _export_gemma(model, out_dir)
    if model_kind(model) == "causal_lm":
        return _export_with_keras_hub(model, out_dir)
    if model_kind(model) != "seq2seq":
        raise KerastuneError(f"HF export supports T5 and causal LMs; got {type(model).__name__}")
    out_dir.mkdir(parents=True, exist_ok=True)
    backbone = model.backbone
    (out_dir / "config.json").write_text(json.dumps(hf_config(backbone), indent=2))
    write_safetensors_file(out_dir / "model.safetensors", backbone_to_hf_weights(backbone))
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


def _export_with_keras_hub(model, out_dir: Path) -> Path:
    """Llama 3, Qwen, Mistral, ...: keras-hub's exporter (config, safetensors, tokenizer files)."""
    from keras_hub.src.utils.transformers.export.hf_exporter import MODEL_EXPORTERS, export_to_safetensors

    backbone = model.backbone
    family = type(backbone).__name__
    if family not in MODEL_EXPORTERS:
        raise KerastuneError(f"HF export: keras-hub has no exporter for {family} "
                             f"(it has {', '.join(sorted(MODEL_EXPORTERS))})")
    out_dir.mkdir(parents=True, exist_ok=True)
    export_to_safetensors(model, str(out_dir))
    _add_start_token_template(model, out_dir / "tokenizer.json")
    return out_dir


def _add_start_token_template(model, tokenizer_file: Path):
    """keras-hub's Llama 3 exporter writes tokenizer.json without a post-processor, so transformers'
    tokenizer loaded from it tokenizes without the start token that the model's preprocessor (and the
    original checkpoint's tokenizer) puts first. Put it back, as Llama 3's own tokenizer.json does."""
    from kerastune.generation.causal import start_token_id

    start_id = start_token_id(model)
    if start_id is None or not tokenizer_file.is_file():
        return
    spec = json.loads(tokenizer_file.read_text())
    if spec.get("post_processor") is not None:
        return
    start = model.preprocessor.tokenizer.id_to_token(start_id)
    token = {"SpecialToken": {"id": start, "type_id": 0}}
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [token, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [token, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": start, "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {start: {"id": start, "ids": [start_id], "tokens": [start]}},
    }
    tokenizer_file.write_text(json.dumps(spec, ensure_ascii=False, indent=2))


def _export_gemma(model, out_dir: Path) -> Path:
    """Gemma and Gemma 2, any number of key/value heads (keras-hub's exporter writes Gemma 1 with one)."""
    from keras_hub.src.utils.transformers.export.gemma import get_gemma_tokenizer_config

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = model.preprocessor.tokenizer
    (out_dir / "config.json").write_text(json.dumps(gemma_convert.hf_config(model.backbone, tokenizer), indent=2))
    write_safetensors_file(out_dir / "model.safetensors", gemma_convert.backbone_to_hf_weights(model.backbone))
    (out_dir / "tokenizer.model").write_bytes(tokenizer.proto)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(get_gemma_tokenizer_config(tokenizer), indent=2))
    return out_dir


def _export_gpt2(model, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = model.preprocessor.tokenizer
    config = gpt2_convert.hf_config(model.backbone, int(tokenizer.end_token_id))
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    write_safetensors_file(out_dir / "model.safetensors", gpt2_convert.backbone_to_hf_weights(model.backbone))
    write_vocabulary(tokenizer.vocabulary, tokenizer.merges, out_dir)
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT, "model_max_length": config["n_positions"],
    }, indent=2))
    return out_dir
