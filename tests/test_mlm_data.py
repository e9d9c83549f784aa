"""Masked-LM data: chunking keeps word ids and drops the remainder; masking statistics hold."""

import datasets
import numpy as np
import pytest
from make_reviews_sample import make_rows

from kerastune.data.masking import dense_labels, masked_lm_dataset
from kerastune.data.mlm import tokenize_and_chunk
from kerastune.models.distilbert.tiny import tiny_distilbert


@pytest.fixture(scope="module")
def tokenizer():
    rows = make_rows(300, seed=1)
    return tiny_distilbert([r["text"] for r in rows], vocab_size=150).preprocessor.tokenizer


@pytest.fixture(scope="module")
def chunks(tokenizer):
    split = datasets.Dataset.from_list(make_rows(600, seed=2))
    return tokenize_and_chunk(split, tokenizer, "text", chunk_size=32, batch_size=100)


def test_chunks_are_full_length_with_word_ids(tokenizer, chunks):
    assert len(chunks) > 100
    ids, words = np.array(chunks["input_ids"]), np.array(chunks["word_ids"])
    assert ids.shape == words.shape and ids.shape[1] == 32
    special = np.isin(ids, [tokenizer.cls_token_id, tokenizer.sep_token_id])
    assert (words[special] == -1).all() and (words[~special] >= 0).all()
    # Word ids never decrease inside a chunk, so a word's sub-tokens are contiguous.
    real = np.where(words >= 0, words, 0)
    assert (np.diff(np.maximum.accumulate(real, axis=1), axis=1) >= 0).all()
    multi = [(row, w) for row in range(len(words)) for w in set(words[row]) if (words[row] == w).sum() > 1 and w >= 0]
    assert multi, "the vocabulary is too large for any word to split into sub-tokens"


def test_remainder_is_dropped(tokenizer):
    split = datasets.Dataset.from_list([{"text": "a b c"}] * 10)  # 5 tokens each, 50 per batch
    chunked = tokenize_and_chunk(split, tokenizer, "text", chunk_size=16, batch_size=10)
    assert len(chunked) == 3  # 48 of 50 tokens


def batches(ds, epochs=1):
    """Passes over `ds` as `fit` makes them: each epoch's number set first (masks are drawn per epoch)."""
    from kerastune.data.epochs import epoch_variable

    out = []
    for epoch in range(epochs):
        epoch_variable().assign(epoch)
        rows = []
        for x, y, w in ds:
            labels, weights = dense_labels(x, y, w, x["token_ids"].shape[1])
            rows.append((np.asarray(x["token_ids"]), np.asarray(labels), np.asarray(weights)))
        out.append(rows)
    return out


