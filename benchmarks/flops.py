"""Model FLOPs of a training step, counted from the shapes, for model FLOPs utilisation (MFU).

A matmul of (m, k) by (k, n) is 2mkn FLOPs; a training step is 3x the
forward pass (the backward pass does two matmuls for each forward one).
Only the work real tokens need counts: padding is waste, so a run that pads
more shows a lower MFU; so is scoring a masked LM's vocabulary at positions
that carry no loss (transformers does; kerastune scores the masked ones). Attention scores count the full square (as
PaLM's MFU does); softmax, norms and activations are not counted.
"""


def t5_forward(config: dict, source: int, target: int) -> float:
    d, inner, ff, vocab = config["d_model"], config["num_heads"] * config["d_kv"], config["d_ff"], config["vocab_size"]
    ffn = (3 if config["feed_forward_proj"].startswith("gated") else 2) * d * ff
    encoder = config["num_layers"] * (2 * source * (4 * d * inner + ffn) + 4 * source * source * inner)
    decoder_tokens = target * (4 * d * inner + 2 * d * inner + ffn)  # self q/k/v/o, cross q/o, feed-forward
    cross_keys = source * 2 * d * inner  # cross-attention k/v over the encoder's outputs
    attention = 4 * target * target * inner + 4 * target * source * inner
    decoder = config.get("num_decoder_layers", config["num_layers"]) * (2 * (decoder_tokens + cross_keys) + attention)
    return encoder + decoder + 2 * target * d * vocab


def gpt2_forward(config: dict, length: int) -> float:
    d, layers, vocab = config["n_embd"], config["n_layer"], config["vocab_size"]
    tokens = length - 1  # inputs 0..n-2 predict tokens 1..n-1
    return layers * (2 * tokens * 12 * d * d + 4 * tokens * tokens * d) + 2 * tokens * d * vocab


def qwen2_forward(config: dict, length: int) -> float:
    """Grouped-query attention (k and v have `num_key_value_heads` heads), a gated MLP, the (tied) head."""
    d, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    kv = d // config["num_attention_heads"] * config["num_key_value_heads"]
    tokens = length - 1
    per_token = 2 * d * d + 2 * d * kv + 3 * d * config["intermediate_size"]  # q, o; k, v; gate, up, down
    return layers * (2 * tokens * per_token + 4 * tokens * tokens * d) + 2 * tokens * d * vocab


def distilbert_forward(config: dict, length: int, predicted: float | None = None) -> float:
    """`predicted`: positions the MLM head scores (default: every one)."""
    d, hidden, layers, vocab = config["dim"], config["hidden_dim"], config["n_layers"], config["vocab_size"]
    encoder = layers * (2 * length * (4 * d * d + 2 * d * hidden) + 4 * length * length * d)
    return encoder + 2 * (length if predicted is None else predicted) * (d * d + d * vocab)


MASKED_SHARE = 0.15  # the masked-LM notebook's share of (non-special) tokens that carry a loss


def training_flops(family: str, config: dict, examples: dict) -> float:
    """Model FLOPs of one training pass over `examples` (see `TrainingWorkload.examples`)."""
    if family == "t5":
        forward = sum(t5_forward(config, len(s), len(t)) for s, t in zip(examples["inputs"], examples["targets"]))
    elif family in ("gpt2", "qwen2"):
        count = gpt2_forward if family == "gpt2" else qwen2_forward
        forward = sum(count(config, len(ids)) for ids in examples["inputs"])
    else:  # the head's work is needed on the masked positions only (data/masking.py)
        forward = sum(distilbert_forward(config, len(ids), MASKED_SHARE * sum(w >= 0 for w in words))
                      for ids, words in zip(examples["inputs"], examples["word_ids"]))
    return 3.0 * forward


def real_tokens(examples: dict) -> int:
    return sum(len(ids) for ids in examples["inputs"]) + sum(len(ids) for ids in examples.get("targets", []))
