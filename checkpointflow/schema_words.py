"""Schema problems in the user's words: what one problem says, and where.

An `Issue` is one problem found by the walk in `schema_walk.py`: its path from the checked
value down and the sentence that tells it, naming the field (`retry.max_attempts must be
at least 1, found 0`), or the field itself (`unknown field 'comand' (did you mean
'command'?)`, `'name' is required in address`). The helpers here word values and types
as a person reads them: `'text'`, `a list`, `found a string ('x')`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import attrs

Path = tuple[str | int, ...]

TYPES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
_FOUND = {bool: "a boolean", str: "a string", dict: "an object", list: "a list"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@attrs.frozen(slots=False)
class Issue:
    """One problem. `text` follows the subject, or, when `about_field`, is the whole
    sentence about the field the path ends with (`unknown field 'comand'`)."""

    path: Path
    text: str
    hint: str = ""
    about_field: bool = False
    rule: str = ""

    def pointer(self) -> str:
        """The path as a JSON pointer: /workflow/steps/0/comand."""
        return "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in self.path)

    def describe(self, root: str, base: int = 0) -> str:
        """The sentence, naming fields from `base` levels down; `root` names that level."""
        where = self.path[base:]
        if self.about_field:
            parent = where[:-1]
            sentence = self.text + (f" in {dotted(parent)}" if parent else "")
        else:
            sentence = f"{_subject(where, root)} {self.text}"
        return f"{sentence} ({self.hint})" if self.hint else sentence


def _subject(where: Path, root: str) -> str:
    """The field a sentence is about; the root's name for the whole or a list item of it."""
    if not where or isinstance(where[0], int):
        return root + dotted(where)
    return dotted(where)


def dotted(path: Path) -> str:
    """retry.max_attempts, transitions[0].next, env["A-B"]."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def shown(value: Any, limit: int = 40) -> str:
    """A value as it appears in a message: 'text', 5, true, or its type for containers."""
    if isinstance(value, dict | list):
        return found_type(value)
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def found_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return _FOUND.get(type(value), type(value).__name__)


def found(value: Any) -> str:
    """`a string ('x')`, `a list`, `null`."""
    kind = found_type(value)
    return kind if isinstance(value, dict | list) or value is None else f"{kind} ({shown(value)})"


def suggestion(word: str, choices: Iterator[str] | list[str]) -> str:
    """`did you mean 'command'?` for the closest choice, or nothing."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""
