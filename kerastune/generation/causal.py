"""Text generation for keras-hub causal LMs (GPT-2, Llama, Qwen, Gemma, Mistral, ...): every decoding
strategy, batched and compiled.

Greedy search and the sampling strategies run keras-hub's compiled
`generate_step` with a sampler from `samplers.py`; prompts of different
lengths share a batch (each row continues after its own prompt, at its own
positions). Beam search is kerastune's transformers-faithful `beam_search`
(keras-hub's `BeamSampler` keeps no finished hypotheses and has no length
penalty) over the model's key/value cache (`call_with_cache`); its batches
hold prompts of one length.

Prompts are tokenized as transformers' tokenizer of the same checkpoint
does: with the start token where the model's preprocessor adds one (Llama,
Gemma), without it where none is added (GPT-2, Qwen), so the same checkpoint
gives the same continuations.
"""

import keras
import numpy as np
from keras import ops

from kerastune.data.tokens import bucket_width, causal_prompt, to_str, until_end
from kerastune.errors import KerastuneError
from kerastune.generation.samplers import make_sampler, resolve_sampler_name
from kerastune.generation.search import beam_search
from kerastune.runtime import compile_model_function

# Rotary-position models (Llama, Qwen, Gemma, ...) have no table of positions to run out of; this bounds the
# prompt length (and the bucket widths) the way GPT-2's 1,024 learned positions do.
ROTARY_MAX_POSITIONS = 1 << 15


def start_token_id(model):
    """The id the model's preprocessor puts before a text, or None (GPT-2 and Qwen put none)."""
    preprocessor, tokenizer = model.preprocessor, model.preprocessor.tokenizer
    if not getattr(preprocessor, "add_start_token", False) or getattr(tokenizer, "start_token_id", None) is None:
        return None
    return int(tokenizer.start_token_id)


def cache_shape(backbone, batch, length) -> list:
    """The shape of keras-hub's key/value cache: (batch, layers, key and value, length, kv heads, head size)."""
    query_heads = getattr(backbone, "num_query_heads", None) or backbone.num_heads
    kv_heads = getattr(backbone, "num_key_value_heads", None) or query_heads
    head_dim = getattr(backbone, "head_dim", None) or backbone.hidden_dim // query_heads
    return [batch, backbone.num_layers, 2, length, kv_heads, head_dim]


