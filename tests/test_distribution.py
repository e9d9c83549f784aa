"""distribution = data_parallel | model_parallel on simulated CPU devices (conftest.py: 8 on JAX, 4 on TensorFlow;
`make test` runs this file with KERASTUNE_TEST_DEVICES=1 in a pytest process of its own).

From the same initial weights, a few training steps give the same losses as one device; under
model_parallel (JAX) the big kernels are really split as models/layouts.py says; generation, PPO and
a recipe's generation-based evaluation still work.
"""

import dataclasses
import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerastune
from kerastune.cli import main
from kerastune.errors import KerastuneError
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.models.layouts import LAYOUTS
from kerastune.models.lora import enable_lora
from kerastune.recipes import load_config
from kerastune.rl.policy import Seq2SeqValuePolicy
from kerastune.rl.ppo_trainer import PPOTrainer
from kerastune.runtime import backend, compile_model_function, distribution_scope, replica_count
from kerastune.training.fit import compile_for_training, without_preprocessor

DEVICES = len(keras.distribution.list_devices())  # conftest.py: 8 on JAX, 4 on TensorFlow
pytestmark = pytest.mark.skipif(DEVICES < 2, reason="needs simulated devices: KERASTUNE_TEST_DEVICES=1 "
                                "(make test runs this file so, in a process of its own)")
MODES = ["none", "data_parallel"] + (["model_parallel"] if backend() == "jax" else [])


@pytest.fixture(scope="module")
def texts(news_rows):
    return [r["text"] for r in news_rows[:48]]


def no_dropout(model):
    """Dropout draws different noise per device, so the comparison runs without it."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model


def seq2seq_batches(vocab, steps=3, rows=16, source=16, target=8):
    """Fixed batches with no padding: every replica then holds as many target tokens (TensorFlow's
    MirroredStrategy averages each replica's own token mean)."""
    rng = np.random.default_rng(0)
    for _ in range(steps):
        ids = lambda n: rng.integers(2, vocab, (rows, n)).astype("int32")  # noqa: E731
        x = {"encoder_token_ids": ids(source), "encoder_padding_mask": np.ones((rows, source), "int32"),
             "decoder_token_ids": ids(target), "decoder_padding_mask": np.ones((rows, target), "int32")}
        yield x, ids(target), np.ones((rows, target), "float32")


def train_tiny_t5(mode, texts):
    """Three optimizer steps under `mode`: (losses, greedy generations, the model)."""
    with distribution_scope(mode):
        model = no_dropout(kerastune.load_model("tiny-t5", texts=texts, vocab_size=300))
        tokenizer = model.preprocessor.tokenizer
        batches = list(seq2seq_batches(tokenizer.vocabulary_size()))
        dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=tf.nest.map_structure(
            lambda a: tf.TensorSpec(a.shape, a.dtype), batches[0]))
        losses = []
        record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda i, logs: losses.append(logs["loss"]))
        with without_preprocessor(model):
            compile_for_training(model, keras.optimizers.AdamW(1e-3))
            model.fit(dataset, epochs=1, verbose=0, callbacks=[record])
        generated = Seq2SeqGenerator(model, tokenizer, max_new_tokens=6).generate(texts[:5])
        beams = Seq2SeqGenerator(model, tokenizer, max_new_tokens=6, num_beams=3).generate(texts[:3])
    return losses, generated + beams, model


@pytest.fixture(scope="module")
def trained(texts):
    return {mode: train_tiny_t5(mode, texts) for mode in MODES}


@pytest.mark.parametrize("mode", MODES[1:])
def test_training_steps_match_one_device(trained, mode):
    losses, generated, _ = trained[mode]
    reference_losses, reference_generated, _ = trained["none"]
    assert len(losses) == 3
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-4)
    assert generated == reference_generated  # greedy and 3-beam search after training


def test_data_parallel_replicates_the_weights_on_every_device(trained):
    _, _, model = trained["data_parallel"]
    kernel = next(v for v in model.weights if v.path.endswith("query_projector/kernel"))
    if backend() == "jax":
        assert len(kernel.value.sharding.device_set) == DEVICES == 8 and kernel.value.sharding.is_fully_replicated
    else:
        assert len(kernel.value.values) == DEVICES > 1  # a MirroredVariable: one copy per replica


