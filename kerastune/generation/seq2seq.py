"""Batched greedy and beam-search generation for keras-hub's `T5Seq2SeqLM`.

Mirrors transformers' `generate` token for token (greedy; beam search with
length_penalty and early_stopping as in transformers 5's vectorised
`_beam_search`). The model work of each step (cached decoder call,
log-softmax, top-k over beams x vocabulary) is one compiled function reused
by every step and every batch of the same shape; the small beam bookkeeping
on (batch, 2 * beams) arrays runs in NumPy.

Prompts are sorted by length and each batch is padded to a bucket edge, and
a short last batch is padded with dummy rows, so a whole evaluation compiles
only a few shapes.
"""

import keras
import numpy as np
from keras import ops

from kerastune.data.tf_dataset import bucket_boundaries
from kerastune.runtime import compile_model_function

NEG_INF = -1.0e9


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
        self._prefill = compile_model_function(model, self._prefill_fn)
        self._step = compile_model_function(model, self._step_fn)
        self._topk = 2 * num_beams  # transformers keeps max(2, 1 + n_eos) * beams; T5 has one </s>

    # ---- model work, compiled -------------------------------------------------

    def _prefill_fn(self, encoder_ids, encoder_mask):
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
        return log_probs, encoder_hidden, self_cache, cross_cache

    def _step_fn(self, tokens, reorder, scores, index, encoder_hidden, encoder_mask, self_cache, cross_cache):
        """Reorder caches to the surviving beams, run one decoder step, top-k candidates.

        Returns the top `2 * beams` (score, flat index) pairs per example over
        beams x vocabulary, with `scores` (running beam scores) already added.
        """
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
        return self._candidates(log_probs, scores) + (self_cache,)

    def _candidates(self, log_probs, scores):
        vocab = ops.shape(log_probs)[-1]
        total = ops.reshape(log_probs, (-1, self.num_beams, vocab)) + scores[:, :, None]
        total = ops.reshape(total, (-1, self.num_beams * vocab))
        if self.num_beams == 1:
            return ops.max(total, axis=-1, keepdims=True), ops.cast(ops.argmax(total, axis=-1)[:, None], "int32")
        values, indices = ops.top_k(total, k=self._topk)
        return values, ops.cast(indices, "int32")

    # ---- search loop ------------------------------------------------------------

    def generate_ids(self, encoder_ids, encoder_mask) -> np.ndarray:
        """Generated ids (batch, max_new_tokens), after the start token, `pad` after `</s>`."""
        encoder_ids = ops.convert_to_tensor(np.asarray(encoder_ids, "int32"))
        encoder_mask = ops.convert_to_tensor(np.asarray(encoder_mask, "int32"))
        batch, beams = int(encoder_ids.shape[0]), self.num_beams
        log_probs, encoder_hidden, self_cache, cross_cache = self._prefill(encoder_ids, encoder_mask)
        if beams > 1:  # every beam shares the prefill of its example
            repeat = lambda t: ops.repeat(t, beams, axis=0)  # noqa: E731
            encoder_hidden, self_cache, cross_cache = map(repeat, (encoder_hidden, self_cache, cross_cache))
            encoder_mask = repeat(encoder_mask)
            log_probs = repeat(log_probs)
        scores = np.zeros((batch, beams), "float32")
        scores[:, 1:] = NEG_INF  # only the first beam is live at the start
        cand_scores, cand_index = (np.asarray(t) for t in self._candidates(log_probs, ops.convert_to_tensor(scores)))
        if beams == 1:
            return self._greedy_loop(cand_index[:, 0], encoder_hidden, encoder_mask, self_cache, cross_cache)
        return self._beam_loop(cand_scores, cand_index, encoder_hidden, encoder_mask, self_cache, cross_cache)

    def _greedy_loop(self, tokens, encoder_hidden, encoder_mask, self_cache, cross_cache):
        batch = tokens.shape[0]
        out = np.full((batch, self.max_new_tokens), self.pad_id, "int32")
        done = np.zeros(batch, bool)
        identity = ops.convert_to_tensor(np.arange(batch, dtype="int32"))
        zeros = ops.convert_to_tensor(np.zeros((batch, 1), "float32"))
        for step in range(self.max_new_tokens):
            tokens = np.where(done, self.pad_id, tokens).astype("int32")
            out[:, step] = tokens
            done |= tokens == self.eos_id
            if done.all() or step + 1 == self.max_new_tokens:
                break
            _, index, self_cache = self._step(
                ops.convert_to_tensor(tokens), identity, zeros, _index(step + 1),
                encoder_hidden, encoder_mask, self_cache, cross_cache,
            )
            tokens = np.asarray(index)[:, 0]
        return out

    def _beam_loop(self, cand_scores, cand_index, encoder_hidden, encoder_mask, self_cache, cross_cache):
        """transformers 5 `_beam_search`, on (batch, beams) NumPy arrays."""
        beams, vocab = self.num_beams, self.model.backbone.vocabulary_size
        batch = cand_scores.shape[0]
        length = self.max_new_tokens + 1  # HF max_length: start token + new tokens
        running_seq = np.full((batch, beams, length), self.pad_id, "int32")
        finished_seq = running_seq.copy()
        finished_scores = np.full((batch, beams), NEG_INF, "float32")
        finished = np.zeros((batch, beams), bool)
        improvable = np.ones((batch, 1), bool)
        top_beam_mask = np.arange(self._topk) < beams
        rows = np.arange(batch)[:, None]
        cur_len = 1
        while True:
            origin, token = cand_index // vocab, cand_index % vocab
            cand_seq = running_seq[rows, origin]
            cand_seq[:, :, cur_len] = token
            hits = (token == self.eos_id) | (cur_len + 1 >= length)
            # Live beams for the next step: best candidates that did not stop.
            live_scores = cand_scores + hits * NEG_INF
            keep = np.argsort(-live_scores, axis=1, kind="stable")[:, :beams]
            running_seq = cand_seq[rows, keep]
            running_scores = live_scores[rows, keep]
            parent = origin[rows, keep] + rows * beams
            # Finished hypotheses: merge stopping top-`beams` candidates.
            just_done = hits & top_beam_mask[None, :]
            # Length of a finished hypothesis: its new tokens (the start token is the decoder prompt).
            done_scores = cand_scores / (cur_len**self.length_penalty)
            full = finished.all(axis=1, keepdims=True) & (self.early_stopping is True)
            done_scores = done_scores + full * NEG_INF + (~improvable) * NEG_INF + (~just_done) * NEG_INF
            merged_seq = np.concatenate([finished_seq, cand_seq], axis=1)
            merged_scores = np.concatenate([finished_scores, done_scores], axis=1)
            merged_finished = np.concatenate([finished, just_done], axis=1)
            best = np.argsort(-merged_scores, axis=1, kind="stable")[:, :beams]
            finished_seq, finished_scores = merged_seq[rows, best], merged_scores[rows, best]
            finished = merged_finished[rows, best]
            cur_len += 1
            improvable = improvable & self._could_improve(running_scores, finished_scores, finished, cur_len)
            still_open = not (finished.all() and self.early_stopping is True)
            if not (improvable.any() and still_open and not hits.all()):
                break
            cand_scores, cand_index, self_cache = self._step(
                ops.convert_to_tensor(running_seq[:, :, cur_len - 1].reshape(-1)),
                ops.convert_to_tensor(parent.reshape(-1).astype("int32")),
                ops.convert_to_tensor(running_scores.astype("float32")),
                _index(cur_len - 1), encoder_hidden, encoder_mask, self_cache, cross_cache,
            )
            cand_scores, cand_index = np.asarray(cand_scores), np.asarray(cand_index)
        return finished_seq[:, 0, 1:]

    def _could_improve(self, running_scores, finished_scores, finished, cur_len):
        """transformers' early-stop heuristic (`early_stopping` True or False)."""
        if self.early_stopping == "never" and self.length_penalty > 0.0:
            best_length = self.max_new_tokens
        else:
            best_length = cur_len - 1
        best_running = running_scores[:, :1] / (best_length**self.length_penalty)
        worst_done = np.where(finished, finished_scores.min(axis=1, keepdims=True), NEG_INF)
        return np.any(best_running > worst_done, axis=-1, keepdims=True)

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
        texts = []
        for row in np.asarray(ids):
            row = list(row)
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            row = [t for t in row if t != self.pad_id]
            texts.append(_to_str(self.tokenizer.detokenize([row])[0]) if row else "")
        return texts

    def generate(self, prompts, batch_size=32, progress=False) -> list[str]:
        """Generate for any number of prompts, in length-sorted fixed-shape batches."""
        prompts = list(prompts)
        pieces = self.tokenize(prompts) if prompts else []
        if not pieces:
            return []
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
            texts = self.decode(self.generate_ids(*self.pad(batch, length=width)))
            for i, text in zip(chosen, texts):
                outputs[i] = text
            if bar:
                bar.add(len(chosen))
        return outputs


def _index(i):
    """A step index as a tensor, so compiled steps are not retraced per value."""
    return ops.convert_to_tensor(np.int32(i))


def _to_str(value) -> str:
    value = np.asarray(value).item() if not isinstance(value, (str, bytes)) else value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
