"""Preference pairs (prompt, chosen, rejected) in trl's formats -> token ids with completion masks -> batches.

The formats trl's `DPOTrainer` and `RewardTrainer` read:
- explicit prompt: `prompt`, `chosen` and `rejected` columns, each a string (standard) or a list of
  messages (conversational: the turns before the answer, and [the assistant's message] for each answer);
- implicit prompt: `chosen` and `rejected` only, whole texts or conversations (trl-lib/ultrafeedback_binarized);
  the prompt is their shared beginning, as trl's `extract_prompt` finds it: the messages they share, or the
  characters they share up to the last space before they part.
A message list may be JSON text (CSV files).

Tokens as trl 1.16's `DPOTrainer` makes them: a conversational pair renders the prompt with the generation
prompt, and the prompt with each answer, in the model's chat template; a standard pair is raw text, each
answer ending with the end token (trl adds the tokenizer's eos) and starting after the model's start token
where its tokenizer puts one. The answer's tokens begin where the tokenized prompt and the tokenized prompt +
answer part (trl's `common_prefix_length`). A sequence longer than `max_length` is cut keeping its start;
a pair whose prompt fills `max_length` is dropped (nothing of its answers would be left). A reward model
(trl's `RewardTrainer`) reads the same sequences whole, and drops a pair that is too long instead of cutting it.
A seq2seq model (T5) reads text pairs as trl 0.11's encoder-decoder DPO did: the prompt is the encoder's input and
each answer the decoder's labels, each ending with the end token.
"""

import dataclasses
import json

import numpy as np
import tensorflow as tf

from kerastune.data.causal_lm import tokenize_texts
from kerastune.data.chat import check_messages
from kerastune.data.epochs import rows_each_epoch
from kerastune.data.tokens import PAD_MULTIPLE, bucket_boundaries, count_bucketed_batches, with_end_token
from kerastune.errors import KerastuneError


@dataclasses.dataclass
class Pair:
    prompt: object  # str, or a list of messages
    chosen: object
    rejected: object

    @property
    def conversational(self) -> bool:
        return isinstance(self.chosen, list)


@dataclasses.dataclass
class EncodedPair:
    """Both sequences of a pair (prompt + answer ids) and their masks: 1 on the answer's tokens."""

    chosen_ids: list
    chosen_mask: list
    rejected_ids: list
    rejected_mask: list


