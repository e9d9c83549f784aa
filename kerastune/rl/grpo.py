"""GRPO as trl 1.16's `GRPOTrainer` does it, for a causal LM, with Keras doing the updates.

A step takes `prompts_per_step` prompts, then:
1. samples `num_generations` (G) completions for each, all of them in one compiled batched call, seeded by
   (seed, step) so a resumed run draws what an uninterrupted one drew; a completion ends at its first end
   token (the chat template's end of turn) or at `max_completion_length`;
2. scores every completion with the reward functions and / or reward model (rl/rewards.py), weighted and
   summed; group-normalised advantages (rl/grpo_math.py);
3. the log-probs the loss needs, each one forward pass: the policy's before any update (`old`, when there is
   more than one update per generation batch; otherwise the current ones, detached, as trl does) and the
   reference's when `beta` > 0: the model with its LoRA adapters off, or, under full fine-tuning, the
   starting weights swapped in for that pass (kept in host memory, not as a second model);
4. `num_iterations` passes over the batch in minibatches, each `policy.train_on_batch` with trl's loss.
It returns trl's statistics under trl's names.
"""

from pathlib import Path

import numpy as np
from keras import ops

from kerastune.data.tokens import bucket_width
from kerastune.errors import KerastuneError
from kerastune.generation.causal import CausalLMGenerator
from kerastune.rl.grpo_math import group_advantages, grpo_loss
from kerastune.rl.reference import reference_context
from kerastune.rl.stats import StatsModel
from kerastune.runtime import compile_model_function
from kerastune.training.checkpoints import restore_latest, save_checkpoint

LOSS_STATS = ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "kl")


def completion_logps(logits, labels, temperature):
    """log p(label) per position, from logits divided by the sampling temperature (as trl scores them)."""
    logits = ops.cast(logits, "float32") / temperature
    picked = ops.take_along_axis(logits, ops.cast(labels, "int32")[..., None], axis=-1)[..., 0]
    return picked - ops.logsumexp(logits, axis=-1)


class GRPOPolicy(StatsModel):
    """Inputs: {token_ids, padding_mask, labels} of prompt + completion rows (tokens 0..n-2 predict 1..n-1).
    Outputs: log p(label) per position. `compute_loss` is trl's GRPO loss over the completion positions."""

    def __init__(self, causal_lm, temperature=1.0, beta=0.0, epsilon=0.2, epsilon_high=None, loss_type="dapo",
                 max_completion_length=None, **kwargs):
        super().__init__([name for name in LOSS_STATS if name != "kl" or beta], **kwargs)
        self.causal_lm = causal_lm
        self.temperature = temperature
        self.loss_settings = dict(beta=beta, epsilon_low=epsilon, epsilon_high=epsilon_high, loss_type=loss_type,
                                  max_completion_length=max_completion_length)

    def call(self, inputs, training=False):
        logits = self.causal_lm({"token_ids": inputs["token_ids"], "padding_mask": inputs["padding_mask"]},
                                training=training)
        return completion_logps(logits, inputs["labels"], self.temperature)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        old = y["old_logps"] if "old_logps" in y else ops.stop_gradient(y_pred)
        loss, stats = grpo_loss(y_pred, old, y["advantages"], y["mask"], ref_logps=y.get("ref_logps"),
                                num_items=y["num_items"][0], **self.loss_settings)
        self.track(stats)
        return loss


