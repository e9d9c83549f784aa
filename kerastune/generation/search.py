"""Greedy, beam and sampling search as `keras.ops` while-loops: one compilable function per search.

Both mirror transformers' `generate` token for token: greedy stops a row at
`</s>` and pads after it; beam search is transformers 5's vectorised
`_beam_search` (keep 2 * beams candidates, move those ending in `</s>` to a
finished set scored by sum log-prob / length ** length_penalty, stop early
when every example has `beams` finished hypotheses or none can improve).

The model work is two callables, so the same search serves T5 and
decoder-only models:
- `prefill(*source) -> (log_probs, state)`: the first step, from the
  prompts (ids and mask, or the encoder's keys and values),
- `step(tokens, reorder, index, state) -> (log_probs, state)`: one decoder
  step for `tokens` at position `index`, after reordering the per-row
  cache in `state` by `reorder` (the surviving beams' parents; None when
  rows keep their order, as in greedy search and sampling).
Everything has a fixed shape, so XLA compiles the loop once per input shape,
and the function can be traced into a SavedModel.
"""

from typing import NamedTuple

from keras import ops

NEG_INF = -1.0e9


class BeamLoop(NamedTuple):
    """Beam search's loop state; scores and sequences per example are (batch, beams[, length])."""

    cur_len: object  # tokens so far, counting the start token
    searching: object  # scalar: some example can still change its best finished hypothesis
    cand_scores: object  # (batch, 2 * beams): the best continuations of the running beams
    cand_index: object  # their index into beams * vocab
    running_seq: object  # the live beams
    finished_seq: object  # the best finished hypotheses so far
    finished_scores: object  # their length-normalised scores
    finished: object  # which finished slots hold a hypothesis
    improvable: object  # (batch, 1): a live beam could still beat the worst finished one
    model_state: object  # the model's per-row cache (reordered by `step`)


class DecodeLoop(NamedTuple):
    """Greedy and sampled decoding's loop state."""

    i: object  # new tokens so far
    token: object  # (batch,) the token chosen at position i
    done: object  # (batch,) rows that have stopped
    out: object  # (batch, max_new_tokens) the ids so far, `pad_id` after a row stops
    lengths: object  # (batch,) tokens per row, its `</s>` included
    model_state: object  # the model's per-row cache


def _decode(prefill, step, source, max_new_tokens, eos_id, pad_id, choose, row_limits=None) -> DecodeLoop:
    """Run `choose(log_probs, i) -> tokens` until every row has stopped (`</s>`, its limit or
    `max_new_tokens`)."""
    log_probs, state = prefill(*source)
    batch = ops.shape(log_probs)[0]
    positions = ops.arange(max_new_tokens, dtype="int32")[None, :]

    def advance(loop: DecodeLoop) -> DecodeLoop:
        done = loop.done if row_limits is None else ops.logical_or(loop.done, loop.i >= row_limits)
        token = ops.where(done, pad_id, loop.token)
        out = ops.where(positions == loop.i, token[:, None], loop.out)
        lengths = loop.lengths + ops.cast(ops.logical_not(done), "int32")
        done = ops.logical_or(done, token == eos_id)
        log_probs, state = step(token, None, loop.i + 1, loop.model_state)
        return DecodeLoop(loop.i + 1, choose(log_probs, loop.i + 1), done, out, lengths, state)

    def searching(loop: DecodeLoop):
        return ops.logical_and(loop.i < max_new_tokens, ops.logical_not(ops.all(loop.done)))

    first = ops.convert_to_tensor(0, "int32")
    start = DecodeLoop(
        i=first,
        token=choose(log_probs, first),
        done=ops.zeros((batch,), dtype="bool"),
        out=ops.full((batch, max_new_tokens), pad_id, dtype="int32"),
        lengths=ops.zeros((batch,), dtype="int32"),
        model_state=state,
    )
    # One loop variable, the named state (as beam search's).
    (done,) = ops.while_loop(searching, lambda loop: (advance(loop),), (start,))
    return done


