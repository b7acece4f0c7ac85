"""Text with expressions embedded: templates (`${...}` inside text) and conditions.

`$${` is a literal `${`. `${expression:-text}` reads `text`, exactly as written, when the
expression is missing, null or "" (the shell's `${name:-text}`); the text ends at the
first `}` and cannot hold another `${...}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import attrs

from checkpointflow.syntax import Default, Literal, Node, parse, type_name
from checkpointflow.tokens import ExpressionError


@attrs.frozen(slots=False)
class Template:
    """Text with embedded expressions: alternating literal strings and parsed nodes."""

    parts: tuple[str | Node, ...]

    @property
    def is_single_expression(self) -> bool:
        return len(self.parts) == 1 and not isinstance(self.parts[0], str)

    @property
    def expressions(self) -> tuple[Node, ...]:
        return tuple(part for part in self.parts if not isinstance(part, str))


def parse_condition(source: Any) -> Node:
    """Parse an `if:`/`when:` value: a bare expression, one `${...}`, or a YAML boolean."""
    if isinstance(source, bool):
        return Literal(source)
    if not isinstance(source, str):
        raise ExpressionError(f"a condition must be text or a boolean, not {type_name(source)}")
    template = parse_template(source)
    if template.is_single_expression:
        return template.expressions[0]
    if template.expressions:
        raise ExpressionError(
            "a condition is either a bare expression or exactly one ${...}", source
        )
    return parse(source)


@lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Split text into literal parts and `${...}` expressions; `$${` is a literal `${`."""
    parts: list[str | Node] = []
    literal: list[str] = []
    position = 0
    while position < len(text):
        if text.startswith("$${", position):
            literal.append("${")
            position += 3
        elif text.startswith("${", position):
            end, split = _closing_brace(text, position + 2)
            if literal:
                parts.append("".join(literal))
                literal = []
            try:
                parts.append(_embedded(text, position + 2, end, split))
            except ExpressionError as error:
                raise ExpressionError(error.reason, text, position) from None
            position = end + 1
        else:
            literal.append(text[position])
            position += 1
    if literal:
        parts.append("".join(literal))
    return Template(tuple(parts))


def _embedded(text: str, start: int, end: int, split: int | None) -> Node:
    """The expression between `${` and `}`, with its `:-` fallback when it has one."""
    if split is None:
        return parse(text[start:end].strip())
    fallback = text[split + 2 : end]
    if "${" in fallback:
        raise ExpressionError(
            "the text after ':-' is used as written and cannot hold another ${...}; "
            "to fall back to another value write ${first || second}"
        )
    return Default(parse(text[start:split].strip()), fallback)


def _closing_brace(text: str, start: int) -> tuple[int, int | None]:
    """Where the `}` closing an expression is, and where its `:-` is (None without one).
    Quoted strings may hold `}`; the text after `:-` is plain and ends at the first `}`."""
    quote = ""
    position = start
    while position < len(text):
        char = text[position]
        if quote:
            if char == "\\":
                position += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "}":
            return position, None
        elif text.startswith(":-", position):
            end = text.find("}", position + 2)
            if end >= 0:
                return end, position
            break
        position += 1
    raise ExpressionError("'${' is not closed by '}'", text, start - 2)


def templates_in(value: Any) -> Iterator[tuple[str, str]]:
    """Every string in a JSON structure with its JSON-pointer-like path, for validation."""
    if isinstance(value, str):
        yield "", value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for path, text in templates_in(item):
                yield f"/{index}{path}", text
    elif isinstance(value, dict):
        for key, item in value.items():
            for path, text in templates_in(item):
                yield f"/{key}{path}", text
