"""Semantic checks of a structurally valid workflow document.

Every problem is collected, each with the step id and a JSON-pointer-like path, so one run
of `cpf validate` shows everything that needs fixing.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import attrs

from checkpointflow import json_schema
from checkpointflow.expressions import (
    ExpressionError,
    Node,
    parse_condition,
    parse_template,
    references,
    templates_in,
)

DATA_ROOTS = frozenset({"inputs", "steps"})
STEP_FIELDS = frozenset({"outputs", "status", "error"})
_ROOT_HINTS = {
    "event": "`event` is only available in the transitions of an await_event step",
    "item": "`item` is only available inside a foreach body",
    "item_index": "`item_index` is only available inside a foreach body",
    "env": "`env` is only allowed where values leave the run (command, cwd, env, url, headers, query, body)",
}


@attrs.frozen
class Problem:
    path: str
    message: str
    step_id: str | None = None
    code: str = "ERR_VALIDATION_WORKFLOW"

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Site:
    """One place in a step that holds an expression, and what it may read."""

    path: str
    text: Any
    roots: frozenset[str]
    condition: bool = False


def find_problems(document: dict[str, Any]) -> list[Problem]:
    workflow = document["workflow"]
    steps: list[dict[str, Any]] = workflow["steps"]
    problems = list(_duplicate_ids(steps))
    known = {step["id"] for step in steps}
    problems += _schema_definition(workflow.get("inputs"), "/workflow/inputs", None)
    for index, step in enumerate(steps):
        problems += _step_problems(step, f"/workflow/steps/{index}", known)
    for name, entry in workflow.get("outputs", {}).items():
        text = entry["from"] if isinstance(entry, dict) else entry
        path = f"/workflow/outputs/{name}" + ("/from" if isinstance(entry, dict) else "")
        site = Site(path, text, DATA_ROOTS, condition=True)
        for problem in _expression_problems(site, "", known):
            problems.append(
                attrs.evolve(
                    problem,
                    step_id=None,
                    message=problem.message.replace("step '': ", f"output '{name}': "),
                )
            )
    return problems


def _duplicate_ids(steps: list[dict[str, Any]]) -> Iterator[Problem]:
    seen: set[str] = set()
    for index, step in enumerate(steps):
        if step["id"] in seen:
            yield Problem(
                f"/workflow/steps/{index}/id",
                f"Duplicate step ID: '{step['id']}' is used by more than one step; "
                "give each step its own id",
                step["id"],
                "ERR_DUPLICATE_STEP_ID",
            )
        seen.add(step["id"])


def _step_problems(step: dict[str, Any], base: str, known: set[str]) -> list[Problem]:
    step_id = step["id"]
    problems: list[Problem] = []
    for site in _sites(step, base):
        problems += _expression_problems(site, step_id, known)
    for path, target in _targets(step, base):
        if target not in known:
            problems.append(
                Problem(
                    path,
                    f"step '{step_id}': target '{target}' is not a step id in this workflow "
                    f"(known: {', '.join(sorted(known))})",
                    step_id,
                )
            )
    if "on_timeout" in step and not step.get("timeout_seconds"):
        problems.append(
            Problem(
                f"{base}/on_timeout",
                f"step '{step_id}': on_timeout needs timeout_seconds to say when the wait ends",
                step_id,
            )
        )
    for field in ("outputs", "input_schema"):
        problems += _schema_definition(step.get(field), f"{base}/{field}", step_id)
    if "shell" in step:
        problems += _shell_problems(step["shell"], f"{base}/shell", step_id)
    return problems


def _targets(step: dict[str, Any], base: str) -> Iterator[tuple[str, str]]:
    """Every step id this step may jump to, with where it is written."""
    for field in ("transitions", "cases"):
        for index, entry in enumerate(step.get(field, ())):
            yield f"{base}/{field}/{index}/next", entry["next"]
    if "default" in step:
        yield f"{base}/default", step["default"]
    for field in ("on_error", "on_timeout"):
        if field in step:
            yield f"{base}/{field}/next", step[field]["next"]


def _sites(step: dict[str, Any], base: str) -> Iterator[Site]:
    data = DATA_ROOTS
    if "if" in step:
        yield Site(f"{base}/if", step["if"], data, condition=True)
    when_roots = data | {"event"} if step["kind"] == "await_event" else data
    for index, transition in enumerate(step.get("transitions", ())):
        if "when" in transition:
            path = f"{base}/transitions/{index}/when"
            yield Site(path, transition["when"], when_roots, condition=True)
    for index, case in enumerate(step.get("cases", ())):
        yield Site(f"{base}/cases/{index}/when", case["when"], data, condition=True)
    outward = data | {"env"}
    command = step.get("command")
    if isinstance(command, list):
        for index, part in enumerate(command):
            yield Site(f"{base}/command/{index}", part, outward)
    elif command is not None:
        yield Site(f"{base}/command", command, outward)
    for field in ("cwd", "url"):
        if field in step:
            yield Site(f"{base}/{field}", step[field], outward)
    for field in ("env", "headers", "query"):
        for name, value in step.get(field, {}).items():
            if isinstance(value, str):
                yield Site(f"{base}/{field}/{name}", value, outward)
    if step["kind"] == "api" and "body" in step:
        for path, text in templates_in(step["body"]):
            yield Site(f"{base}/body{path}", text, outward)
    for field in ("prompt", "summary"):
        if field in step:
            yield Site(f"{base}/{field}", step[field], data)
    if step["kind"] == "end" and "result" in step:
        for path, text in templates_in(step["result"]):
            yield Site(f"{base}/result{path}", text, data)


def _expression_problems(site: Site, step_id: str, known: set[str]) -> list[Problem]:
    try:
        nodes: tuple[Node, ...]
        if site.condition:
            nodes = (parse_condition(site.text),)
        else:
            nodes = parse_template(site.text).expressions
    except ExpressionError as error:
        return [Problem(site.path, f"step '{step_id}': {error}", step_id)]
    problems: list[Problem] = []
    for node in nodes:
        for reference in references(node):
            message = _reference_problem(reference, site.roots, known)
            if message:
                problems.append(Problem(site.path, f"step '{step_id}': {message}", step_id))
    return problems


def _reference_problem(
    reference: tuple[str, ...], roots: frozenset[str], known: set[str]
) -> str | None:
    root = reference[0]
    if root not in roots:
        return _ROOT_HINTS.get(root, f"`{root}` cannot be used here")
    if root != "steps":
        return None
    if len(reference) < 2:
        return "`steps` must be followed by a step id, as in steps.<id>.outputs"
    if reference[1] not in known:
        return f"steps.{reference[1]} refers to a step id that does not exist"
    if len(reference) > 2 and reference[2] not in STEP_FIELDS:
        fields = ", ".join(sorted(STEP_FIELDS))
        return f"steps.{reference[1]}.{reference[2]}: a step has only {fields}"
    return None


def _schema_definition(schema: Any, path: str, step_id: str | None) -> list[Problem]:
    if schema is None:
        return []
    message = json_schema.definition_problem(schema)
    if message is None:
        return []
    where = f"step '{step_id}': " if step_id else ""
    return [Problem(path, f"{where}{path.rsplit('/', 1)[-1]} is {message}", step_id)]


def _shell_problems(shell: str, path: str, step_id: str) -> list[Problem]:
    try:
        words = shlex.split(shell)
    except ValueError as error:
        return [
            Problem(path, f"step '{step_id}': shell {shell!r} cannot be split: {error}", step_id)
        ]
    if not words:
        return [Problem(path, f"step '{step_id}': shell is empty", step_id)]
    return []
