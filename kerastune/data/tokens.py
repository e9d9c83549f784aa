"""Token rules shared by training data, generation, export and PPO: one definition each.

- A seq2seq source or target is its tokens truncated to `max_length - 1`,
  then the end token (`</s>`), as transformers' T5 tokenizer with
  `truncation=True` does: `with_end_token` (Python lists) and
  `with_end_token_tf` (TensorFlow graphs: tf.data and the SavedModel).
- A GPT-2 prompt is its last tokens, leaving room for the new ones; an
  empty prompt is `<|endoftext|>` (transformers' BOS): `causal_prompt` and
  `causal_prompt_tf`.
- Generated ids stop at the first end token: `until_end`.
- An epoch of length-bucketed batches has, per bucket, ceil(examples /
  batch size) batches (floor when ragged batches are dropped), in any order:
  `count_bucketed_batches` counts them from the lengths, without a pass.
- A batch is padded to the longest row in it, rounded up to a multiple of
  `PAD_MULTIPLE` (`pad_to_multiple`), or with static shapes to its length
  bucket's edge; generation pads a batch to its bucket's edge
  (`bucket_width`), so a whole run compiles only a few shapes.
"""

import bisect
import collections

import numpy as np
import tensorflow as tf

DEFAULT_BOUNDARIES = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
PAD_MULTIPLE = 8


def with_end_token(ids, max_length: int, end_id: int) -> list[int]:
    return [int(t) for t in ids][: max_length - 1] + [int(end_id)]


def with_end_token_tf(ids, max_length: int, end_id: int):
    """The same for a 1-D tensor (one text) or a RaggedTensor batch (a row per text)."""
    if isinstance(ids, tf.RaggedTensor):
        ends = tf.fill([ids.nrows(), 1], tf.constant(end_id, ids.dtype))
        return tf.concat([ids[:, : max_length - 1], tf.RaggedTensor.from_tensor(ends)], axis=1)
    return tf.concat([ids[: max_length - 1], tf.constant([end_id], ids.dtype)], axis=0)


def until_end(ids, end_id: int) -> list[int]:
    """Generated ids up to and including the first end token (all of them if none came)."""
    ids = [int(t) for t in ids]
    return ids[: ids.index(end_id) + 1] if end_id in ids else ids


def causal_prompt(ids, room: int, end_id: int, start_id=None) -> list[int]:
    """A prompt's last `room` ids, after the start token when the model has one; with none, an empty
    prompt is the end token (GPT-2's way to start a text)."""
    kept = [int(t) for t in ids][-room:]
    if start_id is not None:
        return [int(start_id)] + kept
    return kept or [int(end_id)]


def causal_prompt_tf(pieces, room: int, end_id: int, start_id=None):
    """The same for a RaggedTensor batch (a row per prompt)."""
    pieces = pieces[:, -room:]
    if start_id is not None:
        rows = pieces.nrows()
        starts = tf.fill([rows], tf.constant(start_id, pieces.dtype))
        return tf.concat([tf.RaggedTensor.from_row_lengths(starts, tf.ones([rows], tf.int64)), pieces], axis=1)
    empty = tf.cast(tf.equal(pieces.row_lengths(), 0), tf.int64)
    starts = tf.fill([tf.reduce_sum(empty)], tf.constant(end_id, pieces.dtype))
    return tf.concat([pieces, tf.RaggedTensor.from_row_lengths(starts, empty)], axis=1)


def bucket_boundaries(max_length: int, boundaries=None) -> list[int]:
    """Upper bucket edges (exclusive) up to and including `max_length + 1`."""
    edges = [b for b in (boundaries or DEFAULT_BOUNDARIES) if b <= max_length]
    return sorted(set(edges + [max_length + 1]))


def bucket_width(longest: int, max_length: int) -> int:
    """The padded width for a batch whose longest row has `longest` tokens: the next bucket edge
    (less one), so a whole run compiles only a few shapes."""
    return next(e - 1 for e in bucket_boundaries(max_length) if e > longest)


def pad_to_multiple(ids, multiple=PAD_MULTIPLE, pad_id=0):
    """Pad a batch's length axis up to a multiple, bounding how many shapes XLA compiles."""
    length = tf.shape(ids)[1]
    extra = (multiple - length % multiple) % multiple
    return tf.pad(ids, [[0, 0], [0, extra]], constant_values=pad_id)


def count_bucketed_batches(lengths, batch_size: int, max_length: int, drop_remainder=False, boundaries=None) -> int:
    """Batches per epoch of `bucket_by_sequence_length` over examples of these lengths (edges as above)."""
    edges = bucket_boundaries(max_length, boundaries)
    per_bucket = collections.Counter(bisect.bisect_right(edges, int(n)) for n in lengths)
    if drop_remainder:
        return sum(n // batch_size for n in per_bucket.values())
    return sum(-(-n // batch_size) for n in per_bucket.values())


def to_str(value) -> str:
    """A detokenizer's output (str, bytes or a scalar tensor) as str; a byte-level BPE piece may be
    partial UTF-8, shown as U+FFFD as transformers does."""
    value = np.asarray(value).item() if not isinstance(value, (str, bytes)) else value
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
