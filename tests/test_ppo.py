"""PPO optimises: a tiny LoRA T5 learns to game a rule-based reward while KL to its reference stays bounded;
and an interrupted PPO run resumes to the same result."""

import dataclasses

import numpy as np
import pytest
from helpers.gameable_ppo import run_gameable_ppo

import kerastune
from kerastune.models.lora import enable_lora
from kerastune.recipes import load_config
from kerastune.rl.loop import run_ppo
from kerastune.rl.policy import Seq2SeqValuePolicy
from kerastune.rl.ppo_trainer import PPOTrainer

pytestmark = pytest.mark.slow  # PPO training steps


@pytest.fixture(scope="module")
def texts(news_rows):
    return [r["text"] for r in news_rows[:64]]


def make_trainer(texts, seed=1):
    """The detox recipe's PPO settings, faster and with short responses."""
    model = kerastune.load_model("tiny-t5", texts=texts, vocab_size=300)
    enable_lora(model, rank=8, alpha=16, seed=0)
    ppo = dataclasses.replace(load_config("lora_ppo_detox").ppo, learning_rate=5e-4, batch_size=16,
                              mini_batch_size=4, epochs=4, output_min_length=6, output_max_length=12)
    return PPOTrainer(Seq2SeqValuePolicy(model), model.preprocessor.tokenizer, ppo, seed=seed)


def test_ppo_raises_a_gameable_reward_with_bounded_kl(texts):
    trainer = make_trainer(texts)
    # A random tiny T5 is nearly deterministic, so sampling would explore little: halve its logits to start
    # from a flatter policy (the reference is this same flatter model with adapters off).
    head = trainer.policy.seq2seq.backbone.token_embedding.reverse_embeddings
    head.assign(np.asarray(head) * 0.5)
    queries = trainer.encode(texts[:16])
    # The rule: +1 for each of the three tokens the untrained policy samples most.
    rewards, kls, stats = run_gameable_ppo(trainer, queries, first_tokens=12, favoured=3)
    assert np.mean(rewards[-5:]) > 1.5 * np.mean(rewards[:3])
    assert kls[0] == pytest.approx(0.0, abs=1e-4)  # the policy starts as its reference (LoRA B = 0)
    assert max(kls) < 40.0
    expected = {"objective/kl", "objective/entropy", "objective/kl_coef", "ppo/returns/mean",
                "ppo/policy/advantages_mean", "ppo/loss/policy", "ppo/loss/value", "ppo/policy/clipfrac",
                "ppo/mean_scores", "ppo/val/var_explained"}
    assert expected <= set(stats)


def test_interrupted_ppo_resumes_to_the_same_steps(texts, tmp_path):
    def score(queries, responses):  # any deterministic reward will do
        return [float(len(r.split())) for r in responses]

    whole = run_ppo(make_trainer(texts, seed=3), texts, score, steps=3, run_dir=tmp_path / "whole", seed=3,
                    verbose=False)
    run_ppo(make_trainer(texts, seed=3), texts, score, steps=1, run_dir=tmp_path / "cut", seed=3, verbose=False)
    resumed = run_ppo(make_trainer(texts, seed=3), texts, score, steps=3, run_dir=tmp_path / "cut", seed=3,
                      verbose=False)
    assert [r["step"] for r in resumed] == [1, 2, 3]
    for name in ("objective/kl", "ppo/mean_scores", "ppo/loss/total"):
        np.testing.assert_allclose([r[name] for r in resumed], [r[name] for r in whole], rtol=1e-4, atol=1e-5)
    history = (tmp_path / "cut" / "history.csv").read_text().splitlines()
    assert len(history) == 4 and history[0].startswith("step,objective/kl")
    assert list((tmp_path / "cut" / "tensorboard" / "ppo").iterdir())


def test_a_ppo_step_that_is_not_finite_stops_the_run_and_keeps_the_last_good_checkpoint(texts, tmp_path):
    from kerastune.errors import Diverged
    from kerastune.training.checkpoints import list_checkpoints

    calls = []

    def score(queries, responses):  # finite for the first step, NaN from the second on
        calls.append(1)
        return [float("nan") if len(calls) > 1 else 1.0] * len(responses)

    with pytest.raises(Diverged, match=r"PPO diverged at step 2: .*ppo-0001"):
        run_ppo(make_trainer(texts), texts, score, steps=3, run_dir=tmp_path, verbose=False)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints", "ppo")] == ["ppo-0001"]
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 2  # the header and step 1


def test_the_value_head_runs_without_dropout_by_default_as_in_trl_ppo(texts):
    """trl 0.11 computes the PPO loss from a forward pass in eval mode, so its value head's dropout never
    applies: the values of a training pass equal those of an inference pass."""
    model = kerastune.load_model("tiny-t5", texts=texts, vocab_size=300)
    ids = np.random.default_rng(0).integers(2, 300, size=(2, 8)).astype("int32")
    batch = {"encoder_token_ids": ids, "encoder_padding_mask": np.ones_like(ids),
             "decoder_token_ids": ids, "decoder_padding_mask": np.ones_like(ids)}
    for dropout, same in ((0.0, True), (0.5, False)):
        policy = Seq2SeqValuePolicy(model, value_dropout=dropout)
        _, train_values = policy(batch, training=True)
        _, eval_values = policy(batch, training=False)
        assert np.allclose(train_values, eval_values) == same