def cell_value(value, where: str):
    """A cell as text or a list of messages (JSON text of a list is parsed)."""
    if isinstance(value, str) and value.lstrip().startswith("[{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, list):
        return check_messages(value, where)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise KerastuneError(f"{where}: expected text or a list of messages, got {type(value).__name__}")
    return value


def extract_prompt(chosen, rejected) -> Pair:
    """trl's `extract_prompt`: the shared beginning of the two answers is the prompt."""
    index = 0
    for index in range(min(len(chosen), len(rejected))):
        if chosen[index] != rejected[index]:
            if isinstance(chosen, str) and index and chosen[index - 1] == " ":  # the space goes with the answer
                index -= 1
            break
    else:
        index = min(len(chosen), len(rejected))
    return Pair(chosen[:index], chosen[index:], rejected[index:])


def read_pairs(split, name: str, prompt_column="prompt", chosen_column="chosen",
               rejected_column="rejected") -> tuple[list[Pair], int]:
    """(pairs, rows dropped because an answer is empty) from a split in one of trl's preference formats."""
    columns = split.column_names
    missing = [c for c in (chosen_column, rejected_column) if c not in columns]
    if missing:
        raise KerastuneError(f"the {name} split has no '{missing[0]}' column: preference data needs "
                             f"'{chosen_column}' and '{rejected_column}' (and optionally '{prompt_column}'); it has: "
                             f"{', '.join(columns)}")
    prompts = split[prompt_column] if prompt_column in columns else [None] * len(split)
    pairs, dropped = [], 0
    for i, (prompt, chosen, rejected) in enumerate(zip(prompts, split[chosen_column], split[rejected_column])):
        where = f"{name} row {i + 1}"
        chosen, rejected = cell_value(chosen, where), cell_value(rejected, where)
        if isinstance(chosen, list) != isinstance(rejected, list):
            raise KerastuneError(f"{where}: '{chosen_column}' and '{rejected_column}' must both be text or both "
                                 "messages")
        if prompt is None:
            pair = extract_prompt(chosen, rejected)
        else:
            prompt = cell_value(prompt, where)
            if isinstance(chosen, list) and isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            pair = Pair(prompt, chosen, rejected)
        if not _has_text(pair.chosen) or not _has_text(pair.rejected):
            dropped += 1
            continue
        pairs.append(pair)
    return pairs, dropped


def pair_texts(pairs) -> list[str]:
    """Every text of the pairs, prompts and answers (a tiny model's vocabulary is trained on them)."""
    out = []
    for pair in pairs:
        for part in (pair.prompt, pair.chosen, pair.rejected):
            out += [str(m.get("content") or "") for m in part] if isinstance(part, list) else [part]
    return [t for t in out if t]


def _has_text(answer) -> bool:
    if isinstance(answer, list):
        return any(str(m.get("content") or "").strip() for m in answer)
    return bool(answer.strip())


def _common_prefix(a, b) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def encode_pairs(pairs, tokenizer, max_length: int, chat=None, start_id=None, end_id=None, drop_long=False):
    """(encoded pairs, sequences cut at max_length, pairs dropped: the prompt fills max_length, or with
    `drop_long` a sequence is longer than max_length).

    `chat` (a ChatTemplate) renders conversational pairs; standard pairs need `end_id` (and `start_id` where the
    tokenizer puts one first).
    """
    texts = []
    for pair in pairs:
        if pair.conversational:
            if chat is None:
                raise KerastuneError("conversational preference data needs a chat template")
            texts += [chat.render(pair.prompt, add_generation_prompt=True), chat.render(pair.prompt + pair.chosen),
                      chat.render(pair.prompt + pair.rejected)]
        else:
            texts += [pair.prompt, pair.prompt + pair.chosen, pair.prompt + pair.rejected]
    if chat is not None and any(p.conversational for p in pairs):
        ids = [tokens for tokens, _ in chat.encode([(t, []) for t in texts], tokenizer)]
    else:
        ids = tokenize_texts(texts, tokenizer)
    encoded, cut, dropped = [], 0, 0
    for i, pair in enumerate(pairs):
        prompt, chosen, rejected = ids[3 * i: 3 * i + 3]
        if not pair.conversational:
            start = [] if start_id is None else [int(start_id)]
            prompt, chosen, rejected = start + prompt, start + chosen + [end_id], start + rejected + [end_id]
        prompt_length = min(_common_prefix(prompt, chosen), _common_prefix(prompt, rejected))
        if prompt_length >= max_length or (drop_long and max(len(chosen), len(rejected)) > max_length):
            dropped += 1
            continue
        cut += (len(chosen) > max_length) + (len(rejected) > max_length)
        chosen, rejected = chosen[:max_length], rejected[:max_length]
        encoded.append(EncodedPair(chosen, [0] * prompt_length + [1] * (len(chosen) - prompt_length),
                                   rejected, [0] * prompt_length + [1] * (len(rejected) - prompt_length)))
    return encoded, cut, dropped


@dataclasses.dataclass
class EncodedSeq2SeqPair:
    """A prompt's encoder tokens and both answers' decoder labels."""

    prompt_ids: list
    chosen_ids: list
    rejected_ids: list


def encode_seq2seq_pairs(pairs, tokenizer, end_id: int, max_source_length: int, max_target_length: int):
    """(encoded pairs, sequences cut): each text's tokens and the end token, cut keeping the start."""
    if any(p.conversational for p in pairs):
        raise KerastuneError("a seq2seq model has no chat template: give it preference pairs as text, not messages")
    ids = tokenize_texts([t for p in pairs for t in (p.prompt, p.chosen, p.rejected)], tokenizer)
    encoded, cut = [], 0
    for i in range(len(pairs)):
        prompt, chosen, rejected = ids[3 * i: 3 * i + 3]
        cut += (len(prompt) >= max_source_length) + (len(chosen) >= max_target_length) \
            + (len(rejected) >= max_target_length)
        encoded.append(EncodedSeq2SeqPair(with_end_token(prompt, max_source_length, end_id),
                                          with_end_token(chosen, max_target_length, end_id),
                                          with_end_token(rejected, max_target_length, end_id)))
    return encoded, cut


def seq2seq_preference_dataset(pairs, batch_size: int, max_length: int, shuffle=True, seed=0, extra=None,
                               pad_to_multiple_of=PAD_MULTIPLE, static_shapes=False):
    """Batches of seq2seq pairs, bucketed by the longest of each pair's texts: x = {encoder_token_ids,
    encoder_padding_mask} (batch, source length), {decoder_token_ids, decoder_padding_mask, labels,
    label_mask} (batch, 2, target length), chosen first; the decoder starts with the pad id, as T5's does."""
    if not pairs:
        raise KerastuneError("no preference pairs to batch")
    arrays = {"prompt": tf.ragged.constant([p.prompt_ids for p in pairs], dtype=tf.int32),
              "answers": tf.ragged.constant([[p.chosen_ids, p.rejected_ids] for p in pairs], dtype=tf.int32,
                                            ragged_rank=2)}
    extra = {k: tf.constant(np.asarray(v)) for k, v in (extra or {}).items()}
    ds = rows_each_epoch({**arrays, **extra}, seed, shuffle)
    ds = ds.map(lambda row: {**row, "prompt_real": tf.ones_like(row["prompt"]), "answers": row["answers"].to_tensor(),
                             "real": tf.ones_like(row["answers"]).to_tensor()})
    edges = bucket_boundaries(max_length)
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda row: tf.maximum(tf.shape(row["prompt"])[0], tf.shape(row["answers"])[1]),
        bucket_boundaries=edges,
        bucket_batch_sizes=[batch_size] * (len(edges) + 1),
        padded_shapes={"prompt": [None], "prompt_real": [None], "answers": [2, None], "real": [2, None],
                       **{k: v.shape[1:] for k, v in extra.items()}},
        pad_to_bucket_boundary=static_shapes,
        drop_remainder=static_shapes,
    )

    def model_inputs(row):
        def padded(t):
            length = tf.shape(t)[-1]
            extra_length = (pad_to_multiple_of - length % pad_to_multiple_of) % pad_to_multiple_of
            return tf.pad(t, [[0, 0]] * (len(t.shape) - 1) + [[0, extra_length]])

        answers, real = padded(row["answers"]), padded(row["real"])
        start = tf.zeros_like(answers[:, :, :1])
        return {"encoder_token_ids": padded(row["prompt"]), "encoder_padding_mask": padded(row["prompt_real"]),
                "decoder_token_ids": tf.concat([start, answers[:, :, :-1]], axis=2), "decoder_padding_mask": real,
                "labels": answers, "label_mask": real, **{k: row[k] for k in extra}}

    ds = ds.map(model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    lengths = [max(len(p.prompt_ids), len(p.chosen_ids), len(p.rejected_ids)) for p in pairs]
    batches = count_bucketed_batches(lengths, batch_size, max_length, static_shapes)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)


