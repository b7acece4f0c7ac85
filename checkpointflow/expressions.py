"""Expressions: the small language inside `${...}`, `if:` and `when:`.

A real tokenizer and a recursive-descent parser produce an immutable syntax tree; an
evaluator reads it against a context of plain JSON data. Nothing here touches the outside
world, and nothing is ever handed to `eval`.

Grammar, loosest binding first::

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := unary (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") unary)?
    unary      := "-" unary | primary
    primary    := literal | call | path | "(" expression ")"
    path       := NAME ("." NAME | "[" expression "]")*
    call       := NAME "(" [expression ("," expression)*] ")"
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

import attrs

ROOTS = frozenset({"inputs", "steps", "event", "item", "item_index", "env"})


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


# --- syntax tree --------------------------------------------------------------------------


@attrs.frozen
class Literal:
    value: Any


@attrs.frozen
class Path:
    root: str
    keys: tuple[Node, ...]


@attrs.frozen
class Unary:
    operator: str
    operand: Node


@attrs.frozen
class Binary:
    operator: str
    left: Node
    right: Node


@attrs.frozen
class Call:
    function: str
    arguments: tuple[Node, ...]


Node = Literal | Path | Unary | Binary | Call


@attrs.frozen
class Template:
    """Text with embedded expressions: alternating literal strings and parsed nodes."""

    parts: tuple[str | Node, ...]

    @property
    def is_single_expression(self) -> bool:
        return len(self.parts) == 1 and not isinstance(self.parts[0], str)

    @property
    def expressions(self) -> tuple[Node, ...]:
        return tuple(part for part in self.parts if not isinstance(part, str))


# --- tokenizer ----------------------------------------------------------------------------


@attrs.frozen
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
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|\.|,|-)
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
_WORD_OPERATORS = frozenset({"and", "or", "not", "in"})
_CONSTANTS = {"true": True, "false": False, "null": None}


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN_PATTERN.match(source, position)
        if match is None:
            raise ExpressionError(f"unexpected character {source[position]!r}", source, position)
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
        elif kind == "name" and text in _WORD_OPERATORS:
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


# --- parser -------------------------------------------------------------------------------

_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})
MAX_DEPTH = 100


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, *texts: str) -> bool:
        return self.current.kind == "op" and self.current.text in texts

    def expect(self, text: str) -> None:
        if not self.at(text):
            raise self.error(f"expected '{text}'")
        self.take()

    def error(self, message: str) -> ExpressionError:
        token = self.current
        found = "end of expression" if token.kind == "end" else repr(token.text)
        return ExpressionError(f"{message}, found {found}", self.source, token.position)

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise ExpressionError("empty expression", self.source, 0)
        node = self.expression()
        if self.current.kind != "end":
            raise self.error("unexpected text after the expression")
        return node

    def expression(self) -> Node:
        saved = self.depth
        self.deeper()
        node = self.either()
        self.depth = saved
        return node

    def either(self) -> Node:
        node = self.both()
        while self.at("or"):
            self.take()
            self.deeper()
            node = Binary("or", node, self.both())
        return node

    def both(self) -> Node:
        node = self.negation()
        while self.at("and"):
            self.take()
            self.deeper()
            node = Binary("and", node, self.negation())
        return node

    def deeper(self) -> None:
        """Count one more level of the tree; evaluation recurses once per level."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError("expression nested too deeply", self.source)

    def negation(self) -> Node:
        if self.at("not"):
            self.take()
            saved = self.depth
            self.deeper()
            node = Unary("not", self.negation())
            self.depth = saved
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.unary()
        if self.at(*_COMPARISONS):
            operator = self.take().text
            return Binary(operator, left, self.unary())
        if self.at("not") and self.tokens[self.index + 1].text == "in":
            self.index += 2
            return Unary("not", Binary("in", left, self.unary()))
        return left

    def unary(self) -> Node:
        if self.at("-"):
            self.take()
            saved = self.depth
            self.deeper()
            node = Unary("-", self.unary())
            self.depth = saved
            return node
        return self.primary()

    def primary(self) -> Node:
        token = self.current
        if token.kind in ("number", "string"):
            self.take()
            return Literal(token.value)
        if token.kind == "name":
            self.take()
            if token.text in _CONSTANTS:
                return Literal(_CONSTANTS[token.text])
            if self.at("("):
                return self.call(token)
            return self.path(token)
        if self.at("("):
            self.take()
            node = self.expression()
            self.expect(")")
            return node
        raise self.error("expected a value, a path or '('")

    def call(self, name: Token) -> Node:
        if name.text not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(
                f"unknown function '{name.text}' (known: {known})", self.source, name.position
            )
        self.expect("(")
        arguments: list[Node] = []
        if not self.at(")"):
            arguments.append(self.expression())
            while self.at(","):
                self.take()
                arguments.append(self.expression())
        self.expect(")")
        arity = FUNCTIONS[name.text][0]
        if len(arguments) != arity:
            raise ExpressionError(
                f"{name.text}() takes {arity} argument(s), got {len(arguments)}",
                self.source,
                name.position,
            )
        return Call(name.text, tuple(arguments))

    def path(self, root: Token) -> Node:
        if root.text not in ROOTS:
            known = ", ".join(sorted(ROOTS))
            raise ExpressionError(
                f"unknown name '{root.text}' (paths start with one of: {known})",
                self.source,
                root.position,
            )
        keys: list[Node] = []
        while self.at(".", "["):
            if self.take().text == ".":
                token = self.take()
                if token.kind not in ("name", "number") and token.text not in _WORD_OPERATORS:
                    self.index -= 1
                    raise self.error("expected a name after '.'")
                keys.append(Literal(token.value if token.kind == "number" else token.text))
            else:
                keys.append(self.expression())
                self.expect("]")
        return Path(root.text, tuple(keys))


