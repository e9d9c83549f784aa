"""SavedModel export for TF Serving: text in, text out, everything inside the graph.

A generative (T5) model gets two signatures:
- `serving_default(prompts: string[batch]) -> {text: string[batch], token_ids: int32[batch, n]}`:
  SentencePiece tokenization, the same compiled greedy / beam search that
  `kerastune generate` runs (`generation/search.py`), and detokenization;
- `logits(prompts: string[batch], targets: string[batch]) -> {logits, encoder_token_ids,
  decoder_token_ids, decoder_padding_mask}`: the teacher-forced forward pass, for scoring.

A causal LM (GPT-2, Llama, ...) gets `serving_default(prompts) -> {text, token_ids, padding_mask}`:
its tokenizer (byte-level BPE or SentencePiece) with the start token where the
model has one, keras-hub's compiled generation loop with a greedy or sampling
strategy, or kerastune's beam search run once per prompt length in the batch
(as `kerastune generate` groups prompts, so each row gets exactly its own
search, at its own positions), and detokenization; `text` is the prompt and its continuation, as
`kerastune generate` prints it. With a chat template (a chat_sft run's model), each
prompt is a user's message: the template's text around one message is fixed
at export time (its added tokens as ids, the text next to the message
tokenized with it in the graph), generation stops at the end-of-turn token,
and `text` is the answer alone, as `kerastune generate --chat` prints it.

Tokenization uses TensorFlow Text's SentencePiece op, which TF Serving's
model server includes; a Python process that loads the export must
`import tensorflow_text` (only to register the op) besides `tensorflow`.
Exports are written on the TensorFlow backend (`kerastune export` switches to
it by itself when run under JAX).
"""

import keras
import tensorflow as tf

from kerastune.data.tokens import causal_prompt_tf, with_end_token_tf
from kerastune.errors import KerastuneError
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.models import model_kind


def _encode(tokenizer, texts, max_length, end_id, pad_id):
    """Strings -> (ids, mask): tokens truncated to `max_length - 1`, then `</s>`, padded."""
    pieces = with_end_token_tf(tf.cast(tokenizer(texts), tf.int32), max_length, end_id)
    ids = pieces.to_tensor(default_value=pad_id)
    return ids, tf.cast(tf.not_equal(ids, pad_id), tf.int32)


def _decode(tokenizer, ids, end_id, pad_id):
    """Generated ids -> strings, cut at the first `</s>`, pads dropped."""
    is_end = tf.cast(tf.equal(ids, end_id), tf.int32)
    before_end = tf.equal(tf.cumsum(is_end, axis=1, exclusive=False), 0)
    keep = tf.logical_and(before_end, tf.not_equal(ids, pad_id))
    text = tokenizer.detokenize(tf.ragged.boolean_mask(ids, keep))
    return tf.reshape(text, [-1])


def export_seq2seq(model, out_dir, max_new_tokens=32, num_beams=1, max_source_length=512):
    """Write a TF-Serving SavedModel for a keras-hub `T5Seq2SeqLM` (TensorFlow backend)."""
    if keras.config.backend() != "tensorflow":
        raise KerastuneError("SavedModel export runs on the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    if model_kind(model) != "seq2seq":
        raise KerastuneError(f"export supports seq2seq (T5) models so far; got {type(model).__name__}")
    tokenizer = model.preprocessor.tokenizer
    generator = Seq2SeqGenerator(
        model, tokenizer, max_new_tokens=max_new_tokens, num_beams=num_beams, max_source_length=max_source_length
    )
    end_id, pad_id = int(tokenizer.end_token_id), int(tokenizer.pad_token_id)

    def serve(prompts):
        ids, mask = _encode(tokenizer, prompts, max_source_length, end_id, pad_id)
        generated = generator.search(ids, mask)
        return {"text": _decode(tokenizer, generated, end_id, pad_id), "token_ids": generated}

    def logits(prompts, targets):
        ids, mask = _encode(tokenizer, prompts, max_source_length, end_id, pad_id)
        target_ids, target_mask = _encode(tokenizer, targets, 1 << 20, end_id, pad_id)
        start = tf.fill([tf.shape(target_ids)[0], 1], tf.constant(pad_id, tf.int32))
        decoder_ids = tf.concat([start, target_ids[:, :-1]], axis=1)
        scores = model(
            {
                "encoder_token_ids": ids,
                "encoder_padding_mask": mask,
                "decoder_token_ids": decoder_ids,
                "decoder_padding_mask": target_mask,
            },
            training=False,
        )
        return {
            "logits": scores,
            "encoder_token_ids": ids,
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": target_mask,  # 1 where the position predicts a real target token
        }

    text = tf.TensorSpec([None], tf.string)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[text])
    archive.add_endpoint("logits", logits, input_signature=[text, text])
    archive.write_out(str(out_dir), verbose=False)
    return out_dir


