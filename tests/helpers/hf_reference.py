"""The transformers + PyTorch way, as the reference the tests compare kerastune to.

A plain PyTorch loop the way the seed trains (AdamW, linear schedule, padding
ignored with -100, per-batch dynamic padding, shuffled every epoch) and
exact-match evaluation with `generate`.
"""

import numpy as np
import torch
from transformers import T5Config, T5ForConditionalGeneration


def tiny_hf_t5(vocab_size, seed=0, **overrides):
    """The tiny-t5 shape (kerastune.models.t5.tiny.TINY_T5_CONFIG) as a transformers model."""
    torch.manual_seed(seed)
    config = dict(
        vocab_size=vocab_size, d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.1,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    config.update(overrides)
    return T5ForConditionalGeneration(T5Config(**config))


def _pad(rows, value):
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def encode(sp, texts, max_length=128):
    return [sp.encode(t)[: max_length - 1] + [1] for t in texts]


def train(model, sources, targets, epochs, lr, batch_size=32, warmup_steps=0, seed=0):
    """Returns per-epoch mean training losses."""
    rng = np.random.default_rng(seed)
    steps = epochs * int(np.ceil(len(sources) / batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, eps=1e-8, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: s / max(1, warmup_steps)
        if s < warmup_steps
        else max(0.0, (steps - s) / max(1, steps - warmup_steps)),
    )
    losses = []
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(sources))
        epoch_losses = []
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            input_ids = _pad([sources[i] for i in idx], 0)
            labels = _pad([targets[i] for i in idx], -100)
            loss = model(input_ids=input_ids, attention_mask=(input_ids != 0).long(), labels=labels).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            epoch_losses.append(loss.item())
        losses.append(float(np.mean(epoch_losses)))
    return losses


@torch.no_grad()
def generate(model, sources, max_new_tokens=8, num_beams=1, batch_size=64):
    model.eval()
    outputs = []
    for start in range(0, len(sources), batch_size):
        input_ids = _pad(sources[start : start + batch_size], 0)
        out = model.generate(
            input_ids=input_ids, attention_mask=(input_ids != 0).long(),
            max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
        )
        outputs.extend(out[:, 1:].tolist())
    return outputs