class CausalLMGenerator:
    """Prompts in, continuations out, with one decoding strategy.

    Args:
        model: a keras-hub `CausalLM` (it has `call_with_cache`).
        tokenizer: its tokenizer.
        max_new_tokens: tokens generated after each prompt at most.
        sampler: "greedy", "sample", "top_k", "top_p", "beam" or "eps_greedy".
        temperature, top_k, top_p, eps: the strategy's settings (transformers'
            meaning: top_k=0 and top_p=1 are off).
        num_beams, length_penalty, early_stopping: beam search, as transformers.
        seed: sampling seed; the same seed gives the same text.
        end_id: the token that ends a continuation (default: the tokenizer's end token; a chat model's
            end-of-turn token, e.g. `<|im_end|>`, for answers in its chat template).
    """

    def __init__(self, model, tokenizer, max_new_tokens=50, sampler="greedy", temperature=1.0, top_k=0, top_p=1.0,
                 eps=0.5, num_beams=1, length_penalty=1.0, early_stopping=False, seed=None, end_id=None):
        if not hasattr(model, "call_with_cache"):
            raise KerastuneError(f"causal generation needs a keras-hub causal LM with a key/value cache; this is a "
                                 f"{type(model).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.strategy = resolve_sampler_name(sampler, top_k, top_p, num_beams)
        self.num_beams = max(num_beams, 2) if self.strategy == "beam" else 1
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.eos_id = int(tokenizer.end_token_id if end_id is None else end_id)
        self.start_id = start_token_id(model)
        self.filler_id = 1 if self.eos_id == 0 else 0  # unfilled positions must not hold the stop token
        self.max_positions = getattr(model.backbone, "max_sequence_length", None) or ROTARY_MAX_POSITIONS
        if self.strategy == "beam":
            self._compiled_beam = compile_model_function(model, self.beam)
        else:
            self.sampler = make_sampler(sampler, temperature, top_k, top_p, eps, seed)
            self._generate_function = None

    # ---- tokens -----------------------------------------------------------------

    def tokenize(self, prompts) -> list[list[int]]:
        """Prompt ids, after the start token where the model has one; without one, an empty prompt starts
        from the end token (GPT-2's `<|endoftext|>`, transformers' BOS for GPT-2).

        Long prompts keep their last tokens, leaving room for `max_new_tokens`.
        """
        room = self.max_positions - self.max_new_tokens - (self.start_id is not None)
        if room < 1:
            raise KerastuneError(
                f"max_new_tokens {self.max_new_tokens} leaves no room for a prompt in {self.max_positions} positions")
        pieces = self.tokenizer(list(prompts))
        return [causal_prompt(np.asarray(p), room, self.eos_id, self.start_id) for p in pieces]

    def decode(self, rows) -> list[str]:
        """The text of each row of ids, as given (transformers' `decode` without skipping special tokens)."""
        return [to_str(self.tokenizer.detokenize([list(row)])[0]) if len(row) else "" for row in rows]

    def decode_answers(self, rows) -> list[str]:
        """The text of each row of new ids, the end token left out."""
        return self.decode([[t for t in row if t != self.eos_id] for row in rows])

    # ---- keras-hub samplers -----------------------------------------------------

    def _sample(self, pieces, width) -> list[list[int]]:
        """Continuations of one batch of prompts (any lengths) with the keras-hub sampler."""
        length = width + self.max_new_tokens
        # Unfilled positions must not hold the stop token, or keras-hub sees every row as finished.
        ids = np.full((len(pieces), length), self.filler_id, "int32")
        mask = np.zeros((len(pieces), length), "bool")
        for i, p in enumerate(pieces):
            ids[i, : len(p)], mask[i, : len(p)] = p, True
        model = self.model
        model.sampler = self.sampler  # what `CausalLM.compile(sampler=...)` sets, without recompiling
        if self._generate_function is None:
            model.generate_function = None
            self._generate_function = model.make_generate_function()
        out = self._generate_function({"token_ids": ids, "padding_mask": mask}, stop_token_ids=(self.eos_id,))
        out = np.asarray(ops.convert_to_numpy(out["token_ids"]))
        return [until_end(out[i, len(p) : len(p) + self.max_new_tokens], self.eos_id) for i, p in enumerate(pieces)]

    # ---- beam search ------------------------------------------------------------

    def prefill(self, prompt_ids, prompt_mask):
        """The prompt through the model once, filling a cache sized for the new tokens."""
        batch, width = ops.shape(prompt_ids)[0], ops.shape(prompt_ids)[1]
        shape = cache_shape(self.model.backbone, batch, width + self.max_new_tokens)
        cache = ops.zeros(shape, dtype=self.model.compute_dtype)
        logits, _, cache = self.model.call_with_cache(prompt_ids, cache, 0)
        log_probs = ops.log_softmax(ops.cast(logits[:, -1, :], "float32"), axis=-1)
        return log_probs, [cache]

    def step(self, tokens, reorder, index, state, prompt_length):
        """New token number `index` (1-based) at position prompt_length + index - 1; the cache
        follows the surviving beams."""
        cache = ops.take(state[0], reorder, axis=0)
        logits, _, cache = self.model.call_with_cache(tokens[:, None], cache, prompt_length + index - 1)
        return ops.log_softmax(ops.cast(logits[:, 0, :], "float32"), axis=-1), [cache]

    def beam(self, prompt_ids, prompt_mask):
        prompt_length = ops.shape(prompt_ids)[1]

        def step(tokens, reorder, index, state):
            return self.step(tokens, reorder, index, state, prompt_length)

        return beam_search(
            self.prefill, step, (prompt_ids, prompt_mask), max_new_tokens=self.max_new_tokens,
            eos_id=self.eos_id, pad_id=self.eos_id, num_beams=self.num_beams,
            length_penalty=self.length_penalty, early_stopping=self.early_stopping,
        )

    def _beam(self, pieces) -> list[list[int]]:
        ids = np.asarray(pieces, "int32")
        out = self._compiled_beam(ops.convert_to_tensor(ids), ops.convert_to_tensor(np.ones_like(ids)))
        return [until_end(row, self.eos_id) for row in np.asarray(ops.convert_to_numpy(out))]

    # ---- batches ----------------------------------------------------------------

    def generate_tokens(self, pieces, batch_size=8, progress=False) -> list[list[int]]:
        """The new ids for each tokenized prompt, up to and including the end token if it came."""
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        if self.strategy == "beam":  # one prompt length per batch
            groups = {}
            for i in order:
                groups.setdefault(len(pieces[i]), []).append(i)
            batches = [g[s : s + batch_size] for g in groups.values() for s in range(0, len(g), batch_size)]
        else:
            batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        bar = keras.utils.Progbar(len(pieces), unit_name="prompt") if progress else None
        outputs = [None] * len(pieces)
        for chosen in batches:
            batch = [pieces[i] for i in chosen]
            if self.strategy == "beam":
                new = self._beam(batch)
            else:  # pad rows and width to a few fixed shapes, so the compiled function is reused
                width = bucket_width(max(len(p) for p in batch), self.max_positions - self.max_new_tokens)
                rows = min(batch_size, len(pieces))
                new = self._sample(batch + [batch[-1]] * (rows - len(batch)), width)
            for i, tokens in zip(chosen, new):
                outputs[i] = tokens
            if bar:
                bar.add(len(chosen))
        return outputs

    def generate(self, prompts, batch_size=8, progress=False) -> list[str]:
        """Prompt + continuation as text, the start and end tokens left out (transformers'
        `decode(generate(...)[0], skip_special_tokens=True)`)."""
        pieces = self.tokenize(prompts) if len(prompts) else []
        news = self.generate_tokens(pieces, batch_size, progress)
        return self.decode([self.without_special(prompt + new) for prompt, new in zip(pieces, news)])

    def without_special(self, ids) -> list[int]:
        return [t for t in ids if t not in (self.eos_id, self.start_id)]

