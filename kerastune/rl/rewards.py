"""The rewards of GRPO and causal PPO: Python reward functions and reward models, combined as trl 1.16's
`GRPOTrainer` combines them.

A reward function has trl's signature, `fn(prompts, completions, completion_ids, **columns) -> list`: the
completions are texts, or [{"role": "assistant", "content": text}] when the prompts are conversations; the
dataset's other columns come as keyword lists, one value per completion; a value of None means "no reward
from this function here". It is named "module:function" (a module on the Python path, or a .py file:
"rewards.py:polite") or by a built-in name (`BUILT_IN`).
A reward model is a reward_model run's `model/` folder (rl/reward_model.py): it scores prompt + completion
(in its chat template for conversations).
Each completion's reward is the weighted sum over the functions and models that gave one (trl's nansum).
"""

import importlib
import importlib.util
import re
from pathlib import Path

import numpy as np

from kerastune.data.causal_lm import tokenize_texts
from kerastune.data.tokens import bucket_width
from kerastune.errors import KerastuneError
from kerastune.runtime import compile_model_function

THINK_FORMAT = re.compile(r"^<think>(?!.*<think>)(.*?)</think>.*$", re.DOTALL)


def think_format(completions, **kwargs) -> list[float]:
    """trl's `think_format_reward`: 1 when the completion is reasoning in one <think>...</think> block, then text."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [1.0 if THINK_FORMAT.match(text) else 0.0 for text in texts]


BUILT_IN = {"think_format": think_format}


def load_reward_function(name: str):
    """A reward function from its name: built-in, "module:function" or "file.py:function"."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    if ":" not in name:
        raise KerastuneError(f"reward function '{name}' is neither built in ({', '.join(BUILT_IN)}) nor "
                             "'module:function'")
    where, attribute = name.rsplit(":", 1)
    try:
        if where.endswith(".py"):
            path = Path(where).expanduser().resolve()
            if not path.is_file():
                raise KerastuneError(f"reward function file not found: {path}")
            spec = importlib.util.spec_from_file_location(f"kerastune_reward_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as e:
        raise KerastuneError(f"cannot import the reward function's module '{where}': {e}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise KerastuneError(f"'{where}' has no function '{attribute}'")
    return function


class RewardModelScorer:
    """A reward_model run's model scoring prompt + completion texts."""

    def __init__(self, directory, batch_size=16, max_length=1024):
        from kerastune.models.chat_templates import SAVED_FILE, load_chat_template
        from kerastune.rl.reward_model import is_causal, load_reward_model

        self.directory = Path(directory)
        if not (self.directory / "metadata.json").is_file():
            raise KerastuneError(f"reward model not found: {self.directory} is not a saved model folder "
                                 "(a reward_model run's model/)")
        self.reward_model = load_reward_model(self.directory)
        model = self.reward_model.model
        self.tokenizer = model.preprocessor.tokenizer
        self.chat = load_chat_template(str(self.directory), model) if (self.directory / SAVED_FILE).is_file() \
            else None
        self.causal = is_causal(model)
        self.start_id = None
        if self.causal:
            from kerastune.generation.causal import start_token_id

            self.start_id = start_token_id(model)
        else:
            self.start_id = int(self.tokenizer.start_token_id)
        self.end_id = int(self.tokenizer.end_token_id)
        self.batch_size, self.max_length = batch_size, min(max_length, getattr(
            model.backbone, "max_sequence_length", None) or max_length)
        model.preprocessor = None
        self._score = compile_model_function(self.reward_model, self.reward_model.score, xla=False)

    def sequences(self, prompts, completions) -> list[list[int]]:
        if isinstance(prompts[0], list):
            if self.chat is None:
                raise KerastuneError(f"the reward model {self.directory} has no chat template, and the prompts are "
                                     "conversations")
            texts = [self.chat.render(p + [{"role": "assistant", "content": c}]) for p, c in zip(prompts, completions)]
            ids = [tokens for tokens, _ in self.chat.encode([(t, []) for t in texts], self.tokenizer)]
        else:
            start = [] if self.start_id is None else [self.start_id]
            ids = [start + t + [self.end_id] for t in tokenize_texts([p + c for p, c in zip(prompts, completions)],
                                                                   self.tokenizer)]
        return [row[-self.max_length:] for row in ids]  # keep the end: the score is read at the last token

    def __call__(self, prompts, completions) -> np.ndarray:
        rows = self.sequences(prompts, completions)
        scores = []
        for first in range(0, len(rows), self.batch_size):
            batch = rows[first:first + self.batch_size]
            width = bucket_width(max(map(len, batch)), self.max_length)
            ids = np.zeros((len(batch), width), "int32")
            mask = np.zeros((len(batch), width), "int32")
            for i, row in enumerate(batch):
                ids[i, :len(row)], mask[i, :len(row)] = row, 1
            scores.append(np.asarray(self._score(ids, mask)))
        return np.concatenate(scores)


def check_reward_settings(reward, trainer: str):
    """Before any work: [reward] names a reward, and each reward function imports."""
    if not reward.functions and not reward.model:
        raise KerastuneError(f"{trainer} needs a reward: set reward.functions and / or reward.model")
    for name in reward.functions:
        load_reward_function(name)


class Rewards:
    """The weighted sum of every function's and model's reward, per completion; `names` label the statistics."""

    def __init__(self, functions=(), models=(), weights=(), decode=None, batch_size=16, max_length=1024):
        self.sources = [(name.rsplit(":", 1)[-1], load_reward_function(name)) for name in functions]
        for directory in models:
            scorer = RewardModelScorer(directory, batch_size, max_length)
            self.sources.append((f"reward_model_{len(self.sources)}" if len(models) > 1 else "reward_model",
                                 lambda prompts, completions, completion_ids, scorer=scorer, **_: list(
                                     scorer(prompts, [c[0]["content"] if isinstance(c, list) else c
                                                      for c in completions]))))
        if not self.sources:
            raise KerastuneError("no reward: set reward.functions and / or reward.model")
        self.weights = np.asarray(weights if weights else [1.0] * len(self.sources), "float64")
        if len(self.weights) != len(self.sources):
            raise KerastuneError(f"reward.weights has {len(self.weights)} values for {len(self.sources)} rewards")
        self.decode = decode

    def __call__(self, prompts, completion_ids, group: int, columns: dict):
        """(reward per completion, {name: rewards}) for completions laid out G per prompt."""
        repeated = [p for p in prompts for _ in range(group)]
        texts = self.decode(completion_ids)
        completions = [[{"role": "assistant", "content": t}] for t in texts] if isinstance(prompts[0], list) \
            else texts
        extra = {k: [v for v in values for _ in range(group)] for k, values in columns.items()}
        table = np.full((len(texts), len(self.sources)), np.nan)
        per_source = {}
        for j, (name, function) in enumerate(self.sources):
            values = function(prompts=repeated, completions=completions, completion_ids=completion_ids, **extra)
            if len(values) != len(texts):
                raise KerastuneError(f"reward '{name}' gave {len(values)} values for {len(texts)} completions")
            table[:, j] = [np.nan if v is None else float(v) for v in values]
            per_source[name] = table[:, j]
        if np.isnan(table).all(axis=1).any():
            raise KerastuneError("a completion got no reward from any reward function or model")
        rewards = np.nansum(table * self.weights, axis=1)
        return rewards, {name: float(np.nanmean(v)) if not np.isnan(v).all() else float("nan")
                         for name, v in per_source.items()}
