"""A `cpf validate` warning: a template that needs a value which may be left out.

A field that a schema declares but neither requires nor fills with a `default` may be
missing. Where a value is used (a command, `cwd`, `env`, an `api` field, an `end` result,
a sub-workflow's inputs, a foreach's `items`) reading it then fails the step with
`ERR_EXPRESSION`, often long after the run started, when someone left an optional answer
out. A read is safe behind `:-` or on the left of `||`/`&&`, in a step whose `if` tests
the field, and in text only shown to people (prompts, summaries, instructions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from checkpointflow.expressions import (
    Binary,
    Default,
    ExpressionError,
    Node,
    Path,
    children,
    parse_condition,
    parse_template,
    references,
    static_part,
)
from checkpointflow.sites import Site, expression_sites

Steps = dict[str, dict[str, Any]]


def warnings_for(document: dict[str, Any]) -> list[str]:
    workflow = document["workflow"]
    return _list_warnings(workflow["steps"], "/workflow/steps", {}, workflow.get("inputs"))


def _list_warnings(steps: list[dict[str, Any]], base: str, outer: Steps, inputs: Any) -> list[str]:
    """The warnings of one list of steps and of the lists inside it (bodies, branches)."""
    visible = {**outer, **{step["id"]: step for step in steps}}
    found: list[str] = []
    for index, step in enumerate(steps):
        path = f"{base}/{index}"
        found += _step_warnings(step, path, visible, inputs)
        for inner, where in _inner_lists(step, path):
            found += _list_warnings(inner, where, visible, inputs)
    return found


def _inner_lists(step: dict[str, Any], path: str) -> Iterator[tuple[list[dict[str, Any]], str]]:
    if step["kind"] == "foreach" and isinstance(step.get("body"), list):
        yield step["body"], f"{path}/body"
    for number, branch in enumerate(step.get("branches", ()) if step["kind"] == "parallel" else ()):
        if isinstance(branch.get("steps"), list):
            yield branch["steps"], f"{path}/branches/{number}/steps"


def _step_warnings(step: dict[str, Any], path: str, visible: Steps, inputs: Any) -> list[str]:
    guarded = _tested_by_if(step)
    found = []
    for site in expression_sites(step, path):
        if not site.strict:
            continue
        for reference in dict.fromkeys(_needed(site)):
            optional = _optional_field(reference, visible, inputs)
            if optional is None or any(g[: len(optional[0])] == optional[0] for g in guarded):
                continue
            found.append(_message(step["id"], site.path[len(path) + 1 :], *optional))
    return found


def _message(step_id: str, field: str, read: tuple[str, ...], owner: str, fills: bool) -> str:
    text = ".".join(read)
    default = ", give it a default" if fills else ""
    return (
        f"step '{step_id}': {field} reads {text}, which {owner} declares but neither requires "
        f"nor gives a default, so the step fails with ERR_EXPRESSION whenever it is left out; "
        f"write ${{{text}:-fallback}} or ${{{text} || 'fallback'}}{default}, list it in "
        f"required, or skip the step with `if: {text}`"
    )


def _needed(site: Site) -> Iterator[tuple[str, ...]]:
    """The paths a site cannot do without (not behind `:-`, `||` or `&&`)."""
    try:
        if site.condition:
            nodes: tuple[Node, ...] = (parse_condition(site.text),)
        else:
            nodes = parse_template(site.text).expressions
    except ExpressionError:
        return  # `validate` reports it as an error
    for node in nodes:
        yield from _unprotected(node)


def _unprotected(node: Node) -> Iterator[tuple[str, ...]]:
    if isinstance(node, Default):
        return
    if isinstance(node, Binary) and node.operator in ("||", "&&"):
        yield from _unprotected(node.right)
        return
    if isinstance(node, Path):
        yield static_part(node)
    for child in children(node):
        yield from _unprotected(child)


def _tested_by_if(step: dict[str, Any]) -> list[tuple[str, ...]]:
    try:
        return list(references(parse_condition(step["if"]))) if "if" in step else []
    except ExpressionError:
        return []


def _optional_field(
    reference: tuple[str, ...], visible: Steps, inputs: Any
) -> tuple[tuple[str, ...], str, bool] | None:
    """The leading part of `reference` that ends at an optional field, who declares it and
    whether that schema's defaults are filled in; None when every part is guaranteed."""
    if reference[0] == "inputs":
        schema, start, owner, fills = inputs, 1, "the workflow's inputs schema", True
    elif reference[0] == "steps" and len(reference) > 3 and reference[2] == "outputs":
        producer = visible.get(reference[1], {})
        kind = producer.get("kind")
        if kind == "await_event":
            schema, field = producer.get("input_schema"), "input_schema"
        elif kind in ("cli", "api"):
            schema, field = producer.get("outputs"), "outputs"
        else:
            return None
        start, owner, fills = 3, f"the {field} of step '{reference[1]}'", kind == "await_event"
    else:
        return None
    depth = _first_optional(schema, reference[start:], fills)
    return None if depth is None else (reference[: start + depth], owner, fills)


def _first_optional(schema: Any, keys: tuple[str, ...], fills: bool) -> int | None:
    """How many keys lead to the first field that may be missing, or None."""
    for depth, key in enumerate(keys, start=1):
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(properties, dict) or key not in properties:
            return None
        field = properties[key]
        required = schema.get("required")
        defaulted = fills and isinstance(field, dict) and "default" in field
        if not (isinstance(required, list) and key in required) and not defaulted:
            return depth
        schema = field
    return None
