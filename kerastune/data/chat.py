"""Chat templates rendered exactly as transformers renders them, and conversations as training tokens.

A model's chat template is a Jinja program (`tokenizer_config.json`'s
`chat_template`, or `chat_template.jinja`) that turns a list of messages
into the text the model was tuned on. transformers renders it in a
sandboxed Jinja environment with `trim_blocks` and `lstrip_blocks`, the
`loopcontrols` extension, a `tojson` that keeps non-ASCII text, and the
globals `raise_exception` and `strftime_now`; the template sees `messages`,
`tools`, `documents`, `add_generation_prompt` and the tokenizer's named
special tokens (`bos_token`, `eos_token`, ...). `ChatTemplate.render` does
the same, so the training text equals `apply_chat_template`'s.

Which characters the loss is on (`assistant_spans`): where a template marks
them with `{% generation %}` tags (trl's training templates), those spans,
as transformers' `return_assistant_tokens_mask` takes them; otherwise each
assistant turn from the end of the generation prompt that precedes it to the
end of the turn (its end-of-turn token included, so the model learns to
stop), found by rendering the conversation up to that turn.

Tokens (`encode`): the text is split at the tokenizer's added tokens
(`<|im_start|>`, `<bos>`, `<start_of_turn>`, ...), which become their ids,
as a transformers tokenizer splits them out before its model runs; each
stretch between them is tokenized whole, so the ids equal transformers'
(tests check it), and the loss spans' edges are located in those tokens.
"""

import contextlib
import dataclasses
import json
import re
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kerastune.data.causal_lm import tokenize_texts
from kerastune.errors import KerastuneError

GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