def shard_report(model):
    """{path: (partition spec, shape of the shard on one device)} for every variable LAYOUTS names."""
    report = {}
    for v in model.weights:
        if any(re.fullmatch(pattern, v.path) for pattern in LAYOUTS):
            report[v.path] = (tuple(v.value.sharding.spec), v.value.addressable_shards[0].data.shape)
    return report


@pytest.mark.skipif(backend() != "jax", reason="Keras's ModelParallel runs on JAX; TensorFlow refuses it (tested)")
@pytest.mark.parametrize("name", ["tiny-t5", "tiny-gpt2", "tiny-distilbert", "tiny-roberta"])
def test_model_parallel_splits_kernels_as_the_layout_says(name, texts, trained):
    if name == "tiny-t5":
        model = trained["model_parallel"][2]
    else:
        with distribution_scope("model_parallel", model_parallel_size=2):
            model = kerastune.load_model(name, texts=texts, vocab_size=300)
    report = shard_report(model)
    assert len(report) >= 12, sorted(report)
    for path, (spec, shard_shape) in report.items():
        axes = next(axes for pattern, axes in LAYOUTS.items() if re.fullmatch(pattern, path))
        full = next(v.shape for v in model.weights if v.path == path)
        assert spec == tuple(axes), path
        expected = tuple(n // 2 if axis == "model" else n for n, axis in zip(full, axes))
        assert shard_shape == expected, path
    if name != "tiny-t5":  # T5's forward pass is covered by the training comparison above
        with distribution_scope("none"):
            single = kerastune.load_model(name, texts=texts, vocab_size=300)
        batch = single.preprocessor(["a short text for the forward pass", "and another one"])
        batch = batch[0] if isinstance(batch, tuple) else batch
        forward = [compile_model_function(m, lambda b, m=m: m(b))(batch) for m in (model, single)]  # jitted, as used
        np.testing.assert_allclose(np.asarray(forward[0]), np.asarray(forward[1]), atol=1e-5)


def test_tensorflow_refuses_model_parallel_with_a_reason():
    if backend() != "tensorflow":
        pytest.skip("model_parallel is the JAX path")
    with pytest.raises(KerastuneError, match="model_parallel runs on KERAS_BACKEND=jax"):
        with distribution_scope("model_parallel"):
            pass


def ppo_steps(mode, texts):
    with distribution_scope(mode):
        model = kerastune.load_model("tiny-t5", texts=texts, vocab_size=300)
        enable_lora(model, rank=4, alpha=8, seed=0)
        ppo = dataclasses.replace(load_config("lora_ppo_detox").ppo, learning_rate=1e-3, batch_size=16,
                                  mini_batch_size=8, output_min_length=4, output_max_length=8)
        trainer = PPOTrainer(Seq2SeqValuePolicy(model), model.preprocessor.tokenizer, ppo, seed=0)
        queries = trainer.encode(texts[:16])
        stats = []
        for _ in range(2 if backend() == "jax" else 1):  # CI time: TF compiles per replica
            responses = trainer.generate(queries)
            stats.append(trainer.step(queries, responses, [float(len(r)) for r in responses]))
    return stats


def test_ppo_runs_under_data_parallel(texts):
    assert replica_count() == 1
    single, parallel = ppo_steps("none", texts), ppo_steps("data_parallel", texts)
    for name in ("ppo/mean_scores", "objective/kl", "ppo/loss/policy", "ppo/loss/value"):
        values = [s[name] for s in parallel]
        assert np.all(np.isfinite(values)), name
        np.testing.assert_allclose(values, [s[name] for s in single], rtol=1e-3, atol=1e-4, err_msg=name)


def test_recipe_with_generation_evaluation_runs_under_data_parallel(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", "instruction_tuning", "--set", "model=tiny-t5", "dataset=recipes/data/news_sample",
                 "distribution=data_parallel", "epochs=1", "batch_size=16", "max_train_samples=40",
                 "validation_size=24", "max_eval_samples=24", "max_test_samples=24", "max_new_tokens=4",
                 "tiny_vocab_size=400", "resume=false", f"output_dir={run_dir}"]) == 0
    out = capsys.readouterr().out
    assert f"distribution: data_parallel on {DEVICES}" in out and f"{16 // DEVICES} per replica" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["validation_accuracy"] <= 1.0 and np.isfinite(metrics["train_loss"])
    assert "val_accuracy" in (run_dir / "history.csv").read_text().splitlines()[0]
