"""Causal-LM examples: texts -> token ids -> batches whose labels are the next tokens.

Each text becomes its tokens followed by the end token (GPT-2's
`<|endoftext|>`, so the model learns where a text ends), after the start
token for models whose tokenizer puts one first (Llama's `<|begin_of_text|>`,
Gemma's `<bos>`), cut at `max_length`; or, with `pack=True`, all texts so
marked are joined and cut into `max_length` blocks, so no position is
padding (transformers' `run_clm` "group_texts").

Batches are bucketed by length and padded to the longest in the batch
(rounded to a multiple of 8), never to `max_length`. Each batch is
`(x, y, sample_weight)` as keras-hub's causal LMs expect: x holds
tokens 0..n-2 and their padding mask, y tokens 1..n-1, and sample_weight is
0 on padding so it carries no loss. The mask comes from lengths, not ids:
GPT-2 has no pad token, and `<|endoftext|>` inside a text is a real label.
With `loss_masks` (chat SFT: 1 on the assistant's tokens), sample_weight is
also 0 where the label's mask is 0.
"""

import numpy as np
import tensorflow as tf

from kerastune.data.epochs import rows_each_epoch
from kerastune.data.tokens import PAD_MULTIPLE, bucket_boundaries, count_bucketed_batches
from kerastune.errors import KerastuneError


def drop_empty(texts) -> tuple[list[str], int]:
    """(texts that have some non-space content, how many were dropped)."""
    kept = [t for t in texts if isinstance(t, str) and t.strip()]
    return kept, len(texts) - len(kept)


def tokenize_texts(texts, tokenizer, batch_size=1000) -> list[list[int]]:
    ids = []
    for start in range(0, len(texts), batch_size):
        out = tokenizer(list(texts[start : start + batch_size]))  # tf.RaggedTensor on TF, lists elsewhere
        ids += out.to_list() if hasattr(out, "to_list") else [np.asarray(t).tolist() for t in out]
    return ids


def make_examples(token_lists, eos_id: int, max_length: int, pack: bool = False, start_id=None) -> list[list[int]]:
    """Token sequences of at most `max_length` (see module docstring); `start_id` None: no start token."""
    if max_length < 2:
        raise KerastuneError(f"max_length must be at least 2 tokens, got {max_length}")
    start = [] if start_id is None else [int(start_id)]
    if not pack:
        return [(start + ids + [eos_id])[:max_length] for ids in token_lists]
    stream = [t for ids in token_lists for t in start + ids + [eos_id]]
    blocks = [stream[i : i + max_length] for i in range(0, len(stream), max_length)]
    return [b for b in blocks if len(b) >= 2]


def _shift(ids, mask, loss_mask, multiple):
    """(x, y, sample_weight) from padded sequences; x's length rounded up to `multiple`."""
    length = tf.shape(ids)[1] - 1
    extra = (multiple - length % multiple) % multiple
    ids, mask, loss_mask = (tf.pad(t, [[0, 0], [0, extra]]) for t in (ids, mask, loss_mask))
    # An input position is real when its label is: a row's last token has nothing to predict.
    x = {"token_ids": ids[:, :-1], "padding_mask": mask[:, 1:]}
    return x, ids[:, 1:], tf.cast(loss_mask[:, 1:], tf.float32)


def causal_lm_dataset(examples, batch_size: int, max_length: int, shuffle=True, seed=0, pad_to_multiple_of=PAD_MULTIPLE,
                      static_shapes=False, loss_masks=None):
    """A batched, bucketed, prefetched `tf.data.Dataset` of (x, y, sample_weight) that knows its number
    of batches (`cardinality`).

    `static_shapes` pads to the bucket edges and drops ragged batches, so XLA / TPUs see a few fixed shapes.
    `loss_masks`: per example, 1 where the token counts as a label (default: every token).
    """
    if not examples:
        raise KerastuneError("no causal-LM examples to batch (every text was empty?)")
    ragged = tf.ragged.constant(examples, dtype=tf.int32)
    if loss_masks is None:
        ds = rows_each_epoch(ragged, seed, shuffle).map(lambda ids: (ids, tf.ones_like(ids), tf.ones_like(ids)))
    else:
        masks = tf.ragged.constant(loss_masks, dtype=tf.int32)
        ds = rows_each_epoch((ragged, masks), seed, shuffle).map(lambda ids, m: (ids, tf.ones_like(ids), m))
    edges = bucket_boundaries(max_length)
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda ids, mask, loss_mask: tf.shape(ids)[0],
        bucket_boundaries=edges,
        bucket_batch_sizes=[batch_size] * (len(edges) + 1),
        padded_shapes=([None], [None], [None]),
        padding_values=(0, 0, 0),
        pad_to_bucket_boundary=static_shapes,
        drop_remainder=static_shapes,
    )
    ds = ds.map(lambda ids, mask, loss_mask: _shift(ids, mask, loss_mask, pad_to_multiple_of),
                num_parallel_calls=tf.data.AUTOTUNE)
    batches = count_bucketed_batches([len(e) for e in examples], batch_size, max_length, static_shapes)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)
