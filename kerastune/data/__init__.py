"""Data: loading, prompts, splits and tf.data pipelines."""

from kerastune.data.load import (
    add_validation_split,
    held_out_split,
    limit_rows,
    load_splits,
    require_columns,
    require_rows,
    split_off,
)
from kerastune.data.prompts import label_names_to_text, render
from kerastune.data.tf_dataset import prepare_tf_dataset

__all__ = [
    "add_validation_split",
    "held_out_split",
    "label_names_to_text",
    "limit_rows",
    "load_splits",
    "prepare_tf_dataset",
    "render",
    "require_columns",
    "require_rows",
    "split_off",
]
