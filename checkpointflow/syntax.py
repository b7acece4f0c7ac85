"""The syntax of expressions: the parser and the immutable syntax tree.

Grammar, loosest binding first::

    expression := or
    or         := and (("or" | "||") and)*
    and        := not (("and" | "&&") not)*
    not        := "not" not | comparison
    comparison := unary (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") unary)?
    unary      := "-" unary | primary
    primary    := literal | list | call | path | "(" expression ")"
    list       := "[" [expression ("," expression)*] "]"
    path       := NAME ("." NAME | "[" expression "]")*
    call       := NAME "(" [expression ("," expression)*] ")"

`or`/`and` give a boolean; `||`/`&&` give one of their operands, as in GitHub Actions.
Text with `${...}` embedded is read by `interpolation.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import attrs

from checkpointflow.tokens import CONSTANTS, WORD_OPERATORS, ExpressionError, Token, tokenize

# The functions expressions may call, with their number of arguments (see expressions.py).
FUNCTION_ARITIES = {"length": 1, "contains": 2, "startsWith": 2, "endsWith": 2}

ROOTS = frozenset({"inputs", "steps", "event", "item", "item_index", "env"})


# --- syntax tree --------------------------------------------------------------------------


@attrs.frozen(slots=False)
class Literal:
    value: Any


@attrs.frozen(slots=False)
class Path:
    root: str
    keys: tuple[Node, ...]


@attrs.frozen(slots=False)
class Unary:
    operator: str
    operand: Node


@attrs.frozen(slots=False)
class Binary:
    operator: str
    left: Node
    right: Node


@attrs.frozen(slots=False)
class Call:
    function: str
    arguments: tuple[Node, ...]


@attrs.frozen(slots=False)
class ListLiteral:
    """`[a, b, c]`: a list whose items are expressions."""

    items: tuple[Node, ...]


@attrs.frozen(slots=False)
class Default:
    """`${expression:-fallback}`: the fallback text when the expression is missing or empty."""

    expression: Node
    fallback: str


Node = Literal | Path | Unary | Binary | Call | ListLiteral | Default


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
        while self.at("or", "||"):
            operator = self.take().text
            self.deeper()
            node = Binary(operator, node, self.both())
        return node

    def both(self) -> Node:
        node = self.negation()
        while self.at("and", "&&"):
            operator = self.take().text
            self.deeper()
            node = Binary(operator, node, self.negation())
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
            if token.text in CONSTANTS:
                return Literal(CONSTANTS[token.text])
            if self.at("("):
                return self.call(token)
            return self.path(token)
        if self.at("("):
            self.take()
            node = self.expression()
            self.expect(")")
            return node
        if self.at("["):
            self.take()
            return ListLiteral(self.listed("]"))
        raise self.error("expected a value, a path, '[' or '('")

    def listed(self, closing: str) -> tuple[Node, ...]:
        """Expressions separated by commas, up to and including `closing`."""
        items: list[Node] = []
        if not self.at(closing):
            items.append(self.expression())
            while self.at(","):
                self.take()
                items.append(self.expression())
        if not self.at(closing):
            raise self.error(f"expected ',' or '{closing}'")
        self.take()
        return tuple(items)

    def call(self, name: Token) -> Node:
        if name.text not in FUNCTION_ARITIES:
            known = ", ".join(sorted(FUNCTION_ARITIES))
            raise ExpressionError(
                f"unknown function '{name.text}' (known: {known})", self.source, name.position
            )
        self.expect("(")
        arguments = self.listed(")")
        arity = FUNCTION_ARITIES[name.text]
        if len(arguments) != arity:
            raise ExpressionError(
                f"{name.text}() takes {arity} argument(s), got {len(arguments)}",
                self.source,
                name.position,
            )
        return Call(name.text, arguments)

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
                if token.kind not in ("name", "number") and token.text not in WORD_OPERATORS:
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


def references(node: Node) -> Iterator[tuple[str, ...]]:
    """Each path in the tree as its root plus the leading constant keys."""
    if isinstance(node, Path):
        yield static_part(node)
    for child in children(node):
        yield from references(child)


def static_part(path: Path) -> tuple[str, ...]:
    """The root and the leading constant keys: `inputs.a[inputs.b].c` gives inputs, a."""
    static: list[str] = [path.root]
    for key in path.keys:
        if not (isinstance(key, Literal) and isinstance(key.value, str | int)):
            break
        static.append(str(key.value))
    return tuple(static)


def children(node: Node) -> tuple[Node, ...]:
    """The nodes directly inside `node`, left to right."""
    if isinstance(node, Path):
        return node.keys
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.arguments
    if isinstance(node, ListLiteral):
        return node.items
    if isinstance(node, Default):
        return (node.expression,)
    return ()


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