def test_token_masking_statistics(tokenizer, chunks):
    ds = masked_lm_dataset(chunks, tokenizer, batch_size=64, masking="token", seed=3)
    epoch1, epoch2 = batches(ds, epochs=2)
    ids = np.array(chunks["input_ids"])
    special = np.isin(ids, [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    inputs = np.concatenate([b[0] for b in epoch1])
    weights = np.concatenate([b[2] for b in epoch1])
    labels = np.concatenate([b[1] for b in epoch1])
    chosen = weights > 0
    rate = chosen.sum() / (~special).sum()
    assert abs(rate - 0.15) < 0.01, rate
    # Chosen positions: 80% [MASK], 10% random, 10% unchanged; labels are the originals there.
    as_mask = (inputs[chosen] == tokenizer.mask_token_id).mean()
    unchanged = (inputs[chosen] == labels[chosen]).mean()
    assert abs(as_mask - 0.8) < 0.03 and 0.08 < unchanged < 0.14, (as_mask, unchanged)
    assert (inputs[~chosen] != tokenizer.mask_token_id).all()  # unmasked positions carry no loss
    # Special tokens are never chosen (a random replacement may happen to be one, as in transformers).
    assert not np.isin(labels[chosen], [tokenizer.cls_token_id, tokenizer.sep_token_id]).any()
    # Fresh masks every epoch, the same masks for the same seed.
    assert not np.array_equal(weights, np.concatenate([b[2] for b in epoch2]))
    again = batches(masked_lm_dataset(chunks, tokenizer, batch_size=64, masking="token", seed=3))[0]
    np.testing.assert_array_equal(np.concatenate([b[2] for b in again]), weights)


def test_whole_word_masking_never_splits_a_word(tokenizer, chunks):
    ds = masked_lm_dataset(chunks, tokenizer, batch_size=64, masking="whole_word", seed=4, shuffle=False)
    (epoch,) = batches(ds)
    weights = np.concatenate([b[2] for b in epoch]) > 0
    inputs = np.concatenate([b[0] for b in epoch])
    words = np.array(chunks["word_ids"])
    ids = np.array(chunks["input_ids"])
    word_total = word_chosen = 0
    for row in range(len(words)):
        for w in np.unique(words[row][words[row] >= 0]):
            where = words[row] == w
            assert weights[row][where].all() or not weights[row][where].any(), "a word was split"
            word_total += 1
            word_chosen += bool(weights[row][where].any())
    assert abs(word_chosen / word_total - 0.2) < 0.02, word_chosen / word_total
    assert (inputs[weights] == tokenizer.mask_token_id).all()
    np.testing.assert_array_equal(inputs[~weights], ids[~weights])
    assert not weights[words < 0].any()  # [CLS] / [SEP] never masked


def test_fixed_masks_repeat_for_evaluation(tokenizer, chunks):
    ds = masked_lm_dataset(chunks, tokenizer, batch_size=64, seed=5, shuffle=False, fixed_masks=True)
    first, second = batches(ds, epochs=2)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[0], b[0])


def test_the_dataset_knows_its_number_of_batches(tokenizer, chunks):
    """Keras shows a progress bar with a total (not `1/Unknown`) and counts the schedule's steps exactly."""
    ds = masked_lm_dataset(chunks, tokenizer, batch_size=64, masking="whole_word", seed=3)
    assert int(ds.cardinality()) == -(-len(chunks) // 64) == len(batches(ds)[0])


def test_the_head_runs_on_masked_positions_only_with_the_same_loss(tokenizer, chunks):
    """Predicting the masked positions alone gives the loss of predicting every position with weight 0
    elsewhere (transformers' way), with a fraction of the vocabulary head's work."""
    import keras

    from kerastune.training.losses import token_loss

    rows = make_rows(300, seed=1)
    model = tiny_distilbert([r["text"] for r in rows], vocab_size=150)  # the tokenizer fixture's model
    ds = masked_lm_dataset(chunks, tokenizer, batch_size=16, seed=7, shuffle=False)
    x, labels, weights = next(iter(ds))
    length = x["token_ids"].shape[1]
    assert labels.shape[1] % 8 == 0 and labels.shape[1] < length // 2  # ~15% of 32 positions, padded to 8s
    loss = token_loss()
    few = loss(labels, model(x), sample_weight=weights)
    dense, dense_weights = dense_labels(x, labels, weights, length)
    x = {name: np.asarray(value) for name, value in x.items()}
    everywhere = dict(x, mask_positions=np.tile(np.arange(length), (x["token_ids"].shape[0], 1)))
    full = loss(np.maximum(dense, 0), model(everywhere), sample_weight=dense_weights)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(few), keras.ops.convert_to_numpy(full), rtol=1e-5)


def test_static_shapes_list_every_position(tokenizer, chunks):
    ds = masked_lm_dataset(chunks, tokenizer, batch_size=16, seed=7, drop_remainder=True)
    x, labels, weights = next(iter(ds))
    assert ds.element_spec[1].shape.as_list() == [16, 32] == list(labels.shape)
    assert ds.element_spec[0]["mask_positions"].shape.as_list() == [16, 32]
