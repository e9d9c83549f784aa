"""Token and whole-word masking for masked-LM training, applied on the fly in tf.data.

`token_masking` is transformers' `DataCollatorForLanguageModeling`: each
non-special token is chosen with probability `rate` (0.15); a chosen token
becomes [MASK] 80% of the time, a random token 10%, and stays itself 10%.
`whole_word_masking` is the course's `whole_word_masking_data_collator`: each
word is chosen with probability `rate` (0.2) and every sub-token of a chosen
word becomes [MASK]. Either way labels are the original ids at chosen
positions and -100 everywhere else, so unchosen positions carry no loss
(the course version that forgot this reported a false perplexity).

Masks are drawn with stateless random ops from a per-example seed. Training
data takes seeds from (seed, epoch, position) (data/epochs.py), so every
epoch gets fresh masks and a run, resumed or not, is reproducible; evaluation data
uses a fixed seed, so perplexity before and after training is comparable.
"""

import tensorflow as tf

from kerastune.data.epochs import each_pass, epoch_variable, rows_each_epoch

IGNORE = -100


def token_masking(ids, special, seed, mask_id, vocab_size, rate=0.15):
    """(inputs, labels) for one chunk; `special` marks positions never masked."""
    shape = tf.shape(ids)
    chosen = tf.logical_and(tf.random.stateless_uniform(shape, seed) < rate, tf.logical_not(special))
    action = tf.random.stateless_uniform(shape, seed + [0, 1])
    random_ids = tf.random.stateless_uniform(shape, seed + [0, 2], minval=0, maxval=vocab_size, dtype=ids.dtype)
    inputs = tf.where(tf.logical_and(chosen, action < 0.8), tf.cast(mask_id, ids.dtype), ids)
    inputs = tf.where(tf.logical_and(chosen, tf.logical_and(action >= 0.8, action < 0.9)), random_ids, inputs)
    return inputs, tf.where(chosen, ids, tf.cast(IGNORE, ids.dtype))


def whole_word_masking(ids, word_ids, seed, mask_id, rate=0.2):
    """(inputs, labels) for one chunk: every sub-token of a chosen word is masked."""
    is_word = word_ids >= 0
    previous = tf.concat([[-2], word_ids[:-1]], axis=0)
    starts = tf.logical_and(is_word, tf.not_equal(word_ids, previous))
    word_index = tf.maximum(tf.cumsum(tf.cast(starts, tf.int32)) - 1, 0)  # 0, 0, 1, 2, 2, ... per position
    draws = tf.random.stateless_uniform(tf.shape(ids), seed)  # one draw per word (at most one word per position)
    chosen = tf.logical_and(is_word, tf.gather(draws, word_index) < rate)
    inputs = tf.where(chosen, tf.cast(mask_id, ids.dtype), ids)
    return inputs, tf.where(chosen, ids, tf.cast(IGNORE, ids.dtype))


PREDICTION_MULTIPLE = 8  # predicted positions per row are padded to a multiple of this (few shapes)


