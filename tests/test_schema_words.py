"""Schema problems in the user's words: every reason at once, each naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpointflow import json_schema
from checkpointflow.schema_walk import explain

PERSON = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "level": {"enum": ["low", "high"]},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "address": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}, "zip": {"pattern": "^[0-9]{5}$"}},
        },
    },
}


def words(schema: Any, value: Any, name: str = "inputs") -> str | None:
    return json_schema.problem(schema, value, name)


def test_a_missing_field_is_named() -> None:
    assert words(PERSON, {}) == "'name' is required"


def test_an_unknown_field_suggests_the_known_one() -> None:
    message = words(PERSON, {"name": "a", "levle": "low"})
    assert message == "unknown field 'levle' (did you mean 'level'?)"
    assert words(PERSON, {"name": "a", "zzz": 1}) == "unknown field 'zzz'"


def test_a_misspelled_required_field_is_one_problem_not_two() -> None:
    schema = {"type": "object", "required": ["command"], "additionalProperties": False,
              "properties": {"command": {"type": "string"}}}  # fmt: skip
    assert words(schema, {"comand": "x"}) == "unknown field 'comand' (did you mean 'command'?)"


def test_a_wrong_type_names_the_field_the_expected_and_the_found_type() -> None:
    assert words(PERSON, {"name": "a", "age": "ten"}) == (
        "age must be an integer, found a string ('ten')"
    )
    assert words(PERSON, [1]) == "inputs must be an object, found a list"


def test_an_enum_lists_the_allowed_values() -> None:
    assert words(PERSON, {"name": "a", "level": "hihg"}) == (
        "level must be one of 'low', 'high', found 'hihg' (did you mean 'high'?)"
    )


def test_every_problem_is_reported_with_its_path() -> None:
    value = {"age": -1, "tags": ["a", "a", 3], "address": {"zip": "1"}, "x": 1}
    found = {(issue.pointer(), issue.describe("inputs")) for issue in explain(PERSON, value)}
    assert found == {
        ("/age", "age must be at least 0, found -1"),
        ("/tags/1", "tags[1] repeats item 0; items must be unique"),
        ("/tags/2", "tags[2] must be a string, found a number (3)"),
        ("/address/zip", "address.zip must match the pattern ^[0-9]{5}$, found '1'"),
        ("/address/city", "'city' is required in address"),
        ("/x", "unknown field 'x'"),
        ("/name", "'name' is required"),
    }


def test_alternatives_are_explained_by_the_one_meant() -> None:
    schema = {
        "oneOf": [
            {"type": "object", "required": ["action", "reason"],
             "properties": {"action": {"const": "reject"}, "reason": {"type": "string"}}},
            {"type": "object", "required": ["action"],
             "properties": {"action": {"const": "approve"}, "note": {"type": "string"}}},
        ]
    }  # fmt: skip
    assert words(schema, {"action": "reject"}, "event") == "'reason' is required"
    assert words(schema, {"action": "approve", "note": 5}, "event") == (
        "note must be a string, found a number (5)"
    )
    either = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    assert words(either, 5, "command") == "command must be a string or a list, found a number (5)"
    assert words(either, ["a", 1], "command") == "command[1] must be a string, found a number (1)"


def test_a_format_keyword_is_explained() -> None:
    schema = {"type": "object", "properties": {"when": {"format": "date"}}}
    assert words(schema, {"when": "soon"}) == "when must be a valid date, found 'soon'"


def test_a_keyword_the_walk_does_not_word_still_gets_the_compiled_message() -> None:
    # a value refused by a keyword unknown to the walk keeps the compiled check's reason
    schema = {"type": "string", "format": "email"}
    assert words(schema, "x") == "inputs must be a valid email, found 'x'"


# --- the walk agrees with the compiled check ------------------------------------------------

SCHEMAS = [
    PERSON,
    {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": ["integer", "null"]}},
    {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "number", "exclusiveMinimum": 0}]},
    {"oneOf": [{"type": "integer"}, {"type": "number", "multipleOf": 0.5}]},
    {"type": "object", "patternProperties": {"^x": {"type": "boolean"}},
     "additionalProperties": {"type": "string"}, "propertyNames": {"maxLength": 3},
     "dependencies": {"a": ["b"]}, "minProperties": 1},
    {"not": {"type": "string"}, "if": {"type": "number"}, "then": {"minimum": 2},
     "else": {"type": ["object", "boolean", "null", "array"]}},
    {"type": "array", "items": [{"const": 1}, {"enum": [True, "x"]}], "additionalItems": False,
     "contains": {"type": "string"}},
    {"definitions": {"n": {"type": "object", "properties": {"next": {"$ref": "#/definitions/n"},
     "v": {"type": "integer"}}}}, "$ref": "#/definitions/n"},
]  # fmt: skip

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 200)
    | st.sampled_from([0.5, 1.0, 2.25, -0.0])
    | st.sampled_from(["", "a", "ab", "low", "high", "xyzw", "12345", "b"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "age", "tags", "level", "a", "b", "x1", "long", "next", "v"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(SCHEMAS))), JSON)
def test_the_walk_finds_a_problem_exactly_when_the_compiled_check_does(
    which: int, value: Any
) -> None:
    schema = SCHEMAS[which]
    refused = json_schema.problem(schema, value, "v") is not None
    assert bool(explain(schema, value)) == refused, (schema, value)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_explaining_never_changes_the_schema(schema: Any) -> None:
    import copy

    before = copy.deepcopy(schema)
    explain(schema, {"name": 1})
    json_schema.validator(schema)
    assert schema == before


def test_a_fractional_multiple_of_is_checked_not_an_internal_error() -> None:
    assert words({"multipleOf": 0.5}, 1.25, "n") == "n must be a multiple of 0.5, found 1.25"
    assert words({"multipleOf": 0.1}, 0.3, "n") is None
