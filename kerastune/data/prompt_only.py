"""trl's prompt-only data (what GRPO and PPO sample from): one prompt per row, as text or as a conversation
(a list of {role, content}, or its JSON text), and its token ids for a causal LM."""

import dataclasses

import datasets
import numpy as np

from kerastune.data.chat import check_messages
from kerastune.data.load import held_out_split, limit_rows, load_splits, require_columns, require_rows
from kerastune.data.preference import cell_value
from kerastune.errors import KerastuneError


@dataclasses.dataclass
class Prompts:
    train: list  # texts or conversations
    held_out: list  # answered before and after training
    held_out_name: str  # the split they come from
    columns: dict  # train's other columns (for reward functions), one list each
    train_split: datasets.Dataset


def load_prompts(data, num_held_out: int, seed: int) -> Prompts:
    """[data] (config.PromptDataConfig)'s prompts: train, and `num_held_out` from a validation (or test) split, or
    else from a share of train held out."""
    splits = load_splits(data.dataset, data.config, data.split, data.revision)
    require_rows(splits["train"], "train")
    held_out = held_out_split(splits, data.validation_size, seed)
    train_split = limit_rows(splits["train"], data.max_train_samples)
    eval_split = limit_rows(splits[held_out], data.max_eval_samples or num_held_out)
    columns = {c: list(train_split[c]) for c in train_split.column_names if c != data.prompt_column}
    return Prompts(read_prompts(train_split, data.prompt_column, "train"),
                   read_prompts(eval_split, data.prompt_column, held_out)[:num_held_out], held_out, columns,
                   train_split)


def read_prompts(split, column: str, name: str) -> list:
    """The prompts of a split: texts or conversations, a clear error for a missing column or an empty prompt."""
    require_columns(split, [column], name)
    prompts = []
    for i, value in enumerate(split[column]):
        value = cell_value(value, f"{name} row {i + 1}")
        if isinstance(value, list):
            value = check_messages(value, f"{name} row {i + 1}")
        elif not value.strip():
            raise KerastuneError(f"{name} row {i + 1}: the prompt ('{column}') is empty")
        prompts.append(value)
    return prompts


def prompt_tokens(prompts, chat, tokenizer, start_id, max_prompt_length) -> list[list[int]]:
    """Conversations rendered with the generation prompt in the chat template; text after the start token.
    A prompt longer than `max_prompt_length` tokens keeps its end (0: no limit)."""
    if isinstance(prompts[0], list):
        if chat is None:
            raise KerastuneError("conversational prompts need a chat template")
        texts = [chat.render(p, add_generation_prompt=True) for p in prompts]
        ids = [tokens for tokens, _ in chat.encode([(t, []) for t in texts], tokenizer)]
    else:
        start = [] if start_id is None else [start_id]
        ids = [start + list(np.asarray(t).tolist()) for t in tokenizer(list(prompts))]
    return [row[-max_prompt_length:] if max_prompt_length else row for row in ids]
