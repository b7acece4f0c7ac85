"""Why a value does not match a JSON Schema: every reason, each in the user's words.

A compiled check (fastjsonschema) stops at the first problem and words it for programmers
(`must contain ['name'] properties`). This walk runs only after a compiled check has
failed, so a value that matches never pays for it. It visits every keyword of draft-07
that applies and says each problem as a person would: the field, what was expected and
what was found; an unknown field with the known one it was probably meant to be.

Where a schema offers alternatives (`anyOf`, `oneOf`), the alternative meant is picked by
the value's type and by the fields whose `const` or `enum` tell the alternatives apart
(a step's `kind`, an event's `action`), and its problems are reported; when none stands
out, the alternatives are named.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator
from typing import Any

from checkpointflow.schema_words import (
    TYPES,
    Issue,
    Path,
    found,
    shown,
    suggestion,
)

FormatCheck = Callable[[str, Any], bool]
MAX_ISSUES = 100


def explain(
    schema: Any, value: Any, at: Path = (), formats: FormatCheck | None = None
) -> list[Issue]:
    """Every way `value` fails `schema`, at most MAX_ISSUES; paths start with `at`."""
    walk = _Walk(schema, formats or (lambda name, value: True))
    walk.check(schema, value, at)
    return walk.issues[:MAX_ISSUES]


def _has_type(value: Any, name: str) -> bool:
    if name == "integer":
        is_int = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return is_int and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list | tuple),
        "null": lambda v: v is None,
    }
    check = checks.get(name)
    return check(value) if check else True


def _types_of(schema: Any) -> list[str]:
    declared = schema.get("type", []) if isinstance(schema, dict) else []
    return [declared] if isinstance(declared, str) else list(declared)


def _listed(values: list[Any], limit: int = 20) -> str:
    names = [shown(value) for value in values[:limit]]
    more = ", ..." if len(values) > limit else ""
    return ", ".join(names) + more


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


class _Walk:
    """One explanation: the root schema (for `$ref`s) and the issues found so far."""

    def __init__(self, root: Any, formats: FormatCheck) -> None:
        self.root = root
        self.formats = formats
        self.issues: list[Issue] = []
        self.depth = 0

    def add(self, path: Path, text: str, **extra: Any) -> None:
        self.issues.append(Issue(path, text, **extra))

    def check(self, schema: Any, value: Any, path: Path) -> None:
        if schema is False:
            self.add(path, "is not allowed here", rule="false")
            return
        if not isinstance(schema, dict) or len(self.issues) >= MAX_ISSUES:
            return
        if "$ref" in schema:  # draft-07: a $ref replaces the keywords beside it
            self.follow(schema["$ref"], value, path)
            return
        types = _types_of(schema)
        if types and not any(_has_type(value, name) for name in types):
            expected = " or ".join(TYPES.get(name, name) for name in types)
            expected = "true or false" if expected == "a boolean" else expected
            self.add(path, f"must be {expected}, found {found(value)}", rule="type")
            return
        if not self.allowed_value(schema, value, path):
            return
        for keywords in _KEYWORDS:
            keywords(self, schema, value, path)

    def follow(self, ref: Any, value: Any, path: Path) -> None:
        target = self.resolve(ref)
        if target is None or self.depth > 200:
            return
        self.depth += 1
        try:
            self.check(target, value, path)
        finally:
            self.depth -= 1

    def resolve(self, ref: Any) -> Any:
        """A local reference (#/definitions/x); the compiled check refused any other."""
        base, _, fragment = ref.partition("#") if isinstance(ref, str) else ("", "", "")
        own = self.root.get("$id", "") if isinstance(self.root, dict) else ""
        if base and base != str(own).partition("#")[0]:
            return None
        node = self.root
        for part in filter(None, fragment.split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def allowed_value(self, schema: dict[str, Any], value: Any, path: Path) -> bool:
        if "const" in schema and value != schema["const"]:
            text = f"must be {shown(schema['const'])}, found {shown(value)}"
            self.add(path, text, rule="const")
            return False
        choices = schema.get("enum")
        if isinstance(choices, list) and value not in choices:
            strings = [choice for choice in choices if isinstance(choice, str)]
            hint = suggestion(value, strings) if isinstance(value, str) else ""
            text = f"must be one of {_listed(choices)}, found {shown(value)}"
            self.add(path, text, hint=hint, rule="enum")
            return False
        return True

    def alone(self, schema: Any, value: Any, path: Path) -> list[Issue]:
        """The issues of `value` against `schema`, kept apart from the others."""
        walk = _Walk(self.root, self.formats)
        walk.depth = self.depth
        walk.check(schema, value, path)
        return walk.issues


def _objects(walk: _Walk, schema: dict[str, Any], value: Any, path: Path) -> None:
    if not isinstance(value, dict):
        return
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    patterns = schema.get("patternProperties")
    patterns = patterns if isinstance(patterns, dict) else {}
    extra = schema.get("additionalProperties", True)
    suggested: set[str] = set()
    for key, item in value.items():
        matching = [rule for pattern, rule in patterns.items() if re.search(pattern, key)]
        if key in properties:
            walk.check(properties[key], item, (*path, key))
        for rule in matching:
            walk.check(rule, item, (*path, key))
        if key in properties or matching:
            continue
        if extra is False:
            hint = suggestion(key, [name for name in properties if name not in value])
            suggested.add(hint)
            walk.add((*path, key), f"unknown field '{key}'", hint=hint, about_field=True)
        else:
            walk.check(extra, item, (*path, key))
    for name in schema.get("required", ()):
        if name not in value and f"did you mean '{name}'?" not in suggested:
            walk.add((*path, name), f"'{name}' is required", about_field=True, rule="required")
    _object_extras(walk, schema, value, path)


def _object_extras(walk: _Walk, schema: dict[str, Any], value: dict[str, Any], path: Path) -> None:
    names = schema.get("propertyNames")
    if names is not None:
        for key in value:
            for issue in walk.alone(names, key, (*path, key)):
                text = f"is not an allowed field name ({issue.text})"
                walk.add(issue.path, text, hint=issue.hint)
    low, high = schema.get("minProperties"), schema.get("maxProperties")
    if isinstance(low, int) and len(value) < low:
        walk.add(path, f"must have at least {_count(low, 'field')}, found {len(value)}")
    if isinstance(high, int) and len(value) > high:
        walk.add(path, f"must have at most {_count(high, 'field')}, found {len(value)}")
    for name, needs in (schema.get("dependencies") or {}).items():
        if name not in value:
            continue
        if isinstance(needs, list):
            for other in needs:
                if other not in value:
                    text = f"'{other}' is required when '{name}' is given"
                    walk.add((*path, other), text, about_field=True, rule="required")
        else:
            walk.check(needs, value, path)


def _arrays(walk: _Walk, schema: dict[str, Any], value: Any, path: Path) -> None:
    if not isinstance(value, list | tuple):
        return
    items = schema.get("items", True)
    if isinstance(items, list):
        for index, (rule, item) in enumerate(zip(items, value, strict=False)):
            walk.check(rule, item, (*path, index))
        extra = schema.get("additionalItems", True)
        for index in range(len(items), len(value)):
            walk.check(extra, value[index], (*path, index))
    else:
        for index, item in enumerate(value):
            walk.check(items, item, (*path, index))
    _array_extras(walk, schema, value, path)


def _array_extras(walk: _Walk, schema: dict[str, Any], value: Any, path: Path) -> None:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and len(value) < low:
        text = "must not be empty" if low == 1 else f"must have at least {_count(low, 'item')}"
        walk.add(path, text + ("" if low == 1 else f", found {len(value)}"))
    if isinstance(high, int) and len(value) > high:
        walk.add(path, f"must have at most {_count(high, 'item')}, found {len(value)}")
    if schema.get("uniqueItems") is True:
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            key = json.dumps(item, sort_keys=True, default=str)
            if key in seen:
                walk.add((*path, index), f"repeats item {seen[key]}; items must be unique")
            seen.setdefault(key, index)
    if "contains" in schema and all(walk.alone(schema["contains"], item, path) for item in value):
        walk.add(path, "must contain at least one item that matches its `contains` schema")


def _strings(walk: _Walk, schema: dict[str, Any], value: Any, path: Path) -> None:
    if not isinstance(value, str):
        return
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        text = "must not be empty" if low == 1 else f"must be at least {low} characters long"
        walk.add(path, text)
    if isinstance(high, int) and len(value) > high:
        walk.add(path, f"must be at most {high} characters long, found {len(value)}")
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not re.search(pattern, value):
        walk.add(path, f"must match the pattern {pattern}, found {shown(value)}")
    form = schema.get("format")
    if isinstance(form, str) and not walk.formats(form, value):
        walk.add(path, f"must be a valid {form}, found {shown(value)}")


def _numbers(walk: _Walk, schema: dict[str, Any], value: Any, path: Path) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    for text in _broken_limits(schema, value):
        walk.add(path, f"{text}, found {shown(value)}")


def _broken_limits(schema: dict[str, Any], value: float) -> Iterator[str]:
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if above is True:  # draft-04 spelling: a flag beside minimum
        low, above = None, low
    if below is True:
        high, below = None, high
    limits: tuple[tuple[Any, Callable[[Any, Any], bool], str], ...] = (
        (low, operator.lt, "must be at least"),
        (high, operator.gt, "must be at most"),
        (above, operator.le, "must be more than"),
        (below, operator.ge, "must be less than"),
    )
    for limit, breaks, text in limits:
        if _number(limit) and breaks(value, limit):
            yield f"{text} {limit}"
    step = schema.get("multipleOf")
    if _number(step) and step and not _multiple(value, step):
        yield f"must be a multiple of {step}"


def _multiple(value: float, step: float) -> bool:
    """Decimal arithmetic, as the compiled check does: 0.3 is a multiple of 0.1."""
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    from decimal import Decimal

    quotient = Decimal(repr(value)) / Decimal(repr(step))
    return int(quotient) == quotient


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _combined(walk: _Walk, schema: dict[str, Any], value: Any, path: Path) -> None:
    for part in schema.get("allOf", ()):
        walk.check(part, value, path)
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            _alternatives(walk, schema[keyword], value, path, keyword == "oneOf")
    if "not" in schema and not walk.alone(schema["not"], value, path):
        walk.add(path, "must not match its `not` schema", rule="not")
    if "if" in schema:
        branch = "else" if walk.alone(schema["if"], value, path) else "then"
        if branch in schema:
            walk.check(schema[branch], value, path)


def _alternatives(
    walk: _Walk, options: list[Any], value: Any, path: Path, exactly_one: bool
) -> None:
    results = [walk.alone(option, value, path) for option in options]
    passed = sum(1 for issues in results if not issues)
    if exactly_one and passed > 1:
        walk.add(path, f"matches {passed} of the forms oneOf allows; it must match exactly one")
    if passed:
        return
    meant = _meant(walk, options, results, value, path)
    if meant is not None:
        walk.issues.extend(meant)
        return
    walk.add(path, _either(walk, options, value), rule="alternatives")


def _meant(
    walk: _Walk, options: list[Any], results: list[list[Issue]], value: Any, path: Path
) -> list[Issue] | None:
    """The issues of the one alternative the value was evidently meant to be, if any."""
    fitting = [
        issues
        for option, issues in zip(options, results, strict=True)
        if _fits_type(walk, option, value) and not _discriminated(issues, path, value)
    ]
    return fitting[0] if len(fitting) == 1 else None


def _fits_type(walk: _Walk, option: Any, value: Any) -> bool:
    while isinstance(option, dict) and "$ref" in option:
        option = walk.resolve(option["$ref"])
    types = _types_of(option)
    return not types or any(_has_type(value, name) for name in types)


def _discriminated(issues: list[Issue], path: Path, value: Any) -> bool:
    """Whether a field the value has rules this alternative out by its const or enum."""
    depth = len(path) + 1
    return any(
        issue.rule in ("const", "enum") and len(issue.path) == depth and isinstance(value, dict)
        for issue in issues
    )


def _either(walk: _Walk, options: list[Any], value: Any) -> str:
    """`must be a string or a list, found a number`, or what the alternatives need."""
    required = [option.get("required") for option in options if isinstance(option, dict)]
    names = [names[0] for names in required if isinstance(names, list) and len(names) == 1]
    if len(names) == len(options):
        return "needs " + " or ".join(f"'{name}'" for name in names)
    kinds: list[str] = []
    for option in options:
        while isinstance(option, dict) and "$ref" in option:
            option = walk.resolve(option["$ref"])
        for name in _types_of(option):
            if TYPES.get(name, name) not in kinds:
                kinds.append(TYPES.get(name, name))
    if kinds:
        return f"must be {' or '.join(kinds)}, found {found(value)}"
    return f"does not match any of the {len(options)} forms its schema allows"


_KEYWORDS = (_objects, _arrays, _strings, _numbers, _combined)
