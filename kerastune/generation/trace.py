"""The seed notebook's step table: at every generated token, the text so far and the top-n candidates.

The table comes from one forward pass over prompt + generated tokens, which
gives, at each step, exactly the next-token distribution the decoder saw
(before temperature and top-k/top-p filtering): the model's own
probabilities, as the notebook prints them.
"""

import numpy as np
import pandas as pd
from keras import ops


def trace(generator, prompt: str, top_n=5) -> pd.DataFrame:
    """One row per generated token: `step`, `input` (text so far), the chosen `token`, its
    `probability` and `rank`, and `Choice #1..top_n` as "token (probability)" like the notebook.
    The generated text is in `table.attrs["text"]`.
    """
    [prompt_ids] = generator.tokenize([prompt])
    [new] = generator.generate_tokens([prompt_ids], batch_size=1)
    ids = np.asarray([prompt_ids + new], "int32")
    logits = generator.model({"token_ids": ids, "padding_mask": np.ones_like(ids)}, training=False)
    probs = np.asarray(ops.convert_to_numpy(ops.softmax(ops.cast(logits, "float32"), axis=-1)))[0]
    rows = []
    for step, token in enumerate(new):
        position = len(prompt_ids) - 1 + step
        p = probs[position]
        best = np.argsort(-p, kind="stable")[:top_n]
        row = {
            "step": step,
            "input": generator.decode([generator.without_special(prompt_ids + new[:step])])[0],
            "token": generator.decode([[token]])[0],
            "probability": float(p[token]),
            "rank": int((p > p[token]).sum()) + 1,
        }
        for k, candidate in enumerate(best):
            row[f"Choice #{k + 1}"] = f"{generator.decode([[int(candidate)]])[0]} ({p[candidate]:.4f})"
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["text"] = generator.decode([generator.without_special(prompt_ids + new)])[0]
    return table

