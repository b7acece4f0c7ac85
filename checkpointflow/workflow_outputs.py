"""Workflow `outputs`: the result a run (or a sub-workflow) gives when no `end` step gives one.

Two spellings mean the same thing. The plain mapping names each output and its expression:

    outputs:
      artifact: { from: steps.build.outputs.artifact }
      ticket: steps.ticket.outputs.body.id

The JSON-Schema-like form puts the same entries under `properties`, and may add `required`
(outputs that must not be missing or null when the run completes) and a `type` per output:

    outputs:
      type: object
      required: [artifact]
      properties:
        artifact: { type: string, from: steps.build.outputs.artifact }

A document uses the second form when its `outputs` has a `properties` that is not itself
an output (a text or a mapping with a text `from`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from checkpointflow import json_schema
from checkpointflow.expressions import Node, parse_condition


@attrs.frozen(slots=False)
class Outputs:
    """The outputs of one workflow document, parsed."""

    entries: tuple[tuple[str, Node], ...]
    required: tuple[str, ...] = ()
    types: tuple[tuple[str, Any], ...] = ()  # the `type` declared for an output, if any


def is_schema_form(outputs: Mapping[str, Any]) -> bool:
    """Whether `outputs` is written as `{type: object, properties: ..., required: ...}`."""
    return "properties" in outputs and not _is_entry(outputs["properties"])


def _is_entry(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, dict) and isinstance(value.get("from"), str)
    )


def entries(outputs: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(name, expression text, JSON path of the text) for every output, in either form."""
    if is_schema_form(outputs):
        for name, entry in outputs["properties"].items():
            yield name, entry["from"], f"/workflow/outputs/properties/{name}/from"
        return
    for name, entry in outputs.items():
        if isinstance(entry, dict):
            yield name, entry["from"], f"/workflow/outputs/{name}/from"
        else:
            yield name, entry, f"/workflow/outputs/{name}"


def required(outputs: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(outputs.get("required", ())) if is_schema_form(outputs) else ()


def build_outputs(outputs: Mapping[str, Any]) -> Outputs:
    """The parsed outputs of a document that validation accepted."""
    properties = outputs["properties"] if is_schema_form(outputs) else {}
    return Outputs(
        entries=tuple((name, parse_condition(text)) for name, text, _ in entries(outputs)),
        required=required(outputs),
        types=tuple((name, entry["type"]) for name, entry in properties.items() if "type" in entry),
    )


def problem(outputs: Outputs, result: Mapping[str, Any]) -> str | None:
    """Why the outputs a run completed with break what its `outputs` declare, or None."""
    missing = [name for name in outputs.required if result.get(name) is None]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        return (
            f"required output {names} {'is' if len(missing) == 1 else 'are'} missing "
            "(its expression read null); make sure the step it reads ran and gave it, "
            "or drop it from `required`"
        )
    for name, declared in outputs.types:
        value = result.get(name)
        if value is not None:
            found = json_schema.problem({"type": declared}, value, f"output '{name}'")
            if found is not None:
                return found
    return None
