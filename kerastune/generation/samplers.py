"""Decoding strategies as keras-hub samplers, compiled inside `CausalLM.generate`.

`make_sampler` maps the CLI / config settings onto keras-hub's samplers, with
transformers' meaning: `top_k=0` and `top_p=1.0` switch those filters off,
and `temperature` divides the logits first. `EpsilonGreedySampler` is the
seed notebook's decoder, batched and compiled.
"""

import keras_hub
from keras import ops, random

from kerastune.errors import KerastuneError
from kerastune.generation import SAMPLERS


class EpsilonGreedySampler(keras_hub.samplers.Sampler):
    """With probability `eps` take the most likely token, otherwise sample from the distribution.

    `eps=1` is greedy search; `eps=0` is plain sampling, and draws exactly the
    tokens `keras_hub.samplers.RandomSampler(seed=seed)` draws (the coin flips
    use a second seed stream). Each row of a batch flips its own coin.
    """

    def __init__(self, eps=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= eps <= 1.0:
            raise KerastuneError(f"eps must be between 0 and 1, got {eps}")
        self.eps = eps
        self.seed = seed
        self.seed_generator = random.SeedGenerator(seed)
        self.coin_generator = random.SeedGenerator(None if seed is None else seed + 1)

    def get_next_token(self, probabilities):
        sampled = random.categorical(ops.log(probabilities), 1, seed=self.seed_generator, dtype="int32")[:, 0]
        best = ops.cast(ops.argmax(probabilities, axis=-1), "int32")
        coin = random.uniform(ops.shape(best), seed=self.coin_generator)
        return ops.where(coin < self.eps, best, sampled)

    def get_config(self):
        return {**super().get_config(), "eps": self.eps, "seed": self.seed}


def resolve_sampler_name(sampler="greedy", top_k=0, top_p=1.0, num_beams=1) -> str:
    """`sample` with a top-k or top-p filter is that filter; more than one beam is beam search."""
    if sampler not in SAMPLERS:
        raise KerastuneError(f"unknown sampler '{sampler}'; available: {', '.join(SAMPLERS)}")
    if num_beams > 1 and sampler in ("greedy", "beam"):
        return "beam"
    if sampler == "sample" and top_p < 1.0:
        return "top_p"
    if sampler == "sample" and top_k > 0:
        return "top_k"
    return sampler


def make_sampler(sampler="greedy", temperature=1.0, top_k=0, top_p=1.0, eps=0.5, seed=None):
    """A keras-hub sampler for every strategy but beam search (see `CausalLMGenerator`)."""
    if temperature <= 0:
        raise KerastuneError(f"temperature must be > 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise KerastuneError(f"top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise KerastuneError(f"top_k must be >= 0, got {top_k}")
    name = resolve_sampler_name(sampler, top_k, top_p)
    if name == "greedy":
        return keras_hub.samplers.GreedySampler()
    if name == "sample":
        return keras_hub.samplers.RandomSampler(seed=seed, temperature=temperature)
    if name == "top_k":
        return keras_hub.samplers.TopKSampler(k=top_k or 50, seed=seed, temperature=temperature)
    if name == "top_p":
        return keras_hub.samplers.TopPSampler(p=top_p, k=top_k or None, seed=seed, temperature=temperature)
    if name == "eps_greedy":
        return EpsilonGreedySampler(eps=eps, seed=seed, temperature=temperature)
    raise KerastuneError(f"sampler '{name}' is not a keras-hub sampler")