class _GenerationTracker(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: records the character spans of what the block renders."""

    tags = {"generation"}

    def __init__(self, environment):
        super().__init__(environment)
        environment.extend(generation_spans=None, rendered_blocks=None)

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_track"), [], [], body).set_lineno(lineno)

    def _track(self, caller):
        text = caller()
        spans = self.environment.generation_spans
        if spans is not None:
            # The text rendered so far is the concatenation of the blocks written out before this one.
            start = len("".join(self.environment.rendered_blocks))
            spans.append((start, start + len(text)))
        return text


REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def _alias_reasoning(message: dict) -> dict:
    """A message's reasoning under the names templates read (`reasoning_content`, and `thinking`), as transformers
    passes it."""
    reasoning = next((message[k] for k in REASONING_FIELDS if message.get(k) is not None), None)
    return message if reasoning is None else {"thinking": reasoning, **message, "reasoning_content": reasoning}


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


@dataclasses.dataclass
class ChatTemplate:
    """A chat template with what rendering and tokenizing it needs.

    source: the Jinja text.
    special_tokens: the named tokens the template may use (`bos_token`, `eos_token`, ...) as strings.
    added_tokens: strings the tokenizer keeps whole, with their ids.
    """

    source: str
    special_tokens: dict
    added_tokens: dict

    def __post_init__(self):
        try:
            self._template = _environment().from_string(self.source)
        except jinja2.exceptions.TemplateSyntaxError as e:
            raise KerastuneError(f"the chat template is not valid Jinja (line {e.lineno}: {e.message})") from None
        self._split = re.compile("(" + "|".join(re.escape(t) for t in sorted(self.added_tokens, key=len,
                                                                            reverse=True)) + ")") \
            if self.added_tokens else None

    @property
    def has_generation_tags(self) -> bool:
        return bool(GENERATION_TAG.search(self.source))

    def render(self, messages, add_generation_prompt=False, **kwargs) -> str:
        """The text of a conversation, as transformers' `apply_chat_template(..., tokenize=False)`."""
        return self._render(messages, add_generation_prompt, kwargs)[0]

    def _render(self, messages, add_generation_prompt, kwargs, track=False):
        messages = [_alias_reasoning({k: v for k, v in m.items() if v is not None}) for m in messages]
        env = self._template.environment
        spans = [] if track else None
        variables = {**self.special_tokens, **kwargs, "messages": messages, "tools": kwargs.get("tools"),
                     "documents": kwargs.get("documents"), "add_generation_prompt": add_generation_prompt}
        try:
            if not track:
                return self._template.render(**variables), None
            blocks = []
            with _tracking(env, spans, blocks):
                for block in self._template.generate(**variables):
                    blocks.append(block)
            return "".join(blocks), spans
        except jinja2.exceptions.TemplateError as e:
            raise KerastuneError(f"the chat template refused the conversation: {e}") from None

    def assistant_spans(self, messages) -> tuple[str, list]:
        """(the conversation's text, the (start, end) character spans the loss is on): see module docstring."""
        if self.has_generation_tags:
            return self._render(messages, False, {}, track=True)
        text = self.render(messages)
        spans = []
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            if i == 0:
                raise KerastuneError("a conversation starts with an assistant turn: nothing prompts it")
            before = self.render(messages[:i], add_generation_prompt=True)
            through = self.render(messages[: i + 1])
            if not (text.startswith(before) and text.startswith(through) and len(through) >= len(before)):
                raise KerastuneError(
                    f"the chat template renders assistant turn {i + 1} differently once later turns follow (it "
                    "rewrites earlier turns, e.g. drops their reasoning), so its tokens cannot be found; give "
                    "prompt/completion pairs, or a template with {% generation %} tags (chat.template)")
            spans.append((len(before), len(through)))
        return text, spans

    def end_of_turn(self) -> str | None:
        """The added token that ends an assistant turn (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`), found by
        rendering one; None when the template puts none right after the reply."""
        marker = "kerastune-reply"
        text = self.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}])
        rest = text[text.rfind(marker) + len(marker):] if marker in text else ""
        if self._split is None:
            return None
        pieces = [p for p in self._split.split(rest) if p]
        return pieces[0] if pieces and pieces[0] in self.added_tokens else None

    def user_message_frame(self) -> tuple[str, str, bool]:
        """(text before, text after, whether the message is stripped) of one user message in a prompt with the
        generation prompt: what a server that cannot run Jinja (a SavedModel) puts around a message."""
        marker = "kerastune-message"
        plain = self.render([{"role": "user", "content": marker}], add_generation_prompt=True)
        padded = self.render([{"role": "user", "content": f" {marker} "}], add_generation_prompt=True)
        if plain.count(marker) != 1:
            raise KerastuneError("the chat template does not put a user's message into the prompt as it is, so a "
                                 "SavedModel cannot apply it")
        before, after = plain.split(marker)
        if padded not in (plain, f"{before} {marker} {after}"):
            raise KerastuneError("the chat template changes a user's message in a way a SavedModel cannot repeat")
        return before, after, padded == plain

    # ---- tokens -------------------------------------------------------------------

    def segments(self, text) -> list[tuple[int, int, bool]]:
        """(start, end, is an added token) for the text cut at its added tokens, as transformers cuts it."""
        out, at = [], 0
        for piece in (self._split.split(text) if self._split else [text]):
            if piece:
                out.append((at, at + len(piece), piece in self.added_tokens))
                at += len(piece)
        return out

    def encode(self, texts_and_spans, tokenizer, batch_size=2000) -> list[tuple[list[int], list[int]]]:
        """(ids, loss mask) per (text, spans). Each stretch between added tokens is tokenized whole, as
        transformers does; where a span edge falls inside one, the stretch's text up to the edge is tokenized
        too, and the edge is where the two token lists part (a token that straddles it counts as inside, as in
        transformers' `return_assistant_tokens_mask`). All texts' stretches go to the tokenizer in batches."""
        work = []  # per text: (text, spans, segments)
        wanted = set()
        for text, spans in texts_and_spans:
            segments = self.segments(text)
            work.append((text, spans, segments))
            for start, end, added in segments:
                if not added:
                    wanted.add(text[start:end])
                    for edge in (e for span in spans for e in span if start < e < end):
                        wanted.update((text[start:edge], text[edge:end]))
        plain = sorted(wanted)
        ids_of = dict(zip(plain, tokenize_texts(plain, tokenizer, batch_size)))
        out = []
        for text, spans, segments in work:
            ids, mask = [], []
            for start, end, added in segments:
                if added:
                    ids.append(self.added_tokens[text[start:end]])
                    mask.append(int(any(s < end and start < e for s, e in spans)))
                    continue
                tokens = ids_of[text[start:end]]
                inside = [0] * len(tokens)
                for s, e in spans:
                    if s >= end or e <= start:
                        continue
                    first = 0 if s <= start else _boundary(tokens, ids_of[text[start:s]], ids_of[text[s:end]], True)
                    last = len(tokens) if e >= end else _boundary(tokens, ids_of[text[start:e]], ids_of[text[e:end]],
                                                                  False)
                    inside[first:last] = [1] * max(last - first, 0)
                ids += tokens
                mask += inside
            out.append((ids, mask))
        return out


