"""Workflow documents: read the file, parse YAML safely, check it, build the model.

`cpf validate` reports every problem at once: the document's shape is checked against the
packaged JSON Schema one step at a time (`shape.py`, so one bad step does not hide the next),
and the meaning of everything usable by the checks in `checks.py`.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkpointflow.errors import ValidationFailure
from checkpointflow.model import Workflow, build_workflow

__all__ = ["Workflow", "build_workflow"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MAX_NODES = 1_000_000


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
    """Every problem in the document: its shape, then the meaning of all that is usable."""
    from checkpointflow import checks, shape

    problems, skips = shape.shape_problems(document)
    if skips is None:
        return problems
    return problems + checks.find_problems(document, skips)


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
