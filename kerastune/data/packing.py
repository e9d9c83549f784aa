"""Packing: short examples joined into rows of up to `max_length` tokens, so a batch holds no padding to speak of.

Examples are placed longest first, each into the row with the least room
that still fits it (best-fit decreasing, as TRL's default packing), and
keep their own loss masks. Each row carries segment ids (1, 2, ... per
example, 0 for padding): the model attends only within a segment
(models/causal_training.py), and a label counts only when it belongs to the same
example as its input, so no example sees or predicts another.
"""

import bisect

import tensorflow as tf

from kerastune.data.epochs import rows_each_epoch
from kerastune.data.tokens import PAD_MULTIPLE
from kerastune.errors import KerastuneError


def pack(examples, loss_masks, max_length: int) -> tuple[list, list, list]:
    """(row ids, row loss masks, row segment ids): examples (each at most max_length) packed best-fit decreasing."""
    rows = []  # [ids, loss mask, segments]
    free = []  # sorted (room left, row index)
    for i in sorted(range(len(examples)), key=lambda i: (-len(examples[i]), i)):
        ids, mask = examples[i], loss_masks[i]
        if len(ids) > max_length:
            raise KerastuneError(f"an example of {len(ids)} tokens does not fit a packed row of {max_length}")
        at = bisect.bisect_left(free, (len(ids), -1))
        if at == len(free):
            rows.append([[], [], []])
            row, room = len(rows) - 1, max_length
        else:
            room, row = free.pop(at)
        target = rows[row]
        segment = (target[2][-1] + 1) if target[2] else 1
        target[0] += ids
        target[1] += mask
        target[2] += [segment] * len(ids)
        bisect.insort(free, (room - len(ids), row))
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def _shift_packed(ids, loss_mask, segments, multiple):
    """(x, y, sample_weight) of packed rows: a label counts when it is in the loss mask and in its input's segment."""
    length = tf.shape(ids)[1] - 1
    extra = (multiple - length % multiple) % multiple
    ids, loss_mask, segments = (tf.pad(t, [[0, 0], [0, extra]]) for t in (ids, loss_mask, segments))
    same_example = tf.logical_and(tf.equal(segments[:, 1:], segments[:, :-1]), segments[:, 1:] > 0)
    weight = tf.cast(loss_mask[:, 1:], tf.float32) * tf.cast(same_example, tf.float32)
    x = {"token_ids": ids[:, :-1], "padding_mask": tf.cast(segments[:, :-1] > 0, tf.int32),
         "segment_ids": segments[:, :-1]}
    return x, ids[:, 1:], weight


def packed_dataset(rows, loss_masks, segments, batch_size: int, max_length: int, shuffle=True, seed=0,
                   static_shapes=False, pad_to_multiple_of=PAD_MULTIPLE):
    """Batches of packed rows, shuffled per epoch, padded to the longest row (a multiple of 8), or with
    `static_shapes` to max_length with ragged batches dropped; the dataset knows its number of batches."""
    if not rows:
        raise KerastuneError("no packed rows to batch")
    tensors = tuple(tf.ragged.constant(t, dtype=tf.int32) for t in (rows, loss_masks, segments))
    width = max_length if static_shapes else None
    ds = rows_each_epoch(tensors, seed, shuffle).padded_batch(batch_size, padded_shapes=([width],) * 3,
                                                              drop_remainder=static_shapes)
    ds = ds.map(lambda ids, mask, seg: _shift_packed(ids, mask, seg, pad_to_multiple_of),
                num_parallel_calls=tf.data.AUTOTUNE)
    batches = len(rows) // batch_size if static_shapes else -(-len(rows) // batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)
