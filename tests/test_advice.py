"""Warnings from `cpf validate` about answers no transition of an await_event takes, and
about steps that only a fall-through reaches."""

from __future__ import annotations

from typing import Any

import pytest

from checkpointflow.advice import warnings_for


def ask(properties: dict[str, Any], *whens: str | None) -> dict[str, Any]:
    transitions = [
        {"next": "done"} if when is None else {"when": when, "next": "done"} for when in whens
    ]
    return {
        "id": "ask",
        "kind": "await_event",
        "audience": "user",
        "event_name": "go",
        "timeout_seconds": 60,
        "input_schema": {"type": "object", "properties": properties},
        "transitions": transitions,
    }


def warnings(*steps: dict[str, Any]) -> list[str]:
    document = {"workflow": {"id": "wf", "steps": [*steps, {"id": "done", "kind": "end"}]}}
    return warnings_for(document)


DECISION = {"decision": {"type": "string", "enum": ["approve", "reject", "defer"]}}


def test_enum_values_no_transition_takes_are_named() -> None:
    (warning,) = warnings(ask(DECISION, 'event.decision == "approve"'))
    assert warning.startswith('step \'ask\': when event.decision is "reject", "defer",')
    assert "goes on to the next step" in warning


@pytest.mark.parametrize(
    "whens",
    [
        ('event.decision == "approve"', 'event.decision in ["reject", "defer"]'),
        ('event.decision == "approve" or event.decision != "approve"',),
        ('event.decision == "approve"', None),  # a transition without `when` takes the rest
        ('event.decision == "approve"', "event.note == 'x'"),  # reads another field: unknown
        ('event.decision == "approve"', "inputs.auto"),  # reads the run's data: unknown
    ],
)
def test_no_warning_when_every_value_is_taken_or_it_cannot_be_told(whens: tuple) -> None:
    assert warnings(ask({**DECISION, "note": {"type": "string"}}, *whens)) == []


def test_boolean_fields_fall_through_on_the_value_not_taken() -> None:
    (warning,) = warnings(ask({"ok": {"type": "boolean"}}, "event.ok"))
    assert "when event.ok is false," in warning
    assert warnings(ask({"ok": {"type": "boolean"}}, "event.ok", "not event.ok")) == []


def test_const_and_nullable_booleans_are_finite_too() -> None:
    (warning,) = warnings(ask({"ok": {"type": ["boolean", "null"]}}, "event.ok == true"))
    assert "when event.ok is false, null," in warning
    found = warnings(ask({"kind": {"const": "a"}}, 'event.kind == "b"'))
    assert any('when event.kind is "a",' in warning for warning in found)


def test_open_fields_and_schemas_without_properties_give_no_warning() -> None:
    assert warnings(ask({"note": {"type": "string"}}, 'event.note == "x"')) == []
    step = ask({}, "event.ok")
    step["input_schema"] = True
    assert warnings(step) == []


def test_a_step_reached_only_when_nothing_matches_is_reachable() -> None:
    step = ask({"note": {"type": "string"}}, 'event.note == "x"')
    step["transitions"][0]["next"] = "done"
    middle = {"id": "middle", "kind": "cli", "command": "true"}
    assert not any("'middle'" in w for w in warnings(step, middle))
    step["transitions"].append({"next": "done"})
    assert any("'middle': no path" in w for w in warnings(step, middle))
