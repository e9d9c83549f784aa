"""Decoding strategies: the epsilon-greedy sampler's limits, top-k=1, seeded sampling, the step trace."""

import numpy as np
import pytest
import torch
from keras import ops
from transformers import AutoTokenizer

import kerastune
from kerastune.errors import KerastuneError
from kerastune.generation.causal import CausalLMGenerator
from kerastune.generation.samplers import EpsilonGreedySampler, make_sampler
from kerastune.generation.trace import trace

pytestmark = pytest.mark.slow  # a trained GPT-2 reference (PyTorch)

PROMPTS = ["Esta mochila", "La nueva lámpara de", "Resiste", "Este reloj gris de la marca"]


@pytest.fixture(scope="module")
def model(hf_gpt2):
    return kerastune.load_model(str(hf_gpt2[0]))


def continuations(model, max_new_tokens=16, **settings):
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=max_new_tokens, **settings)
    return generator.generate_tokens(generator.tokenize(PROMPTS))


def test_eps_one_is_greedy_and_top_k_one_is_greedy(model):
    greedy = continuations(model)
    assert continuations(model, sampler="eps_greedy", eps=1.0, seed=3) == greedy
    assert continuations(model, sampler="top_k", top_k=1, seed=3) == greedy
    assert continuations(model, sampler="eps_greedy", eps=0.0, seed=3) != greedy  # the test can fail


def test_eps_zero_is_plain_sampling_with_the_same_seed(model):
    sampled = continuations(model, sampler="sample", seed=11, temperature=1.5)
    assert continuations(model, sampler="eps_greedy", eps=0.0, seed=11, temperature=1.5) == sampled


def test_seeded_sampling_is_reproducible(model):
    for settings in (dict(sampler="top_p", top_p=0.9), dict(sampler="eps_greedy", eps=0.3)):
        first = continuations(model, seed=5, temperature=1.5, **settings)
        assert continuations(model, seed=5, temperature=1.5, **settings) == first
        assert continuations(model, seed=6, temperature=1.5, **settings) != first


def test_eps_greedy_takes_the_best_token_with_probability_eps_plus_sampling_share():
    # P(best) = eps + (1 - eps) * p_best; the rest follows the distribution.
    probabilities = ops.convert_to_tensor(np.tile([[0.2, 0.5, 0.3]], (6000, 1)).astype("float32"))
    tokens = np.asarray(EpsilonGreedySampler(eps=0.4, seed=0).get_next_token(probabilities))
    shares = np.bincount(tokens, minlength=3) / len(tokens)
    assert abs(shares[1] - (0.4 + 0.6 * 0.5)) < 0.025
    assert abs(shares[0] - 0.6 * 0.2) < 0.025 and abs(shares[2] - 0.6 * 0.3) < 0.025


def test_trace_probabilities_match_a_forward_pass_per_step(model, hf_gpt2):
    path, reference = hf_gpt2
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=10)
    table = trace(generator, PROMPTS[1], top_n=4)
    [greedy] = generator.generate_tokens(generator.tokenize([PROMPTS[1]]))
    assert len(table) == len(greedy)
    assert list(table.columns[:5]) == ["step", "input", "token", "probability", "rank"]
    assert list(table.columns[5:]) == [f"Choice #{k}" for k in range(1, 5)]
    ids = tokenizer(PROMPTS[1])["input_ids"]
    for row, token in zip(table.itertuples(index=False), greedy):
        # The notebook's loop: run the model on the text so far, softmax of the last position.
        with torch.no_grad():
            probs = torch.softmax(reference(torch.tensor([ids])).logits[0, -1], -1).numpy()
        assert row.input == tokenizer.decode(ids)
        assert abs(row.probability - probs[token]) < 1e-5 and row.rank == 1
        best = np.argsort(-probs)[:4]
        choices = [getattr(row, f"_{5 + k}") for k in range(4)]  # itertuples renames "Choice #k" columns
        assert choices == [f"{tokenizer.decode([int(t)])} ({probs[t]:.4f})" for t in best]
        ids = ids + [token]
    assert table.attrs["text"] == tokenizer.decode(ids[:-1] if greedy[-1] == 0 else ids)


def test_bad_settings_are_named():
    with pytest.raises(KerastuneError, match="unknown sampler 'nucleus'"):
        make_sampler("nucleus")
    with pytest.raises(KerastuneError, match="temperature"):
        make_sampler("sample", temperature=0)
    with pytest.raises(KerastuneError, match="top_p"):
        make_sampler("top_p", top_p=0)
    with pytest.raises(KerastuneError, match="eps"):
        make_sampler("eps_greedy", eps=1.5)


def test_too_many_new_tokens_for_the_positions_is_named(model):
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=200)  # 128 positions
    with pytest.raises(KerastuneError, match="leaves no room"):
        generator.generate(["Esta mochila"])
