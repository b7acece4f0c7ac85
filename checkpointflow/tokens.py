"""Tokens of the expression language: numbers, strings, names and operators."""

from __future__ import annotations

import math
import re
from typing import Any

import attrs


class ExpressionError(Exception):
    """An expression that cannot be parsed or evaluated; says where and why."""

    def __init__(self, message: str, source: str = "", position: int | None = None) -> None:
        where = f" at column {position + 1}" if position is not None else ""
        shown = source if len(source) <= 200 else source[:200] + "..."
        text = f"{message}{where} in `{shown}`" if source else message
        super().__init__(text)
        self.reason = message
        self.source = source
        self.position = position


# --- tokenizer ----------------------------------------------------------------------------


@attrs.frozen(slots=False)
class Token:
    kind: str  # "number", "string", "name", "op", "end"
    text: str
    value: Any
    position: int


_TOKEN_PATTERN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
  | (?P<op>==|!=|<=|>=|<|>|\|\||&&|\(|\)|\[|\]|\.|,|-)
  | (?P<quote>["'])
    """,
    re.VERBOSE,
)
_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
}
WORD_OPERATORS = frozenset({"and", "or", "not", "in"})
CONSTANTS = {"true": True, "false": False, "null": None}


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN_PATTERN.match(source, position)
        if match is None:
            char = source[position]
            hint = f" (write '{char * 2}')" if char in "|&" else ""
            raise ExpressionError(f"unexpected character {char!r}{hint}", source, position)
        kind = match.lastgroup
        text = match.group()
        if kind == "quote":
            value, end = _read_string(source, position)
            tokens.append(Token("string", source[position:end], value, position))
            position = end
            continue
        if kind == "number":
            try:
                number: int | float = int(text) if text.isdigit() else float(text)
            except ValueError:
                raise ExpressionError("number too long", source, position) from None
            if isinstance(number, float) and not math.isfinite(number):
                raise ExpressionError("number too large", source, position)
            tokens.append(Token("number", text, number, position))
        elif kind == "name" and text in WORD_OPERATORS:
            tokens.append(Token("op", text, text, position))
        elif kind in ("name", "op"):
            tokens.append(Token(kind, text, text, position))
        position = match.end()
    tokens.append(Token("end", "", None, len(source)))
    return tokens


def _is_surrogate_pair(high: str, low: str) -> bool:
    return "\ud800" <= high <= "\udbff" and "\udc00" <= low <= "\udfff"


def _read_string(source: str, start: int) -> tuple[str, int]:
    quote = source[start]
    chars: list[str] = []
    position = start + 1
    while position < len(source):
        char = source[position]
        if char == quote:
            return "".join(chars), position + 1
        if char == "\\":
            escape = source[position + 1 : position + 2]
            if escape == "u" and re.fullmatch(
                r"[0-9a-fA-F]{4}", source[position + 2 : position + 6]
            ):
                chars.append(chr(int(source[position + 2 : position + 6], 16)))
                position += 6
                if len(chars) > 1 and _is_surrogate_pair(chars[-2], chars[-1]):
                    pair = (chars[-2] + chars[-1]).encode("utf-16", "surrogatepass")
                    chars[-2:] = [pair.decode("utf-16")]
                continue
            if escape not in _ESCAPES:
                raise ExpressionError("unknown escape in string", source, position)
            chars.append(_ESCAPES[escape])
            position += 2
            continue
        chars.append(char)
        position += 1
    raise ExpressionError("unterminated string", source, start)
