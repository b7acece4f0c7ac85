"""Command templates to shell scripts: values travel in the environment, never as code."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkpointflow.expressions import ExpressionError, parse_template
from checkpointflow.shell import argv_script, sequence_script, shell_script, value_variable

SHELL = "/bin/sh"
PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

NASTY = [
    "plain",
    "",
    " ",
    "two  spaces",
    "*",
    "?",
    "[a-z]*",
    "~",
    "$HOME",
    "${HOME}",
    "$(touch pwned)",
    "`touch pwned`",
    "; touch pwned",
    "&& touch pwned",
    "| touch pwned",
    "> pwned",
    "'; touch pwned; '",
    '"; touch pwned; "',
    "it's",
    'say "hi"',
    "back\\slash",
    "\\n not a newline",
    "line1\nline2",
    "trailing newline\n",
    "\ttab",
    "-n",
    "-e",
    "--",
    "%s %d",
    "#comment",
    "a=b",
    "é ü 漢字 🙂",
    "'\"'\"'",
    "\\",
    "$",
    "}",
    '"${CPF_VALUE_2}"',
]


def run(
    script: str, values: tuple[str, ...], cwd: Path, extra: dict[str, str] | None = None
) -> bytes:
    """Run the script the way effects.perform does: `shell -c script`, values in the env."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    environment.update(extra or {})
    environment.update({value_variable(i): v for i, v in enumerate(values, 1)})
    process = subprocess.run(
        [SHELL, "-c", script],
        env=environment,
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    assert process.returncode == 0, (script, values, process.stderr)
    return process.stdout


def shell_output(text: str, context: dict[str, Any], cwd: Path) -> bytes:
    script, values = shell_script(parse_template(text), context)
    return run(script, values, cwd)


def argv_output(items: list[str], context: dict[str, Any], cwd: Path) -> bytes:
    script, values = argv_script(tuple(parse_template(item) for item in items), context)
    return run(script, values, cwd)


def inputs(value: Any) -> dict[str, Any]:
    return {"inputs": {"v": value}}


def listing(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


# --- the script itself --------------------------------------------------------------------


def test_value_variable_names() -> None:
    assert value_variable(1) == "CPF_VALUE_1"
    assert value_variable(12) == "CPF_VALUE_12"


def test_values_are_referenced_not_inlined() -> None:
    script, values = shell_script(
        parse_template('echo "Hello, ${inputs.v}" && touch ${inputs.w}'),
        {"inputs": {"v": "$(rm -rf /)", "w": "x y"}},
    )
    assert values == ("$(rm -rf /)", "x y")
    assert "rm -rf" not in script
    assert "x y" not in script
    assert script == 'echo "Hello, ${CPF_VALUE_1}" && touch "${CPF_VALUE_2}"'


def test_reference_quoting_depends_on_the_open_quote() -> None:
    context = inputs("v")
    assert shell_script(parse_template("a ${inputs.v}"), context)[0] == 'a "${CPF_VALUE_1}"'
    assert shell_script(parse_template('a "${inputs.v}"'), context)[0] == 'a "${CPF_VALUE_1}"'
    assert shell_script(parse_template("a '${inputs.v}'"), context)[0] == "a ''\"${CPF_VALUE_1}\"''"
    # An escaped quote opens nothing.
    assert shell_script(parse_template("a \\'${inputs.v}"), context)[0] == 'a \\\'"${CPF_VALUE_1}"'


def test_values_are_json_text() -> None:
    _script, values = shell_script(
        parse_template("${inputs.n} ${inputs.b} ${inputs.l} ${inputs.o} ${inputs.z}"),
        {"inputs": {"n": 1.5, "b": True, "l": [1, "a"], "o": {"k": None}, "z": None}},
    )
    assert values == ("1.5", "true", '[1,"a"]', '{"k":null}', "")


def test_missing_value_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(ExpressionError):
        shell_script(parse_template("echo ${inputs.typo}"), inputs("x"))
    with pytest.raises(ExpressionError):
        argv_script((parse_template("${inputs.typo}"),), inputs("x"))


def test_env_reference_reads_the_variable_where_the_step_runs(tmp_path: Path) -> None:
    script, values = shell_script(parse_template('printf %s "${env.HOME}"'), {"inputs": {}})
    assert values == ()
    assert "HOME" in script
    assert run(script, values, tmp_path, {"HOME": "/some/home dir"}) == b"/some/home dir"
    script, values = shell_script(parse_template("printf %s ${env.MY_VAR}"), {})
    assert values == ()
    assert run(script, values, tmp_path, {"MY_VAR": "a  * b"}) == b"a  * b"


def test_env_reference_in_argv(tmp_path: Path) -> None:
    script, values = argv_script(
        (parse_template("printf"), parse_template("%s"), parse_template("<${env.MY_VAR}>")), {}
    )
    assert values == ()
    assert run(script, values, tmp_path, {"MY_VAR": "$(touch x) *"}) == b"<$(touch x) *>"
    assert listing(tmp_path) == []


def test_env_reference_is_not_taken_from_the_context(tmp_path: Path) -> None:
    context = {"env": {"HOME": "from-context"}}
    script, values = shell_script(parse_template("printf %s ${env.HOME}"), context)
    assert values == ()
    assert run(script, values, tmp_path, {"HOME": "real"}) == b"real"


def test_values_and_env_references_mix(tmp_path: Path) -> None:
    script, values = shell_script(
        parse_template('printf "%s|%s|%s" ${inputs.v} "${env.X}" \'${inputs.w}\''),
        {"inputs": {"v": "one two", "w": "it's"}},
    )
    assert values == ("one two", "it's")
    assert run(script, values, tmp_path, {"X": "ex"}) == b"one two|ex|it's"


# --- running the produced scripts ---------------------------------------------------------


@pytest.mark.parametrize("value", ["hello", "two  words", "it's", 'say "hi"', "a*b", "x;y"])
@pytest.mark.parametrize(
    "template", ['echo "${inputs.v}"', "echo ${inputs.v}", "echo '${inputs.v}'"]
)
def test_echo_templates_print_the_value(template: str, value: str, tmp_path: Path) -> None:
    assert shell_output(template, inputs(value), tmp_path) == value.encode() + b"\n"
    assert listing(tmp_path) == []


@pytest.mark.parametrize("value", NASTY)
@pytest.mark.parametrize(
    ("template", "before", "after"),
    [
        ("printf '%s' \"${inputs.v}\"", "", ""),
        ("printf '%s' ${inputs.v}", "", ""),
        ("printf '%s' '${inputs.v}'", "", ""),
        ('printf %s "a${inputs.v}b"', "a", "b"),
        ("printf %s a${inputs.v}b", "a", "b"),
        ("printf %s 'a${inputs.v}b'", "a", "b"),
        ('printf %s "it\'s ${inputs.v}"', "it's ", ""),
        ("printf %s 'say \"${inputs.v}\"'", 'say "', '"'),
        ('printf %s "q\\"${inputs.v}"', 'q"', ""),
        ('x=${inputs.v}; printf %s "$x"', "", ""),
        ('printf %s "${inputs.v}" # it\'s a comment', "", ""),
    ],
)
def test_shell_script_prints_exactly_the_value(
    template: str, before: str, after: str, value: str, tmp_path: Path
) -> None:
    assert shell_output(template, inputs(value), tmp_path) == (before + value + after).encode()
    assert listing(tmp_path) == []


@pytest.mark.parametrize("value", NASTY)
def test_several_values_in_one_script(value: str, tmp_path: Path) -> None:
    output = shell_output(
        "printf '%s|' ${inputs.v} \"${inputs.v}\" '${inputs.v}' ${inputs.w}",
        {"inputs": {"v": value, "w": "end"}},
        tmp_path,
    )
    assert output == f"{value}|{value}|{value}|end|".encode()
    assert listing(tmp_path) == []


@pytest.mark.parametrize("value", NASTY)
def test_argv_script_passes_each_item_as_one_argument(value: str, tmp_path: Path) -> None:
    assert argv_output(["printf", "%s", "${inputs.v}"], inputs(value), tmp_path) == value.encode()
    assert argv_output(["printf", "%s", "<${inputs.v}>"], inputs(value), tmp_path) == (
        f"<{value}>".encode()
    )
    assert argv_output(["printf", "[%s]", "${inputs.v}", "x y"], inputs(value), tmp_path) == (
        f"[{value}][x y]".encode()
    )
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "item", ["$(touch pwned)", "; touch pwned", "*", "it's", "`touch pwned`", "a b", "$HOME", ""]
)
def test_argv_literal_items_are_not_shell_syntax(item: str, tmp_path: Path) -> None:
    (tmp_path / "existing").write_text("")
    assert argv_output(["printf", "%s|", item], {}, tmp_path) == f"{item}|".encode()
    assert listing(tmp_path) == ["existing"]


def test_argv_literal_dollar_dollar_brace(tmp_path: Path) -> None:
    assert argv_output(["printf", "%s", "$${inputs.v}"], inputs("no"), tmp_path) == b"${inputs.v}"


def test_argv_values_are_json_text(tmp_path: Path) -> None:
    context = {"inputs": {"v": [1, "two"], "n": None, "b": False}}
    output = argv_output(
        ["printf", "%s|", "${inputs.v}", "${inputs.n}", "${inputs.b}"], context, tmp_path
    )
    assert output == b'[1,"two"]||false|'


def test_value_inside_quoted_command_substitution_is_one_word(tmp_path: Path) -> None:
    # `"$(cmd "${x}")"` is the correctly quoted shell idiom; the value must stay one word,
    # unsplit and unglobbed, inside the substitution too.
    (tmp_path / "existing").write_text("")
    value = "a  *  b"
    output = shell_output('printf %s "$(printf %s "${inputs.v}")"', inputs(value), tmp_path)
    assert output == value.encode()


def test_value_in_unquoted_heredoc_is_the_plain_value(tmp_path: Path) -> None:
    output = shell_output("cat <<EOF\n${inputs.v}\nEOF\n", inputs("it's $HOME"), tmp_path)
    assert output == b"it's $HOME\n"


# --- list commands: a sequence ------------------------------------------------------------


def run_status(script: str, values: tuple[str, ...], cwd: Path) -> tuple[int, bytes]:
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    environment.update({value_variable(i): v for i, v in enumerate(values, 1)})
    process = subprocess.run(
        [SHELL, "-c", script], env=environment, cwd=cwd, capture_output=True, check=False
    )
    return process.returncode, process.stdout


def sequence(items: list[str], context: dict[str, Any], cwd: Path) -> tuple[int, bytes]:
    script, values = sequence_script(tuple(parse_template(item) for item in items), context)
    return run_status(script, values, cwd)


def test_sequence_runs_every_item_in_order(tmp_path: Path) -> None:
    assert sequence(["echo one", "echo two", "echo three"], {}, tmp_path) == (
        0,
        b"one\ntwo\nthree\n",
    )


def test_sequence_stops_at_the_first_failing_item_with_its_exit_code(tmp_path: Path) -> None:
    status, output = sequence(["echo one", "exit 7", "echo never"], {}, tmp_path)
    assert (status, output) == (7, b"one\n")
    status, output = sequence(["echo one", "sh -c 'exit 4'; false", "echo never"], {}, tmp_path)
    assert (status, output) == (1, b"one\n")


def test_sequence_items_are_separate_commands(tmp_path: Path) -> None:
    # A trailing comment, `;` or `||` in one item never reaches into the next.
    items = ["echo a # a note", "false || echo b", "echo c;", "cat <<EOF\nd\nEOF"]
    assert sequence(items, {}, tmp_path) == (0, b"a\nb\nc\nd\n")


def test_sequence_numbers_values_across_items() -> None:
    script, values = sequence_script(
        (parse_template("echo ${inputs.v}"), parse_template("echo '${inputs.w}'")),
        {"inputs": {"v": "x y", "w": 2}},
    )
    assert values == ("x y", "2")
    assert script == "{ echo \"${CPF_VALUE_1}\"\n} && { echo ''\"${CPF_VALUE_2}\"''\n}"


@pytest.mark.parametrize("value", NASTY)
def test_sequence_items_keep_values_out_of_the_code(value: str, tmp_path: Path) -> None:
    items = [
        "printf '%s|' ${inputs.v}",
        "printf '%s|' \"${inputs.v}\"",
        "printf '%s|' '${inputs.v}'",
        "cat <<EOF\n${inputs.v}\nEOF",
    ]
    status, output = sequence(items, inputs(value), tmp_path)
    assert (status, output) == (0, f"{value}|{value}|{value}|{value}\n".encode())
    assert listing(tmp_path) == []


def test_sequence_missing_value_is_an_error() -> None:
    with pytest.raises(ExpressionError):
        sequence_script((parse_template("true"), parse_template("echo ${inputs.typo}")), {})


# --- properties ---------------------------------------------------------------------------

shell_text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    max_size=40,
) | st.lists(
    st.sampled_from(
        [
            "'",
            '"',
            "$",
            "`",
            "\n",
            "*",
            ";",
            "\\",
            "(",
            ")",
            "{",
            "}",
            " ",
            "a",
            "&",
            "|",
            "~",
            "#",
            "-",
        ]
    ),
    max_size=20,
).map("".join)

