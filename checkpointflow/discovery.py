"""Workflow files found by name: `./.checkpointflow/*.yaml` and `~/.checkpointflow/flows/`.

Each folder is read one level deep. A file that is not a valid workflow is still listed,
marked invalid with its first problem, so one broken file never hides the others.
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
    """Where flows are looked for, nearest first: the project's, then the user's."""
    return [Path.cwd() / ".checkpointflow", Path.home() / ".checkpointflow" / "flows"]


def discover() -> list[Flow]:
    """Every workflow file in the flow folders, in folder order, then by file name."""
    flows: list[Flow] = []
    for folder in flow_folders():
        try:
            paths = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())
        except OSError:
            continue  # a missing or unreadable folder simply holds no flows
        flows.extend(read_flow(path) for path in paths)
    return flows


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


def find(flow_id: str) -> Flow:
    """The nearest valid flow with this id."""
    flows = [flow for flow in discover() if flow.id == flow_id]
    for flow in flows:
        if flow.valid:
            return flow
    if flows:
        raise ValidationFailure(
            "ERR_VALIDATION_WORKFLOW",
            f"Flow {flow_id!r} ({flows[0].path}) is not a valid workflow: {flows[0].error} "
            f"Run `cpf validate -f {shlex.quote(str(flows[0].path))}` to see every problem.",
        )
    searched = " and ".join(str(folder) for folder in flow_folders())
    raise ValidationFailure(
        "ERR_FLOW_NOT_FOUND",
        f"No flow with id {flow_id!r} in {searched}. Run `cpf flows` to see the flows there, "
        "or pass the workflow file with -f.",
    )


def find_flow(flow_id: str) -> str:
    """The path of the nearest valid flow with this id (for `cpf run ID`)."""
    return str(find(flow_id).path)


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
