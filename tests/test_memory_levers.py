"""The memory levers change memory, not the update: rematerialized decoder layers and the chunked cross-entropy
give the plain model's token loss and gradients; accumulated batches the update of one batch as large; and
causal_lm runs with all of them."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import kerastune
from kerastune.cli import main
from kerastune.errors import KerastuneError
from kerastune.models.causal_training import CausalLMForTraining, chunked_cross_entropy, head_logits, hidden_states
from kerastune.models.lora import enable_lora
from kerastune.training.losses import token_loss
from kerastune.training.optimizer import create_optimizer

DATA = Path(__file__).resolve().parents[1] / "recipes" / "data"
TEXTS = [f"la mochila {i} es de color {c} y pesa {i % 7} kilos" for i, c in enumerate(["rojo", "azul"] * 30)]
RNG = np.random.RandomState(0)
IDS = RNG.randint(3, 40, size=(4, 16)).astype("int32")
LABELS = RNG.randint(3, 40, size=(4, 16)).astype("int32")
WEIGHTS = (RNG.uniform(size=(4, 16)) > 0.3).astype("float32")
X = {"token_ids": IDS, "padding_mask": np.ones_like(IDS)}


def loss_and_gradients(model, loss_fn):
    """The loss and its gradients with respect to every trainable variable, on either backend."""
    variables = model.trainable_variables
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        return float(loss), [np.asarray(g) for g in tape.gradient(loss, variables)]
    import jax

    def stateless(values):
        mapping = list(zip(variables, values))
        with keras.StatelessScope(state_mapping=mapping):
            return loss_fn()

    loss, grads = jax.value_and_grad(stateless)([v.value for v in variables])
    return float(loss), [np.asarray(g) for g in grads]


def reference_loss(model):
    return token_loss()(LABELS, model(X, training=False), sample_weight=WEIGHTS)


@pytest.mark.parametrize("name", ["tiny-qwen", "tiny-gemma"])
def test_remat_and_chunked_loss_keep_the_loss_and_gradients(name):
    """Each decoder layer rematerialized, the loss in 4 chunks of positions (the last one short): the plain
    model's token loss and gradients."""
    model = kerastune.load_model(name, texts=TEXTS, vocab_size=300)
    model.preprocessor = None
    expected, expected_grads = loss_and_gradients(model, lambda: reference_loss(model))
    for remat, chunk in ((True, 0), (False, 5), (True, 5)):
        def loss():  # the wrapper's training pass, without dropout so that the two sides can be compared
            hidden = hidden_states(model, IDS, X["padding_mask"], remat=remat, training=False)
            if chunk:
                return chunked_cross_entropy(model, hidden, ops.convert_to_tensor(LABELS), WEIGHTS, chunk, 16)
            return token_loss()(LABELS, head_logits(model, hidden), sample_weight=WEIGHTS)

        got, grads = loss_and_gradients(model, loss)
        assert got == pytest.approx(expected, rel=1e-5), (remat, chunk)
        for g, e in zip(grads, expected_grads):
            np.testing.assert_allclose(g, e, atol=1e-6, err_msg=str((remat, chunk)))


def test_two_accumulated_batches_make_the_update_of_one_twice_as_large():
    weights = np.ones_like(WEIGHTS)
    models = []
    for accumulate, batches in ((1, [slice(0, 4)]), (2, [slice(0, 2), slice(2, 4)])):
        model = kerastune.load_model("tiny-qwen", texts=TEXTS, vocab_size=300)  # no dropout: the same passes
        model.preprocessor = None
        optimizer = create_optimizer(1e-2, 1, gradient_accumulation_steps=accumulate)
        model.compile(optimizer=optimizer, loss=token_loss())
        for rows in batches:
            model.train_on_batch({k: v[rows] for k, v in X.items()}, LABELS[rows], sample_weight=weights[rows])
        assert int(optimizer.iterations) == 1  # updates, which the schedule counts
        models.append(model)
    for one, accumulated in zip(*(m.get_weights() for m in models)):  # Adam's first step is about lr * sign(g),
        np.testing.assert_allclose(accumulated, one, atol=1e-4)  # so near-zero gradients' float noise shows


@pytest.mark.slow
def test_causal_lm_runs_with_every_lever(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", "causal_lm", "--set", "model=tiny-llama", f"dataset={DATA / 'products_sample.csv'}",
                 "max_train_samples=64", "max_eval_samples=16", "epochs=2", "batch_size=4", "max_length=48",
                 "max_new_tokens=4", "decoders=greedy", "trace_steps=2", "trace_top_n=2",
                 "gradient_accumulation_steps=2", "remat=true", "loss_chunk_size=16", "learning_rate=1e-3",
                 f"output_dir={run_dir}"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"]


def test_remat_refuses_layers_with_dropout():
    """A recomputed layer would draw other dropout masks than its forward pass did."""
    with pytest.raises(KerastuneError, match="train.remat needs decoder layers without dropout"):
        CausalLMForTraining(kerastune.load_model("tiny-gpt2", texts=TEXTS, vocab_size=300), remat=True)
    model = kerastune.load_model("tiny-llama", texts=TEXTS, vocab_size=300)
    CausalLMForTraining(model, remat=True)
    enable_lora(model, rank=2, dropout=0.1)
    with pytest.raises(KerastuneError, match="lora.dropout = 0"):
        CausalLMForTraining(model, remat=True)
