"""A model's chat template: where it comes from, and how a run keeps it beside its model.

- A Hugging Face checkpoint (a hub id or a local directory): `chat_template.jinja`, else
  `tokenizer_config.json`'s `chat_template` (its "default" when it holds several named ones), else
  `chat_template.json`; the named special tokens from `tokenizer_config.json` and the added tokens from
  `tokenizer.json`, as transformers reads them.
- `tiny-qwen`, `tiny-llama`, `tiny-gemma`: the template beside the model's code (`chat_template.jinja`),
  written for the project to render what its family's own template renders.
- A run's `model/` (a Keras preset): `chat_template.json`, written by the run (`save_chat_template`).
- Any model: `chat.template` in the config (a `.jinja` file, or a checkpoint directory or
  `tokenizer_config.json` that holds one) replaces the model's own.
"""

import json
from pathlib import Path

from kerastune.data.chat import ChatTemplate
from kerastune.errors import KerastuneError
from kerastune.hub.ids import is_hub_id
from kerastune.hub.models import download_model

SAVED_FILE = "chat_template.json"
BUILT_IN = {name: Path(__file__).parent / family / "chat_template.jinja"
            for name, family in (("tiny-qwen", "qwen"), ("tiny-llama", "llama"), ("tiny-gemma", "gemma"))}
NAMED_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def load_chat_template(model_name: str, model, revision: str = "", template: str = "") -> ChatTemplate:
    """The chat template for `model`, loaded from `model_name`; `template` (a path) replaces the model's own."""
    directory = _source_directory(model_name, revision)
    source = read_template(Path(template).expanduser()) if template else None
    if directory is not None and (directory / SAVED_FILE).is_file():
        saved = _read_json(directory / SAVED_FILE)
        return ChatTemplate(source or saved["chat_template"], saved["special_tokens"], saved["added_tokens"])
    if directory is not None and (directory / "tokenizer_config.json").is_file():
        special = named_tokens(_read_json(directory / "tokenizer_config.json"))
        added = _added_tokens(directory / "tokenizer.json") or keras_added_tokens(model.preprocessor.tokenizer)
        source = source or read_template(directory, missing_ok=True)
    else:
        tokenizer = model.preprocessor.tokenizer
        special, added = keras_named_tokens(tokenizer), keras_added_tokens(tokenizer)
        if not source and model_name in BUILT_IN:
            source = BUILT_IN[model_name].read_text()
    if not source:
        raise KerastuneError(f"'{model_name}' has no chat template (a base model?); give one with "
                             "chat.template = FILE.jinja (or an instruct checkpoint's folder)")
    return ChatTemplate(source, special, added)


def save_chat_template(directory, chat: ChatTemplate):
    """Keep the template (and the tokens it renders with) beside a saved model, for generation and export."""
    data = {"chat_template": chat.source, "special_tokens": chat.special_tokens, "added_tokens": chat.added_tokens}
    (Path(directory) / SAVED_FILE).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def read_template(path: Path, missing_ok=False) -> str | None:
    """The template text in a `.jinja` file, a `tokenizer_config.json`, or a checkpoint directory."""
    if path.is_dir():
        for name in ("chat_template.jinja", "tokenizer_config.json", "chat_template.json"):
            if (path / name).is_file():
                found = read_template(path / name, missing_ok=True)
                if found:
                    return found
        if missing_ok:
            return None
        raise KerastuneError(f"no chat template in {path} (chat_template.jinja or tokenizer_config.json)")
    if not path.is_file():
        raise KerastuneError(f"chat template not found: {path}")
    if path.suffix != ".json":
        return path.read_text(encoding="utf-8")
    value = _read_json(path).get("chat_template")
    if isinstance(value, list):  # several named templates: transformers takes "default"
        value = next((t.get("template") for t in value if isinstance(t, dict) and t.get("name") == "default"), None)
    if not value and not missing_ok:
        raise KerastuneError(f"{path} has no chat_template")
    return value or None


def named_tokens(tokenizer_config: dict) -> dict:
    """bos_token, eos_token, ... as strings (a value may be a string or an added-token dict)."""
    out = {}
    for name in NAMED_TOKENS:
        value = tokenizer_config.get(name)
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            out[name] = value
    return out


def keras_named_tokens(tokenizer) -> dict:
    """The same from a keras-hub tokenizer's start, end and pad tokens."""
    out = {}
    for name, attr in (("bos_token", "start_token_id"), ("eos_token", "end_token_id"), ("pad_token", "pad_token_id")):
        token_id = getattr(tokenizer, attr, None)
        if token_id is not None:
            out[name] = str(tokenizer.id_to_token(int(token_id)))
    return out


def keras_added_tokens(tokenizer) -> dict:
    """Strings a keras-hub tokenizer keeps whole: its special and unsplittable tokens, and a SentencePiece
    vocabulary's control and user-defined pieces."""
    names = set(getattr(tokenizer, "special_tokens", None) or []) | set(getattr(tokenizer, "unsplittable_tokens",
                                                                                None) or [])
    proto = getattr(tokenizer, "proto", None)
    if proto:
        from sentencepiece import sentencepiece_model_pb2

        model = sentencepiece_model_pb2.ModelProto()
        model.ParseFromString(proto if isinstance(proto, bytes) else Path(proto).read_bytes())
        kinds = (sentencepiece_model_pb2.ModelProto.SentencePiece.CONTROL,
                 sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED)
        names |= {p.piece for p in model.pieces if p.type in kinds}
    return {name: int(tokenizer.token_to_id(name)) for name in sorted(names) if name}


def _added_tokens(path: Path) -> dict:
    if not path.is_file():
        return {}
    return {t["content"]: int(t["id"]) for t in _read_json(path).get("added_tokens", []) if t.get("content")}


def _source_directory(model_name: str, revision: str) -> Path | None:
    path = Path(model_name).expanduser()
    if path.is_dir():
        return path
    if model_name.startswith("tiny-"):
        return None
    if model_name.startswith("hf://") or is_hub_id(model_name):
        return download_model(model_name.removeprefix("hf://"), revision)  # already fetched by load_model
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise KerastuneError(f"cannot read {path}: {e}") from None