def _boundary(tokens, before, after, straddling_inside: bool) -> int:
    """Where an edge falls in a stretch's `tokens`, given the tokens of its text before and after the edge. Tokens
    spell contiguous text, so when `before` starts `tokens` (or `after` ends them) the edge is exactly there;
    otherwise a token straddles it: the first that differs, before it for a span's start, after it for its end,
    so it counts as inside."""
    if tokens[: len(before)] == before:
        return len(before)
    if len(after) <= len(tokens) and tokens[len(tokens) - len(after):] == after:
        return len(tokens) - len(after)
    common = 0
    while common < min(len(tokens), len(before)) and tokens[common] == before[common]:
        common += 1
    return common if straddling_inside else common + 1


@contextlib.contextmanager
def _tracking(env, spans, blocks):
    env.generation_spans, env.rendered_blocks = spans, blocks
    try:
        yield
    finally:
        env.generation_spans, env.rendered_blocks = None, None


def check_messages(messages, where: str) -> list[dict]:
    """A conversation as a list of {role, content} dicts (a JSON string is parsed), or a clear error."""
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            raise KerastuneError(f"{where}: messages is text that is not a JSON list of messages") from None
    if not isinstance(messages, (list, tuple)) or not messages:
        raise KerastuneError(f"{where}: messages must be a non-empty list of {{role, content}}")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or "content" not in message:
            raise KerastuneError(f"{where}: each message needs a 'role' and a 'content'; got {str(message)[:80]}")
    return [dict(m) for m in messages]


def read_conversations(split, data, name: str) -> tuple[list[list[dict]], int]:
    """(conversations, rows dropped for having no assistant text) from a split with a messages column
    (`data.messages_column`) or prompt / completion columns (each a string, or a list of messages as
    in TRL's conversational prompt-completion format)."""
    columns = split.column_names
    if data.messages_column in columns:
        conversations = [check_messages(m, f"{name} row {i + 1}") for i, m in enumerate(split[data.messages_column])]
    elif data.prompt_column in columns and data.completion_column in columns:
        conversations = []
        for i, (prompt, completion) in enumerate(zip(split[data.prompt_column], split[data.completion_column])):
            where = f"{name} row {i + 1}"
            conversations.append(_as_messages(prompt, "user", where) + _as_messages(completion, "assistant", where))
    else:
        raise KerastuneError(
            f"the {name} split has neither a '{data.messages_column}' column nor '{data.prompt_column}' and "
            f"'{data.completion_column}' columns (it has: {', '.join(columns)})")
    kept = [c for c in conversations if any(m["role"] == "assistant" and str(m.get("content") or "").strip()
                                            for m in c)]
    return kept, len(conversations) - len(kept)


def _as_messages(value, role: str, where: str) -> list[dict]:
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return [{"role": role, "content": value}]
    if value is None:
        return [{"role": role, "content": ""}]
    return check_messages(value, where)
