"""PPO for causal policies: the log-probs and values PPO learns from are transformers' at trl 0.11's positions;
a tiny GPT-2 raises a gameable reward under PPO while KL to its reference stays bounded; the ppo recipe writes its
run and names bad input in one line. Resume: test_kill_resume_preference.py. The arithmetic: test_ppo_math.py."""

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.gameable_ppo import run_gameable_ppo
from helpers.hf_checkpoints import write_hf_gpt2, write_hf_qwen2
from test_bad_input import check

import kerastune
from kerastune.cli import main
from kerastune.config import PPOConfig
from kerastune.errors import KerastuneError
from kerastune.generation.causal import CausalLMGenerator
from kerastune.recipes import load_config
from kerastune.rl.policy import CausalValuePolicy
from kerastune.rl.ppo_trainer import CausalPPOTrainer

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo" / "ppo.toml"
HELPERS = Path(__file__).resolve().parent / "helpers" / "shop_rewards.py"


def trl_forward_pass(model, value_head, queries, responses):
    """trl 0.11's `batched_forward_pass` for a decoder-only model: query + response rows right-padded, log-probs
    of logits[:, :-1] against input_ids[:, 1:], values of the last hidden state, the mask from len(query) - 1
    for len(response) positions. Returns per row the masked log-probs and values."""
    rows = [list(q) + list(r) for q, r in zip(queries, responses)]
    width = max(map(len, rows))
    ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
    attention = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=attention, output_hidden_states=True)
        values = value_head(out.hidden_states[-1]).squeeze(-1)[:, :-1]
        logprobs = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        logprobs = torch.gather(logprobs, 2, ids[:, 1:, None]).squeeze(-1)
    expected = []
    for j, (query, response) in enumerate(zip(queries, responses)):
        start = len(query) - 1
        expected.append((logprobs[j, start:start + len(response)].numpy(),
                         values[j, start:start + len(response)].numpy()))
    return expected


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_response_logprobs_and_values_match_transformers_at_trl_positions(tmp_path, product_texts, family):
    reference = (write_hf_gpt2 if family == "gpt2" else write_hf_qwen2)(tmp_path, product_texts, seed=2)
    model = kerastune.load_model(str(tmp_path))
    policy = CausalValuePolicy(model)
    torch.manual_seed(0)
    value_head = torch.nn.Linear(reference.config.hidden_size, 1)
    policy.value_dense.set_weights([value_head.weight.detach().numpy().T, value_head.bias.detach().numpy()])
    rng = np.random.default_rng(0)  # queries and responses of different lengths in one batch
    queries = [list(rng.integers(1, 250, size=n)) for n in (3, 9, 1, 6)]
    responses = [list(rng.integers(1, 250, size=n)) for n in (5, 2, 7, 1)]
    ppo = dataclasses.replace(load_config("ppo").ppo, batch_size=4, mini_batch_size=2, output_min_length=2,
                              output_max_length=8)
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=8, sampler="sample")
    trainer = CausalPPOTrainer(policy, generator, ppo)
    inputs, targets, mask = trainer.batch_arrays(queries, responses)
    logprobs, values = (np.asarray(a) for a in trainer._policy_forward(inputs, targets))
    for row, (want_logprobs, want_values) in enumerate(trl_forward_pass(reference, value_head, queries, responses)):
        n = len(responses[row])
        assert mask[row].sum() == n
        np.testing.assert_allclose(logprobs[row, :n], want_logprobs, atol=2e-4)
        np.testing.assert_allclose(values[row, :n], want_values, atol=2e-4)


def test_causal_rollouts_refuse_what_transformers_would_not_mean(product_texts):
    model = kerastune.load_model("tiny-gpt2", texts=product_texts[:50], vocab_size=300)
    base = dataclasses.replace(load_config("ppo").ppo, batch_size=4, mini_batch_size=2, output_min_length=2,
                               output_max_length=8)
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=7, sampler="sample")
    with pytest.raises(KerastuneError, match="ppo.min_length 5 is for seq2seq policies"):
        CausalPPOTrainer(CausalValuePolicy(model), generator, dataclasses.replace(base, min_length=5))
    with pytest.raises(KerastuneError, match="the generator makes 7 new tokens at most; .* up to 9"):
        CausalPPOTrainer(CausalValuePolicy(model), generator, dataclasses.replace(base, output_max_length=10))
    trainer = CausalPPOTrainer(CausalValuePolicy(model), generator, base)
    with pytest.raises(KerastuneError, match="an empty query"):
        trainer.generate([[5, 6], []])


