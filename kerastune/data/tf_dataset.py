"""`prepare_tf_dataset`: text pairs -> batched, length-bucketed seq2seq tensors.

Tokenization runs inside tf.data. Examples are shuffled (an order per seed
and epoch: data/epochs.py), grouped into buckets of similar source length and each batch
is padded to its own longest sequence (rounded up to a multiple of 8, which
bounds the number of shapes XLA compiles: data/tokens.py), not to a global maximum like the
seed's 400. `static_shapes=True` pads to the bucket boundary instead, so XLA
and TPUs see a handful of fixed shapes.

Each batch is `(x, y, sample_weight)` as keras-hub's `T5Seq2SeqLM` expects:
x holds encoder ids/mask and decoder ids/mask (the target shifted right by
the decoder start token, which for T5 is the pad id), y the target ids
ending in `</s>`, and sample_weight is 1 on real target tokens and 0 on
padding, so padding carries no loss.
"""

import tensorflow as tf

from kerastune.data.epochs import rows_each_epoch
from kerastune.data.tokens import (
    PAD_MULTIPLE,
    bucket_boundaries,
    count_bucketed_batches,
    pad_to_multiple,
    with_end_token_tf,
)


def tokenize_pairs(sources, targets, tokenizer, max_source_length, max_target_length, shuffle=False, seed=0):
    """An unbatched dataset of (source_ids, target_ids) int32 vectors (shuffled per epoch: data/epochs.py)."""
    end_id = int(tokenizer.end_token_id)
    ds = rows_each_epoch((tf.constant(list(sources), tf.string), tf.constant(list(targets), tf.string)), seed, shuffle)

    def tokenize(src, tgt):
        return (
            with_end_token_tf(tf.cast(tokenizer(src), tf.int32), max_source_length, end_id),
            with_end_token_tf(tf.cast(tokenizer(tgt), tf.int32), max_target_length, end_id),
        )

    return ds.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)


def to_model_inputs(src_ids, tgt_ids, pad_id=0):
    """Padded id matrices -> keras-hub's (x, y, sample_weight)."""
    src_mask = tf.cast(tf.not_equal(src_ids, pad_id), tf.int32)
    tgt_mask = tf.cast(tf.not_equal(tgt_ids, pad_id), tf.int32)
    start = tf.fill([tf.shape(tgt_ids)[0], 1], tf.constant(pad_id, tf.int32))
    decoder_ids = tf.concat([start, tgt_ids[:, :-1]], axis=1)
    x = {
        "encoder_token_ids": src_ids,
        "encoder_padding_mask": src_mask,
        "decoder_token_ids": decoder_ids,
        # The start token is the pad id but must be attended to: the decoder
        # input at step t is real exactly when the label at step t is.
        "decoder_padding_mask": tgt_mask,
    }
    return x, tgt_ids, tf.cast(tgt_mask, tf.float32)


def prepare_tf_dataset(
    sources,
    targets,
    tokenizer,
    batch_size: int,
    max_source_length: int = 512,
    max_target_length: int = 128,
    shuffle: bool = True,
    seed: int = 0,
    boundaries=None,
    static_shapes: bool = False,
    pad_to_multiple_of: int = PAD_MULTIPLE,
):
    """Batched, bucketed, prefetched seq2seq training data (see module docstring). The dataset knows its
    number of batches (`cardinality`), counted from the sources' token lengths."""
    ds = tokenize_pairs(sources, targets, tokenizer, max_source_length, max_target_length, shuffle, seed)
    lengths = [min(len(p), max_source_length - 1) + 1 for p in tokenizer(list(sources))] if len(sources) else []
    return batch_pairs(ds, batch_size, max_source_length, max_target_length, boundaries, static_shapes,
                       pad_to_multiple_of, source_lengths=lengths)


def batch_pairs(ds, batch_size, max_source_length, max_target_length, boundaries=None, static_shapes=False,
                pad_to_multiple_of=PAD_MULTIPLE, source_lengths=None):
    """Bucket, pad and batch a dataset of (source_ids, target_ids) pairs (already tokenized).
    With `source_lengths` the result knows its number of batches (checked by tf.data as it runs)."""
    edges = bucket_boundaries(max_source_length, boundaries)
    padded_shapes = ([None], [max_target_length] if static_shapes else [None])
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda src, tgt: tf.shape(src)[0],
        bucket_boundaries=edges,
        bucket_batch_sizes=[batch_size] * (len(edges) + 1),
        padded_shapes=padded_shapes,
        padding_values=(0, 0),
        pad_to_bucket_boundary=static_shapes,
        drop_remainder=static_shapes,
    )
    if pad_to_multiple_of > 1 and not static_shapes:
        ds = ds.map(lambda s, t: (pad_to_multiple(s, pad_to_multiple_of), pad_to_multiple(t, pad_to_multiple_of)))
    ds = ds.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    if source_lengths is not None:
        batches = count_bucketed_batches(source_lengths, batch_size, max_source_length, static_shapes, boundaries)
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    return ds.prefetch(tf.data.AUTOTUNE)
