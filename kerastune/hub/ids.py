"""Hub ids: `org/name`, and what to do with the bare legacy ones (`imdb`, `gpt2`).

The hub renamed its early unnamespaced repositories (`imdb` is now
`stanfordnlp/imdb`, `gpt2` is `openai-community/gpt2`) and redirects the
old names, but `datasets` breaks on a bare id inside its own path handling
(`Repository id must be 'namespace/name'`). kerastune resolves a bare id to
its namespaced one before any download: from the table below when it is a
well-known one (works offline, from the cache), otherwise by asking the hub
where the name redirects to. Either way it says which id it used.
"""

import re
from pathlib import Path

from kerastune.errors import KerastuneError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
BARE_ID = re.compile(r"^[A-Za-z0-9][\w.-]*$")

RENAMED = {
    "models": {
        "gpt2": "openai-community/gpt2", "gpt2-medium": "openai-community/gpt2-medium",
        "distilgpt2": "distilbert/distilgpt2", "distilbert-base-uncased": "distilbert/distilbert-base-uncased",
        "distilbert-base-cased": "distilbert/distilbert-base-cased",
        "bert-base-uncased": "google-bert/bert-base-uncased",
        "bert-base-cased": "google-bert/bert-base-cased", "roberta-base": "FacebookAI/roberta-base",
        "t5-small": "google-t5/t5-small", "t5-base": "google-t5/t5-base",
    },
    "datasets": {
        "imdb": "stanfordnlp/imdb", "ag_news": "fancyzhx/ag_news", "squad": "rajpurkar/squad",
        "glue": "nyu-mll/glue", "wikitext": "Salesforce/wikitext", "cnn_dailymail": "abisee/cnn_dailymail",
        "yahoo_answers_qa": "nfL6/yahoo_answers_qa", "yahoo_answers_topics": "community-datasets/yahoo_answers_topics",
    },
}

# Repositories that hold only a loading script (datasets >= 4 refuses to run one) -> a dataset with data files.
SCRIPT_ONLY = {"nfL6/yahoo_answers_qa": "community-datasets/yahoo_answers_topics"}


def is_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name) or BARE_ID.match(name)) and not looks_local(name)


def looks_local(name: str) -> bool:
    """A name meant as a local path: it starts like one, or its first part is a local folder (`runs/typo`
    when ./runs exists). Such a name that does not exist is "not found", never a hub download."""
    if name.startswith((".", "/", "~")):
        return True
    first = name.split("/", 1)[0]
    return "/" in name and bool(first) and Path(first).is_dir()


_NOTED = set()


def _note(name: str, target: str):
    if name not in _NOTED:
        _NOTED.add(name)
        print(f"note: the bare hub id '{name}' is now '{target}'; using '{target}'")


def namespaced(kind: str, name: str) -> str:
    """`org/name` for a hub id; a bare legacy id through the table, else as the hub redirects it."""
    if "/" in name:
        return name
    if name in RENAMED[kind]:
        _note(name, RENAMED[kind][name])
        return RENAMED[kind][name]
    from kerastune.hub.errors import hub_errors_as_lines

    singular = kind[:-1]
    with hub_errors_as_lines(singular, name):
        from huggingface_hub import HfApi

        info = HfApi().model_info(name) if kind == "models" else HfApi().dataset_info(name)
    if "/" not in info.id:
        raise KerastuneError(f"'{name}' is a bare hub id with no namespace; name the {singular} as org/name")
    _note(name, info.id)
    return info.id
