"""The shape of a workflow document, checked against the packaged JSON Schema part by part.

The document's schema describes steps loosely (an id and a kind); each step is then checked
against the definition of its own kind, so one broken step never hides the next, and every
problem is worded for the step it is in (`step 'build': unknown field 'comand' (did you
mean 'command'?)`). A valid document costs one compiled check per part; only a refused
part is walked to explain it (json_schema.issues).

What is found broken is also returned as `Skips`, so the checks of meaning (checks.py)
look at everything else: the fields with problems are left out of them, and a step
without a usable id, kind or required field is left out whole (its id still counts).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import attrs

from checkpointflow import json_schema, workflow_outputs
from checkpointflow.checks import NEEDED_FIELDS, Problem, Skips
from checkpointflow.schema_words import Issue

SCHEMA_FILE = "checkpointflow.schema.json"
KINDS = ("cli", "await_event", "end", "api", "workflow", "switch", "foreach", "parallel")
Path = tuple[str | int, ...]


def shape_problems(document: dict[str, Any]) -> tuple[list[Problem], Skips | None]:
    """Every problem of shape, and what the checks of meaning must leave out; None when
    the document has no usable list of steps to check at all."""
    spec = part_by_part(json_schema.packaged(SCHEMA_FILE))
    found = json_schema.issues(spec, document)
    workflow = document.get("workflow")
    if not isinstance(workflow, dict) or not isinstance(workflow.get("steps"), list):
        return _worded(found, {}, []), None
    steps = dict(_every_step(workflow["steps"]))
    found += _part_issues(spec, workflow)
    extra: list[Problem] = []
    for path, step in steps.items():
        if not _shaped(step):
            continue  # the check of the list holding it says what is wrong
        if step["kind"] not in KINDS:
            found.append(_unknown_kind(path, step["kind"]))
            continue
        kind_schema = {"$ref": f"#/definitions/{step['kind']}_step", **spec}
        issues = [_hinted(issue) for issue in json_schema.issues(kind_schema, step, path)]
        found += issues
        if step["kind"] == "cli" and not issues:
            extra += _command_problems(step, _pointer(path))
    if "outputs" in workflow and not _within(found, ("workflow", "outputs")):
        extra += _required_outputs(workflow["outputs"])
    return _worded(found, steps, extra), _skips(found, steps)


def part_by_part(spec: dict[str, Any]) -> dict[str, Any]:
    """The shipped schema (complete, for editors) with steps, `outputs` and
    `defaults.retry` loosened, as they are checked one by one against their definitions
    afterwards: a problem is then reported once, worded for its step, and the compiled
    check of the whole document stays small."""
    definitions = dict(spec["definitions"])
    definitions["step"] = {
        "type": "object",
        "required": ["id", "kind"],
        "properties": {"id": {"$ref": "#/definitions/step_id"}, "kind": {"type": "string"}},
    }
    workflow = copy.deepcopy(definitions["workflow"])
    workflow["properties"]["outputs"] = {"type": "object"}
    workflow["properties"]["defaults"]["properties"]["retry"] = {"type": "object"}
    definitions["workflow"] = workflow
    return {**spec, "definitions": definitions}


def _every_step(steps: list[Any], base: Path = ("workflow", "steps")) -> Iterator[tuple[Path, Any]]:
    """Every item of every list of steps, nested ones included, by its path. Nested
    lists are visited only under steps whose kind holds them."""
    for index, step in enumerate(steps):
        path = (*base, index)
        yield path, step
        if not _shaped(step):
            continue
        if step["kind"] == "foreach" and isinstance(step.get("body"), list):
            yield from _every_step(step["body"], (*path, "body"))
        branches = step.get("branches") if step["kind"] == "parallel" else None
        for number, branch in enumerate(branches if isinstance(branches, list) else ()):
            if isinstance(branch, dict) and isinstance(branch.get("steps"), list):
                yield from _every_step(branch["steps"], (*path, "branches", number, "steps"))


def _shaped(step: Any) -> bool:
    return (
        isinstance(step, dict)
        and isinstance(step.get("id"), str)
        and isinstance(step.get("kind"), str)
    )


def _unknown_kind(path: Path, kind: str) -> Issue:
    from checkpointflow.schema_words import suggestion

    return Issue(
        (*path, "kind"),
        f"unknown kind '{kind}' (one of: {', '.join(KINDS)})",
        hint=suggestion(kind, list(KINDS)),
        about_field=True,
    )


# Fields people put on a step that belong elsewhere, and where they go.
_MISPLACED = {
    "next": "a step names the next one in transitions: [{next: <step id>}]",
    "steps": "only a parallel branch or a foreach body holds steps",
}


def _hinted(issue: Issue) -> Issue:
    """An unknown field of a step that is known elsewhere says where it belongs."""
    name = str(issue.path[-1]) if issue.path else ""
    if name in _MISPLACED and not issue.hint and issue.text == f"unknown field '{name}'":
        return attrs.evolve(issue, hint=_MISPLACED[name])
    return issue


def _part_issues(spec: dict[str, Any], workflow: dict[str, Any]) -> list[Issue]:
    """`outputs` (in the form it is written in) and `defaults.retry`, each checked against
    its own definition, like steps: the document's schema leaves them loose, which keeps
    its compiled check small."""
    parts: list[tuple[str, dict[str, Any], Path]] = []
    outputs = workflow.get("outputs")
    if isinstance(outputs, dict):
        form = "schema_form" if workflow_outputs.is_schema_form(outputs) else "mapping"
        parts.append((f"outputs_{form}", outputs, ("workflow", "outputs")))
    defaults = workflow.get("defaults")
    retry = defaults.get("retry") if isinstance(defaults, dict) else None
    if isinstance(retry, dict):
        parts.append(("retry", retry, ("workflow", "defaults", "retry")))
    found: list[Issue] = []
    for definition, value, path in parts:
        found += json_schema.issues({"$ref": f"#/definitions/{definition}", **spec}, value, path)
    return found


def _required_outputs(outputs: dict[str, Any]) -> list[Problem]:
    """Every name in the `required` of the outputs' schema form must be one of them."""
    names = {name for name, _, _ in workflow_outputs.entries(outputs)}
    return [
        Problem(
            f"/workflow/outputs/required/{index}",
            f"output '{name}' is required but is not one of the outputs' properties "
            f"(known: {', '.join(sorted(names)) or 'none'})",
        )
        for index, name in enumerate(workflow_outputs.required(outputs))
        if name not in names
    ]