def greedy_search(prefill, step, source, max_new_tokens, eos_id, pad_id):
    """(batch, max_new_tokens) ids: argmax tokens, `pad_id` after `</s>`."""
    def argmax(log_probs, i):
        return ops.cast(ops.argmax(log_probs, axis=-1), "int32")

    return _decode(prefill, step, source, max_new_tokens, eos_id, pad_id, argmax).out


def beam_search(prefill, step, source, max_new_tokens, eos_id, pad_id, num_beams,
                length_penalty=1.0, early_stopping=True, expand=None):
    """(batch, max_new_tokens) ids of the best finished hypothesis of each example.

    `expand(state, beams)` lays the prefill's per-example state out for
    `beams` rows per example (consecutive); by default every tensor's rows
    are repeated. A model can keep what beams share (encoder keys and
    values) once per example.
    """
    beams, keep = num_beams, 2 * num_beams  # transformers keeps max(2, 1 + n_eos) * beams
    length = max_new_tokens + 1  # transformers' max_length: the start token + new tokens
    log_probs, state = prefill(*source)
    batch = ops.shape(log_probs)[0]
    vocab = ops.shape(log_probs)[-1]
    # Every beam of an example starts from that example's prefill; only the first is live.
    state = expand(state, beams) if expand else [ops.repeat(t, beams, axis=0) for t in state]
    log_probs = ops.repeat(log_probs, beams, axis=0)
    running_scores = ops.tile(ops.convert_to_tensor([[0.0] + [NEG_INF] * (beams - 1)]), (batch, 1))

    def candidates(log_probs, running_scores):
        total = ops.reshape(log_probs, (batch, beams, vocab)) + running_scores[:, :, None]
        scores, index = ops.top_k(ops.reshape(total, (batch, beams * vocab)), k=keep)
        return scores, ops.cast(index, "int32")

    def gather(values, index):  # values[b, index[b, j], ...] for a (batch, m) index
        flat = ops.reshape(values, (-1,) + tuple(values.shape[2:]))
        return ops.take(flat, index + ops.arange(batch, dtype="int32")[:, None] * values.shape[1], axis=0)

    def advance(loop: BeamLoop) -> BeamLoop:
        cur_len, cand_scores = loop.cur_len, loop.cand_scores
        origin, token = loop.cand_index // vocab, loop.cand_index % vocab
        at_cur = ops.arange(length, dtype="int32")[None, None, :] == cur_len
        cand_seq = ops.where(at_cur, token[:, :, None], gather(loop.running_seq, origin))
        hits = ops.logical_or(token == eos_id, cur_len + 1 >= length)
        # Live beams for the next step: the best candidates that did not stop.
        live_scores = cand_scores + ops.cast(hits, "float32") * NEG_INF
        running_scores, best_live = ops.top_k(live_scores, k=beams)
        running_seq = gather(cand_seq, best_live)
        parent = gather(origin, best_live) + ops.arange(batch, dtype="int32")[:, None] * beams
        # Finished hypotheses: merge the stopping candidates among the top `beams`.
        just_done = ops.logical_and(hits, ops.arange(keep)[None, :] < beams)
        done_scores = cand_scores / ops.cast(cur_len, "float32") ** length_penalty
        full = ops.logical_and(ops.all(loop.finished, axis=1, keepdims=True), early_stopping is True)
        blocked = ops.logical_or(ops.logical_or(full, ops.logical_not(loop.improvable)), ops.logical_not(just_done))
        done_scores = done_scores + ops.cast(blocked, "float32") * NEG_INF
        merged_scores = ops.concatenate([loop.finished_scores, done_scores], axis=1)
        finished_scores, best = ops.top_k(merged_scores, k=beams)
        finished_seq = gather(ops.concatenate([loop.finished_seq, cand_seq], axis=1), best)
        finished = gather(ops.concatenate([loop.finished, just_done], axis=1), best)
        cur_len = cur_len + 1
        improvable = ops.logical_and(loop.improvable, _could_improve(
            running_scores, finished_scores, finished, cur_len, max_new_tokens, length_penalty, early_stopping))
        still_open = ops.logical_not(ops.logical_and(ops.all(finished), early_stopping is True))
        searching = ops.logical_and(ops.logical_and(ops.any(improvable), still_open), ops.logical_not(ops.all(hits)))
        last = ops.reshape(running_seq, (batch * beams, length))
        tokens = ops.take_along_axis(last, ops.full((batch * beams, 1), cur_len - 1, dtype="int32"), axis=1)[:, 0]
        log_probs, model_state = step(tokens, ops.reshape(parent, (-1,)), cur_len - 1, loop.model_state)
        cand_scores, cand_index = candidates(log_probs, running_scores)
        return BeamLoop(cur_len, searching, cand_scores, cand_index, running_seq, finished_seq, finished_scores,
                        finished, improvable, model_state)

    cand_scores, cand_index = candidates(log_probs, running_scores)
    start = BeamLoop(
        cur_len=ops.convert_to_tensor(1, "int32"),
        searching=ops.convert_to_tensor(True),
        cand_scores=cand_scores,
        cand_index=cand_index,
        running_seq=ops.full((batch, beams, length), pad_id, dtype="int32"),
        finished_seq=ops.full((batch, beams, length), pad_id, dtype="int32"),
        finished_scores=ops.full((batch, beams), NEG_INF, dtype="float32"),
        finished=ops.zeros((batch, beams), dtype="bool"),
        improvable=ops.ones((batch, 1), dtype="bool"),
        model_state=state,
    )
    # One loop variable, the named state (a tuple of loop variables would reach `advance` positionally).
    (done,) = ops.while_loop(lambda loop: loop.searching, lambda loop: (advance(loop),), (start,))
    return done.finished_seq[:, 0, 1:]


