"""Fill-mask: the top-k tokens and probabilities for every [MASK] in a text."""

import numpy as np
from keras import ops

MASK = "[MASK]"


def encode_with_masks(tokenizer, text: str) -> list[int]:
    """[CLS] tokens [SEP], with the literal "[MASK]" marker kept as the mask token."""
    ids = [tokenizer.cls_token_id]
    for i, piece in enumerate(text.split(MASK)):
        if i:
            ids.append(tokenizer.mask_token_id)
        if piece.strip():
            ids.extend(int(t) for t in np.asarray(tokenizer(piece)))
    return ids + [tokenizer.sep_token_id]


def fill_mask(model, texts, top_k=5) -> list[list[list[tuple[str, float]]]]:
    """For each text, for each [MASK] in it: [(token, probability), ...] best first."""
    tokenizer = model.preprocessor.tokenizer
    results = []
    for text in texts:
        ids = encode_with_masks(tokenizer, text)
        positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
        if not positions:
            results.append([])
            continue
        logits = model({
            "token_ids": np.array([ids], "int32"),
            "padding_mask": np.ones((1, len(ids)), "int32"),
            "mask_positions": np.array([positions], "int32"),
        })
        probabilities = ops.convert_to_numpy(ops.softmax(ops.cast(logits, "float32"), axis=-1))[0]
        per_mask = []
        for row in probabilities:
            best = np.argsort(-row)[:top_k]
            per_mask.append([(tokenizer.id_to_token(int(i)), float(row[i])) for i in best])
        results.append(per_mask)
    return results


def format_fill_mask(text: str, per_mask) -> str:
    lines = [text]
    for n, candidates in enumerate(per_mask, 1):
        shown = ", ".join(f"{token} ({p:.3f})" for token, p in candidates)
        lines.append(f"-> [MASK] {n}: {shown}")
    return "\n".join(lines)
