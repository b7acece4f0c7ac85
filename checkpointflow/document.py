"""Workflow documents: read the file, parse YAML safely, check it, build the model.

`cpf validate` reports every problem at once: the document is checked against the packaged
JSON Schema one step at a time (so one bad step does not hide the next), then by semantic
checks in `checks.py`.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkpointflow import json_schema, workflow_outputs
from checkpointflow.errors import ValidationFailure
from checkpointflow.model import Workflow, build_workflow

__all__ = ["Workflow", "build_workflow"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MAX_NODES = 1_000_000
SCHEMA_FILE = "checkpointflow.schema.json"
KINDS = ("cli", "await_event", "end", "api", "workflow", "switch", "foreach", "parallel")


def max_document_bytes() -> int:
    configured = os.environ.get("CHECKPOINTFLOW_MAX_DOCUMENT_BYTES", "")
    return int(configured) if configured.isdigit() else DEFAULT_MAX_BYTES


def read_document(path: str) -> bytes:
    """The bytes of a workflow file, refusing anything that is not a regular file."""
    limit = max_document_bytes()
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise _not_a_file(path, "is a folder; -f takes a workflow YAML file")
        if not stat.S_ISREG(info.st_mode):
            raise _not_a_file(path, "is not a regular file (a pipe or a device?)")
        if info.st_size > limit:
            raise _too_large(path, limit)
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ValidationFailure(
            "ERR_FILE_NOT_FOUND",
            f"Workflow file {path} does not exist. Check the path given to -f.",
        ) from None
    except OSError as error:
        raise _file_problem(path, f"cannot be read: {error.strerror}") from None
    if len(data) > limit:
        raise _too_large(path, limit)
    return data


def _file_problem(path: str, what: str) -> ValidationFailure:
    return ValidationFailure("ERR_FILE_NOT_FOUND", f"Workflow file {path} {what}.")


def _not_a_file(path: str, what: str) -> ValidationFailure:
    return ValidationFailure("ERR_VALIDATION_WORKFLOW", f"Workflow file {path} {what}.")


def _too_large(path: str, limit: int) -> ValidationFailure:
    return ValidationFailure(
        "ERR_VALIDATION_WORKFLOW",
        f"Workflow file {path} is larger than {limit} bytes; "
        "raise CHECKPOINTFLOW_MAX_DOCUMENT_BYTES if it really must be this big.",
    )


def parse_yaml(data: bytes, source: str) -> dict[str, Any]:
    """The document as plain JSON data; YAML is loaded with the safe loader only."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValidationFailure(
            "ERR_YAML_PARSE", f"{source} is not UTF-8 text (bad byte at offset {error.start})."
        ) from None
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError as error:
        message = str(error).replace("<unicode string>", source)
        raise ValidationFailure("ERR_YAML_PARSE", f"{source}: invalid YAML: {message}") from None
    except RecursionError:
        raise ValidationFailure("ERR_YAML_PARSE", f"{source}: YAML nested too deeply.") from None
    if not isinstance(document, dict):
        raise ValidationFailure(
            "ERR_VALIDATION_WORKFLOW",
            f"{source}: a workflow document is a YAML mapping with schema_version and workflow, "
            f"not {_yaml_type(document)}.",
        )
    return dict(_plain(document, source, [0]))


def _key_text(key: Any) -> str:
    """Mapping keys become JSON object keys: `true: x` is "true", `1: x` is "1"."""
    return key if isinstance(key, str) else json.dumps(key, default=str)


def _yaml_type(value: Any) -> str:
    return "an empty document" if value is None else f"a {type(value).__name__}"


def _plain(value: Any, source: str, budget: list[int]) -> Any:
    """Copy YAML data into JSON types, bounding its expanded size (alias bombs)."""
    budget[0] += 1
    if budget[0] > MAX_NODES:
        raise ValidationFailure(
            "ERR_YAML_PARSE",
            f"{source}: the document expands to more than {MAX_NODES} values "
            "(YAML aliases repeated too often?).",
        )
    if isinstance(value, dict):
        return {_key_text(key): _plain(item, source, budget) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, source, budget) for item in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationFailure("ERR_YAML_PARSE", f"{source}: {value} is not a JSON number.")
    if isinstance(value, bytes):
        raise ValidationFailure("ERR_YAML_PARSE", f"{source}: binary values are not supported.")
    return value


if TYPE_CHECKING:
    from checkpointflow.checks import Problem


