"""Data: local files and folders, validation carving, checks, and the bucketed tf.data pipeline."""

import csv

import numpy as np
import pytest

from kerastune.data import add_validation_split, load_splits, prepare_tf_dataset, require_columns, require_rows
from kerastune.data.prompts import label_names_to_text
from kerastune.errors import KerastuneError


def write_csv(path, rows, fields=("text", "label")):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_folder_with_train_and_test_is_read_as_those_splits(tmp_path, news_rows):
    write_csv(tmp_path / "train.csv", news_rows[:50])
    write_csv(tmp_path / "test.csv", news_rows[50:60])
    splits = load_splits(str(tmp_path))
    assert sorted(splits) == ["test", "train"] and len(splits["train"]) == 50 and len(splits["test"]) == 10
    splits = add_validation_split(splits, 8, seed=0)
    assert len(splits["train"]) == 42 and len(splits["validation"]) == 8


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_single_files_of_each_type(tmp_path, news_rows, suffix):
    import datasets

    path = tmp_path / f"rows.{suffix}"
    ds = datasets.Dataset.from_list(news_rows[:20])
    {"csv": ds.to_csv, "jsonl": ds.to_json, "parquet": ds.to_parquet}[suffix](str(path))
    assert len(load_splits(str(path))["train"]) == 20


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(KerastuneError, match="does not exist"):
        load_splits(str(tmp_path / "missing.csv"))
    write_csv(tmp_path / "train.csv", [{"body": "x", "label": 0}], fields=("body", "label"))
    splits = load_splits(str(tmp_path / "train.csv"))
    with pytest.raises(KerastuneError, match="no column 'text'.*body"):
        require_columns(splits["train"], ["text", "label"], "train")
    with pytest.raises(KerastuneError, match="empty"):
        require_rows(splits["train"].select([]), "train")
    with pytest.raises(KerastuneError, match="not in the label set"):
        label_names_to_text(7, ["World", "Sports"])
    with pytest.raises(KerastuneError, match="not in the label set"):
        label_names_to_text("Weather", ["World", "Sports"])
    assert label_names_to_text("1", ["World", "Sports"]) == "Sports"
    assert label_names_to_text("World", ["World", "Sports"]) == "World"


@pytest.fixture(scope="module")
def tokenizer(spiece_proto):
    import keras_hub

    return keras_hub.models.T5Tokenizer(proto=spiece_proto)


def batches(ds):
    return [(({k: np.asarray(v) for k, v in x.items()}), np.asarray(y), np.asarray(w)) for x, y, w in ds]


def test_batches_are_padded_per_bucket_not_to_the_maximum(tokenizer, news_rows):
    sources = [r["text"] for r in news_rows[:200]] + ["short"] * 40
    targets = ["World"] * len(sources)
    ds = prepare_tf_dataset(sources, targets, tokenizer, batch_size=16, max_source_length=400, seed=1)
    widths = {x["encoder_token_ids"].shape[1] for x, _, _ in batches(ds)}
    assert max(widths) < 400 and min(widths) <= 8 and len(widths) > 1
    assert all(w % 8 == 0 for w in widths)
    assert sum(y.shape[0] for _, y, _ in batches(ds)) == len(sources)


def test_decoder_inputs_and_loss_weights(tokenizer):
    ds = prepare_tf_dataset(["a b c", "d"], ["Sports", "Sci/Tech and more"], tokenizer, batch_size=2, shuffle=False)
    (x, y, w), = batches(ds)
    for row in range(2):
        real = int(w[row].sum())
        assert y[row, real - 1] == tokenizer.end_token_id and (y[row, real:] == 0).all()
        assert x["decoder_token_ids"][row, 0] == 0  # T5's decoder start token is the pad id
        np.testing.assert_array_equal(x["decoder_token_ids"][row, 1:real], y[row, : real - 1])
        np.testing.assert_array_equal(x["decoder_padding_mask"][row], w[row])  # the start token is attended
        assert x["encoder_token_ids"][row, x["encoder_padding_mask"][row].sum() - 1] == tokenizer.end_token_id


def test_shuffle_is_seeded_and_drawn_per_epoch_number(tokenizer, news_rows):
    """An epoch's order depends on the seed and the epoch number (set by `fit`), not on how many passes
    came before: a resumed run sees the orders an uninterrupted one saw."""
    from kerastune.data.epochs import epoch_variable

    sources = [r["text"] for r in news_rows[:64]]

    def first_ids(seed, epochs):
        ds = prepare_tf_dataset(sources, ["x"] * 64, tokenizer, batch_size=8, max_source_length=64, seed=seed)
        passes = []
        for epoch in epochs:
            epoch_variable().assign(epoch)
            passes.append([tuple(b[0]["encoder_token_ids"][0][:6]) for b in batches(ds)])
        return passes

    epoch0, epoch1 = first_ids(3, [0, 1])
    assert epoch0 != epoch1
    assert first_ids(3, [1]) == [epoch1] and first_ids(3, [0]) == [epoch0]
    assert first_ids(4, [0]) != [epoch0]


def test_static_shapes_give_fixed_widths(tokenizer, news_rows):
    sources = [r["text"] for r in news_rows[:100]]
    ds = prepare_tf_dataset(sources, ["World"] * 100, tokenizer, batch_size=8, max_source_length=64,
                            max_target_length=8, static_shapes=True)
    shapes = {(x["encoder_token_ids"].shape, y.shape) for x, y, _ in batches(ds)}
    assert all(s[0][0] == 8 and s[0][1] in (15, 31, 47, 63, 64) and s[1] == (8, 8) for s in shapes), shapes


def test_remote_dataset_folder_is_copied_and_loaded(tmp_path):
    """`gs://` goes through tf.io.gfile; TensorFlow's in-memory `ram://` filesystem stands in for it here."""
    import tensorflow as tf

    tf.io.gfile.makedirs("ram://bucket/news")
    for split, n in (("train", 5), ("test", 2)):
        with tf.io.gfile.GFile(f"ram://bucket/news/{split}.csv", "w") as f:
            f.write("text,label\n" + "".join(f"item {i},{i % 4}\n" for i in range(n)))
    splits = load_splits("ram://bucket/news")
    assert {name: len(split) for name, split in splits.items()} == {"train": 5, "test": 2}
    assert len(load_splits("ram://bucket/news/test.csv")["train"]) == 2
    with pytest.raises(KerastuneError, match="does not exist: ram://bucket/nothing"):
        load_splits("ram://bucket/nothing")


@pytest.mark.parametrize("static_shapes", [False, True])
def test_the_dataset_knows_its_number_of_batches_without_a_pass(tokenizer, news_rows, static_shapes):
    """Counted from the sources' token lengths (data/tokens.py); tf.data checks the count as it runs."""
    sources = [r["text"] for r in news_rows[:150]] + ["short"] * 21 + [" ".join(["word"] * 300)] * 5
    ds = prepare_tf_dataset(sources, ["World"] * len(sources), tokenizer, batch_size=8, max_source_length=96,
                            max_target_length=8, static_shapes=static_shapes)
    assert int(ds.cardinality()) == sum(1 for _ in ds) == sum(1 for _ in ds)  # two epochs, reshuffled
    if not static_shapes:  # each length bucket ends with its own short batch
        assert int(ds.cardinality()) > -(-len(sources) // 8)
