"""Packing: every example lands in one row whole; packed, an example gets the same logits as alone (attention and
labels stay inside it); families that cannot pack are refused in one line."""

import random

import numpy as np
import pytest
from keras import ops

import kerastune
from kerastune.data.packing import pack, packed_dataset
from kerastune.errors import KerastuneError
from kerastune.models.causal_training import CausalLMForTraining, check_packing, packed_logits

TEXTS = ["Happy to help! The mug costs 12 euros.", "Can I return the cap?", "The backpack is made of nylon."] * 20


def random_examples(count, seed=0, longest=30):
    rng = random.Random(seed)
    examples = [[rng.randrange(3, 90) for _ in range(rng.randrange(2, longest))] for _ in range(count)]
    masks = [[rng.randrange(2) for _ in e] for e in examples]
    return examples, masks


def test_best_fit_packing_keeps_every_example_whole():
    examples, masks = random_examples(200)
    rows, row_masks, segments = pack(examples, masks, 64)
    assert all(len(r) <= 64 for r in rows)
    assert sum(map(len, rows)) == sum(map(len, examples))
    assert len(rows) <= -(-sum(map(len, examples)) // 64) + 2  # nearly full rows
    pieces = []
    for ids, mask, segment in zip(rows, row_masks, segments):
        assert segment == sorted(segment) and segment[0] == 1
        for s in set(segment):
            at = [i for i, v in enumerate(segment) if v == s]
            assert at == list(range(at[0], at[-1] + 1))
            pieces.append((tuple(ids[at[0]: at[-1] + 1]), tuple(mask[at[0]: at[-1] + 1])))
    assert sorted(pieces) == sorted((tuple(e), tuple(m)) for e, m in zip(examples, masks))
    with pytest.raises(KerastuneError, match="does not fit a packed row of 8"):
        pack([[1] * 9], [[1] * 9], 8)


def test_labels_never_cross_examples():
    """Packed longest first: [10 11 12 13 | 5 6 7 | 8 9]. A label counts when its loss mask is 1 and it belongs to
    the same example as its input: never the first token of the next example."""
    rows, row_masks, segments = pack([[5, 6, 7], [8, 9], [10, 11, 12, 13]], [[1, 1, 1], [0, 1], [1, 1, 1, 1]], 16)
    assert rows == [[10, 11, 12, 13, 5, 6, 7, 8, 9]] and segments == [[1, 1, 1, 1, 2, 2, 2, 3, 3]]
    x, y, weight = next(iter(packed_dataset(rows, row_masks, segments, batch_size=4, max_length=16, shuffle=False)))
    assert x["token_ids"].shape == (1, 8)
    np.testing.assert_array_equal(np.asarray(x["token_ids"])[0], [10, 11, 12, 13, 5, 6, 7, 8])
    np.testing.assert_array_equal(np.asarray(y)[0], [11, 12, 13, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(np.asarray(weight)[0], [1, 1, 1, 0, 1, 1, 0, 1])


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen"])
def test_packed_logits_equal_each_example_alone(name):
    model = kerastune.load_model(name, texts=TEXTS, vocab_size=400)
    examples, masks = random_examples(12, seed=3, longest=20)
    examples = [[t % int(model.backbone.vocabulary_size) for t in e] for e in examples]
    rows, _, segments = pack(examples, masks, 48)
    width = max(map(len, rows))
    ids = np.zeros((len(rows), width), "int32")
    seg = np.zeros((len(rows), width), "int32")
    for i, (r, s) in enumerate(zip(rows, segments)):
        ids[i, : len(r)], seg[i, : len(s)] = r, s
    packed = np.asarray(ops.convert_to_numpy(packed_logits(model, ops.convert_to_tensor(ids),
                                                           ops.convert_to_tensor(seg))))
    checked = 0
    for i, (r, s) in enumerate(zip(rows, segments)):
        for segment in set(s):
            at = [j for j, v in enumerate(s) if v == segment]
            alone = np.asarray(ops.convert_to_numpy(model({"token_ids": np.asarray([r[at[0]: at[-1] + 1]], "int32"),
                                                           "padding_mask": np.ones((1, len(at)), "int32")})))
            np.testing.assert_allclose(packed[i, at[0]: at[-1] + 1], alone[0], atol=1e-4, rtol=1e-4)
            checked += 1
    assert checked == len(examples)
    assert isinstance(CausalLMForTraining(model, packed=True), CausalLMForTraining)


@pytest.mark.parametrize("name", ["tiny-gemma", "tiny-gpt2"])
def test_families_that_cannot_pack_are_refused(name):
    model = kerastune.load_model(name, texts=TEXTS, vocab_size=400)
    with pytest.raises(KerastuneError, match="data.pack needs a rotary-position model"):
        check_packing(model)
