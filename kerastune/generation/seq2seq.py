"""Batched greedy, beam-search and sampled generation for keras-hub's `T5Seq2SeqLM`.

Mirrors transformers' `generate` token for token (see `search.py`). The
whole search (encoder, cached decoder steps, beam bookkeeping) is one
compiled function, reused by every batch of the same shape.

Prompts are sorted by length and each batch is padded to a bucket edge, and
a short last batch is padded with dummy rows, so a whole evaluation compiles
only a few shapes.
"""

import keras
import numpy as np
from keras import ops

from kerastune.data.tf_dataset import bucket_boundaries
from kerastune.generation.search import beam_search, greedy_search, sample_search
from kerastune.runtime import compile_model_function, stateless_uniform


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
        self._compiled_search = compile_model_function(model, self.search)
        self._compiled_sample = compile_model_function(model, self.sample)

    # ---- model work: prefill and one decoder step -------------------------------

    def prefill(self, encoder_ids, encoder_mask):
        """Encoder pass, empty self-attention cache, first decoder step."""
        model, backbone = self.model, self.model.backbone
        encoder_hidden = model.call_encoder(encoder_ids, encoder_mask)
        batch = ops.shape(encoder_ids)[0]
        head_dim = backbone.key_value_dim or backbone.hidden_dim // backbone.num_heads
        cache_shape = [batch, backbone.num_layers, 2, self.max_new_tokens + 1, backbone.num_heads, head_dim]
        self_cache = ops.zeros(cache_shape, dtype=model.compute_dtype)
        cross_shape = list(cache_shape)
        cross_shape[3] = ops.shape(encoder_ids)[1]
        cross_cache = ops.zeros(cross_shape, dtype=model.compute_dtype)
        start = ops.full((batch, 1), self.pad_id, dtype="int32")
        logits, _, self_cache, cross_cache = model.call_decoder_with_cache(
            encoder_hidden_states=encoder_hidden,
            encoder_padding_mask=encoder_mask,
            decoder_token_ids=start,
            self_attention_cache=self_cache,
            self_attention_cache_update_index=0,
            cross_attention_cache=cross_cache,
            cross_attention_cache_update_index=0,
        )
        log_probs = ops.log_softmax(ops.cast(logits[:, 0, :], "float32"), axis=-1)
        return log_probs, [encoder_hidden, encoder_mask, self_cache, cross_cache]

    def step(self, tokens, reorder, index, state):
        """Reorder the self-attention cache to the surviving beams, then one decoder step."""
        encoder_hidden, encoder_mask, self_cache, cross_cache = state
        self_cache = ops.take(self_cache, reorder, axis=0)
        logits, _, self_cache, _ = self.model.call_decoder_with_cache(
            encoder_hidden_states=encoder_hidden,
            encoder_padding_mask=encoder_mask,
            decoder_token_ids=tokens[:, None],
            self_attention_cache=self_cache,
            self_attention_cache_update_index=index,
            cross_attention_cache=cross_cache,
            cross_attention_cache_update_index=None,
        )
        log_probs = ops.log_softmax(ops.cast(logits[:, 0, :], "float32"), axis=-1)
        return log_probs, [encoder_hidden, encoder_mask, self_cache, cross_cache]

    def search(self, encoder_ids, encoder_mask):
        """The whole search as one traceable function: ids (batch, max_new_tokens)."""
        common = dict(max_new_tokens=self.max_new_tokens, eos_id=self.eos_id, pad_id=self.pad_id)
        if self.num_beams == 1:
            return greedy_search(self.prefill, self.step, encoder_ids, encoder_mask, **common)
        return beam_search(
            self.prefill, self.step, encoder_ids, encoder_mask, num_beams=self.num_beams,
            length_penalty=self.length_penalty, early_stopping=self.early_stopping, **common,
        )

    def sample(self, encoder_ids, encoder_mask, row_limits, seed):
        """Multinomial sampling as one traceable function: (ids, lengths); see `sample_search`."""
        return sample_search(
            self.prefill, self.step, encoder_ids, encoder_mask, max_new_tokens=self.max_new_tokens,
            eos_id=self.eos_id, pad_id=self.pad_id, row_limits=row_limits, min_new_tokens=self.min_new_tokens,
            seed=seed, uniform=stateless_uniform,
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

    def generate_ids(self, encoder_ids, encoder_mask) -> np.ndarray:
        """Generated ids (batch, max_new_tokens), after the start token, `pad` after `</s>`."""
        ids = self._compiled_search(
            ops.convert_to_tensor(np.asarray(encoder_ids, "int32")),
            ops.convert_to_tensor(np.asarray(encoder_mask, "int32")),
        )
        return np.asarray(ops.convert_to_numpy(ids))

    # ---- text in, text out --------------------------------------------------------

    def tokenize(self, prompts) -> list[list[int]]:
        """Token ids of each prompt, truncated to `max_source_length` with `</s>` last."""
        pieces = self.tokenizer(list(prompts))
        return [[int(t) for t in np.asarray(p)][: self.max_source_length - 1] + [self.eos_id] for p in pieces]

    def pad(self, pieces, length=None):
        """(ids, mask) matrices, padded to `length` (default: the longest)."""
        length = length or max(len(p) for p in pieces)
        ids = np.full((len(pieces), length), self.pad_id, "int32")
        for i, p in enumerate(pieces):
            ids[i, : len(p)] = p
        return ids, (ids != self.pad_id).astype("int32")

    def encode(self, prompts, length=None):
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
        """Generate for any number of prompts, in length-sorted fixed-shape batches."""
        prompts = list(prompts)
        return self.decode(self.generate_pieces(self.tokenize(prompts), batch_size, progress)) if prompts else []

    def generate_pieces(self, pieces, batch_size=32, progress=False) -> list[np.ndarray]:
        """Generated ids for token-id prompts (lists ending in `</s>`), in the prompts' order.

        Prompts are sorted by length, each batch is padded to a bucket edge and a
        short last batch is filled with copies, so the search compiles once per edge.
        """
        order = np.argsort([len(p) for p in pieces], kind="stable")
        edges = bucket_boundaries(self.max_source_length)
        bar = keras.utils.Progbar(len(pieces), unit_name="prompt") if progress else None
        outputs = [None] * len(pieces)
        for start in range(0, len(pieces), batch_size):
            chosen = order[start : start + batch_size]
            longest = max(len(pieces[i]) for i in chosen)
            width = next(e - 1 for e in edges if e > longest)
            batch = [pieces[i] for i in chosen]
            batch += [batch[-1]] * (batch_size - len(batch))  # same shape for every batch
            ids = self.generate_ids(*self.pad(batch, length=width))
            for i, row in zip(chosen, ids):
                outputs[i] = row
            if bar:
                bar.add(len(chosen))
        return outputs

    @property
    def compilations(self) -> int:
        """How many input shapes the search was compiled for so far."""
        return self._compiled_search.traces


def to_str(value) -> str:
    """A detokenizer's output (str, bytes or a scalar tensor) as str; a byte-level BPE piece may be
    partial UTF-8, shown as U+FFFD as transformers does."""
    value = np.asarray(value).item() if not isinstance(value, (str, bytes)) else value
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
