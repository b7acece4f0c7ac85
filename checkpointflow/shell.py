"""Command templates to shell scripts, with every interpolated value kept out of the code.

`echo "Hello, ${inputs.name}"` becomes `echo "Hello, ${CPF_VALUE_1}"` and the value travels
in the environment variable CPF_VALUE_1. The shell expands a variable exactly once and never
parses its contents as code, so quotes, `$(...)`, backticks, `;` and newlines in a value are
plain text. Each reference is quoted for the spot it lands in (bare, inside "...", or inside
'...'), so a value is always exactly one word, never split or globbed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from checkpointflow.expressions import Literal, Path, Template, evaluate, to_text
from checkpointflow.state import Secret

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def value_variable(index: int) -> str:
    """The environment variable that carries the index-th interpolated value."""
    return f"CPF_VALUE_{index}"


def shell_script(template: Template, context: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The script to hand to `shell -c`, and the values its variables carry, in order."""
    values: list[str] = []
    pieces: list[str] = []
    quoting = ""  # "", "'" or '"': the quote the template text has left open
    for part in template.parts:
        if isinstance(part, str):
            pieces.append(part)
            quoting = _quote_after(part, quoting)
            continue
        name = _environment_name(part)
        if name is None:
            values.append(to_text(evaluate(part, context, strict=True)))
            name = value_variable(len(values))
        pieces.append(_reference(name, quoting))
    return "".join(pieces), tuple(values)


def argv_script(
    templates: tuple[Template, ...], context: Mapping[str, Any]
) -> tuple[str, tuple[str, ...]]:
    """A list command: each item is exactly one argument, with no shell syntax at all."""
    values: list[str] = []
    words: list[str] = []
    for template in templates:
        pieces: list[str] = []
        for part in template.parts:
            if isinstance(part, str):
                pieces.append(shlex.quote(part))
                continue
            name = _environment_name(part)
            if name is None:
                values.append(to_text(evaluate(part, context, strict=True)))
                name = value_variable(len(values))
            pieces.append('"${' + name + '}"')
        words.append("".join(pieces) or "''")
    return " ".join(words), tuple(values)


def text_with_secrets(
    template: Template, context: Mapping[str, Any]
) -> tuple[tuple[str | Secret, ...], tuple[str, ...]]:
    """Render a template, leaving each `${env.NAME}` as a Secret for the driver to fill in."""
    parts: list[str | Secret] = []
    names: list[str] = []
    for part in template.parts:
        name = None if isinstance(part, str) else _environment_name(part)
        if name is not None:
            parts.append(Secret(name))
            names.append(name)
        elif isinstance(part, str):
            parts.append(part)
        else:
            parts.append(to_text(evaluate(part, context, strict=True)))
    return tuple(parts), tuple(names)


def secret_names(template: Template) -> tuple[str, ...]:
    """The variables a command template reads through `${env.NAME}`."""
    names = (_environment_name(part) for part in template.parts)
    return tuple(name for name in names if name is not None)


def _environment_name(part: Any) -> str | None:
    """`${env.NAME}` reads the variable where the step runs; it never enters the run's data."""
    if isinstance(part, Path) and part.root == "env" and len(part.keys) == 1:
        key = part.keys[0]
        if isinstance(key, Literal) and isinstance(key.value, str) and _NAME.fullmatch(key.value):
            return key.value
    return None


def _reference(name: str, quoting: str) -> str:
    if quoting == '"':
        return "${" + name + "}"
    if quoting == "'":
        return "'\"${" + name + "}\"'"
    return '"${' + name + '}"'


def _quote_after(text: str, quoting: str) -> str:
    """Which quote is open after `text`, given the one open before it (POSIX sh rules)."""
    index = 0
    while index < len(text):
        char = text[index]
        if quoting == "'":
            if char == "'":
                quoting = ""
        elif char == "\\":
            index += 1
        elif quoting == '"':
            if char == '"':
                quoting = ""
        elif char in "'\"":
            quoting = char
        index += 1
    return quoting
