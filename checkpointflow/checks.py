"""Semantic checks of a workflow document: ids, jumps, expressions, references.

They look at every part the check of shape (shape.py) found usable, leaving out what it
found broken (`Skips`), so problems of meaning are reported beside problems of shape.
Every problem is collected, each with the step id and a JSON-pointer-like path, so one run
of `cpf validate` shows everything that needs fixing.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from checkpointflow import json_schema, workflow_outputs
from checkpointflow.expressions import (
    ExpressionError,
    Literal,
    Node,
    Path,
    parse_condition,
    parse_template,
    references,
)
from checkpointflow.model import closure
from checkpointflow.sites import DATA_ROOTS, Site, expression_sites

STEP_FIELDS = frozenset({"outputs", "status", "error", "response"})
Known = Mapping[str, str]  # the step ids an expression may name, with their kinds
_ROOT_HINTS = {
    "event": "`event` is only available in the transitions of an await_event step",
    "item": "`item` is only available inside a foreach body",
    "item_index": "`item_index` is only available inside a foreach body",
    "env": "`env` is only allowed where values leave the run (command, argv, cwd, env, url, headers, query, body)",
}


@attrs.frozen(slots=False)
class Problem:
    path: str
    message: str
    step_id: str | None = None
    code: str = "ERR_VALIDATION_WORKFLOW"
    file: str | None = None  # set when the problem is in a sub-workflow's document

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        if self.file is None:
            del data["file"]
        return data


# Fields the checks of meaning read in a step of these kinds, besides its id and kind; a
# step whose needed field is missing or broken is left out of them (see Skips).
NEEDED_FIELDS = {"foreach": frozenset({"items"}), "parallel": frozenset({"branches"})}


@attrs.frozen(slots=False)
class Skips:
    """What the check of shape found broken, so the checks of meaning leave it out:
    `steps` holds the JSON paths of steps that cannot be read at all (their ids still
    count), `fields` the broken fields of a step (or of /workflow) by its path."""

    steps: frozenset[str] = frozenset()
    fields: Mapping[str, frozenset[str]] = attrs.field(factory=dict)

    def usable(self, part: Any, path: str) -> dict[str, Any] | None:
        """`part` without its broken fields, or None if it cannot be checked."""
        if path in self.steps or not isinstance(part, dict):
            return None
        broken = self.fields.get(path)
        return {k: v for k, v in part.items() if k not in broken} if broken else part


def find_problems(document: dict[str, Any], skips: Skips | None = None) -> list[Problem]:
    """The problems of meaning of a document whose shape is valid, except for what
    `skips` says is broken."""
    skips = skips or Skips()
    workflow = skips.usable(document["workflow"], "/workflow") or {}
    steps: list[Any] = workflow.get("steps", [])
    problems = _schema_definition(workflow.get("inputs"), "/workflow/inputs", None)
    problems += _list_problems(steps, "/workflow/steps", {}, DATA_ROOTS, skips)
    known = _kinds(steps)
    for name, text, path in workflow_outputs.entries(workflow.get("outputs", {})):
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


def _named(step: Any) -> bool:
    return isinstance(step, dict) and isinstance(step.get("id"), str)


def _list_problems(
    steps: list[Any], base: str, outer: Known, roots: frozenset[str], skips: Skips
) -> list[Problem]:
    """The problems of one list of steps (the workflow's, a body's or a branch's) and of
    every list inside it. `outer` holds the ids (and kinds) visible from around the list."""
    problems = list(_duplicate_ids(steps, base))
    local = {step["id"] for step in steps if _named(step)}
    usable = [(index, skips.usable(step, f"{base}/{index}")) for index, step in enumerate(steps)]
    checked = [(index, step) for index, step in usable if step is not None]
    for index, step in enumerate(steps):
        if _named(step) and step["id"] in outer:
            problems.append(
                Problem(
                    f"{base}/{index}/id",
                    f"step '{step['id']}': an enclosing list already has a step with this id, "
                    f"so steps.{step['id']} would be ambiguous; give it another id",
                    step["id"],
                    "ERR_DUPLICATE_STEP_ID",
                )
            )
    known = {**outer, **_kinds(steps)}
    owned = _branch_problems(checked, base, local, problems)
    for index, step in checked:
        path = f"{base}/{index}"
        problems += _step_problems(step, path, known, local, roots)
        if step["id"] not in owned:
            for where, target in _targets(step, path):
                if target in owned:
                    problems.append(
                        Problem(
                            where,
                            f"step '{step['id']}': target '{target}' runs only as part of a "
                            "parallel branch (start_at); jump to the parallel step instead",
                            step["id"],
                        )
                    )
        if step["kind"] == "foreach" and isinstance(step.get("body"), list):
            inner = roots | {"item", "item_index"}
            body = f"{path}/body"
            problems += _list_problems(step["body"], body, known, inner, skips)
        for number, branch in enumerate(
            step.get("branches", ()) if step["kind"] == "parallel" else ()
        ):
            if isinstance(branch.get("steps"), list):
                where = f"{path}/branches/{number}/steps"
                problems += _list_problems(branch["steps"], where, known, roots, skips)
    return problems


def _branch_problems(
    steps: list[tuple[int, dict[str, Any]]], base: str, local: set[str], problems: list[Problem]
) -> set[str]:
    """Check the branches of the parallel steps in one list (by their index in it);
    returns the ids their `start_at` branches own (the start and every step it jumps to)."""
    by_id = {step["id"]: step for _, step in steps}
    owners: dict[str, str] = {}
    for index, step in steps:
        if step["kind"] != "parallel":
            continue
        seen: set[str] = set()
        for number, branch in enumerate(step["branches"]):
            path = f"{base}/{index}/branches/{number}"
            name = branch.get("id") or branch.get("start_at") or f"branch_{number + 1}"
            if name in seen:
                problems.append(
                    Problem(
                        f"{path}/id",
                        f"step '{step['id']}': two branches are named '{name}'; give each "
                        "branch its own id",
                        step["id"],
                    )
                )
            seen.add(name)
            start = branch.get("start_at")
            if start is None:
                continue
            if "steps" in branch:
                inner = {inner_step["id"] for inner_step in branch["steps"] if _named(inner_step)}
                if start not in inner:
                    problems.append(
                        Problem(
                            f"{path}/start_at",
                            f"step '{step['id']}': start_at '{start}' is not one of the "
                            f"branch's steps (known: {', '.join(sorted(inner))})",
                            step["id"],
                        )
                    )
                continue
            if start not in local or start == step["id"]:
                problems.append(
                    Problem(
                        f"{path}/start_at",
                        f"step '{step['id']}': start_at '{start}' is not another step of the "
                        f"same list (known: {', '.join(sorted(local))})",
                        step["id"],
                    )
                )
                continue
            for member in _reachable(by_id, start):
                if member == step["id"]:
                    problems.append(
                        Problem(
                            f"{path}/start_at",
                            f"step '{step['id']}': branch '{name}' leads back to the parallel "
                            "step itself",
                            step["id"],
                        )
                    )
                elif owners.setdefault(member, name) != name:
                    problems.append(
                        Problem(
                            f"{path}/start_at",
                            f"step '{step['id']}': step '{member}' is reached by both branch "
                            f"'{owners[member]}' and branch '{name}'; a step belongs to one "
                            "branch",
                            step["id"],
                        )
                    )
    return set(owners)


def _reachable(by_id: dict[str, dict[str, Any]], start: str) -> set[str]:
    return closure(start, lambda step_id: (t for _, t in _targets(by_id[step_id], "")), set(by_id))


def _duplicate_ids(steps: list[Any], base: str) -> Iterator[Problem]:
    seen: set[str] = set()
    for index, step in enumerate(steps):
        if not _named(step):
            continue
        if step["id"] in seen:
            yield Problem(
                f"{base}/{index}/id",
                f"Duplicate step ID: '{step['id']}' is used by more than one step; "
                "give each step its own id",
                step["id"],
                "ERR_DUPLICATE_STEP_ID",
            )
        seen.add(step["id"])


def _step_problems(
    step: dict[str, Any], base: str, known: Known, local: set[str], roots: frozenset[str]
) -> list[Problem]:
    step_id = step["id"]
    problems: list[Problem] = []
    for site in expression_sites(step, base, roots):
        problems += _expression_problems(site, step_id, known)
    for path, target in _targets(step, base):
        if target not in local:
            problems.append(
                Problem(
                    path,
                    f"step '{step_id}': target '{target}' is not a step id in this list of "
                    f"steps (known: {', '.join(sorted(local))})",
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
    if step["kind"] == "foreach":
        problems += _foreach_problems(step, base)
    for field in ("outputs", "input_schema"):
        problems += _schema_definition(step.get(field), f"{base}/{field}", step_id)
    if "shell" in step:
        problems += _shell_problems(step["shell"], f"{base}/shell", step_id)
    return problems


def _foreach_problems(step: dict[str, Any], base: str) -> list[Problem]:
    step_id = step["id"]
    problems = []
    if not isinstance(step["items"], str):
        problems.append(
            Problem(
                f"{base}/items",
                f"step '{step_id}': items must be an expression that gives a list, such as "
                "${inputs.services}",
                step_id,
            )
        )
    if ("body" in step) == ("workflow_ref" in step):
        problems.append(
            Problem(
                base,
                f"step '{step_id}': a foreach step needs exactly one of body (inline steps) "
                "or workflow_ref (a workflow file run per item)",
                step_id,
            )
        )
    if "inputs" in step and "workflow_ref" not in step:
        problems.append(
            Problem(
                f"{base}/inputs",
                f"step '{step_id}': inputs are given to a workflow_ref; body steps read "
                "${item} and ${item_index} directly",
                step_id,
            )
        )
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


def _expression_problems(site: Site, step_id: str, known: Known) -> list[Problem]:
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
        messages = [
            _reference_problem(reference, site.roots, known) for reference in references(node)
        ]
        if "env" in site.roots and not site.condition:
            messages.append(_secret_problem(node))
        for message in filter(None, messages):
            problems.append(Problem(site.path, f"step '{step_id}': {message}", step_id))
    return problems


def _secret_problem(node: Node) -> str | None:
    """`${env.NAME}` must stand alone: its value exists only where the step runs, so no
    other expression (a `:-` or `||` fallback, a comparison) could ever read it."""
    if isinstance(node, Path) and node.root == "env" and len(node.keys) == 1:
        key = node.keys[0]
        if (
            isinstance(key, Literal)
            and isinstance(key.value, str)
            and key.value.isascii()
            and key.value.isidentifier()
        ):
            return None
    if not any(reference[0] == "env" for reference in references(node)):
        return None
    return (
        "env.NAME must be a whole ${env.NAME}: its value is read only where the step runs, "
        "so no other expression (a comparison, ':-', '||') can use it; write ${env.NAME} "
        "on its own"
    )


def _reference_problem(
    reference: tuple[str, ...], roots: frozenset[str], known: Known
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
    if len(reference) > 2 and reference[2] == "response" and known[reference[1]] != "api":
        return (
            f"steps.{reference[1]}.response: only an api step has a response; "
            f"'{reference[1]}' is a {known[reference[1]]} step"
        )
    return None


def _kinds(steps: list[Any]) -> dict[str, str]:
    """The ids of the readable steps of a list, with their kinds."""
    return {step["id"]: str(step.get("kind")) for step in steps if _named(step)}


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