def _command_problems(step: dict[str, Any], base: str) -> list[Problem]:
    """A cli step has one of `command` (a script, or scripts run in sequence) and `argv`;
    checked with each step's shape, so a step missing both is reported with the others."""
    step_id = step["id"]
    if ("command" in step) == ("argv" in step):
        return [
            Problem(
                base,
                f"step '{step_id}': a cli step needs exactly one of command (shell text, or a "
                "list of commands run in order) or argv (one program and its arguments)",
                step_id,
            )
        ]
    command = step.get("command")
    items = command if isinstance(command, list) else []
    return [
        Problem(
            f"{base}/command/{index}",
            f"step '{step_id}': item {index} of command is blank; remove it",
            step_id,
        )
        for index, item in enumerate(items)
        if not item.strip()
    ]


def _worded(found: list[Issue], steps: dict[Path, Any], extra: list[Problem]) -> list[Problem]:
    """Each issue as a problem of the innermost step it is in, worded for that step."""
    problems: list[Problem] = []
    for issue in found:
        path = _step_of(issue.path, steps)
        step = steps.get(path) if path is not None else None
        step_id = step.get("id") if isinstance(step, dict) else None
        if path is not None and isinstance(step_id, str):
            message = f"step '{step_id}': {issue.describe('the step', len(path))}"
            problems.append(Problem(issue.pointer(), message, step_id))
        else:
            problems.append(Problem(issue.pointer() or "/", issue.describe("the document")))
    unique = list(dict.fromkeys(problems))  # a step's id is checked with the list and alone
    return _in_document_order(unique + extra, steps)


def _in_document_order(problems: list[Problem], steps: dict[Path, Any]) -> list[Problem]:
    """The document's own problems first, then each step's, in the order steps are written."""
    ranks = {_pointer(path): rank for rank, path in enumerate(steps)}

    def rank(problem: Problem) -> int:
        parts = problem.path.split("/")
        for length in range(len(parts), 1, -1):
            found = ranks.get("/".join(parts[:length]))
            if found is not None:
                return found
        return -1

    return sorted(problems, key=rank)


def _step_of(path: Path, steps: dict[Path, Any]) -> Path | None:
    """The innermost step whose path `path` starts with, if any."""
    for length in range(len(path), 0, -1):
        if path[:length] in steps:
            return path[:length]
    return None


def _skips(found: list[Issue], steps: dict[Path, Any]) -> Skips:
    """What the checks of meaning leave out: broken fields, and steps that cannot be read."""
    whole = {path for path, step in steps.items() if not _shaped(step) or step["kind"] not in KINDS}
    fields: dict[Path, set[str]] = {}
    for issue in _within(found, ("workflow",)):
        path = _step_of(issue.path, steps) or ("workflow",)
        field = issue.path[len(path)] if len(issue.path) > len(path) else None
        if path in steps and (field is None or field in _needed(steps[path])):
            whole.add(path)
        elif isinstance(field, str):
            fields.setdefault(path, set()).add(field)
    return Skips(
        frozenset(_pointer(path) for path in whole),
        {_pointer(path): frozenset(names) for path, names in fields.items()},
    )


def _within(found: list[Issue], where: Path) -> list[Issue]:
    return [issue for issue in found if issue.path[: len(where)] == where]


def _needed(step: Any) -> frozenset[str]:
    """The fields without which a step's meaning cannot be checked."""
    kind = step.get("kind") if isinstance(step, dict) else None
    return frozenset({"id", "kind"}) | NEEDED_FIELDS.get(str(kind), frozenset())


def _pointer(path: Path) -> str:
    return "".join(f"/{part}" for part in path)
