"""Prompt templates: `str.format` templates over a row's columns."""

import string

from kerastune.errors import KerastuneError


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def render(template: str, row: dict) -> str:
    try:
        return template.format(**row)
    except KeyError as e:
        raise KerastuneError(f"prompt template uses {{{e.args[0]}}}, which is not a column of the dataset") from None


def label_names_to_text(label, label_names: list[str]) -> str:
    """A row's label as its name: an index into `label_names`, or the name itself."""
    if isinstance(label, str) and not label.strip().lstrip("-").isdigit():
        if label.strip() in label_names:
            return label.strip()
    else:
        try:
            index = int(label)
        except (TypeError, ValueError):
            index = None
        if index is not None and 0 <= index < len(label_names):
            return label_names[index]
    raise KerastuneError(
        f"label {label!r} is not in the label set: indices 0..{len(label_names) - 1} or names {label_names}"
    )
