"""The shape of a document is checked part by part, and the meaning of whatever is usable:
any damage to a valid document gives problems, never a crash, and each problem of shape
sits where the damage is."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from checkpointflow.document import find_problems

VALID: dict[str, Any] = {
    "schema_version": "checkpointflow/v1",
    "workflow": {
        "id": "wf",
        "inputs": {"type": "object", "properties": {"items": {"type": "array"}}},
        "defaults": {"retry": {"max_attempts": 2}},
        "outputs": {"first": "steps.build.outputs"},
        "steps": [
            {
                "id": "build",
                "kind": "cli",
                "command": "echo ${inputs.items}",
                "retry": {"max_attempts": 3, "strategy": "fixed"},
                "transitions": [{"when": "inputs.items", "next": "ask"}],
            },
            {
                "id": "ask",
                "kind": "await_event",
                "audience": "user",
                "event_name": "go",
                "input_schema": {"type": "object"},
                "timeout_seconds": 60,
                "on_timeout": {"next": "done"},
                "transitions": [{"when": "event.ok", "next": "each"}],
            },
            {
                "id": "each",
                "kind": "foreach",
                "items": "${inputs.items}",
                "body": [{"id": "one", "kind": "cli", "argv": ["echo", "${item}"]}],
            },
            {
                "id": "both",
                "kind": "parallel",
                "branches": [{"steps": [{"id": "left", "kind": "end"}]}, {"start_at": "side"}],
            },
            {
                "id": "pick",
                "kind": "switch",
                "cases": [{"when": "inputs.items", "next": "done"}],
                "default": "done",
            },
            {"id": "done", "kind": "end", "result": {"b": "${steps.build.outputs}"}},
            {"id": "side", "kind": "end"},
        ],
    },
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "x", "done", "${"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["id", "kind", "next", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the document that holds a mapping or a list."""
    found = [path] if isinstance(value, dict | list) else []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found += places(item, (*path, key))
    return found


def at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_damage_gives_problems_never_a_crash(data: st.DataObject) -> None:
    document = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        container = at(document, data.draw(st.sampled_from(places(document))))
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        if not keys:
            continue
        key = data.draw(st.sampled_from(keys))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            container[key] = data.draw(JSON)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[data.draw(st.sampled_from(["comand", "nxt", "kind", "bogus"]))] = 1
        else:
            container.append(data.draw(JSON))
    problems = find_problems(document)
    for problem in problems:
        assert problem.path.startswith("/") and problem.message


def test_the_valid_document_is_valid() -> None:
    assert find_problems(copy.deepcopy(VALID)) == []
