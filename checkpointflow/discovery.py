"""Workflow files found by id or name: `./.checkpointflow/*.yaml`, then the user's
`~/.checkpointflow/flows/*.yaml` and `~/.checkpointflow/*.yaml`.

Only the files at the top of each folder are read: the user's folder is also the default
state root, whose runs/ and cache/ are never flows. A file that is not a valid workflow is
still listed, marked invalid with its first problem, so one broken file never hides the
others.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import attrs

from checkpointflow import document
from checkpointflow.errors import CpfError, ValidationFailure

SUFFIXES = (".yaml", ".yml")


@attrs.frozen(slots=False)
class Flow:
    path: Path
    id: str | None
    name: str | None = None
    version: str | None = None
    description: str | None = None
    error: str | None = None  # the first problem; None when the file is a valid workflow
    spec: dict[str, Any] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def valid(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "path": str(self.path),
            "valid": self.valid,
            "error": self.error,
        }


def flow_folders() -> list[Path]:
    """Where flows are looked for, nearest first: the project's, then the user's (the
    flows/ folder, then the top of ~/.checkpointflow/, where checkpointflow 1.x keeps them)."""
    return [folder for folder, _ in _folders_with_levels()]


def _folders_with_levels() -> list[tuple[Path, int]]:
    """Each folder with its level: 0 for the project's, 1 for the user's. A nearer level
    shadows a farther one; run from the home folder, the project's folder is the user's."""
    home = Path.home() / ".checkpointflow"
    project = Path.cwd() / ".checkpointflow"
    user = [(home / "flows", 1), (home, 1)]
    return user if _same_folder(project, home) else [(project, 0), *user]


def _same_folder(one: Path, other: Path) -> bool:
    return _real(one) == _real(other)


def _real(path: Path) -> Path:
    """The path with links resolved, or as given when that fails (a link loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def discover() -> list[Flow]:
    """Every workflow file in the flow folders, in folder order, then by file name; a file
    reached twice (the project folder is the user's, or a link) is listed once."""
    return [flow for flow, _ in _discover_with_levels()]


def _discover_with_levels() -> list[tuple[Flow, int]]:
    found: list[tuple[Flow, int]] = []
    seen: set[Path] = set()
    for folder, level in _folders_with_levels():
        for path in _workflow_files(folder):
            real = _real(path)
            if real not in seen:
                seen.add(real)
                found.append((read_flow(path), level))
    return found


def _workflow_files(folder: Path) -> list[Path]:
    """The *.yaml and *.yml files at the top of a folder (its sub-folders, such as the
    runs/ and cache/ of a state root, are never read)."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())
    except OSError:
        return []  # a missing or unreadable folder simply holds no flows


def read_flow(path: Path) -> Flow:
    """One file as a flow; its problems are recorded, never raised."""
    parsed: dict[str, Any] | None = None
    try:
        parsed = document.parse_yaml(document.read_document(str(path)), str(path))
        problems = document.find_problems(parsed)
        error = problems[0].message if problems else None
    except CpfError as problem:
        error = problem.message
    spec = parsed.get("workflow") if parsed else None
    spec = spec if isinstance(spec, dict) else {}
    return Flow(
        path=path,
        id=_text(spec.get("id")),
        name=_text(spec.get("name")),
        version=_text(spec.get("version")),
        description=_text(spec.get("description")),
        error=error,
        spec=spec,
    )


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict | list) else str(value)


def find(wanted: str) -> Flow:
    """The flow `wanted` names: the one with that id, else the one whose id or name is
    `wanted` ignoring case. A valid flow wins over an invalid one, and the project's over
    the user's; two that still tie are refused, naming both."""
    flows = _discover_with_levels()
    matched = [pair for pair in flows if pair[0].id == wanted] or [
        pair for pair in flows if _same_words(pair[0], wanted)
    ]
    valid = [pair for pair in matched if pair[0].valid]
    if not valid:
        raise _not_found(wanted, [flow for flow, _ in matched])
    nearest = min(level for _, level in valid)
    chosen = [flow for flow, level in valid if level == nearest]
    if len(chosen) > 1:
        raise _ambiguous(wanted, chosen)
    return chosen[0]


def _same_words(flow: Flow, wanted: str) -> bool:
    folded = wanted.casefold()
    return any(text is not None and text.casefold() == folded for text in (flow.id, flow.name))


def _not_found(wanted: str, invalid: list[Flow]) -> ValidationFailure:
    if invalid:
        first = invalid[0]
        return ValidationFailure(
            "ERR_VALIDATION_WORKFLOW",
            f"Flow {wanted!r} ({first.path}) is not a valid workflow: {first.error} "
            f"Run `cpf validate -f {shlex.quote(str(first.path))}` to see every problem.",
        )
    searched = ", ".join(str(folder) for folder in flow_folders())
    return ValidationFailure(
        "ERR_FLOW_NOT_FOUND",
        f"No flow with id or name {wanted!r} in {searched}. Run `cpf flows` to see the "
        "flows there, or pass the workflow file with -f.",
    )


def _ambiguous(wanted: str, flows: list[Flow]) -> ValidationFailure:
    listed = "; ".join(f"id {f.id!r}, name {f.name!r}, file {f.path}" for f in flows)
    return ValidationFailure(
        "ERR_FLOW_AMBIGUOUS",
        f"{wanted!r} names {len(flows)} flows: {listed}. Pass the workflow file with -f, "
        "or give the flows distinct ids and names.",
        details=[{"id": f.id, "name": f.name, "path": str(f.path)} for f in flows],
    )


def find_flow(wanted: str) -> str:
    """The path of the flow `wanted` names (for `cpf run ID`)."""
    return str(find(wanted).path)


def detail(flow: Flow) -> dict[str, Any]:
    """What a person needs to start the flow: its inputs, its steps and a command line."""
    spec = flow.spec or {}
    steps = [step for step in spec.get("steps") or [] if isinstance(step, dict)]
    return {
        **flow.to_json(),
        "inputs": spec.get("inputs"),
        "steps": [
            {"id": step.get("id"), "kind": step.get("kind"), "name": step.get("name")}
            for step in steps
        ],
        "run_command": run_command(flow.path, spec.get("inputs")),
    }


def run_command(path: Path, inputs_schema: Any) -> str:
    """`cpf run -f PATH`, with an `--input` holding a placeholder for each required input."""
    command = f"cpf run -f {shlex.quote(str(path))}"
    example = example_input(inputs_schema)
    if example:
        command += f" --input {shlex.quote(json.dumps(example))}"
    return command


def example_input(schema: Any) -> dict[str, Any]:
    """A value for every required property: its default, its first enum value, or a
    placeholder of its type."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties") or {}
    return {
        name: _example_value(properties.get(name) or {})
        for name in schema.get("required") or []
        if isinstance(name, str)
    }


def _example_value(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return "..."
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    placeholders = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    kind = schema.get("type")
    return placeholders.get(kind, "...") if isinstance(kind, str) else "..."
