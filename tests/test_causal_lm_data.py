"""Causal-LM examples: empty rows dropped, end tokens, packing, shifted labels with padding ignored."""

import numpy as np
import pytest

from kerastune.data.causal_lm import causal_lm_dataset, drop_empty, make_examples
from kerastune.errors import KerastuneError

EOS = 0


def test_empty_rows_are_dropped_and_counted():
    kept, dropped = drop_empty(["Una taza.", "", "   ", None, "Una gorra\n"])
    assert kept == ["Una taza.", "Una gorra\n"] and dropped == 3


def test_each_text_ends_with_the_end_token_and_is_cut_at_max_length():
    assert make_examples([[5, 6], [7, 8, 9, 10, 11]], EOS, max_length=4) == [[5, 6, EOS], [7, 8, 9, 10]]


def test_packing_joins_texts_with_the_end_token_into_full_blocks():
    blocks = make_examples([[5, 6], [7, 8, 9], [10]], EOS, max_length=4, pack=True)
    assert blocks == [[5, 6, EOS, 7], [8, 9, EOS, 10]]  # the last block, [EOS] alone, has no label: dropped
    assert make_examples([[5, 6], [7]], EOS, max_length=3, pack=True) == [[5, 6, EOS], [7, EOS]]
    with pytest.raises(KerastuneError, match="max_length"):
        make_examples([[5]], EOS, max_length=1)


def test_batches_shift_labels_and_ignore_padding():
    examples = [[3, 4, 5, EOS], [6, 7, EOS], [8, 9, 10, 11, 12, 13, EOS], [14, EOS]]
    ds = causal_lm_dataset(examples, batch_size=4, max_length=64, shuffle=False)
    batches = list(ds.as_numpy_iterator())
    seen = []
    for x, y, weight in batches:
        ids, mask = x["token_ids"], x["padding_mask"]
        assert ids.shape == y.shape == weight.shape and ids.shape[1] % 8 == 0 and ids.shape[1] < 64
        for row in range(len(ids)):
            length = int(weight[row].sum())  # labels that count: the example minus its first token
            assert mask[row, :length].all() and not mask[row, length:].any()
            assert (weight[row, length:] == 0).all()
            example = list(ids[row, :length]) + [y[row, length - 1]]
            assert list(y[row, :length]) == example[1:]  # y is x shifted by one
            seen.append(example)
    assert sorted(seen) == sorted(examples)


def test_batches_pad_to_the_longest_in_the_batch_not_to_max_length():
    short = [[1, 2, 3, EOS]] * 4
    long = [list(range(1, 40)) + [EOS]] * 4
    ds = causal_lm_dataset(short + long, batch_size=4, max_length=512, shuffle=False)
    widths = sorted(x["token_ids"].shape[1] for x, _, _ in ds.as_numpy_iterator())
    assert widths == [8, 40]


@pytest.mark.parametrize("static_shapes", [False, True])
def test_the_dataset_knows_its_number_of_batches(static_shapes):
    """More batches than ceil(rows / batch): each length bucket ends with its own short batch."""
    rng = np.random.default_rng(0)
    examples = [list(range(1, int(n) + 1)) for n in rng.integers(2, 200, size=90)]
    ds = causal_lm_dataset(examples, batch_size=8, max_length=256, seed=1, static_shapes=static_shapes)
    assert int(ds.cardinality()) == sum(1 for _ in ds)
    if not static_shapes:
        assert int(ds.cardinality()) > -(-len(examples) // 8)