@lru_cache(maxsize=4096)
def parse(source: str) -> Node:
    """Parse a bare expression (no `${}` around it)."""
    return _Parser(source).parse()


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
            end = _closing_brace(text, position + 2)
            if literal:
                parts.append("".join(literal))
                literal = []
            inner = text[position + 2 : end]
            try:
                parts.append(parse(inner.strip()))
            except ExpressionError as error:
                raise ExpressionError(error.reason, text, position) from None
            position = end + 1
        else:
            literal.append(text[position])
            position += 1
    if literal:
        parts.append("".join(literal))
    return Template(tuple(parts))


def _closing_brace(text: str, start: int) -> int:
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
            return position
        position += 1
    raise ExpressionError("'${' is not closed by '}'", text, start - 2)


# --- evaluation ---------------------------------------------------------------------------


def evaluate(node: Node, context: Mapping[str, Any], strict: bool = False) -> Any:
    """The JSON value of `node`.

    A path to something that does not exist reads as null, unless `strict`: then it is an
    error naming the path (templates are strict, so a typo never becomes an empty string
    in a command; conditions are lenient, so optional inputs can be tested).
    """
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        return _follow(node, context, strict)
    if isinstance(node, Unary):
        operand = evaluate(node.operand, context, strict)
        if node.operator == "not":
            return not truthy(operand)
        if not is_number(operand):
            raise ExpressionError(f"cannot negate {type_name(operand)}")
        return -operand
    if isinstance(node, Binary):
        return _binary(node, context, strict)
    return FUNCTIONS[node.function][1](
        *(evaluate(argument, context, strict) for argument in node.arguments)
    )


_MISSING = object()


def _follow(path: Path, context: Mapping[str, Any], strict: bool) -> Any:
    value = context.get(path.root, _MISSING)
    text = path.root
    for key in path.keys:
        if value is _MISSING:
            break
        index = evaluate(key, context, strict)
        text += f".{index}" if isinstance(index, str) else f"[{to_text(index)}]"
        value = _lookup(value, index)
    if value is not _MISSING:
        return value
    if strict:
        raise ExpressionError(f"{text} does not exist")
    return None


