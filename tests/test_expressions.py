"""The expression language inside `${...}`, `if:` and `when:`: parsing, evaluation, rendering."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkpointflow.expressions import (
    Binary,
    Call,
    Default,
    ExpressionError,
    ListLiteral,
    Literal,
    Path,
    Template,
    Unary,
    evaluate,
    json_equal,
    parse,
    parse_condition,
    parse_template,
    references,
    render,
    render_shown,
    render_value,
    to_text,
    truthy,
)

PROPERTY = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

CONTEXT: dict[str, Any] = {
    "inputs": {
        "a": 1,
        "b": 2,
        "name": "world",
        "flag": True,
        "off": False,
        "nothing": None,
        "empty": "",
        "tags": ["x", "y", "z"],
        "nums": [10, 20, 30],
        "map": {"key with space": "spaced", "k": "v", "n": 5},
        "nested": {"b": {"c": "deep"}},
        "key": "k",
        "idx": 1,
    },
    "steps": {"x": {"outputs": {"list": ["first", "second"], "count": 3}, "status": "completed"}},
}


def ev(source: str, context: dict[str, Any] | None = None, strict: bool = False) -> Any:
    return evaluate(parse(source), CONTEXT if context is None else context, strict=strict)


def rendered(text: str, context: dict[str, Any] | None = None) -> Any:
    return render(parse_template(text), CONTEXT if context is None else context)


# --- operators and precedence -------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 == 1", True),
        ("1 == 2", False),
        ("1 != 2", True),
        ("1 != 1", False),
        ("1 < 2", True),
        ("2 < 1", False),
        ("2 <= 2", True),
        ("3 <= 2", False),
        ("3 > 2", True),
        ("2 > 3", False),
        ("2 >= 2", True),
        ("1 >= 2", False),
        ("'abc' < 'abd'", True),
        ("'b' > 'a'", True),
        ("'x' in inputs.tags", True),
        ("'q' in inputs.tags", False),
        ("'q' not in inputs.tags", True),
        ("'x' not in inputs.tags", False),
        ("true and true", True),
        ("true and false", False),
        ("false or true", True),
        ("false or false", False),
        ("not true", False),
        ("not false", True),
        ("not not true", True),
        ("inputs.a == 1 and inputs.b == 2", True),
        ("inputs.a == 2 or inputs.b == 2", True),
        ("inputs.a < inputs.b", True),
        ("inputs.name == 'world'", True),
    ],
)
def test_operators(source: str, expected: bool) -> None:
    assert ev(source) is expected


def test_not_binds_looser_than_comparison() -> None:
    node = parse("not inputs.a == 2")
    assert isinstance(node, Unary) and node.operator == "not"
    assert isinstance(node.operand, Binary) and node.operand.operator == "=="
    assert ev("not inputs.a == 2") is True
    assert ev("not inputs.a == 1") is False


def test_and_binds_tighter_than_or() -> None:
    # true or (false and false) == true; (true or false) and false would be false
    assert ev("true or false and false") is True
    node = parse("true or false and false")
    assert isinstance(node, Binary) and node.operator == "or"
    assert isinstance(node.right, Binary) and node.right.operator == "and"


def test_not_binds_tighter_than_and() -> None:
    # (not false) and false == false; not (false and false) would be true
    assert ev("not false and false") is False


def test_parentheses_override_precedence() -> None:
    assert ev("(true or false) and false") is False
    assert ev("not (true and false)") is True
    assert ev("((((1)))) == 1") is True


def test_and_or_short_circuit() -> None:
    # The right side would fail to evaluate (ordering of mixed types) if it were evaluated.
    assert ev("false and (1 < 'a')") is False
    assert ev("true or (1 < 'a')") is True


def test_and_or_return_booleans() -> None:
    assert ev("inputs.name and inputs.a") is True
    assert ev("inputs.empty or inputs.nothing") is False


def test_not_in_operator_parses_as_negated_in() -> None:
    node = parse("'a' not in inputs.tags")
    assert node == Unary("not", Binary("in", Literal("a"), Path("inputs", (Literal("tags"),))))


# --- literals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"double"', "double"),
        ("'single'", "single"),
        (r'"quote \" inside"', 'quote " inside'),
        (r"'quote \' inside'", "quote ' inside"),
        (r'"back\\slash"', "back\\slash"),
        (r'"new\nline"', "new\nline"),
        (r'"tab\there"', "tab\there"),
        (r'"\u00e9\u4e2D"', "\u00e9\u4e2d"),
        (r'"slash\/"', "slash/"),
        ('"it\'s"', "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        ('""', ""),
        ("0", 0),
        ("42", 42),
        ("3.5", 3.5),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ("-7", -7),
        ("-2.5", -2.5),
        ("- 3", -3),
        ("--4", 4),
        ("true", True),
        ("false", False),
        ("null", None),
    ],
)
def test_literals(source: str, expected: Any) -> None:
    value = ev(source)
    assert value == expected
    assert type(value) is type(expected)


def test_integer_literal_is_int_and_float_literal_is_float() -> None:
    assert isinstance(ev("10"), int)
    assert isinstance(ev("10.0"), float)
    assert isinstance(ev("1e2"), float)


def test_escaped_surrogate_pair_is_one_character() -> None:
    # As in JSON, a UTF-16 surrogate pair written as two \u escapes is one character.
    assert ev(r'"\ud83d\ude00"') == "\U0001f600"
    assert ev(json.dumps("a\U0001f600b")) == "a\U0001f600b"


def test_unknown_escape_is_an_error() -> None:
    with pytest.raises(ExpressionError):
        parse(r'"bad \q escape"')


def test_short_unicode_escape_is_an_error() -> None:
    with pytest.raises(ExpressionError):
        parse(r'"\u12"')


@pytest.mark.parametrize("source", ['"abc', "'abc", r'"abc\"', "inputs.a == 'x"])
def test_unterminated_string_raises_with_position(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert caught.value.position is not None
    assert source[caught.value.position] in "\"'"
    assert "unterminated" in str(caught.value)


def test_very_long_integer_literal_is_an_expression_error() -> None:
    # Python refuses to convert integer strings over 4300 digits; that must surface as
    # an ExpressionError, never a ValueError escaping the parser.
    with pytest.raises(ExpressionError):
        parse("1" * 5000)


# --- paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("inputs.a", 1),
        ("inputs.nested.b.c", "deep"),
        ("steps.x.outputs.list[0]", "first"),
        ("steps.x.outputs.list[1]", "second"),
        ("steps.x.outputs.list[1.0]", "second"),
        ('inputs.map["key with space"]', "spaced"),
        ("inputs.map['k']", "v"),
        ("inputs.map[inputs.key]", "v"),
        ("inputs.nums[inputs.idx]", 20),
        ("inputs.nums[inputs.a]", 20),
        ("inputs.tags[2]", "z"),
        ("inputs.tags[-(-2)]", "z"),
        ("steps.x.status", "completed"),
        ("inputs.in", None),
        ("inputs", CONTEXT["inputs"]),
    ],
)
def test_paths(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_word_operator_is_allowed_as_a_key_after_a_dot() -> None:
    assert ev("inputs.in", {"inputs": {"in": "yes"}}) == "yes"
    assert ev("inputs.not.and", {"inputs": {"not": {"and": 3}}}) == 3


def test_index_by_expression_parses_as_a_node() -> None:
    node = parse("inputs.map[inputs.key]")
    assert isinstance(node, Path)
    assert node.keys == (Literal("map"), Path("inputs", (Literal("key"),)))


@pytest.mark.parametrize(
    "source",
    [
        "inputs.missing",
        "inputs.a.b",  # a is a number
        "inputs.tags[3]",
        "inputs.tags[-1]",
        "inputs.tags[0.5]",
        "inputs.tags['0']",
        "inputs.map[0]",
        "inputs.tags[true]",
        "steps.nope.outputs",
        "event.anything",
        "item",
    ],
)
def test_missing_paths_read_as_null_when_lenient(source: str) -> None:
    assert ev(source) is None


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("inputs.missing", "inputs.missing"),
        ("inputs.nested.b.zzz", "inputs.nested.b.zzz"),
        ("steps.nope.outputs", "steps.nope"),
        ("inputs.tags[7]", "inputs.tags[7]"),
        ("event.x", "event"),
    ],
)
def test_missing_paths_raise_naming_the_path_when_strict(source: str, named: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        ev(source, strict=True)
    assert named in str(caught.value)


def test_strict_reads_existing_null_as_null() -> None:
    assert ev("inputs.nothing", strict=True) is None


@pytest.mark.parametrize("source", ["foo.bar", "foo", "input.a", "Inputs.a", "step.x"])
def test_unknown_root_names_rejected_at_parse(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert caught.value.position == 0
    assert "unknown name" in str(caught.value)


@pytest.mark.parametrize("source", ["inputs.", "inputs.(a)", "inputs[0", "inputs.a]", "inputs..a"])
def test_malformed_paths_rejected(source: str) -> None:
    with pytest.raises(ExpressionError):
        parse(source)


# --- functions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("length(inputs.tags)", 3),
        ("length(inputs.name)", 5),
        ("length(inputs.map)", 3),
        ("length(inputs.nothing)", 0),
        ("length('')", 0),
        ("contains(inputs.tags, 'y')", True),
        ("contains(inputs.tags, 'q')", False),
        ("contains(inputs.name, 'orl')", True),
        ("contains(inputs.map, 'k')", True),
        ("contains(inputs.nothing, 'k')", False),
        ("startsWith(inputs.name, 'wor')", True),
        ("startsWith(inputs.name, 'orl')", False),
        ("endsWith(inputs.name, 'rld')", True),
        ("endsWith(inputs.name, 'wor')", False),
        ("startsWith(inputs.nothing, 'a')", False),
        ("length(inputs.tags) == 3 and contains(inputs.tags, 'x')", True),
    ],
)
def test_functions(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "length()",
        "length(inputs.a, inputs.b)",
        "contains(inputs.tags)",
        "contains(inputs.tags, 'a', 'b')",
        "startsWith('a')",
        "endsWith()",
    ],
)
def test_function_arity_checked_at_parse(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert "argument" in str(caught.value)


@pytest.mark.parametrize("source", ["upper(inputs.name)", "eval('1')", "len(inputs.tags)"])
def test_unknown_function_rejected_at_parse(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert "unknown function" in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "length(inputs.a)",
        "length(true)",
        "startsWith(inputs.a, 'x')",
        "endsWith(inputs.name, 1)",
        "contains(inputs.name, 1)",
        "contains(inputs.a, 1)",
    ],
)
def test_function_type_errors_at_evaluation(source: str) -> None:
    node = parse(source)
    with pytest.raises(ExpressionError):
        evaluate(node, CONTEXT)


# --- quoting inside strings and templates -------------------------------------------------


@pytest.mark.parametrize(
    "literal", [" and ", " or ", "==", "}", "{", "${x}", "a } b", "not in", "'", '"', "]", ")"]
)
def test_operator_text_inside_quotes_is_plain_text(literal: str) -> None:
    source = json.dumps(literal)
    assert ev(source) == literal
    assert ev(f"inputs.name == {source}") is False
    assert ev(f"{source} == {source}") is True
    assert rendered("${" + source + "}") == literal
    assert rendered("<${ " + source + " }>") == f"<{literal}>"


def test_brace_inside_single_quoted_string_in_template() -> None:
    assert rendered("${ 'a}b' }") == "a}b"
    assert rendered("${ 'it\\'s }' }") == "it's }"
    assert rendered('x${ "q\\"}" }y') == 'xq"}y'


def test_double_dollar_is_a_literal_dollar_brace() -> None:
    template = parse_template("cost: $${inputs.a} and ${inputs.a}")
    assert template.parts[0] == "cost: ${inputs.a} and "
    assert rendered("cost: $${inputs.a} and ${inputs.a}") == "cost: ${inputs.a} and 1"
    assert rendered("$${") == "${"
    assert rendered("$$") == "$$"
    assert rendered("$ {inputs.a}") == "$ {inputs.a}"


@pytest.mark.parametrize("text", ["${inputs.a", "x ${inputs.a", "a ${ 'b}", "${", "ok ${'}'"])
def test_unterminated_template_raises_with_position(text: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_template(text)
    assert caught.value.position == text.index("${")


def test_template_parse_error_reports_the_template_position() -> None:
    text = "abc ${foo.bar} def"
    with pytest.raises(ExpressionError) as caught:
        parse_template(text)
    assert caught.value.position == 4
    assert "foo" in str(caught.value)


def test_empty_template_expression_rejected() -> None:
    with pytest.raises(ExpressionError):
        parse_template("${}")
    with pytest.raises(ExpressionError):
        parse_template("${   }")


def test_empty_expression_rejected() -> None:
    with pytest.raises(ExpressionError):
        parse("")
    with pytest.raises(ExpressionError):
        parse("   ")


@pytest.mark.parametrize("source", ["1 2", "inputs.a inputs.b", "1 ==", "== 1", "(1", "1)", "a"])
def test_malformed_expressions_rejected(source: str) -> None:
    with pytest.raises(ExpressionError):
        parse(source)


def test_comparisons_do_not_chain() -> None:
    with pytest.raises(ExpressionError):
        parse("1 < 2 < 3")


# --- conditions ---------------------------------------------------------------------------


def test_parse_condition_forms() -> None:
    assert parse_condition(True) == Literal(True)
    assert parse_condition(False) == Literal(False)
    assert parse_condition("inputs.a == 1") == parse("inputs.a == 1")
    assert parse_condition("${inputs.a == 1}") == parse("inputs.a == 1")
    assert parse_condition("${ inputs.a }") == parse("inputs.a")


@pytest.mark.parametrize("value", [1, None, [True], {"a": 1}, 1.5])
def test_parse_condition_rejects_non_text(value: Any) -> None:
    with pytest.raises(ExpressionError):
        parse_condition(value)


def test_parse_condition_rejects_mixed_text() -> None:
    with pytest.raises(ExpressionError):
        parse_condition("${inputs.a} == ${inputs.b}")
    with pytest.raises(ExpressionError):
        parse_condition("x ${inputs.a}")


# --- JSON semantics -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 == 1.0", True),
        ("1.0 == 1", True),
        ("0 == -0.0", True),
        ("true == 1", False),
        ("true != 1", True),
        ("false == 0", False),
        ("false != 0", True),
        ("'1' == 1", False),
        ("'1' != 1", True),
        ("null == false", False),
        ("null == 0", False),
        ("null == ''", False),
        ("null == null", True),
        ("inputs.nothing == null", True),
        ("inputs.missing == null", True),
        ("inputs.tags == inputs.tags", True),
        ("inputs.nums == inputs.tags", False),
        ("true == true", True),
    ],
)
def test_json_equality(source: str, expected: bool) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ([1, 2], [1.0, 2.0], True),
        ([1], [True], False),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]}, True),
        ({"a": True}, {"a": 1}, False),
        ([], {}, False),
        ("", None, False),
        (0, False, False),
        (1, True, False),
        (1, "1", False),
        ([1, 2], [2, 1], False),
    ],
)
def test_json_equal(left: Any, right: Any, expected: bool) -> None:
    assert json_equal(left, right) is expected
    assert json_equal(right, left) is expected


@pytest.mark.parametrize(
    "source",
    [
        "1 < 'a'",
        "'a' >= 1",
        "true > false",
        "null < 1",
        "inputs.tags < inputs.nums",
        "inputs.map <= inputs.map",
        "1 > true",
        "inputs.missing < 3",
    ],
)
def test_ordering_mixed_types_raises(source: str) -> None:
    with pytest.raises(ExpressionError):
        ev(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'y' in inputs.tags", True),
        ("20.0 in inputs.nums", True),
        ("1 in inputs.tags", False),
        ("'orl' in inputs.name", True),
        ("'xyz' in inputs.name", False),
        ("'' in inputs.name", True),
        ("'k' in inputs.map", True),
        ("'v' in inputs.map", False),
        ("1 in inputs.map", False),
        ("'a' in inputs.nothing", False),
        ("'a' in inputs.missing", False),
    ],
)
def test_in_operator(source: str, expected: bool) -> None:
    assert ev(source) is expected


def test_in_list_uses_json_equality() -> None:
    context = {"inputs": {"list": [1, "1", None]}}
    assert ev("true in inputs.list", context) is False
    assert ev("1.0 in inputs.list", context) is True
    assert ev("null in inputs.list", context) is True
    assert ev("false in inputs.list", context) is False


@pytest.mark.parametrize("source", ["1 in inputs.name", "'a' in inputs.a", "'a' in true"])
def test_in_operator_type_errors(source: str) -> None:
    with pytest.raises(ExpressionError):
        ev(source)


def test_negating_non_number_raises() -> None:
    with pytest.raises(ExpressionError):
        ev("-inputs.name")
    with pytest.raises(ExpressionError):
        ev("-true")
    assert ev("-inputs.a") == -1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (float("nan"), False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (1, True),
        (-1, True),
        (0.1, True),
        ("0", True),
        ("false", True),
        ([0], True),
        ({"a": None}, True),
    ],
)
def test_truthy(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("text", "text"),
        ("", ""),
        (1, "1"),
        (1.5, "1.5"),
        (True, "true"),
        (False, "false"),
        ([1, "a", None], '[1,"a",null]'),
        ({"a": 1, "b": [True]}, '{"a":1,"b":[true]}'),
        ({"é": "ü"}, '{"é":"ü"}'),
    ],
)
def test_to_text(value: Any, expected: str) -> None:
    assert to_text(value) == expected


# --- rendering ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${inputs.a}", 1),
        ("${inputs.flag}", True),
        ("${inputs.off}", False),
        ("${inputs.nothing}", None),
        ("${inputs.tags}", ["x", "y", "z"]),
        ("${inputs.map}", CONTEXT["inputs"]["map"]),
        ("${ inputs.a == 1 }", True),
        ("${1.5}", 1.5),
        ("${'text'}", "text"),
    ],
)
def test_single_expression_template_keeps_json_type(text: str, expected: Any) -> None:
    value = rendered(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n=${inputs.a}", "n=1"),
        ("${inputs.a}${inputs.b}", "12"),
        ("[${inputs.nothing}]", "[]"),
        ("${inputs.flag}!", "true!"),
        ("tags: ${inputs.tags}", 'tags: ["x","y","z"]'),
        ("m: ${inputs.nested}", 'm: {"b":{"c":"deep"}}'),
        (" ${inputs.a}", " 1"),
        ("${inputs.a} ", "1 "),
        ("Hello, ${inputs.name}!", "Hello, world!"),
        ("no expressions", "no expressions"),
        ("", ""),
    ],
)
def test_mixed_template_renders_text(text: str, expected: str) -> None:
    assert rendered(text) == expected


@pytest.mark.parametrize(
    "text", ["${inputs.missing}", "x ${inputs.missing} y", "${steps.nope.outputs.a}"]
)
def test_render_is_strict_about_missing_paths(text: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        rendered(text)
    assert "does not exist" in str(caught.value)


def test_render_value_recurses_into_lists_and_objects() -> None:
    value = {
        "count": "${inputs.a}",
        "greeting": "hi ${inputs.name}",
        "list": ["${inputs.tags}", "${inputs.flag}", 7, None, False],
        "nested": {"deeper": {"x": "${steps.x.outputs.count}"}},
        "plain": 3.5,
        "literal": "$${not rendered}",
    }
    original = copy.deepcopy(value)
    assert render_value(value, CONTEXT) == {
        "count": 1,
        "greeting": "hi world",
        "list": [["x", "y", "z"], True, 7, None, False],
        "nested": {"deeper": {"x": 3}},
        "plain": 3.5,
        "literal": "${not rendered}",
    }
    assert value == original


def test_render_value_of_scalars_is_identity() -> None:
    for scalar in (None, True, 0, 2.5):
        assert render_value(scalar, CONTEXT) == scalar


def test_render_value_is_strict() -> None:
    with pytest.raises(ExpressionError):
        render_value({"a": ["${inputs.missing}"]}, CONTEXT)


# --- depth limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "(" * 10000,
        "(" * 10000 + "1" + ")" * 10000,
        " and ".join(["inputs.a"] * 5000),
        " or ".join(["inputs.a"] * 5000),
        "not " * 10000 + "true",
        "-" * 10000 + "1",
        "inputs.a[" * 5000 + "0" + "]" * 5000,
        "length(" * 5000 + "inputs.a" + ")" * 5000,
    ],
)
def test_deep_nesting_is_an_expression_error(source: str) -> None:
    with pytest.raises(ExpressionError):
        parse(source)
    with pytest.raises(ExpressionError):
        parse_template("${" + source + "}")


def test_moderate_nesting_still_works() -> None:
    assert ev("(" * 20 + "1" + ")" * 20) == 1
    assert ev(" and ".join(["true"] * 20)) is True
    assert ev("not " * 20 + "true") is True


# --- references ---------------------------------------------------------------------------


def test_references_yields_roots_and_static_keys() -> None:
    node = parse(
        "steps.build.outputs.list[0] == inputs.map['a b'] and length(event.x[inputs.k].y) > 0"
    )
    assert list(references(node)) == [
        ("steps", "build", "outputs", "list", "0"),
        ("inputs", "map", "a b"),
        ("event", "x"),
        ("inputs", "k"),
    ]


def test_references_of_literals_is_empty() -> None:
    assert list(references(parse("1 == 'a'"))) == []


def test_references_stop_at_first_dynamic_key() -> None:
    assert list(references(parse("inputs.a[inputs.b].c"))) == [("inputs", "a"), ("inputs", "b")]
    assert list(references(parse("inputs"))) == [("inputs",)]
    assert list(references(parse("not -inputs.x"))) == [("inputs", "x")]


def test_call_node_shape() -> None:
    assert parse("length(inputs.a)") == Call("length", (Path("inputs", (Literal("a"),)),))


def test_template_structure() -> None:
    template = parse_template("a ${inputs.x} b ${inputs.y}")
    assert isinstance(template, Template)
    assert template.parts[0] == "a "
    assert template.parts[2] == " b "
    assert len(template.expressions) == 2
    assert not template.is_single_expression
    assert parse_template("${inputs.x}").is_single_expression
    assert not parse_template(" ${inputs.x}").is_single_expression


# --- properties ---------------------------------------------------------------------------

EXPRESSION_ALPHABET = st.sampled_from(
    [*list("abcinputsteps.[]()'\"\\${}=!<>-+,0123456789 eE_u"), "and", "or", "not", "in", "\n"]
)


@PROPERTY
@given(st.one_of(st.text(), st.lists(EXPRESSION_ALPHABET).map("".join)))
def test_parse_never_raises_anything_but_expression_error(text: str) -> None:
    with contextlib.suppress(ExpressionError):
        parse(text)
    with contextlib.suppress(ExpressionError):
        parse_template(text)
    with contextlib.suppress(ExpressionError):
        parse_template("${" + text + "}")


@PROPERTY
@given(st.one_of(st.text(), st.lists(EXPRESSION_ALPHABET).map("".join)))
def test_evaluating_parsed_text_raises_only_expression_error(text: str) -> None:
    try:
        node = parse(text)
    except ExpressionError:
        return
    try:
        evaluate(node, CONTEXT)
        evaluate(node, CONTEXT, strict=True)
    except ExpressionError:
        pass


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), finite_floats, st.text(max_size=50)
)


def literal_source(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


@PROPERTY
@given(json_scalars)
def test_json_literals_evaluate_to_themselves(value: Any) -> None:
    # Negative numbers are parsed as unary minus over a positive literal.
    result = evaluate(parse(literal_source(value)), {})
    assert json_equal(result, value)
    assert type(result) is type(value) or (isinstance(value, float) and result == value)


@PROPERTY
@given(st.text(max_size=50))
def test_json_dumped_strings_round_trip_through_a_template(value: str) -> None:
    assert render(parse_template("${" + json.dumps(value) + "}"), {}) == value
    assert render(parse_template("${" + json.dumps(value, ensure_ascii=False) + "}"), {}) == value


@PROPERTY
@given(st.text().filter(lambda text: "$" not in text))
def test_text_without_dollar_renders_unchanged(text: str) -> None:
    template = parse_template(text)
    assert template.expressions == ()
    assert render(template, {}) == text


json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@PROPERTY
@given(json_values, json_values)
def test_json_equal_is_reflexive_and_symmetric(left: Any, right: Any) -> None:
    assert json_equal(left, left)
    assert json_equal(left, copy.deepcopy(left))
    assert json_equal(left, right) == json_equal(right, left)


@PROPERTY
@given(json_values)
def test_single_reference_renders_the_raw_value(value: Any) -> None:
    result = render(parse_template("${inputs.a}"), {"inputs": {"a": value}})
    assert result == value
    assert json_equal(result, value)


@PROPERTY
@given(json_values)
def test_mixed_template_embeds_to_text(value: Any) -> None:
    result = render(parse_template("<${inputs.a}>"), {"inputs": {"a": value}})
    assert result == f"<{to_text(value)}>"
    if not isinstance(value, str) and value is not None:
        assert json.loads(result[1:-1]) == value


@PROPERTY
@given(json_values, st.text(min_size=1, max_size=10))
def test_path_with_quoted_key_reads_that_key(value: Any, key: str) -> None:
    context = {"inputs": {"m": {key: value}}}
    assert evaluate(parse("inputs.m[" + json.dumps(key) + "]"), context, strict=True) == value


def test_a_number_needs_a_leading_digit_so_dotted_indexes_read_as_paths() -> None:
    with pytest.raises(ExpressionError):
        parse(".5")
    assert evaluate(parse("inputs.items.1"), {"inputs": {"items": ["a", "b"]}}) == "b"


# --- values that may be missing: ||, &&, :- ------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("inputs.name || 'x'", "world"),
        ("inputs.missing || 'x'", "x"),
        ("inputs.nothing || 'x'", "x"),
        ("inputs.empty || 'x'", "x"),
        ("inputs.off || 'x'", "x"),
        ("0 || inputs.tags", ["x", "y", "z"]),
        ("inputs.a || inputs.b", 1),
        ("inputs.missing || inputs.nothing", None),
        ("inputs.missing || inputs.empty || 'last'", "last"),
        ("inputs.name && inputs.a", 1),
        ("inputs.empty && inputs.a", ""),
        ("inputs.missing && inputs.a", None),
        ("inputs.off && 'x'", False),
        ("inputs.flag && 'yes' || 'no'", "yes"),
        ("inputs.off && 'yes' || 'no'", "no"),
    ],
)
def test_or_and_symbols_give_one_of_their_operands(source: str, expected: Any) -> None:
    assert ev(source) == expected
    assert ev(source, strict=True) == expected
    assert type(ev(source)) is type(expected)


def test_double_bar_and_ampersand_bind_like_or_and_and() -> None:
    node = parse("inputs.a || inputs.b && inputs.c")
    assert isinstance(node, Binary) and node.operator == "||"
    assert isinstance(node.right, Binary) and node.right.operator == "&&"
    assert parse("not inputs.a || inputs.b") == Binary(
        "||", Unary("not", Path("inputs", (Literal("a"),))), Path("inputs", (Literal("b"),))
    )
    assert ev("inputs.a == 2 || inputs.b == 2") is True


def test_a_missing_path_after_double_bar_is_still_an_error_when_strict() -> None:
    with pytest.raises(ExpressionError) as caught:
        ev("inputs.missing || inputs.other", strict=True)
    assert "inputs.other does not exist" in str(caught.value)
    with pytest.raises(ExpressionError):
        ev("inputs.a && inputs.other", strict=True)


def test_double_bar_and_ampersand_short_circuit() -> None:
    assert ev("inputs.a || (1 < 'a')") == 1
    assert ev("inputs.off && (1 < 'a')") is False


@pytest.mark.parametrize("source", ["inputs.a | inputs.b", "inputs.a & inputs.b"])
def test_a_single_bar_or_ampersand_says_to_double_it(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert "write '||'" in str(caught.value) or "write '&&'" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${inputs.missing:-master}", "master"),
        ("${inputs.nothing:-master}", "master"),
        ("${inputs.empty:-master}", "master"),
        ("${inputs.name:-master}", "world"),
        ("${inputs.a:-5}", 1),
        ("${inputs.off:-x}", False),
        ("${inputs.tags:-x}", ["x", "y", "z"]),
        ("${inputs.missing:-}", ""),
        ("${ inputs.missing :- two words }", " two words "),
        ('${inputs.missing:-it\'s "quoted" (1 + 1)}', 'it\'s "quoted" (1 + 1)'),
        ("${inputs.missing:-a:-b}", "a:-b"),
        ("base=${inputs.missing:-main}!", "base=main!"),
        ("${inputs.missing:-5}", "5"),
        ("${steps.nope.outputs.a.b:-none}", "none"),
        ("${inputs.tags[7]:-none}", "none"),
        ("${inputs['odd:-key']:-none}", "none"),
    ],
)
def test_colon_dash_gives_its_text_when_the_value_is_missing_null_or_empty(
    text: str, expected: Any
) -> None:
    assert rendered(text) == expected


def test_colon_dash_splits_a_template_into_its_expression_and_text() -> None:
    template = parse_template("x ${inputs.a:-fall back} y")
    assert template.parts == ("x ", Default(Path("inputs", (Literal("a"),)), "fall back"), " y")
    assert parse_condition("${inputs.a:-no}") == Default(Path("inputs", (Literal("a"),)), "no")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${inputs.a:-${inputs.b}}", "cannot hold another ${...}"),
        ("${:-x}", "empty expression"),
        ("${inputs.a:-x", "not closed"),
        ("${foo:-x}", "unknown name"),
    ],
)
def test_colon_dash_mistakes_are_explained(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_template(text)
    assert message in str(caught.value)
    assert caught.value.position == 0


def test_colon_dash_errors_other_than_missing_still_fail() -> None:
    with pytest.raises(ExpressionError):
        rendered("${-inputs.name:-x}")


# --- list literals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[]", []),
        ("[1]", [1]),
        ("['a', \"b\", null, true, 2.5]", ["a", "b", None, True, 2.5]),
        ("[inputs.a, inputs.b + 0 == 2]", None),
        ("[[1, 2], [], [[3]]]", [[1, 2], [], [[3]]]),
        ("[inputs.a, -inputs.b, length(inputs.tags)]", [1, -2, 3]),
        ("[inputs.missing]", [None]),
        ("'y' in ['x', 'y']", True),
        ("inputs.name in ['no', 'later']", False),
        ("inputs.name not in ['no', 'later']", True),
        ("1.0 in [true, 1]", True),
        ("true in [1]", False),
        ("[1, 2] == [1.0, 2]", True),
        ("length([1, 2, 3])", 3),
        ("contains(['a', 'b'], 'b')", True),
    ],
)
def test_list_literals(source: str, expected: Any) -> None:
    if expected is None:
        with pytest.raises(ExpressionError):
            parse(source)
        return
    assert ev(source) == expected


@pytest.mark.parametrize("source", ["[1, 2", "[1 2]", "[1,]", "[,]", "[", "inputs.name in [", "]"])
def test_malformed_list_literals_rejected(source: str) -> None:
    with pytest.raises(ExpressionError):
        parse(source)


def test_list_literal_items_are_strict_in_templates() -> None:
    with pytest.raises(ExpressionError) as caught:
        rendered("${[inputs.a, inputs.missing]}")
    assert "inputs.missing does not exist" in str(caught.value)
    assert rendered("${[inputs.a, inputs.name]}") == [1, "world"]


def test_references_look_inside_lists_defaults_and_both_sides_of_double_bar() -> None:
    node = parse_template("${[steps.a.outputs.x, inputs.y] || steps.b.status}").expressions[0]
    assert list(references(node)) == [
        ("steps", "a", "outputs", "x"),
        ("inputs", "y"),
        ("steps", "b", "status"),
    ]
    default = parse_template("${steps.c.outputs.z:-none}").expressions[0]
    assert list(references(default)) == [("steps", "c", "outputs", "z")]


def test_deeply_nested_list_literals_are_an_expression_error() -> None:
    with pytest.raises(ExpressionError):
        parse("[" * 5000 + "]" * 5000)
    assert ev("[" * 20 + "]" * 20) == json.loads("[" * 20 + "]" * 20)


# --- text shown to people -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Notes: ${steps.x.outputs.notes}", "Notes: "),
        ("${steps.nope.outputs.a}", ""),
        ("${inputs.a}", "1"),
        ("${inputs.tags}", '["x","y","z"]'),
        ("${inputs.missing || 'none given'}", "none given"),
        ("${inputs.missing:-none given}", "none given"),
        ("plain", "plain"),
    ],
)
def test_shown_text_reads_a_missing_value_as_empty(text: str, expected: str) -> None:
    assert render_shown(parse_template(text), CONTEXT) == expected


def test_shown_text_still_reports_errors_other_than_missing_values() -> None:
    with pytest.raises(ExpressionError):
        render_shown(parse_template("${inputs.name < 1}"), CONTEXT)


# --- properties of the new forms ----------------------------------------------------------


def source_of(node: Any) -> str:
    """Print a tree back as expression text, every operation in parentheses."""
    if isinstance(node, Literal):
        return literal_source(node.value)
    if isinstance(node, Path):
        return node.root + "".join(f"[{source_of(key)}]" for key in node.keys)
    if isinstance(node, Unary):
        return f"({node.operator} {source_of(node.operand)})"
    if isinstance(node, Binary):
        return f"({source_of(node.left)} {node.operator} {source_of(node.right)})"
    if isinstance(node, Call):
        return f"{node.function}({', '.join(map(source_of, node.arguments))})"
    assert isinstance(node, ListLiteral)
    return f"[{', '.join(map(source_of, node.items))}]"


def positive_literals() -> st.SearchStrategy[Literal]:
    numbers = st.one_of(st.integers(min_value=0), finite_floats.filter(lambda f: f >= 0))
    scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=10))
    return scalars.map(Literal)


OPERATORS = ["==", "!=", "<", "<=", ">", ">=", "in", "and", "or", "||", "&&"]
trees = st.recursive(
    st.one_of(
        positive_literals(),
        st.sampled_from(["inputs", "steps", "event", "item"]).map(lambda root: Path(root, ())),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: ListLiteral(tuple(items))),
        st.tuples(st.sampled_from(OPERATORS), children, children).map(lambda t: Binary(*t)),
        children.map(lambda operand: Unary("not", operand)),
        st.tuples(st.sampled_from(["inputs", "steps"]), st.lists(children, max_size=3)).map(
            lambda t: Path(t[0], tuple(t[1]))
        ),
        st.tuples(children, children).map(lambda t: Call("contains", t)),
    ),
    max_leaves=12,
)


@PROPERTY
@given(trees)
def test_any_printed_tree_parses_back_to_itself(tree: Any) -> None:
    assert parse(source_of(tree)) == tree


@PROPERTY
@given(st.lists(json_scalars, max_size=8))
def test_any_printed_list_literal_parses_back(values: list[Any]) -> None:
    source = "[" + ", ".join(map(literal_source, values)) + "]"
    assert json_equal(evaluate(parse(source), {}), values)
    assert render(parse_template("${" + source + "}"), {}) == evaluate(parse(source), {})


@PROPERTY
@given(json_values, json_values)
def test_double_bar_gives_the_left_value_when_truthy_else_the_right(left: Any, right: Any) -> None:
    context = {"inputs": {"left": left, "right": right}}
    chosen = evaluate(parse("inputs.left || inputs.right"), context, strict=True)
    assert chosen == (left if truthy(left) else right)
    both = evaluate(parse("inputs.left && inputs.right"), context, strict=True)
    assert both == (right if truthy(left) else left)
    without = evaluate(parse("inputs.gone || inputs.right"), context, strict=True)
    assert without == right


@PROPERTY
@given(json_values, st.text().filter(lambda text: "}" not in text and "${" not in text))
def test_colon_dash_gives_the_text_only_for_missing_null_or_empty(value: Any, text: str) -> None:
    template = parse_template("${inputs.v:-" + text + "}")
    assert render(template, {"inputs": {}}) == text
    expected = text if value is None or value == "" else value
    assert render(template, {"inputs": {"v": value}}) == expected


@PROPERTY
@given(st.lists(st.sampled_from([*"[]|&:-,'\"}${", "||", "&&", ":-", "inputs.a", " in "])))
def test_parsing_the_new_forms_raises_only_expression_error(pieces: list[str]) -> None:
    text = "".join(pieces)
    with contextlib.suppress(ExpressionError):
        parse(text)
    with contextlib.suppress(ExpressionError):
        render(parse_template("${" + text + "}"), CONTEXT)
