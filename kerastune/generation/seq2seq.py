"""Batched greedy, beam-search and sampled generation for keras-hub's `T5Seq2SeqLM`.

Mirrors transformers' `generate` token for token (see `search.py`). Two
compiled functions do the work: the encoder (with every decoder layer's
cross-attention keys and values), then the whole search (cached decoder
steps, beam bookkeeping) in one XLA loop, reused by every batch of a shape.

Prompts are sorted by length and a short last batch is padded with dummy
rows. The search runs at a bucket edge's width, so a whole evaluation
compiles only a few shapes. On TensorFlow the encoder is a plain graph
(oneDNN, any shape, nothing to compile per width) that runs slices of 8
sorted rows at their own length; their keys and values are then padded to
the edge, which costs the search far less than padding costs the encoder.
"""

import keras
import numpy as np
from keras import ops

from kerastune.data.tokens import bucket_width, to_str, until_end, with_end_token
from kerastune.generation.search import beam_search, greedy_search, sample_search
from kerastune.models.t5 import decoding
from kerastune.runtime import compile_model_function, stateless_uniform

ENCODER_ROWS = 8  # rows per encoder slice where the encoder runs any shape (TensorFlow)


class Seq2SeqGenerator:
    """Generate text with a T5-style encoder-decoder, greedy or beam search.

    Args:
        model: a keras-hub `T5Seq2SeqLM`.
        tokenizer: its tokenizer (the model's preprocessor may be detached
            while it trains).
        max_new_tokens: generated tokens at most (HF `max_length` - 1 for T5).
        num_beams: 1 for greedy, more for beam search.
        length_penalty, early_stopping: as in transformers.
        max_source_length: prompts are truncated to this many tokens.
        min_new_tokens: sampling only: `</s>` is not drawn before this many tokens.
    """

    def __init__(
        self,
        model,
        tokenizer,
        max_new_tokens=16,
        num_beams=1,
        length_penalty=1.0,
        early_stopping=True,
        max_source_length=512,
        min_new_tokens=0,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.max_source_length = max_source_length
        self.pad_id = tokenizer.pad_token_id
        self.eos_id = tokenizer.end_token_id
        self.min_new_tokens = min_new_tokens
        # A TF graph runs any shape; XLA (JAX) compiles one per shape, so there the encoder runs at the edge.
        self._encoder_is_shape_generic = keras.config.backend() == "tensorflow"
        self._compiled_encode = compile_model_function(model, self.run_encoder, xla=False)
        self._compiled_search = compile_model_function(model, self.search_encoded)
        self._compiled_sample = compile_model_function(model, self.sample)

    # ---- model work: encoder, prefill and one decoder step ------------------------
    # The source is (cross_cache, cross_bias) and the state [self_cache, cross_cache,
    # cross_bias]: see `models/t5/decoding.py`.

    def run_encoder(self, encoder_ids, encoder_mask):
        """The encoder, then each decoder layer's cross-attention keys and values: (cross_cache, cross_bias)."""
        return decoding.encode(self.model, encoder_ids, encoder_mask)

    def prefill(self, cross_cache, cross_bias):
        """An empty self-attention cache and the first decoder step, from the start token."""
        batch = ops.shape(cross_bias)[0]
        self_cache = decoding.empty_self_cache(self.model, batch, self.max_new_tokens + 1)
        start = ops.full((batch,), self.pad_id, dtype="int32")
        logits, self_cache = decoding.decode_step(self.model, start, 0, self_cache, cross_cache, cross_bias)
        return _log_softmax(logits), [self_cache, cross_cache, cross_bias]

    def step(self, tokens, reorder, index, state):
        """Reorder the self-attention cache to the surviving beams, then one decoder step."""
        self_cache, cross_cache, cross_bias = state
        if reorder is not None:
            self_cache = keras.tree.map_structure(lambda t: ops.take(t, reorder, axis=0), self_cache)
        logits, self_cache = decoding.decode_step(self.model, tokens, index, self_cache, cross_cache, cross_bias)
        return _log_softmax(logits), [self_cache, cross_cache, cross_bias]

    @staticmethod
    def expand(state, beams):
        """Beam search's start: the self-attention cache once per beam; the encoder's keys and values
        stay once per example, shared by its beams."""
        self_cache, cross_cache, cross_bias = state
        return [keras.tree.map_structure(lambda t: ops.repeat(t, beams, axis=0), self_cache), cross_cache, cross_bias]

    def search_encoded(self, cross_cache, cross_bias):
        """The search from the encoded source, as one traceable function: ids (batch, max_new_tokens)."""
        common = dict(max_new_tokens=self.max_new_tokens, eos_id=self.eos_id, pad_id=self.pad_id)
        source = (cross_cache, cross_bias)
        if self.num_beams == 1:
            return greedy_search(self.prefill, self.step, source, **common)
        return beam_search(
            self.prefill, self.step, source, num_beams=self.num_beams, expand=self.expand,
            length_penalty=self.length_penalty, early_stopping=self.early_stopping, **common,
        )

    def search(self, encoder_ids, encoder_mask):
        """Encoder and search as one traceable function (what a SavedModel serves)."""
        return self.search_encoded(*self.run_encoder(encoder_ids, encoder_mask))

    def sample(self, encoder_ids, encoder_mask, row_limits, seed):
        """Multinomial sampling as one traceable function: (ids, lengths); see `sample_search`."""
        return sample_search(
            self.prefill, self.step, self.run_encoder(encoder_ids, encoder_mask),
            max_new_tokens=self.max_new_tokens, eos_id=self.eos_id, pad_id=self.pad_id, row_limits=row_limits,
            min_new_tokens=self.min_new_tokens, seed=seed, uniform=stateless_uniform,
        )

    def sample_ids(self, encoder_ids, encoder_mask, row_limits, seed) -> tuple[np.ndarray, np.ndarray]:
        """(ids (batch, max_new_tokens), lengths): row r has at most row_limits[r] tokens; `seed` is two ints."""
        ids, lengths = self._compiled_sample(
            ops.convert_to_tensor(np.asarray(encoder_ids, "int32")),
            ops.convert_to_tensor(np.asarray(encoder_mask, "int32")),
            ops.convert_to_tensor(np.asarray(row_limits, "int32")),
            ops.convert_to_tensor(np.asarray(seed, "int32")),
        )
        return np.asarray(ops.convert_to_numpy(ids)), np.asarray(ops.convert_to_numpy(lengths))

    def generate_batch(self, encoder_ids, encoder_mask, width=None) -> np.ndarray:
        """Generated ids (batch, max_new_tokens) for one padded batch, after the start token, `pad` after `</s>`.
        `width`: search as if the source were padded to this many tokens (a bucket edge)."""
        encoder_ids, encoder_mask = np.asarray(encoder_ids, "int32"), np.asarray(encoder_mask, "int32")
        cross_cache, cross_bias = self._encoded_batch(encoder_ids, encoder_mask, max(width or 0, encoder_ids.shape[1]))
        return np.asarray(ops.convert_to_numpy(self._compiled_search(cross_cache, cross_bias)))

    def _encoded_batch(self, encoder_ids, encoder_mask, width):
        """The encoded source, padded to `width`. A TF graph runs any shape, so there the encoder takes
        slices of `ENCODER_ROWS` rows, each cut to its own length rounded up to 8: padding costs encoder
        FLOPs, while padded keys and values cost the search almost nothing."""
        rows = ENCODER_ROWS if self._encoder_is_shape_generic else len(encoder_ids)
        parts = []
        for start in range(0, len(encoder_ids), rows):
            ids, mask = encoder_ids[start : start + rows], encoder_mask[start : start + rows]
            if self._encoder_is_shape_generic:
                length = -(-(int(np.flatnonzero(mask.any(axis=0)).max()) + 1) // 8) * 8
                ids, mask = ids[:, :length], mask[:, :length]
            parts.append(decoding.pad_source(*self._compiled_encode(ids, mask), width))
        if len(parts) == 1:
            return parts[0]
        return keras.tree.map_structure(lambda *slices: ops.concatenate(slices, axis=0), *parts)

    # ---- text in, text out --------------------------------------------------------

    def tokenize(self, prompts) -> list[list[int]]:
        """Token ids of each prompt, truncated to `max_source_length` with `</s>` last."""
        pieces = self.tokenizer(list(prompts))
        return [with_end_token(np.asarray(p), self.max_source_length, self.eos_id) for p in pieces]

    def pad(self, pieces, length=None):
        """(ids, mask) matrices, padded to `length` (default: the longest)."""
        length = length or max(len(p) for p in pieces)
        ids = np.full((len(pieces), length), self.pad_id, "int32")
        for i, p in enumerate(pieces):
            ids[i, : len(p)] = p
        return ids, (ids != self.pad_id).astype("int32")

    def prompt_matrix(self, prompts, length=None):
        """(ids, mask) of prompts: `tokenize`, then `pad`."""
        return self.pad(self.tokenize(prompts), length)

    def decode(self, ids) -> list[str]:
        """Text up to `</s>`. Ids past the tokenizer's vocabulary (FLAN-T5's embedding has 32,128 rows
        for 32,100 pieces) have no text and are dropped, as transformers' tokenizers drop them."""
        texts, known = [], self.tokenizer.vocabulary_size()
        for row in ids:  # a matrix, or lists of different lengths
            row = [int(t) for t in row]
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            row = [t for t in row if t != self.pad_id and t < known]
            texts.append(to_str(self.tokenizer.detokenize([row])[0]) if row else "")
        return texts

    def generate(self, prompts, batch_size=32, progress=False) -> list[str]:
        """The generated text for each prompt (length-sorted, fixed-shape batches)."""
        prompts = list(prompts)
        return self.decode(self.generate_tokens(self.tokenize(prompts), batch_size, progress)) if prompts else []

    def generate_tokens(self, pieces, batch_size=32, progress=False) -> list[list[int]]:
        """The new ids for each tokenized prompt (lists ending in `</s>`), up to and including `</s>`.

        Prompts are sorted by length, each batch is searched at a bucket edge's width
        and a short last batch is filled with copies, so the search compiles once per edge.
        Fewer prompts than `batch_size` make one batch of just that many rows.
        """
        batch_size = max(1, min(batch_size, len(pieces)))
        order = np.argsort([len(p) for p in pieces], kind="stable")
        bar = keras.utils.Progbar(len(pieces), unit_name="prompt") if progress else None
        outputs = [None] * len(pieces)
        for start in range(0, len(pieces), batch_size):
            chosen = order[start : start + batch_size]
            longest = max(len(pieces[i]) for i in chosen)
            width = bucket_width(longest, self.max_source_length)
            batch = [pieces[i] for i in chosen]
            batch += [batch[-1]] * (batch_size - len(batch))  # same shape for every batch
            ids = self.generate_batch(*self.pad(batch, length=width))
            for i, row in zip(chosen, ids):
                outputs[i] = until_end(row, self.eos_id)
            if bar:
                bar.add(len(chosen))
        return outputs

    @property
    def compilations(self) -> int:
        """How many input shapes the search was compiled for so far."""
        return self._compiled_search.traces


def _log_softmax(logits):
    return ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