def _lookup(container: Any, key: Any) -> Any:
    if isinstance(container, dict) and isinstance(key, str):
        return container.get(key, _MISSING)
    if isinstance(container, list) and is_number(key) and float(key).is_integer():
        index = int(key)
        return container[index] if 0 <= index < len(container) else _MISSING
    return _MISSING


def _binary(node: Binary, context: Mapping[str, Any], strict: bool) -> Any:
    left = evaluate(node.left, context, strict)
    if node.operator == "and":
        return truthy(left) and truthy(evaluate(node.right, context, strict))
    if node.operator == "or":
        return truthy(left) or truthy(evaluate(node.right, context, strict))
    right = evaluate(node.right, context, strict)
    if node.operator == "==":
        return json_equal(left, right)
    if node.operator == "!=":
        return not json_equal(left, right)
    if node.operator == "in":
        return _contains(right, left)
    return _order(node.operator, left, right)


def _order(operator: str, left: Any, right: Any) -> bool:
    comparable = (is_number(left) and is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )
    if not comparable:
        raise ExpressionError(
            f"cannot compare {type_name(left)} {operator} {type_name(right)}; "
            "'<', '<=', '>', '>=' need two numbers or two strings"
        )
    if operator == "<":
        return bool(left < right)
    if operator == "<=":
        return bool(left <= right)
    if operator == ">":
        return bool(left > right)
    return bool(left >= right)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, list):
        return any(json_equal(element, item) for element in container)
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ExpressionError(f"cannot look for {type_name(item)} in a string")
        return item in container
    if isinstance(container, dict):
        return isinstance(item, str) and item in container
    if container is None:
        return False
    raise ExpressionError(f"cannot look inside {type_name(container)}")


def _length(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    if value is None:
        return 0
    raise ExpressionError(f"length() needs a string, list or object, not {type_name(value)}")


def _text_test(name: str, test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def check(text: Any, part: Any) -> bool:
        if text is None:
            return False
        if not isinstance(text, str) or not isinstance(part, str):
            raise ExpressionError(f"{name}() needs two strings")
        return test(text, part)

    return check


FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "length": (1, _length),
    "contains": (2, lambda container, item: _contains(container, item)),
    "startsWith": (2, _text_test("startsWith", str.startswith)),
    "endsWith": (2, _text_test("endsWith", str.endswith)),
}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON sees it: 1 == 1.0, but true is not 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


def truthy(value: Any) -> bool:
    """null, false, 0, "", [] and {} are false; everything else is true."""
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def to_text(value: Any) -> str:
    """How a value reads when embedded in text: null is empty, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render(template: Template, context: Mapping[str, Any]) -> Any:
    """A single `${...}` keeps its JSON type; mixed text becomes a string."""
    if template.is_single_expression:
        return evaluate(template.parts[0], context, strict=True)  # type: ignore[arg-type]
    return "".join(
        part if isinstance(part, str) else to_text(evaluate(part, context, strict=True))
        for part in template.parts
    )


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON structure (a `result:` block, an `env:` map)."""
    if isinstance(value, str):
        return render(parse_template(value), context)
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    return value


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


def references(node: Node) -> Iterator[tuple[str, ...]]:
    """Each path in the tree as its root plus the leading constant keys."""
    if isinstance(node, Path):
        static: list[str] = [node.root]
        for key in node.keys:
            if not (isinstance(key, Literal) and isinstance(key.value, str | int)):
                break
            static.append(str(key.value))
        yield tuple(static)
        for key in node.keys:
            yield from references(key)
    elif isinstance(node, Unary):
        yield from references(node.operand)
    elif isinstance(node, Binary):
        yield from references(node.left)
        yield from references(node.right)
    elif isinstance(node, Call):
        for argument in node.arguments:
            yield from references(argument)
