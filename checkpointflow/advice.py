"""Warnings from `cpf validate`: documents that are valid but probably not what was meant.

A wait without a timeout can be forgotten forever; a step no path reaches never runs; a
transition comparing an event field with a value its schema forbids can never be taken; a
command or result that reads an optional field fails whenever it is left out
(optional_reads.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from checkpointflow import optional_reads
from checkpointflow.expressions import (
    Binary,
    ExpressionError,
    ListLiteral,
    Literal,
    Node,
    Path,
    evaluate,
    parse_condition,
    references,
    truthy,
)
from checkpointflow.model import closure


def warnings_for(document: dict[str, Any], source: str = "") -> list[str]:
    """What looks unintended in a valid document; `source` names its file."""
    found: list[str] = []
    for steps in _step_lists(document["workflow"]["steps"]):
        for step in steps:
            if step["kind"] == "await_event" and not step.get("timeout_seconds"):
                found.append(
                    f"step '{step['id']}': an await_event without timeout_seconds waits "
                    "forever; set timeout_seconds (and on_timeout) so a forgotten wait is noticed"
                )
        reachable = _reachable(steps)
        for step in steps:
            if step["id"] not in reachable:
                found.append(f"step '{step['id']}': no path through the workflow reaches this step")
        for step in steps:
            found += _impossible_transitions(step)
            found += _falling_through(step)
            found += _container_fields(step)
    found += optional_reads.warnings_for(document)
    return [f"{source}: {warning}" if source else warning for warning in dict.fromkeys(found)]


def _container_fields(step: dict[str, Any]) -> list[str]:
    if step["kind"] not in ("foreach", "parallel", "workflow"):
        return []
    return [
        f"step '{step['id']}': {field} has no effect on a {step['kind']} step; set it on "
        "the steps inside"
        for field in ("retry", "timeout_seconds")
        if field in step
    ]


def _step_lists(steps: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The list and every list inside it (foreach bodies, inline parallel branches)."""
    yield steps
    for step in steps:
        if step["kind"] == "foreach" and "body" in step:
            yield from _step_lists(step["body"])
        if step["kind"] == "parallel":
            for branch in step["branches"]:
                if "steps" in branch:
                    yield from _step_lists(branch["steps"])


def _start_at_targets(step: dict[str, Any]) -> list[str]:
    if step["kind"] != "parallel":
        return []
    return [b["start_at"] for b in step["branches"] if "start_at" in b and "steps" not in b]


def _successors(steps: list[dict[str, Any]], index: int, owned: set[str]) -> Iterator[str]:
    step = steps[index]
    later = [other["id"] for other in steps[index + 1 :] if other["id"] not in owned]
    following = later[0] if later and step["id"] not in owned else None
    yield from _start_at_targets(step)
    for field in ("on_error", "on_timeout"):
        if field in step:
            yield step[field]["next"]
    if "if" in step and following:
        yield following  # skipped when false
    if step["kind"] == "end":
        return
    if step["kind"] == "switch":
        yield from (case["next"] for case in step["cases"])
        if "default" in step:
            yield step["default"]
        return
    transitions = step.get("transitions", [])
    yield from (transition["next"] for transition in transitions)
    if following and all("when" in transition for transition in transitions):
        yield following  # no transition matched: the list goes on


def _reachable(steps: list[dict[str, Any]]) -> set[str]:
    positions = {step["id"]: index for index, step in enumerate(steps)}
    owned = _owned(steps, positions)
    free = [step["id"] for step in steps if step["id"] not in owned]
    if not free:
        return set()
    return closure(free[0], lambda i: _successors(steps, positions[i], owned), set(positions))


def _owned(steps: list[dict[str, Any]], positions: dict[str, int]) -> set[str]:
    """Steps only start_at branches run (list order skips them)."""
    every = set(positions)
    owned: set[str] = set()
    for start in (target for step in steps for target in _start_at_targets(step)):
        owned |= closure(start, lambda i: _successors(steps, positions[i], every), every)
    return owned


