"""One PPO step as trl 0.11's `PPOTrainer.step`, with Keras doing the update, for a seq2seq policy (T5:
`PPOTrainer`) or a causal one (GPT-2, Llama, Qwen, Gemma, ...: `CausalPPOTrainer`).

A step takes a batch of queries, the responses the policy sampled for them
and one score per response, then:
1. log-probs and values of the responses under the policy, and log-probs
   under the reference = the same model with its LoRA adapters off, or under
   full fine-tuning its starting weights swapped in (rl/reference.py: no
   second copy of the model), each one compiled forward pass;
2. KL-penalised per-token rewards, GAE advantages (whitened) and returns;
3. `ppo_epochs` passes over shuffled minibatches, each one
   `policy.train_on_batch` (clipped policy + value loss, Adam);
4. the adaptive KL coefficient moves towards the KL target.
It returns trl's statistics under trl's names.
"""

from pathlib import Path

import keras
import numpy as np

from kerastune.config import PPOConfig
from kerastune.data.tokens import bucket_width
from kerastune.errors import KerastuneError
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.rl.policy import LOSS_STATS
from kerastune.rl.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    gae_advantages,
    kl_penalized_rewards,
    masked_mean,
)
from kerastune.rl.reference import reference_context
from kerastune.runtime import backend, compile_model_function, replica_count
from kerastune.training.checkpoints import restore_latest, save_checkpoint


class LengthSampler:
    """Per-sample `max_new_tokens`, uniform over [min_value, max_value) like trl's `LengthSampler`."""

    def __init__(self, min_value, max_value, rng):
        self.min_value, self.max_value, self.rng = min_value, max_value, rng

    def __call__(self, n) -> np.ndarray:
        return self.rng.integers(self.min_value, self.max_value, size=n)


