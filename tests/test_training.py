"""Training mechanics: the loss averages like transformers, the schedule, the T5 initialisation."""

import keras
import keras_hub
import numpy as np
import torch
from helpers.hf_checkpoints import write_hf_t5

import kerastune
from kerastune.data import prepare_tf_dataset
from kerastune.models.t5.init import transformers_init_weights
from kerastune.models.t5.tiny import tiny_t5
from kerastune.training.losses import token_loss
from kerastune.training.optimizer import WarmupLinearDecay, create_optimizer


def test_loss_is_the_mean_over_real_target_tokens_like_transformers(tmp_path, spiece_proto, news_rows):
    reference = write_hf_t5(tmp_path, spiece_proto, seed=1, dropout_rate=0.0)
    model = kerastune.load_model(str(tmp_path))
    sources = [r["text"] for r in news_rows[:16]]
    targets = ["Sports", "a much longer target text with many words in it"] * 8  # very uneven padding
    ds = prepare_tf_dataset(sources, targets, model.preprocessor.tokenizer, batch_size=16, shuffle=False)
    x, y, weight = next(iter(ds))
    x, y, weight = {k: np.asarray(v) for k, v in x.items()}, np.asarray(y), np.asarray(weight)
    labels = torch.tensor(np.where(weight > 0, y, -100), dtype=torch.long)
    with torch.no_grad():
        expected = reference(
            input_ids=torch.tensor(x["encoder_token_ids"], dtype=torch.long),
            attention_mask=torch.tensor(x["encoder_padding_mask"]),
            labels=labels,
        ).loss.item()
    ours = float(token_loss()(y, model(x), sample_weight=weight))
    assert abs(ours - expected) < 1e-4 * max(1.0, abs(expected))
    keras_default_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras_default = float(keras_default_loss(y, model(x), sample_weight=weight))
    assert keras_default < 0.8 * ours  # the default reduction divides by padding too


def test_schedule_warms_up_then_decays_linearly():
    schedule = WarmupLinearDecay(1e-3, num_train_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, 5e-4, 0.0], atol=1e-9)
    capped = WarmupLinearDecay(1e-3, num_train_steps=20, warmup_steps=1000)  # seed's 1,000 on a short run
    assert capped.warmup_steps == 19 and abs(float(capped(19)) - 1e-3) < 1e-9


def test_optimizer_does_not_decay_norm_scales():
    model = tiny_t5(["a few words", "more words"], vocab_size=50)
    optimizer = create_optimizer(1e-3, 10, weight_decay=0.01, model=model)
    optimizer.build(model.trainable_variables)
    norms = [v for v in model.trainable_variables if len(v.shape) == 1]
    assert norms and all(not optimizer._use_weight_decay(v) for v in norms)
    assert optimizer._use_weight_decay(model.backbone.token_embedding.embeddings)


def test_tiny_t5_is_initialised_like_transformers_on_every_backend():
    model = tiny_t5(["a few words for a vocabulary", "and a few more"], vocab_size=60, seed=5)
    embeddings = np.asarray(model.backbone.token_embedding.embeddings.value)
    assert abs(embeddings.mean()) < 0.1 and 0.9 < embeddings.std() < 1.1
    expected = transformers_init_weights(model.backbone, seed=5)
    np.testing.assert_array_equal(embeddings, expected["shared.weight"])
    query = model.backbone.encoder_transformer_layers[0].self_attention.query_projector.kernel
    np.testing.assert_array_equal(np.asarray(query.value), expected["encoder.block.0.layer.0.SelfAttention.q.weight"].T)


def test_keras_hub_default_t5_embedding_init_is_why_we_reinitialise():
    """keras-hub's `TruncatedNormal(1.0)` sets the *mean* to 1: every token starts alike.

    If this fails, keras-hub has fixed its initializer; kerastune's re-initialisation
    (models/t5/init.py) stays correct but may no longer be needed.
    """
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=100, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32
    )
    embeddings = np.asarray(backbone.token_embedding.embeddings.value)
    assert embeddings.mean() > 0.9 and embeddings.std() < 0.1


def test_mixed_bfloat16_trains_and_generates(news_rows):
    from kerastune.generation.seq2seq import Seq2SeqGenerator
    from kerastune.training.fit import compile_for_training, without_preprocessor

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny_t5([r["text"] for r in news_rows], vocab_size=300)
        tokenizer = model.preprocessor.tokenizer
        ds = prepare_tf_dataset([r["text"] for r in news_rows[:32]], ["World"] * 32, tokenizer, batch_size=32)
        with without_preprocessor(model):
            compile_for_training(model, create_optimizer(1e-3, 10))
            logs = model.fit(ds, epochs=2, verbose=0).history
        assert np.isfinite(logs["loss"]).all() and logs["loss"][1] < logs["loss"][0]
        assert len(Seq2SeqGenerator(model, tokenizer, max_new_tokens=4).generate(["a news item"])) == 1
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_best_metric_keeps_the_best_weights_and_a_fresh_run_forgets_the_old_best(tmp_path):
    import json

    import keras
    import numpy as np

    from kerastune.training.callbacks import BestMetric

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = BestMetric(tmp_path / "best.json", monitor="val_loss", mode="min", weights_path=tmp_path / "b.npz")
    best.set_model(model)
    for epoch, loss in enumerate([3.0, 1.0, 2.0]):
        model.layers[0].kernel.assign(np.full((2, 1), epoch, "float32"))
        best.on_epoch_end(epoch, {"val_loss": loss})
    assert json.loads((tmp_path / "best.json").read_text()) == {"monitor": "val_loss", "epoch": 2, "value": 1.0}
    model.layers[0].kernel.assign(np.zeros((2, 1), "float32"))
    assert best.restore_weights(model)
    assert float(model.layers[0].kernel.numpy()[0, 0]) == 1.0
    best.start_fresh()  # what `fit` calls when it does not resume: an old run's best must not win
    assert not (tmp_path / "best.json").exists() and not (tmp_path / "b.npz").exists()