class GRPOTrainer:
    """Generation, scoring and updates of one GRPO step; `grpo` holds the recipe's [grpo] keys."""

    def __init__(self, policy: GRPOPolicy, generator: CausalLMGenerator, grpo, optimizer, reward, seed=0):
        self.policy, self.generator, self.reward = policy, generator, reward
        self.grpo, self.seed = grpo, seed
        self.group = grpo.num_generations
        self.rows = grpo.prompts_per_step * self.group
        if self.rows % grpo.steps_per_generation:
            raise KerastuneError(f"grpo.steps_per_generation {grpo.steps_per_generation} must divide the "
                                 f"{self.rows} completions of a step (prompts_per_step x num_generations)")
        self.mini_batch_size = self.rows // grpo.steps_per_generation
        policy.compile(optimizer=optimizer)
        policy.optimizer.build(policy.trainable_variables)
        self._forward = compile_model_function(policy, lambda x: policy(x, training=False), xla=False)
        # The reference pass: always called inside `_reference_context`, so it is traced (and retraced for a new
        # shape) with the adapters off, and reads the swapped-in starting weights when it runs.
        self._reference_forward = compile_model_function(policy, lambda x: policy(x, training=False), xla=False)
        if grpo.beta:
            self._reference_context = reference_context(policy.causal_lm)
        self.steps_done = 0

    # ---- rollouts ------------------------------------------------------------------

    def sample(self, prompt_ids, step: int) -> list[list[int]]:
        """G completions per prompt (prompt by prompt), in one call, seeded by (seed, step)."""
        for variable in self.generator.sampler.variables:  # keras-hub's sampler seed: set, not carried over
            variable.assign(np.asarray([self.seed, step], variable.dtype))
        rows = [ids for ids in prompt_ids for _ in range(self.group)]
        return self.generator.generate_tokens(rows, batch_size=len(rows))

    def batch_arrays(self, prompt_ids, completions):
        """prompt + completion rows (right-padded to a bucket width), labels and the completion mask."""
        rows = [ids for ids in prompt_ids for _ in range(self.group)]
        longest = max(len(p) + len(c) for p, c in zip(rows, completions))
        width = bucket_width(longest, self.generator.max_positions)
        ids = np.zeros((len(rows), width), "int32")
        real = np.zeros((len(rows), width), "int32")
        mask = np.zeros((len(rows), width - 1), "float32")
        for i, (prompt, completion) in enumerate(zip(rows, completions)):
            sequence = list(prompt) + list(completion)
            ids[i, :len(sequence)], real[i, :len(sequence)] = sequence, 1
            mask[i, len(prompt) - 1:len(sequence) - 1] = 1  # the positions whose label is a completion token
        inputs = {"token_ids": ids[:, :-1], "padding_mask": real[:, :-1], "labels": ids[:, 1:]}
        return inputs, mask

    def logps(self, inputs, reference=False) -> np.ndarray:
        if not reference:
            return np.asarray(self._forward(inputs))
        with self._reference_context():
            return np.asarray(self._reference_forward(inputs))

    # ---- one step --------------------------------------------------------------------

    def step(self, prompts, prompt_ids, step: int, extra_columns=None) -> dict:
        """One GRPO step on these prompts (texts or messages, and their token ids); trl's statistics."""
        completions = self.sample(prompt_ids, step)
        if any(len(c) == 0 for c in completions):
            raise KerastuneError("a completion had no token (grpo.max_completion_length must be >= 1)")
        eos = self.generator.eos_id
        rewards, per_function = self.reward(prompts, completions, self.group, extra_columns or {})
        advantages = group_advantages(rewards, self.group, self.grpo.scale_rewards)
        inputs, mask = self.batch_arrays(prompt_ids, completions)
        targets = {"advantages": advantages, "mask": mask,
                   "num_items": np.full(len(mask), mask.sum(), "float32")}
        if self.grpo.num_iterations > 1 or self.mini_batch_size < self.rows:
            targets["old_logps"] = self.logps(inputs)
        if self.grpo.beta:
            targets["ref_logps"] = self.logps(inputs, reference=True)
        rng = np.random.default_rng([self.seed, step])
        updates = []
        for _ in range(self.grpo.num_iterations):
            order = rng.permutation(self.rows)
            for first in range(0, self.rows, self.mini_batch_size):
                chosen = order[first:first + self.mini_batch_size]
                updates.append(self.policy.train_on_batch({k: v[chosen] for k, v in inputs.items()},
                                                          {k: v[chosen] for k, v in targets.items()},
                                                          return_dict=True))
        grouped = np.asarray(rewards).reshape(-1, self.group)
        lengths = np.asarray([len(c) for c in completions])
        stats = {
            "reward": float(np.mean(rewards)),
            "reward_std": float(np.mean(grouped.std(axis=1, ddof=1))) if self.group > 1 else 0.0,
            "frac_reward_zero_std": float(np.mean(grouped.std(axis=1) == 0)),
            **{f"rewards/{name}/mean": value for name, value in per_function.items()},
            "completions/mean_length": float(lengths.mean()),
            "completions/clipped_ratio": float(np.mean([c[-1] != eos for c in completions])),
        }
        for name in updates[0]:
            stats[name] = float(np.mean([float(u[name]) for u in updates]))
        self.steps_done = step + 1
        return stats

    # ---- checkpoints (training/checkpoints.py's format): the trainable weights, dropout's seed states, the
    # optimizer's state and the step; generation and minibatch order are drawn from (seed, step) ----

    def state_variables(self) -> list:
        seeds = [v for v in self.policy.variables if v.path.endswith("seed_generator_state")]
        return list(self.policy.trainable_variables) + seeds

    def save_state(self, directory, keep=3, extra_state=None) -> Path:
        return save_checkpoint(directory, "grpo", self.steps_done, self.state_variables(), self.policy.optimizer,
                               {"steps_done": self.steps_done, **(extra_state or {})}, keep)

    def load_state(self, directory) -> tuple[Path | None, dict]:
        checkpoint, state = restore_latest(directory, "grpo", self.state_variables(), self.policy.optimizer)
        if checkpoint:
            self.steps_done = state["steps_done"]
        return checkpoint, state
