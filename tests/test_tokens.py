"""The token rules: the Python form (generation) and the TensorFlow form (tf.data, SavedModel) agree."""

import tensorflow as tf

from kerastune.data.tokens import bucket_width, causal_prompt, causal_prompt_tf, with_end_token, with_end_token_tf

ROWS = [[1, 2, 3, 4, 5], [], [6], [7, 8]]


def test_truncate_then_end_token_in_both_forms():
    expected = [[1, 2, 99], [99], [6, 99], [7, 8, 99]]
    assert [with_end_token(row, 3, 99) for row in ROWS] == expected
    assert with_end_token_tf(tf.ragged.constant(ROWS, dtype=tf.int32), 3, 99).to_list() == expected
    assert with_end_token_tf(tf.constant(ROWS[0]), 3, 99).numpy().tolist() == expected[0]


def test_a_gpt2_prompt_keeps_its_last_tokens_and_an_empty_one_starts_from_the_end_token():
    expected = [[4, 5], [99], [6], [7, 8]]
    assert [causal_prompt(row, 2, 99) for row in ROWS] == expected
    assert causal_prompt_tf(tf.ragged.constant(ROWS, dtype=tf.int32), 2, 99).to_list() == expected


def test_generation_pads_to_the_next_bucket_edge():
    assert [bucket_width(n, 128) for n in (1, 15, 16, 100, 128)] == [15, 15, 31, 127, 128]