def _could_improve(running_scores, finished_scores, finished, cur_len, max_new_tokens, length_penalty,
                   early_stopping):
    """transformers' early-stop heuristic: can a live beam still beat the worst finished one?"""
    if early_stopping == "never" and length_penalty > 0.0:
        best_length = ops.convert_to_tensor(float(max_new_tokens))
    else:
        best_length = ops.cast(cur_len - 1, "float32")
    best_running = running_scores[:, :1] / best_length**length_penalty
    worst_done = ops.where(finished, ops.min(finished_scores, axis=1, keepdims=True), NEG_INF)
    return ops.any(best_running > worst_done, axis=-1, keepdims=True)


def sample_search(prefill, step, source, max_new_tokens, eos_id, pad_id, row_limits, min_new_tokens, seed,
                  uniform):
    """(ids (batch, max_new_tokens), lengths): tokens drawn from softmax(logits), as transformers'
    `do_sample` with top_k 0 and top_p 1. `lengths` counts each row's tokens (with its `</s>`): a
    draw may be the pad id, so the ids alone do not say where a row ends.

    Row r stops at `</s>` or after `row_limits[r]` tokens (the PPO length
    sampler's per-sample `max_new_tokens`); `</s>` cannot be drawn before
    `min_new_tokens` tokens (transformers' `min_length` counts the decoder
    start token, so min_length 5 is 4 new tokens). Draws use the Gumbel-max
    trick on `uniform(shape, seed, step)` noise.
    """
    def draw(log_probs, i):
        is_eos = ops.arange(ops.shape(log_probs)[-1], dtype="int32")[None, :] == eos_id
        log_probs = ops.where(ops.logical_and(is_eos, i < min_new_tokens), NEG_INF, log_probs)
        noise = uniform(ops.shape(log_probs), seed, i)
        gumbel = -ops.log(-ops.log(ops.clip(noise, 1e-20, 1.0 - 1e-7)))
        return ops.cast(ops.argmax(log_probs + gumbel, axis=-1), "int32")

    done = _decode(prefill, step, source, max_new_tokens, eos_id, pad_id, draw, row_limits)
    return done.out, done.lengths