def _impossible_transitions(step: dict[str, Any]) -> list[str]:
    if step["kind"] != "await_event":
        return []
    schema = step.get("input_schema")
    properties = (schema.get("properties") if isinstance(schema, dict) else None) or {}
    found = []
    for index, transition in enumerate(step.get("transitions", [])):
        try:
            node = parse_condition(transition["when"]) if "when" in transition else None
        except ExpressionError:
            continue
        for field, values in _event_tests(node):
            allowed = _allowed_values(properties.get(field))
            if allowed is not None and not any(value in allowed for value in values):
                shown = repr(values[0]) if len(values) == 1 else f"any of {values!r}"
                found.append(
                    f"step '{step['id']}': transition {index} compares event.{field} with "
                    f"{shown}, which its input_schema never allows ({allowed}); it can never "
                    "be taken"
                )
    return found


def _event_tests(node: Node | None) -> Iterator[tuple[str, list[Any]]]:
    """(field, values) for each `event.<field> == <literal>` or `event.<field> in [<literal>,
    ...]` the condition requires: the field must be one of the values."""
    if not isinstance(node, Binary):
        return
    if node.operator in ("and", "&&"):
        yield from _event_tests(node.left)
        yield from _event_tests(node.right)
    elif node.operator == "==":
        for path, literal in ((node.left, node.right), (node.right, node.left)):
            field = _event_field(path)
            if field is not None and isinstance(literal, Literal):
                yield field, [literal.value]
    elif node.operator == "in" and isinstance(node.right, ListLiteral):
        field = _event_field(node.left)
        items = node.right.items
        if field is not None and all(isinstance(item, Literal) for item in items):
            yield field, [item.value for item in items if isinstance(item, Literal)]


def _event_field(node: Node) -> str | None:
    """`x` for the path `event.x`, else None."""
    if (
        isinstance(node, Path)
        and node.root == "event"
        and len(node.keys) == 1
        and isinstance(node.keys[0], Literal)
    ):
        return str(node.keys[0].value)
    return None


def _allowed_values(schema: Any) -> list[Any] | None:
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


# --- answers no transition takes --------------------------------------------------------------


def _falling_through(step: dict[str, Any]) -> list[str]:
    """An await_event whose transitions all have a `when` and leave some values of a field
    with few possible values (an enum, a boolean) untaken: such an answer goes on to the
    next step in the list, which may not be what was meant."""
    transitions = step.get("transitions") or []
    schema = step.get("input_schema")
    if step["kind"] != "await_event" or not transitions or not isinstance(schema, dict):
        return []
    if any("when" not in transition for transition in transitions):
        return []
    try:
        conditions = [parse_condition(transition["when"]) for transition in transitions]
    except ExpressionError:
        return []
    found = []
    for field, field_schema in (schema.get("properties") or {}).items():
        values = _possible_values(field_schema)
        if values is None or not all(_reads_only(node, field) for node in conditions):
            continue
        untaken = [v for v in values if not any(_takes(node, field, v) for node in conditions)]
        if untaken:
            shown = ", ".join(json.dumps(value) for value in untaken)
            found.append(
                f"step '{step['id']}': when event.{field} is {shown}, no transition matches "
                "and the run goes on to the next step in the list; add a transition for it "
                "(or a last one without `when`) if that is not meant"
            )
    return found


def _possible_values(schema: Any) -> list[Any] | None:
    """The few values a field may have: its enum or const, or true and false for a boolean."""
    allowed = _allowed_values(schema)
    if allowed is not None:
        return allowed
    kinds = schema.get("type") if isinstance(schema, dict) else None
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if isinstance(kinds, list) and kinds and set(kinds) <= {"boolean", "null"}:
        return [value for value in (True, False, None) if _type_of(value) in kinds]
    return None


def _type_of(value: Any) -> str:
    return "null" if value is None else "boolean"


def _reads_only(node: Node, field: str) -> bool:
    """Whether the condition reads nothing but `event.<field>`."""
    return all(path[:2] == ("event", field) for path in references(node))


def _takes(node: Node, field: str, value: Any) -> bool:
    """Whether the condition holds for an answer whose `field` is `value` (an error in the
    condition counts as taken: validate cannot tell, and the run reports it)."""
    try:
        return truthy(evaluate(node, {"event": {field: value}, "inputs": {}, "steps": {}}))
    except ExpressionError:
        return True
