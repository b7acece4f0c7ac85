"""Workflow outputs in either spelling: the plain mapping and the JSON-Schema-like form."""

from __future__ import annotations

from typing import Any

import pytest

from checkpointflow.expressions import evaluate
from checkpointflow.workflow_outputs import build_outputs, entries, is_schema_form, problem

PLAIN = {"artifact": {"from": "steps.build.outputs.artifact"}, "size": "steps.build.outputs.size"}
SCHEMA = {
    "type": "object",
    "required": ["artifact"],
    "properties": {
        "artifact": {"from": "steps.build.outputs.artifact", "type": "string"},
        "size": {"from": "steps.build.outputs.size", "type": ["integer", "null"]},
    },
}
CONTEXT = {"steps": {"build": {"outputs": {"artifact": "app.tar", "size": 3}}}}


def result(outputs: dict[str, Any], context: dict[str, Any] = CONTEXT) -> dict[str, Any]:
    return {name: evaluate(node, context) for name, node in build_outputs(outputs).entries}


def test_both_forms_give_the_same_result() -> None:
    assert result(PLAIN) == result(SCHEMA) == {"artifact": "app.tar", "size": 3}


@pytest.mark.parametrize(
    ("outputs", "schema_form"),
    [
        (PLAIN, False),
        (SCHEMA, True),
        ({"properties": "steps.a.outputs.x"}, False),  # an output named `properties`
        ({"properties": {"from": "steps.a.outputs.x"}}, False),
        ({"properties": {"from": {"from": "steps.a.outputs.x"}}}, True),  # one named `from`
    ],
)
def test_the_schema_form_is_told_by_a_properties_that_is_not_an_output(
    outputs: dict[str, Any], schema_form: bool
) -> None:
    assert is_schema_form(outputs) is schema_form


def test_entries_say_where_each_expression_is_written() -> None:
    assert [path for _, _, path in entries(PLAIN)] == [
        "/workflow/outputs/artifact/from",
        "/workflow/outputs/size",
    ]
    assert [path for _, _, path in entries(SCHEMA)] == [
        "/workflow/outputs/properties/artifact/from",
        "/workflow/outputs/properties/size/from",
    ]


def test_a_required_output_must_not_be_null() -> None:
    outputs = build_outputs(SCHEMA)
    assert problem(outputs, {"artifact": "app.tar", "size": None}) is None
    message = problem(outputs, {"artifact": None, "size": 3})
    assert message is not None and "required output 'artifact' is missing" in message
    assert problem(build_outputs(PLAIN), {"artifact": None, "size": None}) is None


def test_declared_types_are_checked_on_values_that_are_there() -> None:
    outputs = build_outputs(SCHEMA)
    message = problem(outputs, {"artifact": 7, "size": 3})
    assert message is not None and "output 'artifact'" in message
    assert problem(outputs, {"artifact": "a", "size": "big"}) is not None
