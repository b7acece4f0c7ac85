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

from checkpointflow.expressions import ExpressionError, Literal, Path, Template, evaluate, to_text
from checkpointflow.state import Secret

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def value_variable(index: int) -> str:
    """The environment variable that carries the index-th interpolated value."""
    return f"CPF_VALUE_{index}"


def shell_script(template: Template, context: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The script to hand to `shell -c`, and the values its variables carry, in order."""
    values: list[str] = []
    return _script(template, context, values), tuple(values)


def sequence_script(
    templates: tuple[Template, ...], context: Mapping[str, Any]
) -> tuple[str, tuple[str, ...]]:
    """A list command: its items run in order in one shell, and the first that fails stops
    the rest and gives the exit code. Each item is a `{ ...; }` group of its own, so a `;`,
    `||` or trailing comment in one item never reaches into the next."""
    values: list[str] = []
    groups = ["{ " + _script(template, context, values) + "\n}" for template in templates]
    return " && ".join(groups), tuple(values)


def _script(template: Template, context: Mapping[str, Any], values: list[str]) -> str:
    """One template as shell text; each value it interpolates is appended to `values`."""
    pieces: list[str] = []
    scanner = _Scanner()
    for part in template.parts:
        if isinstance(part, str):
            pieces.append(part)
            scanner.feed(part)
            continue
        name = _environment_name(part)
        if name is None:
            values.append(to_text(evaluate(part, context, strict=True)))
            name = value_variable(len(values))
        pieces.append(scanner.reference(name))
    return "".join(pieces)


def argv_script(
    templates: tuple[Template, ...], context: Mapping[str, Any]
) -> tuple[str, tuple[str, ...]]:
    """An `argv` command: each item is exactly one argument, with no shell syntax at all."""
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


class _Scanner:
    """Follows POSIX sh quoting through the template text, to quote each reference right.

    It tracks nested contexts (quotes, `$(...)`, `(...)`, backticks) and here-documents,
    which is all it takes to know how the shell will read the spot a value lands in.
    """

    def __init__(self) -> None:
        self.stack: list[str] = [""]  # "" plain, '"', "'", "$(", "(", "`"
        self.pending: list[tuple[str, bool, bool]] = []  # here-docs: word, quoted, dash
        self.heredoc: tuple[str, bool, bool] | None = None
        self.line = ""
        self.escaped = False
        self.word_start = True
        self.after_blank = True

    def reference(self, name: str) -> str:
        self.after_blank = False
        if self.heredoc is not None:
            if self.heredoc[1]:
                raise ExpressionError(
                    "a value cannot go inside a here-document with a quoted delimiter "
                    "(nothing expands there); use an unquoted one such as <<EOF"
                )
            self.line += "${}"
            return "${" + name + "}"
        top = self.stack[-1]
        if top == '"':
            return "${" + name + "}"
        if top == "'":
            return "'\"${" + name + "}\"'"
        return '"${' + name + '}"'

    def feed(self, text: str) -> None:
        index = 0
        while index < len(text):
            self.word_start = (index == 0 and self.after_blank) or (
                index > 0 and text[index - 1] in " \t\n;&|("
            )
            index = self._step(text, index)
        self.after_blank = bool(text) and text[-1] in " \t\n;&|("

    def _step(self, text: str, index: int) -> int:
        char = text[index]
        if self.heredoc is not None:
            return self._heredoc_step(char, index)
        top = self.stack[-1]
        if self.escaped:
            self.escaped = False
        elif top == "'":
            if char == "'":
                self.stack.pop()
        elif char == "\\":
            self.escaped = True
        elif top == '"':
            if char == '"':
                self.stack.pop()
            else:
                return self._substitution(text, index)
        elif char in "'\"":
            self.stack.append(char)
        elif char == "#" and self.word_start:
            end = text.find("\n", index)
            return len(text) if end < 0 else end
        elif char == "<" and text.startswith("<<", index) and not text.startswith("<<<", index):
            return self._heredoc_start(text, index)
        elif char == "(":
            self.stack.append("(")
        elif char == ")" and top in ("(", "$("):
            self.stack.pop()
        elif char == "\n" and self.pending:
            self.heredoc = self.pending.pop(0)
        else:
            return self._substitution(text, index)
        return index + 1

    def _substitution(self, text: str, index: int) -> int:
        if text.startswith("$(", index):
            self.stack.append("$(")
            return index + 2
        if text[index] == "`":
            if self.stack[-1] == "`":
                self.stack.pop()
            else:
                self.stack.append("`")
        return index + 1

    def _heredoc_start(self, text: str, index: int) -> int:
        match = _HEREDOC.match(text, index)
        if match is None:
            return index + 2
        word = match.group("word")
        quoted = any(quote in word for quote in "'\"\\")
        self.pending.append((re.sub(r"['\"\\]", "", word), quoted, bool(match.group("dash"))))
        return match.end()

    def _heredoc_step(self, char: str, index: int) -> int:
        assert self.heredoc is not None
        if char != "\n":
            self.line += char
            return index + 1
        word, _, dash = self.heredoc
        line = self.line.lstrip("\t") if dash else self.line
        self.line = ""
        if line == word:
            self.heredoc = self.pending.pop(0) if self.pending else None
        return index + 1


_HEREDOC = re.compile(r"<<(?P<dash>-?)[ \t]*(?P<word>'[^']*'|\"[^\"]*\"|[^\s;&|<>()]+)")
