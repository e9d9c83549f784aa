"""DPO as a Keras model: `fit` trains a causal LM or a seq2seq model on preference pairs with trl's DPO loss.

A batch holds pairs as (batch, 2, length) tokens, chosen first (data/preference.py). `DPOModel` runs both
sequences of every pair through the model in one forward pass (the pair axis folded into the batch; a seq2seq
model's encoder input, the prompt, repeated for both answers), sums log p(token) over each answer's tokens,
and `compute_loss` is rl/dpo_math.py's loss against the reference log-probs the batch carries. Those are
computed once before training (`pair_logps`): the reference is the model as it starts (with its LoRA
adapters off, as trl's reference under PEFT), so no second copy of the weights is ever held and a resumed run
computes the same ones. trl's statistics are Keras metrics, so they reach the progress bar, history.csv,
TensorBoard and the plots like the loss, as `val_*` on held-out pairs.
"""

import contextlib

import numpy as np
from keras import ops

from kerastune.models.lora import adapters_disabled
from kerastune.rl.dpo_math import dpo_loss
from kerastune.rl.pairs import run_on_pairs
from kerastune.rl.stats import StatsModel

STATS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
         "logps/rejected")


def sequence_logps(logits, labels, label_mask):
    """(sum of log p(label) over the masked positions, the masked count) per row. log p = logit - logsumexp, so no
    second (rows, length, vocabulary) tensor is made."""
    logits = ops.cast(logits, "float32")
    picked = ops.take_along_axis(logits, ops.cast(labels, "int32")[..., None], axis=-1)[..., 0]
    mask = ops.cast(label_mask, "float32")
    return ops.sum((picked - ops.logsumexp(logits, axis=-1)) * mask, axis=-1), ops.sum(mask, axis=-1)


class DPOModel(StatsModel):
    """Inputs: {token_ids, padding_mask, labels, label_mask, reference_logps} (a seq2seq model: encoder_* and
    decoder_* in place of the first two); outputs: (log-probs, answer token counts), each (batch, 2). The
    weights are the wrapped model's."""

    def __init__(self, model, beta=0.1, loss_type="sigmoid", label_smoothing=0.0, **kwargs):
        super().__init__(STATS, **kwargs)
        self.model = model
        self.settings = dict(beta=beta, loss_type=loss_type, label_smoothing=label_smoothing)
        self.preprocessor = None  # `fit` detaches a task's preprocessor; this one has none
        self.reports_token_accuracy = False

    def call(self, inputs, training=False):
        length = ops.shape(inputs["labels"])[-1]

        def fold(t):  # (batch, 2, length) -> (2 batch, length): chosen, rejected, chosen, ...
            return ops.reshape(t, (-1, length))

        if "encoder_token_ids" in inputs:  # seq2seq: the prompt once per answer
            model_inputs = {"encoder_token_ids": ops.repeat(inputs["encoder_token_ids"], 2, axis=0),
                            "encoder_padding_mask": ops.repeat(inputs["encoder_padding_mask"], 2, axis=0),
                            "decoder_token_ids": fold(inputs["decoder_token_ids"]),
                            "decoder_padding_mask": fold(inputs["decoder_padding_mask"])}
        else:
            model_inputs = {"token_ids": fold(inputs["token_ids"]), "padding_mask": fold(inputs["padding_mask"])}
        logits = self.model(model_inputs, training=training)
        logps, counts = sequence_logps(logits, fold(inputs["labels"]), fold(inputs["label_mask"]))
        return ops.reshape(logps, (-1, 2)), ops.reshape(counts, (-1, 2))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logps, counts = y_pred
        reference = x["reference_logps"]
        loss, stats = dpo_loss(logps[:, 0], logps[:, 1], reference[:, 0], reference[:, 1],
                               chosen_lengths=counts[:, 0], rejected_lengths=counts[:, 1], **self.settings)
        self.track(stats)
        return loss


def pair_logps(model: DPOModel, dataset, reference=False) -> tuple[np.ndarray, np.ndarray]:
    """(log-probs, answer token counts), each (pairs, 2) in the pairs' order, for a dataset made with
    `extra={"index": ...}`. `reference`: with the LoRA adapters off (a traced function sees them as they are
    when it is traced, so the function is made inside the block)."""
    with adapters_disabled(model.model) if reference else contextlib.nullcontext():
        return run_on_pairs(model, dataset, key="reference" if reference else "policy")


def preference_stats(logps, counts, reference_logps, **settings) -> dict:
    """trl's DPO statistics and loss over all pairs at once (not averaged batch by batch), as floats, plus the
    policy's own preference: how often and by how much it gives the chosen answer the higher log-prob."""
    loss, stats = dpo_loss(logps[:, 0], logps[:, 1], reference_logps[:, 0], reference_logps[:, 1],
                           chosen_lengths=counts[:, 0], rejected_lengths=counts[:, 1], **settings)
    out = {"loss": float(loss), **{name: float(value) for name, value in stats.items()}}
    out["logps/margin"] = float(np.mean(logps[:, 0] - logps[:, 1]))
    out["logps/accuracy"] = float(np.mean(logps[:, 0] > logps[:, 1]))
    return out