class PPOTrainer:
    """trl 0.11's PPO for a seq2seq policy; `ppo` holds trl's PPOConfig keys (config.PPOConfig)."""

    def __init__(self, policy, tokenizer, ppo: PPOConfig, *, max_source_length=512, seed=0):
        self.max_source_length = max_source_length
        # transformers' min_length counts the decoder start token: min_length 5 = 4 new tokens.
        generator = Seq2SeqGenerator(policy.seq2seq, tokenizer, max_new_tokens=ppo.output_max_length,
                                     max_source_length=max_source_length, min_new_tokens=max(ppo.min_length - 1, 0))
        self._start(policy, generator, ppo, seed)

    def _start(self, policy, generator, ppo: PPOConfig, seed):
        if backend() == "jax" and ppo.mini_batch_size % replica_count():
            raise KerastuneError(f"mini_batch_size {ppo.mini_batch_size} must be a multiple of the {replica_count()} "
                                 "data-parallel replicas (JAX splits every minibatch evenly over them)")
        self.policy, self.generator = policy, generator
        self.batch_size, self.mini_batch_size, self.ppo_epochs = ppo.batch_size, ppo.mini_batch_size, ppo.epochs
        self.gamma, self.lam = ppo.gamma, ppo.lam
        self.max_new_tokens = ppo.output_max_length
        self.kl_ctl = (AdaptiveKLController(ppo.init_kl_coef, ppo.kl_target, ppo.kl_horizon) if ppo.adaptive_kl
                       else FixedKLController(ppo.init_kl_coef))
        self.rng = np.random.default_rng(seed)
        self.length_sampler = LengthSampler(ppo.output_min_length, ppo.output_max_length, self.rng)
        self._reference_context = reference_context(policy.language_model)  # before any update
        policy.compile(optimizer=keras.optimizers.Adam(ppo.learning_rate, epsilon=1e-8))  # trl: torch Adam
        policy.optimizer.build(policy.trainable_variables)
        self._policy_forward = compile_model_function(policy, policy.logprobs_and_values)
        # Always called inside the reference context: traced with the adapters off, run on the starting weights.
        self._reference_forward = compile_model_function(policy, policy.logprobs_and_values)
        self.steps_done = 0

    # ---- rollouts ------------------------------------------------------------------

    def encode(self, queries) -> list[list[int]]:
        return self.generator.tokenize(queries)

    def row_limits(self, n, max_new_tokens=None) -> np.ndarray:
        """`max_new_tokens` per query: draws from the length sampler unless given."""
        return np.asarray(self.length_sampler(n) if max_new_tokens is None else max_new_tokens, "int32")

    def generate(self, query_ids, max_new_tokens=None) -> list[list[int]]:
        """Sampled responses (ids, `</s>` included when drawn) for a batch of queries, in one compiled call.

        `max_new_tokens` per query defaults to draws from the length sampler.
        The batch is padded to `batch_size` rows so every call has the same shape.
        """
        n = len(query_ids)
        limits = self.row_limits(n, max_new_tokens)
        rows = list(query_ids) + [query_ids[-1]] * (-n % self.batch_size)
        limits = np.concatenate([limits, np.ones(len(rows) - n, "int32")])
        ids, mask = self.generator.pad(rows, bucket_width(max(map(len, rows)), self.max_source_length))
        seed = self.rng.integers(0, 2**31 - 1, size=2)
        out, lengths = self.generator.sample_ids(ids, mask, limits, seed)
        return [[int(t) for t in row[:length]] for row, length in zip(out[:n], lengths[:n])]

    def decode(self, responses) -> list[str]:
        return self.generator.decode([r + [self.generator.eos_id] for r in responses])

    def respond(self, prompts, max_new_tokens=None) -> list[str]:
        """Sampled response texts for any number of prompts, `batch_size` per compiled call."""
        ids = self.encode(prompts)
        texts = []
        for first in range(0, len(ids), self.batch_size):
            chunk = ids[first:first + self.batch_size]
            limits = None if max_new_tokens is None else [max_new_tokens] * len(chunk)
            texts += self.decode(self.generate(chunk, limits))
        return texts

    # ---- one PPO step ----------------------------------------------------------------

    def batch_arrays(self, query_ids, responses):
        """Backbone inputs (decoder = start token + response[:-1]), targets (= response) and a 0/1 mask."""
        if any(len(r) == 0 for r in responses):
            raise KerastuneError("an empty response cannot be scored by PPO (every row needs max_new_tokens >= 1)")
        pad = self.generator.pad_id
        encoder_ids, encoder_mask = self.generator.pad(query_ids, bucket_width(max(map(len, query_ids)),
                                                                          self.max_source_length))
        width = bucket_width(max(map(len, responses)), self.max_new_tokens)
        decoder_ids = np.full((len(responses), width), pad, "int32")
        targets = np.full((len(responses), width), pad, "int32")
        mask = np.zeros((len(responses), width), "int32")
        for row, response in enumerate(responses):
            decoder_ids[row, 1:len(response)] = response[:-1]
            targets[row, :len(response)] = response
            mask[row, :len(response)] = 1
        inputs = {"encoder_token_ids": encoder_ids, "encoder_padding_mask": encoder_mask,
                  "decoder_token_ids": decoder_ids, "decoder_padding_mask": mask}
        return inputs, targets, mask

    def step(self, query_ids, responses, scores) -> dict:
        scores = np.asarray(scores, "float32")
        if len(query_ids) != self.batch_size or len(responses) != len(query_ids) or len(scores) != len(query_ids):
            raise KerastuneError(f"a PPO step needs {self.batch_size} queries, responses and scores; got "
                                 f"{len(query_ids)}, {len(responses)}, {len(scores)}")
        inputs, targets, token_mask = self.batch_arrays(query_ids, responses)
        mask = token_mask.astype("float32")
        logprobs, values = (np.asarray(a) * mask for a in self._policy_forward(inputs, targets))
        with self._reference_context():
            ref_logprobs = np.asarray(self._reference_forward(inputs, targets)[0]) * mask
        kl_coef = self.kl_ctl.value
        rewards, non_score, kls = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, kl_coef)
        advantages, returns = (a.astype("float32") for a in gae_advantages(values, rewards, mask, self.gamma, self.lam))

        minibatch_stats = []
        for _ in range(self.ppo_epochs):
            order = self.rng.permutation(self.batch_size)
            for first in range(0, self.batch_size, self.mini_batch_size):
                rows = order[first:first + self.mini_batch_size]
                targets_and_state = {"responses": targets[rows], "mask": mask[rows], "old_logprobs": logprobs[rows],
                                     "old_values": values[rows], "advantages": advantages[rows],
                                     "returns": returns[rows]}
                minibatch_stats.append(self.policy.train_on_batch(
                    {k: v[rows] for k, v in inputs.items()}, targets_and_state, return_dict=True))

        kl_per_row = kls.sum(axis=1)
        stats = {
            "objective/kl": float(kl_per_row.mean()),
            "objective/kl_coef": float(kl_coef),
            "objective/entropy": float((-logprobs * mask).sum(axis=1).mean()),
            "ppo/mean_non_score_reward": masked_mean(non_score, mask),
            "ppo/mean_scores": float(scores.mean()),
            "ppo/std_scores": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
            "tokens/queries_len_mean": float(np.mean([len(q) for q in query_ids])),
            "tokens/responses_len_mean": float(mask.sum(axis=1).mean()),
        }
        for name in LOSS_STATS:
            stats[f"ppo/{name}"] = float(np.mean([float(s[name]) for s in minibatch_stats]))
        stats["ppo/val/var_explained"] = 1 - stats["ppo/val/error"] / max(stats["ppo/returns/var"], 1e-8)
        self.kl_ctl.update(stats["objective/kl"], self.batch_size)
        self.steps_done += 1
        return stats

    # ---- checkpoints (training/checkpoints.py's format): the trainable weights and the value head's
    # dropout seed, Adam's state, and in state.json the step, the KL coefficient and the RNG ----

    def save_state(self, directory, keep=3, extra_state=None) -> Path:
        state = {"steps_done": self.steps_done, "kl_coef": self.kl_ctl.value, "rng": self.rng.bit_generator.state,
                 **(extra_state or {})}
        return save_checkpoint(directory, "ppo", self.steps_done, self.policy.state_variables(),
                               self.policy.optimizer, state, keep)

    def load_state(self, directory) -> tuple[Path | None, dict]:
        """Restore the newest good PPO checkpoint in `directory`: (its path, its state) or (None, {})."""
        checkpoint, state = restore_latest(directory, "ppo", self.policy.state_variables(), self.policy.optimizer)
        if checkpoint:
            self.steps_done, self.kl_ctl.value = state["steps_done"], state["kl_coef"]
            self.rng.bit_generator.state = state["rng"]
        return checkpoint, state


