"""Workflows built from other workflows: every `workflow_ref` loaded, checked and bundled.

A document names sub-workflows by `workflow_ref` (a path relative to the referring file).
Loading follows every reference, checks each document, refuses references that lead back
to a document already being loaded, and returns the whole tree with the bytes of every
referenced document, so a run can keep them in its folder and never read them again.
Where documents come from is the caller's business (`fetch`): files beside the workflow
for a new run, the run folder's own copies for a run that exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from checkpointflow.errors import ValidationFailure
from checkpointflow.model import Workflow, build_workflow

if TYPE_CHECKING:  # checks load only when a document has problems to report
    from checkpointflow.checks import Problem

MAX_DEPTH = 16  # sub-workflows nested deeper than this are refused

# (source of the referring document, its place in the tree, the reference) -> (bytes, source)
Fetch = Callable[[str, str, str], tuple[bytes, str]]
# (bytes, source) -> (parsed document, its problems)
Parse = Callable[[bytes, str], "tuple[dict[str, Any], list[Problem]]"]


@attrs.frozen(slots=False)
class Tree:
    """A workflow with everything it references."""

    workflow: Workflow
    document: dict[str, Any]  # the top document, parsed
    sha256: str
    documents: dict[str, bytes]  # sha256 -> bytes of each referenced document
    refs: dict[str, str]  # place in the tree ("a.yaml > b.yaml") -> sha256 of the document


def workflow_refs(document: Any) -> Iterator[tuple[str, str, str]]:
    """Every `workflow_ref` in a document: (reference, JSON path, step id). Safe on
    documents that failed their checks: whatever is not shaped like steps is passed over."""
    workflow = document.get("workflow") if isinstance(document, dict) else None
    steps = workflow.get("steps") if isinstance(workflow, dict) else None
    pending = [("/workflow/steps", steps if isinstance(steps, list) else [])]
    while pending:
        base, steps = pending.pop(0)
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            path = f"{base}/{index}"
            if isinstance(step.get("workflow_ref"), str):
                yield step["workflow_ref"], f"{path}/workflow_ref", str(step.get("id"))
            if isinstance(step.get("body"), list):
                pending.append((f"{path}/body", step["body"]))
            branches = step.get("branches")
            for number, branch in enumerate(branches if isinstance(branches, list) else ()):
                if isinstance(branch, dict) and isinstance(branch.get("steps"), list):
                    pending.append((f"{path}/branches/{number}/steps", branch["steps"]))


def load_tree(data: bytes, source: str, parse: Parse, fetch: Fetch) -> Tree:
    """The workflow in `data` with all it references; every problem at once, or none."""
    documents: dict[str, bytes] = {}
    refs: dict[str, str] = {}
    problems: list[Problem] = []
    sha = hashlib.sha256(data).hexdigest()
    built = _load(data, source, sha, "", (), parse, fetch, documents, refs, problems)
    if problems or built is None:
        _raise(problems, source)
    assert built is not None
    workflow, document = built
    return Tree(workflow, document, sha, documents, refs)


def _load(
    data: bytes,
    source: str,
    sha: str,
    place: str,
    chain: tuple[tuple[str, str], ...],
    parse: Parse,
    fetch: Fetch,
    documents: dict[str, bytes],
    refs: dict[str, str],
    problems: list[Problem],
) -> tuple[Workflow, dict[str, Any]] | None:
    here = (*chain, (sha, source))
    try:
        document, found = parse(data, source)
    except ValidationFailure as error:
        if not chain:
            raise
        problems.append(_problem("", error.message, code=error.code, file=source))
        return None
    if chain:
        found = [
            problem if problem.file else attrs.evolve(problem, file=source) for problem in found
        ]
    problems.extend(found)
    subworkflows: dict[str, Workflow] = {}
    failed = bool(found)  # go on: the references' own problems are reported too
    for ref, path, step_id in workflow_refs(document):
        if ref in subworkflows:
            continue
        file = source if chain else None
        try:
            child, child_source = fetch(source, place, ref)
        except ValidationFailure as error:
            problems.append(
                _problem(
                    path,
                    f"step '{step_id}': workflow_ref {ref!r}: {error.message}",
                    step_id,
                    file=file,
                )
            )
            failed = True
            continue
        child_sha = hashlib.sha256(child).hexdigest()
        loop = [name for digest, name in here if digest == child_sha]
        if loop:
            names = " -> ".join([name for _, name in here] + [child_source])
            problems.append(
                _problem(
                    path,
                    f"step '{step_id}': workflow_ref {ref!r} leads back to {loop[0]} "
                    f"({names}); a workflow cannot include itself",
                    step_id,
                    file=file,
                )
            )
            failed = True
            continue
        if len(here) >= MAX_DEPTH:
            problems.append(
                _problem(
                    path,
                    f"step '{step_id}': workflow_ref {ref!r} nests sub-workflows more than "
                    f"{MAX_DEPTH} deep",
                    step_id,
                    file=file,
                )
            )
            failed = True
            continue
        child_place = f"{place} > {ref}" if place else ref
        built = _load(
            child,
            child_source,
            child_sha,
            child_place,
            here,
            parse,
            fetch,
            documents,
            refs,
            problems,
        )
        if built is None:
            failed = True
            continue
        subworkflows[ref] = built[0]
        documents[child_sha] = child
        refs[child_place] = child_sha
    if failed:
        return None
    return build_workflow(document, subworkflows), document


def _problem(path: str, message: str, step_id: str | None = None, **fields: Any) -> Problem:
    from checkpointflow.checks import Problem  # loaded only when there is one to report

    return Problem(path, message, step_id, **fields)


def _raise(problems: list[Problem], source: str) -> None:
    first = problems[0]
    where = f"{first.file}: " if first.file and not first.message.startswith(first.file) else ""
    summary = (
        first.message if len(problems) == 1 else f"{len(problems)} problems; first: {first.message}"
    )
    raise ValidationFailure(
        first.code,
        f"{source}: {where}{summary}",
        step_id=first.step_id,
        details=[problem.to_json() for problem in problems],
    )