def find_problems(document: dict[str, Any]) -> list[Problem]:
    """Every problem in the document: structure first, then meaning."""
    from checkpointflow import checks
    from checkpointflow.checks import Problem

    spec = json_schema.packaged(SCHEMA_FILE)
    message = json_schema.problem(spec, document, "document")
    if message is not None:
        return [_schema_problem(message, None)]
    problems = _part_problems(spec, document["workflow"])
    for step, path in all_steps(document):
        if not _shaped(step):
            continue  # the check of the list holding it reports what is wrong
        if step["kind"] not in KINDS:
            problems.append(
                Problem(
                    f"{path}/kind",
                    f"step '{step['id']}': unknown kind '{step['kind']}' "
                    f"(one of: {', '.join(KINDS)})",
                    step["id"],
                )
            )
            continue
        kind_schema = {"$ref": f"#/definitions/{step['kind']}_step", **spec}
        where = re.sub(r"/(\d+)", r"[\1]", path).lstrip("/").replace("/", ".")
        message = json_schema.problem(kind_schema, step, where)
        if message is not None:
            problems.append(_schema_problem(message, step.get("id")))
        elif step["kind"] == "cli":
            problems += _command_problems(step, path)
    if problems:
        return problems
    return checks.find_problems(document)


def _part_problems(spec: dict[str, Any], workflow: dict[str, Any]) -> list[Problem]:
    """`outputs` (in the form it is written in) and `defaults.retry`, each checked against
    its own definition, like steps: the document's schema leaves them loose, which keeps
    its compiled check small."""
    parts = []
    outputs = workflow.get("outputs")
    if outputs is not None:
        form = "schema_form" if workflow_outputs.is_schema_form(outputs) else "mapping"
        parts.append((f"outputs_{form}", outputs, "workflow.outputs"))
    retry = workflow.get("defaults", {}).get("retry")
    if retry is not None:
        parts.append(("retry", retry, "workflow.defaults.retry"))
    problems = []
    for definition, value, where in parts:
        message = json_schema.problem({"$ref": f"#/definitions/{definition}", **spec}, value, where)
        if message is not None:
            problems.append(_schema_problem(message, None))
    if outputs is not None and not problems:
        problems += _required_outputs(outputs)
    return problems


def _required_outputs(outputs: dict[str, Any]) -> list[Problem]:
    """Every name in the `required` of the outputs' schema form must be one of them."""
    from checkpointflow.checks import Problem

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
    from checkpointflow.checks import Problem

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


def _shaped(step: Any) -> bool:
    return (
        isinstance(step, dict)
        and isinstance(step.get("id"), str)
        and isinstance(step.get("kind"), str)
    )


def all_steps(document: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every step of a document, nested ones included, with its JSON path. Nested lists
    are visited only under steps whose kind holds them, after their own shape is known."""
    pending: list[tuple[str, list[Any]]] = [("/workflow/steps", document["workflow"]["steps"])]
    while pending:
        base, steps = pending.pop(0)
        for index, step in enumerate(steps):
            path = f"{base}/{index}"
            yield step, path
            if not _shaped(step):
                continue
            if step["kind"] == "foreach" and isinstance(step.get("body"), list):
                pending.append((f"{path}/body", step["body"]))
            if step["kind"] == "parallel" and isinstance(step.get("branches"), list):
                for number, branch in enumerate(step["branches"]):
                    if isinstance(branch, dict) and isinstance(branch.get("steps"), list):
                        pending.append((f"{path}/branches/{number}/steps", branch["steps"]))


def _schema_problem(message: str, step_id: str | None) -> Problem:
    from checkpointflow.checks import Problem

    name = message.split(" ", 1)[0]
    path = re.sub(r"\[(\d+)\]", r"/\1", name.removeprefix("document")).replace(".", "/")
    return Problem(path if path.startswith("/") else "/" + path, message, step_id)


def raise_problems(problems: list[Problem], source: str) -> None:
    if not problems:
        return
    first = problems[0]
    code = first.code
    summary = (
        first.message if len(problems) == 1 else f"{len(problems)} problems; first: {first.message}"
    )
    raise ValidationFailure(
        code,
        f"{source}: {summary}",
        step_id=first.step_id,
        details=[problem.to_json() for problem in problems],
    )


def workflow_from_bytes(data: bytes, source: str) -> Workflow:
    document = parse_yaml(data, source)
    raise_problems(find_problems(document), source)
    return build_workflow(document)


def absolute(path: str) -> str:
    return str(Path(path).resolve())
