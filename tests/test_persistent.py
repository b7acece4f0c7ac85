"""The persistent containers of the run state behave like a dict and a list, and never
change a version someone else still holds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpointflow.persistent import Slots, StepMap

PROPERTY = settings(deadline=None, max_examples=300)


class Collides:
    """A key whose hash is shared with other keys, to reach the collision buckets."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return len(self.name) % 3

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"Collides({self.name!r})"


class Deep(Collides):
    """Keys whose hashes differ only in their top bits: the trie's deepest levels."""

    def __hash__(self) -> int:
        return (len(self.name) % 4) << 59 | 12345


keys = st.one_of(
    st.text(max_size=6),
    st.sampled_from([f"each[{i}].t" for i in range(40)]),
    st.builds(Collides, st.text(max_size=4)),
    st.builds(Deep, st.text(max_size=5)),
)
operations = st.lists(
    st.tuples(st.sampled_from(["set", "remove"]), keys, st.integers()), max_size=120
)


@PROPERTY
@given(operations)
def test_step_map_behaves_like_a_dict_in_insertion_order(steps: list[tuple[str, Any, int]]) -> None:
    model: dict[Any, int] = {}
    mapping: StepMap[Any, int] = StepMap()
    versions = [(mapping, dict(model))]
    for action, key, value in steps:
        if action == "set":
            mapping, model[key] = mapping.set(key, value), value
        else:
            mapping = mapping.remove(key)
            model.pop(key, None)
        versions.append((mapping, dict(model)))
        assert len(mapping) == len(model)
        assert list(mapping) == list(model)  # a dict's order: first insertion, or re-insertion
        assert mapping == model and model == mapping
    for version, expected in versions:  # every earlier version is unchanged
        assert list(version.items()) == list(expected.items())
        for key in expected:
            assert key in version and version[key] == expected[key]


@PROPERTY
@given(st.dictionaries(keys, st.integers(), max_size=60), operations)
def test_changed_since_lists_exactly_the_entries_set_since(
    start: dict[Any, int], steps: list[tuple[str, Any, int]]
) -> None:
    before: StepMap[Any, int] = StepMap(start.items())
    after, touched = before, {}
    for action, key, value in steps:
        if action == "set":
            after, touched[key] = after.set(key, value), value
        else:
            after = after.remove(key)
            touched.pop(key, None)
    changed = after.changed_since(before)
    assert dict(changed) == touched
    assert [key for key, _ in changed] == [key for key in after if key in touched]


def test_a_missing_key_is_a_key_error_and_get_gives_the_default() -> None:
    mapping = StepMap([("a", 1)])
    with pytest.raises(KeyError):
        mapping["b"]
    assert mapping.get("b", 7) == 7
    assert mapping.remove("b") is mapping


@PROPERTY
@given(st.integers(0, 2000), st.lists(st.tuples(st.integers(0, 1999), st.integers()), max_size=80))
def test_slots_behave_like_a_list_of_fixed_length(length: int, sets: list[tuple[int, int]]) -> None:
    model: list[Any] = [None] * length
    slots: Slots[Any] = Slots(length)
    first = slots
    for index, value in sets:
        if index >= length:
            with pytest.raises(IndexError):
                slots.set(index, value)
            continue
        slots, model[index] = slots.set(index, value), value
    assert slots.to_list() == model and slots == model and len(slots) == length
    assert [slots[i] for i in range(length)] == model
    assert first.to_list() == [None] * length  # the first version is unchanged
    assert Slots(length, model) == slots
