"""The PPO policy: a (LoRA) language model that also predicts a value for every response token.

trl's `AutoModelFor{Seq2Seq,Causal}LMWithValueHead`: value head = dropout +
dense(1) on the model's last hidden state. trl's head has dropout 0.1, but
trl 0.11's PPO never applies it: `batched_forward_pass` puts the model in eval
mode, and the PPO loss is computed from that pass. So the default here is 0
(no dropout anywhere in PPO's passes); `value_dropout` > 0 turns it on for
the update.

Both policies return (logits, values) for the response tokens only, shaped
(batch, response tokens), so one loss serves both:
- seq2seq (T5): the decoder's positions are the response's;
- causal (GPT-2, Llama, Qwen, Gemma, ...): each row is query + response, and
  the token at response position t is predicted at sequence position
  len(query) - 1 + t, as trl 0.11's `batched_forward_pass` aligns them
  (logits[:, :-1] against input_ids[:, 1:], masked from len(query) - 1).

The PPO update is `compute_loss`, so `train_on_batch` runs it on every
backend, compiled; trl's per-minibatch statistics are Keras metrics that
`train_on_batch(..., return_dict=True)` returns.
"""

import keras
from keras import ops

from kerastune.models.causal_training import head_logits
from kerastune.rl.ppo_math import entropy_from_logits, ppo_losses
from kerastune.rl.stats import StatsModel

LOSS_STATS = (
    "loss/policy", "loss/value", "loss/total", "policy/entropy", "policy/approxkl", "policy/policykl",
    "policy/clipfrac", "policy/advantages_mean", "returns/mean", "returns/var", "val/vpred", "val/error",
    "val/clipfrac", "val/mean", "val/var",
)


def token_logprobs(logits, targets):
    """log p(target) at each position."""
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return ops.take_along_axis(log_probs, ops.cast(targets, "int32")[..., None], axis=-1)[..., 0]


class ValuePolicy(StatsModel):
    """What the two policies share: the value head, PPO's loss and what a checkpoint keeps. A subclass says
    where its language model is (`language_model`) and gives its response positions' hidden states and
    logits (`response_hidden_and_logits`)."""

    def __init__(self, language_model, value_dropout=0.0, cliprange=0.2, cliprange_value=0.2, vf_coef=0.1, seed=0,
                 **kwargs):
        super().__init__(LOSS_STATS, **kwargs)
        self.language_model = language_model
        hidden_dim = language_model.backbone.hidden_dim
        self.value_dropout = keras.layers.Dropout(value_dropout, seed=seed)
        bound = hidden_dim ** -0.5  # torch.nn.Linear's default init, as trl's ValueHead
        init = keras.initializers.RandomUniform(-bound, bound, seed=seed)
        self.value_dense = keras.layers.Dense(1, kernel_initializer=init, bias_initializer=init, dtype="float32",
                                              name="value_head")
        self.value_dense.build((None, None, hidden_dim))
        self.loss_settings = dict(cliprange=cliprange, cliprange_value=cliprange_value, vf_coef=vf_coef)

    def response_hidden_and_logits(self, inputs):
        raise NotImplementedError

    def call(self, inputs, training=False):
        hidden, logits = self.response_hidden_and_logits(inputs)
        values = self.value_dense(self.value_dropout(ops.cast(hidden, "float32"), training=training))
        return ops.cast(logits, "float32"), values[..., 0]

    def logprobs_and_values(self, inputs, targets):
        """Inference-mode (log p(target), value) per response token, for rollouts."""
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
        self.track(stats)
        return loss

    def state_variables(self) -> list:
        """What a PPO checkpoint must keep: the trainable weights and the value head's dropout seed (Keras makes
        none for a rate of 0)."""
        seed = getattr(self.value_dropout, "seed_generator", None)
        return list(self.trainable_variables) + ([seed.state] if seed is not None else [])


class Seq2SeqValuePolicy(ValuePolicy):
    """Inputs: T5 backbone inputs (encoder/decoder token ids and padding masks; the decoder's are the start
    token + the response). Outputs: (logits, values) per decoder position."""

    @property
    def seq2seq(self):
        return self.language_model

    def response_hidden_and_logits(self, inputs):
        hidden = self.seq2seq.backbone(inputs, training=False)["decoder_sequence_output"]
        return hidden, self.seq2seq._logits(hidden)  # keras-hub's LM head, incl. T5's d_model ** -0.5 rescale


class CausalValuePolicy(ValuePolicy):
    """Inputs: {token_ids, padding_mask} of query + response rows and `response_positions` (batch, response
    tokens): the sequence position that predicts each response token, len(query) - 1 + t. Outputs: (logits,
    values) at those positions; the head runs on them only, not on the query's positions."""

    @property
    def causal_lm(self):
        return self.language_model

    def response_hidden_and_logits(self, inputs):
        hidden = self.causal_lm.backbone({"token_ids": inputs["token_ids"], "padding_mask": inputs["padding_mask"]},
                                         training=False)
        positions = ops.cast(inputs["response_positions"], "int32")[..., None]
        response_hidden = ops.take_along_axis(hidden, positions, axis=1)
        return response_hidden, head_logits(self.causal_lm, response_hidden)