def pair_arrays(pairs) -> dict:
    """Ragged (pairs, 2, tokens) ids and answer masks: chosen first."""
    ids = tf.ragged.constant([[p.chosen_ids, p.rejected_ids] for p in pairs], dtype=tf.int32, ragged_rank=2)
    masks = tf.ragged.constant([[p.chosen_mask, p.rejected_mask] for p in pairs], dtype=tf.int32, ragged_rank=2)
    return {"ids": ids, "mask": masks}


def _model_inputs(ids, mask, real, pad_to_multiple_of, shift):
    """Model inputs from padded (batch, 2, n) sequences. `shift` (a language model's log-probs): tokens 0..n-2
    predict tokens 1..n-1, and a label counts where it is an answer token; else the sequences whole."""
    length = tf.shape(ids)[2] - (1 if shift else 0)
    extra = (pad_to_multiple_of - length % pad_to_multiple_of) % pad_to_multiple_of
    ids, mask, real = (tf.pad(t, [[0, 0], [0, 0], [0, extra]]) for t in (ids, mask, real))
    if not shift:
        return {"token_ids": ids, "padding_mask": real}
    return {"token_ids": ids[:, :, :-1], "padding_mask": real[:, :, 1:], "labels": ids[:, :, 1:],
            "label_mask": mask[:, :, 1:]}


def preference_dataset(pairs, batch_size: int, max_length: int, shuffle=True, seed=0, extra=None,
                       pad_to_multiple_of=PAD_MULTIPLE, static_shapes=False, shift=True):
    """Batches of pairs, bucketed by the longer sequence of each pair and padded to the batch's longest:
    x = {token_ids, padding_mask, labels, label_mask}, each (batch, 2, length), chosen first (`shift` False:
    {token_ids, padding_mask} of the whole sequences); `extra` adds per-pair arrays to x (the reference
    log-probs: (pairs, 2)). Knows its number of batches."""
    if not pairs:
        raise KerastuneError("no preference pairs to batch")
    arrays = pair_arrays(pairs)
    extra = {k: tf.constant(np.asarray(v)) for k, v in (extra or {}).items()}
    ds = rows_each_epoch({**arrays, **extra}, seed, shuffle)
    ds = ds.map(lambda row: {**row, "ids": row["ids"].to_tensor(), "mask": row["mask"].to_tensor(),
                             "real": tf.ones_like(row["ids"]).to_tensor()})
    edges = bucket_boundaries(max_length)
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda row: tf.shape(row["ids"])[1],
        bucket_boundaries=edges,
        bucket_batch_sizes=[batch_size] * (len(edges) + 1),
        padded_shapes={"ids": [2, None], "mask": [2, None], "real": [2, None],
                       **{k: v.shape[1:] for k, v in extra.items()}},
        pad_to_bucket_boundary=static_shapes,
        drop_remainder=static_shapes,
    )
    ds = ds.map(lambda row: {**_model_inputs(row["ids"], row["mask"], row["real"], pad_to_multiple_of, shift),
                             **{k: row[k] for k in extra}}, num_parallel_calls=tf.data.AUTOTUNE)
    lengths = [max(len(p.chosen_ids), len(p.rejected_ids)) for p in pairs]
    batches = count_bucketed_batches(lengths, batch_size, max_length, static_shapes)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)
