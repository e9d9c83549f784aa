"""Masked-LM data: tokenize keeping word ids, concatenate, cut into fixed-size chunks.

The seed's `tokenize_function` + `group_texts`, as a batched `datasets.map`:
each text becomes `[CLS] tokens [SEP]` with a word id per token (-1 for the
special tokens), the texts of a batch are concatenated and cut into
`chunk_size` pieces, and the remainder of each batch is dropped. Only one
batch is ever held as Python lists, so corpora larger than memory stream
through (datasets caches the result on disk).

Word ids are numbered across the batch, so two texts in one chunk never
share an id and whole-word masking can find word boundaries from ids alone.
"""

import re

import datasets
import numpy as np

# BERT's basic tokenizer splits on whitespace and around every punctuation character.
_WORDS = re.compile(r"\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    return _WORDS.findall(text)


def tokenize_and_chunk(split: datasets.Dataset, tokenizer, text_column: str, chunk_size: int = 128,
                       batch_size: int = 1000) -> datasets.Dataset:
    """A dataset of `input_ids` and `word_ids` rows, each exactly `chunk_size` long."""
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id

    def chunk(batch):
        words, owners = [], []
        for text in batch[text_column]:
            pieces = split_words(text or "")
            words.extend(pieces)
            owners.append(len(pieces))
        pieces = tokenizer(words) if words else []
        ids, word_ids, word = [], [], 0
        cursor = 0
        for count in owners:
            ids.append(cls_id)
            word_ids.append(-1)
            for tokens in pieces[cursor : cursor + count]:
                tokens = np.asarray(tokens).tolist()
                ids.extend(tokens)
                word_ids.extend([word] * len(tokens))
                word += 1
            cursor += count
            ids.append(sep_id)
            word_ids.append(-1)
        usable = len(ids) // chunk_size * chunk_size  # drop the remainder, as the seed does
        return {
            "input_ids": [ids[i : i + chunk_size] for i in range(0, usable, chunk_size)],
            "word_ids": [word_ids[i : i + chunk_size] for i in range(0, usable, chunk_size)],
        }

    return split.map(chunk, batched=True, batch_size=batch_size, remove_columns=split.column_names)
