"""Expressions: evaluating the small language inside `${...}`, `if:` and `when:`.

`syntax.py` turns text into an immutable syntax tree (`interpolation.py` finds the
expressions inside text); this module reads a tree against a context of plain JSON data.
Nothing here touches the outside world, and nothing is ever handed to `eval`. The syntax
names are re-exported, so callers need one import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from checkpointflow.interpolation import Template, parse_condition, parse_template, templates_in
from checkpointflow.syntax import (
    FUNCTION_ARITIES,
    ROOTS,
    Binary,
    Call,
    Default,
    ListLiteral,
    Literal,
    Node,
    Path,
    Unary,
    children,
    is_number,
    parse,
    references,
    static_part,
    type_name,
)
from checkpointflow.tokens import ExpressionError, tokenize

__all__ = [
    "FUNCTION_ARITIES",
    "ROOTS",
    "Binary",
    "Call",
    "Default",
    "ExpressionError",
    "ListLiteral",
    "Literal",
    "Node",
    "Path",
    "Template",
    "Unary",
    "children",
    "evaluate",
    "is_number",
    "json_equal",
    "parse",
    "parse_condition",
    "parse_template",
    "references",
    "render",
    "render_shown",
    "render_value",
    "static_part",
    "templates_in",
    "to_text",
    "tokenize",
    "truthy",
    "type_name",
]

# --- evaluation ---------------------------------------------------------------------------


def evaluate(node: Node, context: Mapping[str, Any], strict: bool = False) -> Any:
    """The JSON value of `node`.

    A path to something that does not exist reads as null, unless `strict`: then it is an
    error naming the path (templates are strict, so a typo never becomes an empty string
    in a command; conditions are lenient, so optional inputs can be tested). Whatever sits
    before `:-`, `||` or `&&` is always read leniently: a missing value is what they test.
    """
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        return _follow(node, context, strict)
    if isinstance(node, ListLiteral):
        return [evaluate(item, context, strict) for item in node.items]
    if isinstance(node, Default):
        value = evaluate(node.expression, context)
        return node.fallback if value is None or value == "" else value
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
    if node.operator in ("||", "&&"):
        left = evaluate(node.left, context)
        if truthy(left) == (node.operator == "||"):
            return left
        return evaluate(node.right, context, strict)
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


def render_shown(template: Template, context: Mapping[str, Any]) -> str:
    """Text only shown to a person or an agent (a prompt, a summary): a value that does not
    exist reads as empty, so a left-out optional answer never stops the run."""
    return "".join(
        part if isinstance(part, str) else to_text(evaluate(part, context))
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