class CausalPPOTrainer(PPOTrainer):
    """trl 0.11's PPO for a causal policy (`CausalValuePolicy`), its rollouts sampled by `generator` (a
    `CausalLMGenerator`, e.g. a chat model's: responses end at its end-of-turn token) whose `max_new_tokens`
    covers `ppo.output_max_length - 1`, the longest the length sampler draws.

    A response ends at its first end token (kept, as trl's `remove_padding` keeps it) or at the query's drawn
    length: every row is sampled to the longest and then cut, which draws each row from the same distribution
    as sampling it to its own length. transformers' `min_length` counts the prompt for a causal model (trl's
    causal examples switch it off), so `ppo.min_length` > 0 is refused.
    """

    def __init__(self, policy, generator, ppo: PPOConfig, *, seed=0):
        self.check_settings(ppo)
        if generator.max_new_tokens < ppo.output_max_length - 1:
            raise KerastuneError(f"the generator makes {generator.max_new_tokens} new tokens at most; PPO's length "
                                 f"sampler draws up to {ppo.output_max_length - 1}")
        self._start(policy, generator, ppo, seed)

    @staticmethod
    def check_settings(ppo: PPOConfig):
        if ppo.min_length > 0:
            raise KerastuneError(f"ppo.min_length {ppo.min_length} is for seq2seq policies (transformers counts the "
                                 "prompt in a causal model's min_length): set ppo.min_length = 0")

    def encode(self, queries) -> list[list[int]]:
        return self.generator.tokenize(queries)

    def generate(self, query_ids, max_new_tokens=None) -> list[list[int]]:
        """Sampled responses (ids, the end token included when drawn) for a batch of queries, in one compiled
        call of `batch_size` rows, seeded from the trainer's generator of random numbers."""
        if any(len(q) == 0 for q in query_ids):
            raise KerastuneError("an empty query cannot be continued (every prompt needs at least one token)")
        n = len(query_ids)
        limits = self.row_limits(n, max_new_tokens)
        if limits.max() > self.generator.max_new_tokens:
            raise KerastuneError(f"{limits.max()} new tokens asked; the generator makes "
                                 f"{self.generator.max_new_tokens} at most")
        seed = self.rng.integers(0, 2**31 - 1, size=2)
        for variable in self.generator.sampler.variables:  # keras-hub's sampler seed: set, not carried over
            variable.assign(np.asarray(seed, variable.dtype))
        rows = list(query_ids) + [query_ids[-1]] * (-n % self.batch_size)
        out = self.generator.generate_tokens(rows, batch_size=len(rows))
        return [list(row[:limit]) for row, limit in zip(out[:n], limits)]

    def decode(self, responses) -> list[str]:
        return self.generator.decode_answers(responses)

    def batch_arrays(self, query_ids, responses):
        """query + response rows (right-padded to a bucket width) with each response token's predicting
        position, the targets (= the responses) and a 0/1 mask, both (batch, response tokens)."""
        if any(len(r) == 0 for r in responses):
            raise KerastuneError("an empty response cannot be scored by PPO (every row needs max_new_tokens >= 1)")
        n = len(responses)
        width = bucket_width(max(len(q) + len(r) for q, r in zip(query_ids, responses)), self.generator.max_positions)
        length = bucket_width(max(map(len, responses)), self.max_new_tokens)
        ids, real = np.zeros((n, width), "int32"), np.zeros((n, width), "int32")
        positions, targets, mask = (np.zeros((n, length), "int32") for _ in range(3))
        for row, (query, response) in enumerate(zip(query_ids, responses)):
            sequence = list(query) + list(response)
            ids[row, :len(sequence)], real[row, :len(sequence)] = sequence, 1
            positions[row] = len(query) - 1  # padding slots point at a real position; the mask drops them
            positions[row, :len(response)] += np.arange(len(response))
            targets[row, :len(response)], mask[row, :len(response)] = response, 1
        inputs = {"token_ids": ids, "padding_mask": real, "response_positions": positions}
        return inputs, targets, mask