TEMPLATES = [
    ("printf '%s' \"${inputs.v}\"", "{}"),
    ("printf '%s' ${inputs.v}", "{}"),
    ("printf '%s' '${inputs.v}'", "{}"),
    ('printf %s "a${inputs.v}b"', "a{}b"),
    ("printf %s x'${inputs.v}'\"${inputs.v}\"${inputs.v}y", "x{}{}{}y"),
]


@PROPERTY
@given(value=shell_text, choice=st.sampled_from(TEMPLATES))
def test_any_value_comes_out_byte_identical(value: str, choice: tuple[str, str]) -> None:
    template, expected = choice
    with tempfile.TemporaryDirectory() as folder:
        output = shell_output(template, inputs(value), Path(folder))
        assert output == expected.replace("{}", value).encode()
        assert listing(Path(folder)) == []


@PROPERTY
@given(values=st.lists(shell_text, min_size=1, max_size=4))
def test_any_values_as_argv_come_out_byte_identical(values: list[str]) -> None:
    context = {"inputs": {f"v{i}": value for i, value in enumerate(values)}}
    items = ["printf", "%s\\0"] + [f"${{inputs.v{i}}}" for i in range(len(values))]
    with tempfile.TemporaryDirectory() as folder:
        output = argv_output(items, context, Path(folder))
        assert output.split(b"\0")[:-1] == [value.encode() for value in values]
        assert listing(Path(folder)) == []


@PROPERTY
@given(
    literal=shell_text.filter(lambda text: "${" not in text and not text.endswith("$")),
    value=shell_text,
)
def test_argv_literal_text_and_values_come_out_byte_identical(literal: str, value: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        output = argv_output(
            ["printf", "%s", literal + "${inputs.v}" + literal], inputs(value), Path(folder)
        )
        assert output == (literal + value + literal).encode()
        assert listing(Path(folder)) == []


@PROPERTY
@given(values=st.lists(shell_text, min_size=1, max_size=4))
def test_any_values_in_a_sequence_come_out_byte_identical(values: list[str]) -> None:
    context = {"inputs": {f"v{i}": value for i, value in enumerate(values)}}
    items = [f"printf '%s\\0' \"${{inputs.v{i}}}\"" for i in range(len(values))]
    with tempfile.TemporaryDirectory() as folder:
        status, output = sequence(items, context, Path(folder))
        assert status == 0
        assert output.split(b"\0")[:-1] == [value.encode() for value in values]
        assert listing(Path(folder)) == []