def export_causal_lm(model, out_dir, max_new_tokens=32, chat=None, **strategy):
    """Write a TF-Serving SavedModel for a keras-hub `CausalLM` (GPT-2, Llama, ...; TensorFlow backend).

    `strategy`: `CausalLMGenerator`'s sampler settings (`num_beams` > 1: beam
    search). `chat`: a `ChatTemplate` to answer user messages in.
    """
    from kerastune.generation.causal import CausalLMGenerator
    from kerastune.generation.chat import chat_generator

    if keras.config.backend() != "tensorflow":
        raise KerastuneError("SavedModel export runs on the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    tokenizer = model.preprocessor.tokenizer
    if chat is None:
        generator = CausalLMGenerator(model, tokenizer, max_new_tokens=max_new_tokens, **strategy)
    else:
        generator = chat_generator(model, chat, max_new_tokens=max_new_tokens, **strategy)
    end_id, start_id, filler = generator.eos_id, generator.start_id, generator.filler_id
    room = generator.max_positions - max_new_tokens - (start_id is not None)
    prompt_ids = _chat_prompt_ids(chat, tokenizer) if chat is not None else (
        lambda prompts: causal_prompt_tf(tf.cast(tokenizer(prompts), tf.int32), room, end_id, start_id))  # as generate
    if generator.strategy == "beam":
        continue_prompts = _beam_by_prompt_length(generator)
    else:
        model.sampler = generator.sampler  # read by `generate_step` when the endpoint is traced

        def continue_prompts(pieces, lengths, width):
            ids = pieces.to_tensor(default_value=filler)
            ids = tf.pad(ids, [[0, 0], [0, width - tf.shape(ids)[1]]], constant_values=filler)
            out = model.generate_step({"token_ids": ids, "padding_mask": tf.sequence_mask(lengths, width)},
                                      stop_token_ids=(end_id,))
            return out["token_ids"], out["padding_mask"]

    def serve(prompts):
        pieces = prompt_ids(prompts)
        lengths = tf.cast(pieces.row_lengths(), tf.int32)
        width = tf.reduce_max(lengths) + max_new_tokens
        token_ids, padding_mask = continue_prompts(pieces, lengths, width)
        # The text: prompt + at most `max_new_tokens` new tokens (the answer alone for a chat), without the start
        # and end tokens (as `generate`).
        positions = tf.range(width)[None, :]
        keep = padding_mask & tf.not_equal(token_ids, end_id)
        keep &= positions < lengths[:, None] + max_new_tokens
        if chat is not None:
            keep &= positions >= lengths[:, None]
        elif start_id is not None:
            keep &= tf.not_equal(token_ids, start_id)
        text = tf.reshape(tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, keep)), [-1])
        return {"text": text, "token_ids": token_ids, "padding_mask": tf.cast(keep, tf.int32)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[tf.TensorSpec([None], tf.string)])
    archive.write_out(str(out_dir), verbose=False)
    return out_dir


def _beam_by_prompt_length(generator):
    """A graph function: (prompts, their lengths, width) -> (ids, mask) of shape (batch, width), each prompt
    followed by its beam search's best hypothesis (the end token after it ends).

    keras-hub's cache has one write position per call, so rows of one length search together: a loop over the
    batch's distinct lengths, each group one `generator.beam` (what `kerastune generate` compiles per length).
    """
    new_tokens = generator.max_new_tokens

    def continue_prompts(pieces, lengths, width):
        groups = tf.unique(lengths).y
        found = tf.fill([tf.shape(lengths)[0], new_tokens], tf.constant(generator.eos_id, tf.int32))

        def search_group(i, found):
            rows = tf.where(tf.equal(lengths, groups[i]))[:, 0]
            ids = tf.gather(pieces, rows).to_tensor()
            best = tf.cast(generator.beam(ids, tf.ones_like(ids)), tf.int32)
            return i + 1, tf.tensor_scatter_nd_update(found, rows[:, None], best)

        _, found = tf.while_loop(lambda i, _: i < tf.size(groups), search_group, [tf.constant(0), found])
        ids = tf.concat([pieces, tf.RaggedTensor.from_tensor(found)], axis=1).to_tensor(generator.filler_id)
        ids = tf.pad(ids, [[0, 0], [0, width - tf.shape(ids)[1]]], constant_values=generator.filler_id)
        return ids, tf.sequence_mask(lengths + new_tokens, width)

    return continue_prompts


def _chat_prompt_ids(chat, tokenizer):
    """A graph function: user messages -> the ids of the template's prompt for each, as `ChatTemplate.encode`
    tokenizes it: the added tokens around the message as constants, the stretch that holds the message (with the
    template's text next to it) tokenized whole."""
    before, after, strips = chat.user_message_frame()
    lead, tail = _cut_at_added(chat, before, last=True)
    head, trail = _cut_at_added(chat, after, last=False)
    lead_ids, trail_ids = (tf.constant(chat.encode([(t, [])], tokenizer)[0][0] if t else [], tf.int32)
                           for t in (lead, trail))

    def prompt_ids(prompts):
        messages = tf.strings.strip(prompts) if strips else prompts
        middle = tf.cast(tokenizer(tf.strings.join([tail, messages, head])), tf.int32)
        rows = middle.nrows()
        fixed = [tf.RaggedTensor.from_tensor(tf.tile(ids[None, :], [rows, 1])) for ids in (lead_ids, trail_ids)]
        return tf.concat([fixed[0], middle, fixed[1]], axis=1)

    return prompt_ids


def _cut_at_added(chat, text, last: bool) -> tuple[str, str]:
    """`text` cut next to the message: (everything up to its last added token, the plain text after it) when the
    message comes after `text`, or (the plain text before its first added token, the rest) when before it."""
    segments = chat.segments(text)
    if last:
        at = segments[-1][0] if segments and not segments[-1][2] else len(text)
    else:
        at = segments[0][1] if segments and not segments[0][2] else 0
    return text[:at], text[at:]