def masked_lm_dataset(chunks, tokenizer, batch_size, masking="token", seed=0, shuffle=True, fixed_masks=False,
                      drop_remainder=False):
    """Batched `(x, y, sample_weight)` for keras-hub's `DistilBertMaskedLM`, predicting the masked positions.

    `chunks` is a dataset with `input_ids` and `word_ids` (see `data/mlm.py`).
    `x["mask_positions"]` lists each row's masked positions, and `y` / `sample_weight`
    are the labels and 1s there: the vocabulary head (a 768 x 30,522 matmul for
    DistilBERT, a third of the model's FLOPs at 128 tokens) runs on the ~15% of
    positions that carry a loss, not on every position as transformers'
    `DistilBertForMaskedLM` does; the loss and its gradients are the same. A
    batch's rows are padded (weight 0) to its most masked row, rounded up to a
    multiple of 8. Chunks all have one length; `drop_remainder` fixes every shape
    instead (batch size, and every position listed: static shapes for XLA / TPU).
    """
    if masking not in ("token", "whole_word"):
        raise ValueError(f"masking must be 'token' or 'whole_word', got {masking!r}")
    input_ids = tf.constant(chunks["input_ids"], tf.int32)
    word_ids = tf.constant(chunks["word_ids"], tf.int32)
    length = int(input_ids.shape[1])
    specials = [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]
    mask_id, vocab_size = tokenizer.mask_token_id, tokenizer.vocabulary_size()
    ds = rows_each_epoch((input_ids, word_ids), seed, shuffle)
    # Example seeds [seed, k]: evaluation's fixed masks use k = position; training's, k = (epoch + 1) * n +
    # position, read when each pass starts, so every epoch masks afresh and a resumed run masks alike.
    n = len(chunks)

    def seeds_of_a_pass(_):
        first = tf.constant(0, tf.int64) if fixed_masks else (epoch_variable().read_value() + 1) * n
        return tf.data.Dataset.range(n).map(lambda i: tf.stack([tf.cast(seed, tf.int64), first + i]))

    seeds = each_pass(seeds_of_a_pass, n)

    def mask(pair, example_seed):
        ids, words = pair
        example_seed = tf.cast(example_seed, tf.int64)
        if masking == "token":
            special = tf.reduce_any(tf.equal(ids[:, None], tf.constant(specials, tf.int32)[None, :]), axis=1)
            inputs, labels = token_masking(ids, special, example_seed, mask_id, vocab_size)
        else:
            inputs, labels = whole_word_masking(ids, words, example_seed, mask_id)
        positions = tf.cast(tf.where(tf.not_equal(labels, IGNORE))[:, 0], tf.int32)
        x = {"token_ids": inputs, "padding_mask": tf.not_equal(ids, tokenizer.pad_token_id),
             "mask_positions": positions}
        return x, tf.gather(labels, positions), tf.ones_like(positions, tf.float32)

    ds = tf.data.Dataset.zip((ds, seeds)).map(mask, num_parallel_calls=tf.data.AUTOTUNE)
    predicted = length if drop_remainder else None
    ds = ds.padded_batch(
        batch_size, drop_remainder=drop_remainder,
        padded_shapes=({"token_ids": [length], "padding_mask": [length], "mask_positions": [predicted]},
                       [predicted], [predicted]),
    )
    if not drop_remainder:
        ds = ds.map(_pad_predictions)
    return ds.prefetch(tf.data.AUTOTUNE)


def _pad_predictions(x, labels, weights):
    """Pad the predicted positions to a multiple of PREDICTION_MULTIPLE (at least one multiple), weight 0."""
    count = tf.shape(labels)[1]
    width = tf.maximum(PREDICTION_MULTIPLE, -(-count // PREDICTION_MULTIPLE) * PREDICTION_MULTIPLE)
    pad = [[0, 0], [0, width - count]]
    x = dict(x, mask_positions=tf.pad(x["mask_positions"], pad))
    return x, tf.pad(labels, pad), tf.pad(weights, pad)


def dense_labels(x, labels, weights, length):
    """(labels, weights) laid out per token position (-100 / 0 where nothing is predicted): for reading
    a batch of `masked_lm_dataset` against its inputs."""
    positions = tf.cast(x["mask_positions"], tf.int32)
    rows = tf.broadcast_to(tf.range(tf.shape(positions)[0])[:, None], tf.shape(positions))
    where = tf.stack([rows, positions], axis=-1)[weights > 0]
    shape = [tf.shape(positions)[0], length]
    dense = tf.tensor_scatter_nd_update(tf.fill(shape, IGNORE), where, tf.cast(labels, tf.int32)[weights > 0])
    dense_weights = tf.tensor_scatter_nd_update(tf.zeros(shape), where, tf.ones_like(where[:, 0], tf.float32))
    return dense, dense_weights
