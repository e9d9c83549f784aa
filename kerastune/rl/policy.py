"""The PPO policy: a (LoRA) T5 that also predicts a value at every decoder position.

trl's `AutoModelForSeq2SeqLMWithValueHead`: value head = dropout + dense(1)
on the decoder's last hidden state. trl's head has dropout 0.1, but trl 0.11's
PPO never applies it: `batched_forward_pass` puts the model in eval mode, and
the PPO loss is computed from that pass. So the default here is 0 (no dropout
anywhere in PPO's passes); `value_dropout` > 0 turns it on for the update.

The PPO update is `compute_loss`, so `train_on_batch` runs it on every
backend, compiled; trl's per-minibatch statistics are Keras metrics that
`train_on_batch(..., return_dict=True)` returns.
"""

import keras
from keras import ops

from kerastune.rl.ppo_math import entropy_from_logits, ppo_losses

LOSS_STATS = (
    "loss/policy", "loss/value", "loss/total", "policy/entropy", "policy/approxkl", "policy/policykl",
    "policy/clipfrac", "policy/advantages_mean", "returns/mean", "returns/var", "val/vpred", "val/error",
    "val/clipfrac", "val/mean", "val/var",
)


def token_logprobs(logits, targets):
    """log p(target) at each position."""
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return ops.take_along_axis(log_probs, ops.cast(targets, "int32")[..., None], axis=-1)[..., 0]


class Seq2SeqValuePolicy(keras.Model):
    """Inputs: T5 backbone inputs (encoder/decoder token ids and padding masks). Outputs: (logits, values)."""

    def __init__(self, seq2seq, value_dropout=0.0, cliprange=0.2, cliprange_value=0.2, vf_coef=0.1, seed=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.seq2seq = seq2seq
        self.value_dropout = keras.layers.Dropout(value_dropout, seed=seed)
        bound = seq2seq.backbone.hidden_dim ** -0.5  # torch.nn.Linear's default init, as trl's ValueHead
        init = keras.initializers.RandomUniform(-bound, bound, seed=seed)
        self.value_dense = keras.layers.Dense(1, kernel_initializer=init, bias_initializer=init, dtype="float32",
                                              name="value_head")
        self.value_dense.build((None, None, seq2seq.backbone.hidden_dim))
        self.loss_settings = dict(cliprange=cliprange, cliprange_value=cliprange_value, vf_coef=vf_coef)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_STATS}

    def call(self, inputs, training=False):
        hidden = self.seq2seq.backbone(inputs, training=False)["decoder_sequence_output"]
        logits = self.seq2seq._logits(hidden)  # keras-hub's LM head, incl. T5's d_model ** -0.5 rescale
        values = self.value_dense(self.value_dropout(ops.cast(hidden, "float32"), training=training))
        return ops.cast(logits, "float32"), values[..., 0]

    def logprobs_and_values(self, inputs, targets):
        """Inference-mode (log p(target), value) per position, for rollouts."""
        logits, values = self(inputs, training=False)
        return token_logprobs(logits, targets), values

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits, values = y_pred
        mask = ops.cast(y["mask"], "float32")
        loss, stats = ppo_losses(
            token_logprobs(logits, y["responses"]), values, y["old_logprobs"], y["old_values"],
            y["advantages"], y["returns"], mask, **self.loss_settings,
        )
        stats["policy/entropy"] = ops.sum(entropy_from_logits(logits) * mask) / ops.sum(mask)
        for name, value in stats.items():
            self.trackers[name].update_state(value)
        return loss

    def state_variables(self) -> list:
        """What a PPO checkpoint must keep: the trainable weights and the value head's dropout seed (Keras makes
        none for a rate of 0)."""
        seed = getattr(self.value_dropout, "seed_generator", None)
        return list(self.trainable_variables) + ([seed.state] if seed is not None else [])

    @property
    def metrics(self):
        return list(self.trackers.values())
