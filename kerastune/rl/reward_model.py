"""Reward models trained on preference pairs, as trl 1.16's `RewardTrainer` trains them.

A reward model gives a sequence (prompt + answer) one score. Two kinds:
- a causal LM with a score head: transformers' `*ForSequenceClassification` with one label, which trl makes
  from a causal checkpoint (a bias-free dense layer, normal(0.02) init, on the last real token's hidden state);
- a text classifier with one output (RoBERTa-style): its logit.
`RewardModel.compute_loss` is rl/reward_math.py's Bradley-Terry loss on each pair's (chosen, rejected) scores,
both in one forward pass; trl's statistics (accuracy, margin, min/mean/max reward) are Keras metrics.

Saved as the run's `model/` (the causal LM or the classifier, as a Keras preset) plus, for a causal LM,
`score_head.npz`; `load_reward_model` reads it back and `score_texts` scores token sequences, which is how PPO
and GRPO use it.
"""

from pathlib import Path

import keras
import keras_hub
import numpy as np
from keras import ops

from kerastune.errors import KerastuneError
from kerastune.rl.reward_math import pairwise_reward_loss
from kerastune.rl.stats import StatsModel

STATS = ("accuracy", "margin", "min_reward", "mean_reward", "max_reward")
SCORE_HEAD_FILE = "score_head.npz"


def is_causal(model) -> bool:
    """A decoder-only LM (keras-hub's Seq2SeqLM is a CausalLM too)."""
    return isinstance(model, keras_hub.models.CausalLM) and not isinstance(model, keras_hub.models.Seq2SeqLM)


def check_reward_model(model, name: str):
    """One line unless `model` can be a reward model: a causal LM, or a text classifier with one output."""
    if is_causal(model):
        return
    if isinstance(model, keras_hub.models.TextClassifier):
        if model.num_classes != 1:
            raise KerastuneError(f"a text classifier reward model needs one output (one label); '{name}' has "
                                 f"{model.num_classes}")
        return
    raise KerastuneError(f"reward_model needs a causal LM (GPT-2, Llama, Qwen, Gemma, ...) or a one-label text "
                         f"classifier (RoBERTa); '{name}' is {type(model).__name__}")


class RewardModel(StatsModel):
    """Inputs: {token_ids, padding_mask}, each (batch, 2, length) (chosen first), or (batch, length) for `score`.
    Outputs: the scores, (batch, 2)."""

    def __init__(self, model, center_rewards_coefficient=None, seed=0, **kwargs):
        super().__init__(STATS, **kwargs)
        check_reward_model(model, type(model).__name__)
        self.model = model
        self.center_rewards_coefficient = center_rewards_coefficient
        self.preprocessor = None  # `fit` detaches a task's preprocessor; this one has none
        self.reports_token_accuracy = False
        self.score_head = None
        if is_causal(model):
            self.score_head = keras.layers.Dense(
                1, use_bias=False, dtype="float32", name="score",
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.02, seed=seed))
            self.score_head.build((None, model.backbone.hidden_dim))

    def score(self, token_ids, padding_mask, training=False):
        """One score per sequence: (rows, length) -> (rows,)."""
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if self.score_head is None:
            return ops.cast(self.model(inputs, training=training), "float32")[:, 0]
        hidden = self.model.backbone(inputs, training=training)
        last = ops.maximum(ops.sum(ops.cast(padding_mask, "int32"), axis=1) - 1, 0)  # right-padded rows
        pooled = ops.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
        return self.score_head(ops.cast(pooled, "float32"))[:, 0]

    def call(self, inputs, training=False):
        length = ops.shape(inputs["token_ids"])[-1]
        scores = self.score(ops.reshape(inputs["token_ids"], (-1, length)),
                            ops.reshape(inputs["padding_mask"], (-1, length)), training=training)
        return ops.reshape(scores, (-1, 2))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss, stats = pairwise_reward_loss(y_pred[:, 0], y_pred[:, 1], margin=x.get("margin"),
                                           center_rewards_coefficient=self.center_rewards_coefficient)
        self.track(stats)
        return loss

    def save(self, directory):
        """The model as a Keras preset, and the score head beside it."""
        directory = Path(directory)
        self.model.save_to_preset(str(directory))
        if self.score_head is not None:
            np.savez(directory / SCORE_HEAD_FILE, kernel=np.asarray(self.score_head.kernel))


def load_reward_model(directory) -> RewardModel:
    """A reward_model run's `model/` folder as a `RewardModel`."""
    from kerastune.models.load import load_model

    directory = Path(directory)
    model = load_model(str(directory))
    reward_model = RewardModel(model)
    if reward_model.score_head is not None:
        head = directory / SCORE_HEAD_FILE
        if not head.is_file():
            raise KerastuneError(f"{directory} is a causal LM without {SCORE_HEAD_FILE}: not a reward_model run's "
                                 "model")
        reward_model.score_head.kernel.assign(np.load(head)["kernel"])
    return reward_model
