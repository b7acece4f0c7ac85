"""JSON Schema checks, compiled once and kept off the start-up path.

Schemas are compiled to Python source by fastjsonschema. The source is cached in memory
for the process and, when the driver provides one, in a code cache on disk, so a command
that checks the same schema again never imports or runs the compiler. Remote `$ref`s are
refused: a workflow document never makes the validator reach the network or the disk.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from checkpointflow.schema_words import Issue

Validator = Callable[..., Any]
Path = tuple[str | int, ...]

_SKIPPED_IMPORTS = ("from fastjsonschema import", "from decimal import")
_ENTRY = re.compile(r"^def (\w+)\(", re.MULTILINE)  # the first function is the entry point


class SchemaViolation(Exception):
    """Raised by compiled validators; carries fastjsonschema's message."""

    def __init__(self, message: str, value: Any = None, name: Any = None, **_: Any) -> None:
        super().__init__(message)
        self.message = message
        self.name = name


class _NeverDecimal:
    """Stands in for decimal.Decimal in compiled checks, saving its import."""


class SchemaDefinitionProblem(Exception):
    """The schema itself is not a usable JSON Schema."""


class CodeCache(Protocol):
    def load(self, key: str) -> str | None: ...

    def save(self, key: str, code: str) -> None: ...


_compiled: dict[str, Validator] = {}
_code_cache: CodeCache | None = None


def use_code_cache(cache: CodeCache | None) -> None:
    global _code_cache
    _code_cache = cache


def schema_key(schema: Any) -> str:
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def validator(schema: Any) -> Validator:
    """A compiled check for `schema`; raises SchemaDefinitionProblem for a broken schema."""
    key = schema_key(schema)
    compiled = _compiled.get(key)
    if compiled is None:
        code = _code_cache.load(key) if _code_cache else None
        if code is None:
            code = _generate(schema)
            if _code_cache:
                _code_cache.save(key, code)
        compiled = _load(code)
        _compiled[key] = compiled
    return compiled


def problem(schema: Any, value: Any, name: str) -> str | None:
    """Why `value` does not match `schema` (every reason, in words), or None."""
    return checked(schema, value, name)[1]


def checked(schema: Any, value: Any, name: str) -> tuple[Any, str | None]:
    """`value` with the schema's `default`s filled in, and why it does not match, or None.

    `name` names the value where a reason is about the whole of it ("inputs must be an
    object, found a list"). The caller's value is never modified.
    """
    try:
        return validator(schema)(copy.deepcopy(value), {}, name), None
    except SchemaViolation as violation:
        reasons = _explained(schema, value, (), violation.message)
        return value, "; ".join(reason.describe(name) for reason in reasons)
    except RecursionError:
        return value, f"{name} is nested too deeply to check"


def issues(schema: Any, value: Any, at: Path = ()) -> list[Issue]:
    """Every way `value` fails `schema`, with paths starting at `at`; [] when it matches.

    The compiled check decides; only a value it refuses is walked to explain why.
    """
    try:
        validator(schema)(copy.deepcopy(value), {}, "the value")
    except SchemaViolation as violation:
        return _explained(schema, value, at, violation.message)
    except RecursionError:
        from checkpointflow.schema_words import Issue

        return [Issue(at, "is nested too deeply to check")]
    return []


def _explained(schema: Any, value: Any, at: Path, first: str) -> list[Issue]:
    """The reasons in words; the compiled check's own message if the walk finds none
    (a keyword it does not know), so a refusal always says something."""
    from checkpointflow.schema_walk import explain
    from checkpointflow.schema_words import Issue

    try:
        found = explain(schema, value, at, _matches_format)
    except RecursionError:
        found = []
    return found or [Issue(at, f"does not match its schema ({first})")]


def _matches_format(form: str, value: Any) -> bool:
    try:
        validator({"format": form})(value, {}, "value")
    except (SchemaViolation, SchemaDefinitionProblem):
        return False
    return True


def definition_problem(schema: Any) -> str | None:
    """Why `schema` cannot be used as a JSON Schema, or None."""
    try:
        validator(schema)
    except SchemaDefinitionProblem as error:
        return str(error)
    return None


def _refuse_remote(uri: str) -> Any:
    raise SchemaDefinitionProblem(f"remote $ref {uri!r} is not allowed; inline the schema")


def _generate(schema: Any) -> str:
    import fastjsonschema

    handlers = {scheme: _refuse_remote for scheme in ("http", "https", "file", "ftp", "")}
    try:
        # a copy: the compiler rewrites the `$ref`s of the schema it is given
        return str(fastjsonschema.compile_to_code(copy.deepcopy(schema), handlers=handlers))
    except SchemaDefinitionProblem:
        raise
    except Exception as error:  # the compiler raises many kinds for a bad schema
        raise SchemaDefinitionProblem(f"not a valid JSON Schema: {error}") from None


def _load(code: str) -> Validator:
    source = "\n".join(line for line in code.splitlines() if not line.startswith(_SKIPPED_IMPORTS))
    namespace: dict[str, Any] = {
        "JsonSchemaValueException": SchemaViolation,
        "JsonSchemaValuesException": SchemaViolation,
        # JSON parsed by `json` never holds Decimal values; only a `multipleOf` that is not
        # a whole number computes with them
        "Decimal": _decimal() if "Decimal(" in source else _NeverDecimal,
    }
    exec(compile(source, "<compiled schema>", "exec"), namespace)
    entry = _ENTRY.search(source)
    if entry is None:
        raise SchemaDefinitionProblem("the schema compiler produced no validator")
    validate: Validator = namespace[entry.group(1)]
    return validate


def _decimal() -> type:
    from decimal import Decimal

    return Decimal


def packaged(name: str) -> Any:
    """One of the JSON Schemas shipped in `schemas/`."""
    from importlib import resources

    text = resources.files("checkpointflow.schemas").joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)