def make_trainer(texts, seed=1) -> CausalPPOTrainer:
    """A tiny GPT-2, every weight trained (the reference: its starting weights, swapped in for the reference
    pass), with the ppo recipe's settings, faster and with short responses."""
    model = kerastune.load_model("tiny-gpt2", texts=texts, vocab_size=300)
    ppo: PPOConfig = dataclasses.replace(load_config("ppo").ppo, learning_rate=1e-3, batch_size=16,
                                         mini_batch_size=4, epochs=4, output_min_length=6, output_max_length=12)
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=11, sampler="sample")
    return CausalPPOTrainer(CausalValuePolicy(model), generator, ppo, seed=seed)


@pytest.mark.slow
def test_causal_ppo_raises_a_gameable_reward_with_bounded_kl(news_rows):
    texts = [r["text"] for r in news_rows[:64]]
    trainer = make_trainer(texts)
    queries = trainer.encode([" ".join(t.split()[:4]) for t in texts[:16]])  # prompts of different lengths
    # The rule: +1 for each of the 30 tokens the untrained policy samples most (a tenth of the vocabulary).
    rewards, kls, _ = run_gameable_ppo(trainer, queries, first_tokens=11, favoured=30)
    assert np.mean(rewards[-5:]) > 2 * np.mean(rewards[:3])
    assert kls[0] == pytest.approx(0.0, abs=1e-4)  # the policy starts as its reference
    assert max(kls) < 40.0


@pytest.mark.slow
def test_the_ppo_recipe_writes_its_run(tmp_path):
    """The recipe end to end on the preference sample's prompts, with a reward function in trl's signature and LoRA
    (the value head trains beside the adapters): trl 0.11's statistics per step, plots, the held-out answers before
    and after, the adapters and the merged model. Its demo's learning: the README."""
    run_dir = tmp_path / "run"
    assert main(["run", str(DEMO), "--set", f"output_dir={run_dir}", "reward.model=",
                 f"reward.functions=[\"{HELPERS}:shop_words\"]", "train.sft_epochs=0", "ppo.steps=3",
                 "ppo.batch_size=8", "ppo.output_min_length=6", "ppo.output_max_length=13", "lora.rank=4",
                 "max_train_samples=64", "eval.num_prompts=2"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert len(history) == 3 and {"objective/kl", "ppo/mean_scores", "ppo/val/var_explained", "ppo/policy/clipfrac",
                                  "rewards/shop_words/mean", "tokens/responses_len_mean"} <= set(history[0])
    assert all(6 <= float(r["tokens/responses_len_mean"]) <= 12 for r in history)
    assert metrics["ppo_steps"] == 3 and metrics["kl_first"] == pytest.approx(0.0, abs=1e-4)
    assert (run_dir / "plots" / "ppo_mean_scores.png").is_file()
    assert (run_dir / "adapters" / "adapter_config.json").is_file()
    assert (run_dir / "model" / "metadata.json").is_file()
    answers = json.loads((run_dir / "answers.json").read_text())
    assert len(answers) == 2 and {"answer_before", "reward_after"} <= set(answers[0])


def test_bad_ppo_input_gets_one_line(tmp_path, capsys):
    check(["run", str(DEMO), "--set", "reward.model=", f"output_dir={tmp_path / 'a'}"], capsys,
          "PPO needs a reward")
    check(["run", str(DEMO), "--set", "model=tiny-t5", "reward.model=", f"reward.functions=[\"{HELPERS}:shop_words\"]",
           f"output_dir={tmp_path / 'b'}"], capsys, "ppo needs a causal LM")
    check(["run", str(DEMO), "--set", "ppo.min_length=5", "reward.model=", "train.sft_epochs=0",
           f"reward.functions=[\"{HELPERS}:shop_words\"]", f"output_dir={tmp_path / 'c'}"], capsys,
          "ppo.min_length 5 is for seq2seq policies")
    (tmp_path / "empty.jsonl").write_text('{"prompt": "Hi?"}\n{"prompt": " "}\n' * 10)
    check(["run", str(DEMO), "--set", f"dataset={tmp_path / 'empty.jsonl'}", f"output_dir={tmp_path / 'e'}"], capsys,
          "the prompt ('prompt') is empty")
    check(["run", str(DEMO), "--set", "max_train_samples=8", "reward.model=", "train.sft_epochs=0",
           f"reward.functions=[\"{HELPERS}:shop_words\"]", f"output_dir={tmp_path / 'd'}"], capsys,
          "PPO needs at least ppo.batch_size=16 train prompts, got 8")
