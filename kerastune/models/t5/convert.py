"""Hugging Face T5 / FLAN-T5 checkpoint -> keras-hub `T5Seq2SeqLM`.

keras-hub has no T5 converter (keras-hub issue 2999), so this is it: read
`config.json`, the safetensors weights and `spiece.model` (or a Unigram
`tokenizer.json`), build a `T5Backbone` and copy every weight across.

Two HF details matter for parity:
- `gated-gelu` means the tanh-approximate GELU (`gelu_new`); Keras's
  `"gelu"` is exact, so the backbone gets kerastune's `gelu_new`.
- The decoder output is scaled by d_model**-0.5 before the head only when
  the head is tied (T5 v1.0). keras-hub ties scaling to weight tying, so a
  tied-but-unscaled checkpoint (what transformers 5 saves for FLAN-T5-like
  configs) gets an untied head holding a copy of the embedding.
"""

import json
from pathlib import Path

import keras_hub
import numpy as np

from kerastune.errors import KerastuneError
from kerastune.models.activations import HF_ACTIVATIONS
from kerastune.models.hf_files import read_config
from kerastune.weights import read_weights


def backbone_kwargs(config: dict) -> dict:
    """Map an HF `T5Config` dict onto `T5Backbone` arguments."""
    if config.get("model_type") not in ("t5", "mt5", "umt5"):
        raise KerastuneError(f"not a T5 checkpoint: model_type is {config.get('model_type')!r}")
    if config.get("relative_attention_num_buckets", 32) != 32 or config.get(
        "relative_attention_max_distance", 128
    ) != 128:
        raise KerastuneError("keras-hub's T5 supports 32 relative-attention buckets and max distance 128 only")
    num_layers = config.get("num_layers", 6)
    if config.get("num_decoder_layers", num_layers) != num_layers:
        raise KerastuneError("keras-hub's T5 needs as many decoder layers as encoder layers")
    proj = config.get("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    act_name = proj.split("-")[-1]
    if gated and act_name == "gelu":
        act_name = "gelu_new"  # what transformers does for "gated-gelu"
    if act_name not in HF_ACTIVATIONS:
        raise KerastuneError(f"unsupported T5 activation '{proj}'")
    return dict(
        vocabulary_size=config["vocab_size"],
        num_layers=num_layers,
        num_heads=config["num_heads"],
        hidden_dim=config["d_model"],
        intermediate_dim=config["d_ff"],
        key_value_dim=config["d_kv"],
        dropout=config.get("dropout_rate", 0.1),
        activation=HF_ACTIVATIONS[act_name],
        use_gated_activation=gated,
        layer_norm_epsilon=config.get("layer_norm_epsilon", 1e-6),
    )


def scales_decoder_output(config: dict) -> bool:
    """Whether HF multiplies the decoder output by d_model**-0.5 before the head."""
    if "scale_decoder_outputs" in config:  # transformers >= 5
        return bool(config["scale_decoder_outputs"])
    return config.get("tie_word_embeddings", True) is not False


def weight_table(backbone) -> list[tuple[str, object, bool]]:
    """Every weight of a `T5Backbone` as (transformers name, Keras variable, transposed), in
    transformers' order: the one map that loading, HF export and initialisation use. HF Linear
    weights are (out, in) and Keras Dense kernels (in, out), hence `transposed`."""
    table = [("shared.weight", backbone.token_embedding.embeddings, False)]

    def attention(module, prefix):
        for short, dense in (("q", module.query_projector), ("k", module.key_projector),
                             ("v", module.value_projector), ("o", module.output_projector)):
            table.append((f"{prefix}.{short}.weight", dense.kernel, True))
        if module.use_relative_attention_bias:
            table.append((f"{prefix}.relative_attention_bias.weight", module.relative_attention_bias, False))

    def feed_forward(layer, prefix):
        ff = f"{prefix}.DenseReluDense"
        if layer.use_gated_activation:
            table.append((f"{ff}.wi_0.weight", layer.input_projector.kernel, True))
            table.append((f"{ff}.wi_1.weight", layer.gate_projector.kernel, True))
        else:
            table.append((f"{ff}.wi.weight", layer.input_projector.kernel, True))
        table.append((f"{ff}.wo.weight", layer.output_projector.kernel, True))
        table.append((f"{prefix}.layer_norm.weight", layer.layer_norm.weight, False))

    for i, layer in enumerate(backbone.encoder_transformer_layers):
        p = f"encoder.block.{i}.layer"
        attention(layer.self_attention, f"{p}.0.SelfAttention")
        table.append((f"{p}.0.layer_norm.weight", layer.self_attention_layer_norm.weight, False))
        feed_forward(layer, f"{p}.1")
    table.append(("encoder.final_layer_norm.weight", backbone.encoder_layer_norm.weight, False))
    for i, layer in enumerate(backbone.decoder_transformer_layers):
        p = f"decoder.block.{i}.layer"
        attention(layer.self_attention, f"{p}.0.SelfAttention")
        table.append((f"{p}.0.layer_norm.weight", layer.self_attention_layer_norm.weight, False))
        attention(layer.cross_attention, f"{p}.1.EncDecAttention")
        table.append((f"{p}.1.layer_norm.weight", layer.cross_attention_layer_norm.weight, False))
        feed_forward(layer, f"{p}.2")
    table.append(("decoder.final_layer_norm.weight", backbone.decoder_layer_norm.weight, False))
    return table


def set_backbone_weights(backbone, weights: dict, head: np.ndarray | None):
    """Copy HF T5 weights (name -> array) into a built `T5Backbone`; `head` is an untied lm_head."""
    for name, variable, transposed in weight_table(backbone):
        variable.assign(weights[name].T if transposed else weights[name])
    if head is not None:
        backbone.token_embedding.reverse_embeddings.assign(head.T)


def proto_from_tokenizer_json(path) -> bytes:
    """Build a SentencePiece model proto from a Unigram `tokenizer.json`.

    Used when a checkpoint ships only the fast tokenizer. Pieces, scores and
    the precompiled normalisation map are copied, so ids match.
    """
    import base64

    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    spec = json.loads(Path(path).read_text())
    model = spec.get("model", {})
    if model.get("type") != "Unigram":
        raise KerastuneError(f"{path}: only Unigram tokenizer.json files can become a T5 tokenizer")
    proto = sp_pb2.ModelProto()
    special = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
    unk_id = model.get("unk_id", 2)
    for i, (piece, score) in enumerate(model["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        if i == unk_id:
            entry.type = sp_pb2.ModelProto.SentencePiece.UNKNOWN
        elif piece in special:
            entry.type = sp_pb2.ModelProto.SentencePiece.CONTROL
    proto.trainer_spec.model_type = sp_pb2.TrainerSpec.UNIGRAM
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id = unk_id, -1
    proto.trainer_spec.eos_id, proto.trainer_spec.pad_id = 1, 0
    normalizers = spec.get("normalizer") or {}
    for n in normalizers.get("normalizers", [normalizers]):
        if n.get("type") == "Precompiled" and n.get("precompiled_charsmap"):
            proto.normalizer_spec.name = "nmt_nfkc"
            proto.normalizer_spec.precompiled_charsmap = base64.b64decode(n["precompiled_charsmap"])
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = True
    proto.normalizer_spec.escape_whitespaces = True
    return proto.SerializeToString()


def load_tokenizer(path):
    path = Path(path)
    if (path / "spiece.model").is_file():
        proto = (path / "spiece.model").read_bytes()
    elif (path / "tokenizer.json").is_file():
        proto = proto_from_tokenizer_json(path / "tokenizer.json")
    else:
        raise KerastuneError(f"no spiece.model or tokenizer.json in model directory {path}")
    return keras_hub.models.T5Tokenizer(proto=proto)


def load_t5(path, encoder_sequence_length=512, decoder_sequence_length=128):
    """A `T5Seq2SeqLM` (with preprocessor) from an HF T5 checkpoint directory."""
    config = read_config(path)
    weights = read_weights(path)
    kwargs = backbone_kwargs(config)
    scaled = scales_decoder_output(config)
    head = weights.get("lm_head.weight")
    tied_and_scaled = scaled and (head is None or np.array_equal(head, weights["shared.weight"]))
    if scaled and not tied_and_scaled:
        raise KerastuneError("T5 checkpoints with an untied head and scaled decoder output are not supported")
    if not scaled and head is None:
        head = weights["shared.weight"]  # tied in HF, unscaled: keep a copy as an untied head
    backbone = keras_hub.models.T5Backbone(tie_embedding_weights=tied_and_scaled, **kwargs)
    set_backbone_weights(backbone, weights, None if tied_and_scaled else head)
    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=load_tokenizer(path),
        encoder_sequence_length=encoder_sequence_length,
        decoder_sequence_length=decoder_sequence_length,
    )
    return keras_hub.models.T5Seq2SeqLM(backbone=backbone, preprocessor=preprocessor)


def backbone_to_hf_weights(backbone) -> dict:
    """The inverse of `set_backbone_weights`: HF T5 names -> float32 arrays."""
    import keras

    def value(variable):
        return np.asarray(keras.ops.convert_to_numpy(variable.value), dtype="float32")

    weights = {name: value(v).T if transposed else value(v) for name, v, transposed in weight_table(backbone)}
    if not backbone.tie_embedding_weights:
        weights["lm_head.weight"] = value(backbone.token_embedding.reverse_embeddings).T
    return weights


def hf_config(backbone) -> dict:
    """An HF `T5Config` dict for this backbone (the inverse of `backbone_kwargs`)."""
    from kerastune.models.activations import gelu_new

    activation = backbone.activation
    name = "gelu" if activation is gelu_new else getattr(activation, "__name__", str(activation))
    if name not in ("relu", "gelu", "silu"):
        raise KerastuneError(f"cannot express activation {name!r} as a transformers T5 config")
    if name == "gelu" and activation is not gelu_new:
        raise KerastuneError("exact-erf GELU has no transformers T5 equivalent (gated-gelu is tanh-approximate)")
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "vocab_size": backbone.vocabulary_size,
        "d_model": backbone.hidden_dim,
        "d_kv": backbone.key_value_dim or backbone.hidden_dim // backbone.num_heads,
        "d_ff": backbone.intermediate_dim,
        "num_layers": backbone.num_layers,
        "num_decoder_layers": backbone.num_layers,
        "num_heads": backbone.num_heads,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "dropout_rate": backbone.dropout,
        "layer_norm_epsilon": backbone.layer_norm_epsilon,
        "feed_forward_proj": ("gated-" if backbone.use_gated_activation else "") + name,
        "tie_word_embeddings": bool(backbone.tie_embedding_weights),
        "is_encoder_decoder": True,
        "decoder_start_token_id": 0,
        "pad_token_id": 0,
        "eos_token_id": 1,
    }
