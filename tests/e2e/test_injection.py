"""Input values are data, never shell code: whatever a value holds, the command sees
exactly that text and nothing else runs."""

from __future__ import annotations

import json

import pytest
from e2e_helpers import start, step_output

NASTY = [
    'x"; touch pwned; echo "',
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    "\ntouch pwned",
    "a\ntouch pwned\n",
    "*",
    "$HOME",
    "${HOME}",
    "a && touch pwned",
    "| touch pwned",
    "-n",
    "\\",
    '"',
    "'",
    "  spaced  out  ",
]
IDS = [
    "dquote-break",
    "subshell",
    "backticks",
    "squote-break",
    "newline",
    "newlines",
    "glob",
    "dollar-var",
    "braced-var",
    "and",
    "pipe",
    "dash-n",
    "backslash",
    "lone-dquote",
    "lone-squote",
    "spaces",
]


def assert_clean(cpf) -> None:
    found = [str(path) for path in cpf.cwd.rglob("pwned")]
    found += [str(path) for path in cpf.root.rglob("pwned")]
    assert found == [], f"injected command ran: {found}"


def run_one(cpf, command_yaml: str, value: str, extra: str = "", field: str = "command") -> str:
    """Run a single step `s` with inputs.name = value; return its stdout."""
    body = f"id: inj\nsteps:\n  - id: s\n    kind: cli\n{extra}    {field}: {command_yaml}\n"
    (cpf.cwd / "a-file.txt").write_text("glob target\n")
    result = start(cpf, body, {"name": value})
    assert result.exit_code == 0, result.envelope
    assert_clean(cpf)
    return step_output(cpf, result.envelope["run_id"], "s")


@pytest.mark.parametrize("value", NASTY, ids=IDS)
def test_inside_double_quotes(cpf, value):
    out = run_one(cpf, json.dumps('printf "%s" "Hello, ${inputs.name}"'), value)
    assert out == f"Hello, {value}"


@pytest.mark.parametrize("value", NASTY, ids=IDS)
def test_bare_word(cpf, value):
    out = run_one(cpf, json.dumps("printf '[%s]' ${inputs.name}"), value)
    assert out == f"[{value}]"


@pytest.mark.parametrize("value", NASTY, ids=IDS)
def test_inside_single_quotes(cpf, value):
    out = run_one(cpf, json.dumps("printf '[%s]' '${inputs.name}'"), value)
    assert out == f"[{value}]"


# `echo` itself treats a leading -n and backslashes specially, so those values are covered
# by the printf forms above only.
ECHO_SAFE = [(v, i) for v, i in zip(NASTY, IDS, strict=True) if v != "-n" and "\\" not in v]


@pytest.mark.parametrize("value", [v for v, _ in ECHO_SAFE], ids=[i for _, i in ECHO_SAFE])
@pytest.mark.parametrize(
    ("command", "shape"),
    [
        ('echo "Hello, ${inputs.name}"', "Hello, {}\n"),
        ("echo ${inputs.name}", "{}\n"),
        ("echo '${inputs.name}'", "{}\n"),
    ],
    ids=["double-quoted", "bare", "single-quoted"],
)
def test_echo_forms(cpf, value, command, shape):
    out = run_one(cpf, json.dumps(command), value)
    assert out == shape.format(value)


@pytest.mark.parametrize("value", NASTY, ids=IDS)
def test_argv(cpf, value):
    out = run_one(cpf, json.dumps(["printf", "[%s]", "${inputs.name}"]), value, field="argv")
    assert out == f"[{value}]"


@pytest.mark.parametrize("value", NASTY, ids=IDS)
def test_list_command_items(cpf, value):
    items = [
        'printf "[%s]" "${inputs.name}"',
        "printf '[%s]' ${inputs.name}",
        "printf '[%s]' '${inputs.name}'",
    ]
    out = run_one(cpf, json.dumps(items), value)
    assert out == f"[{value}]" * 3


@pytest.mark.parametrize("value", NASTY, ids=IDS)
def test_env_value(cpf, value):
    extra = '    env:\n      V: "${inputs.name}"\n'
    out = run_one(cpf, json.dumps('printf "[%s]" "$V"'), value, extra)
    assert out == f"[{value}]"


@pytest.mark.parametrize("value", NASTY, ids=IDS)
def test_cwd_value(cpf, value):
    if "\n" in value or value.strip() in ("", "-n", "*") or "/" in value:
        folder_name = "dir " + value.replace("\n", "_").replace("/", "_")
    else:
        folder_name = value
    if folder_name in (".", ".."):
        folder_name = "dir" + folder_name
    target = cpf.cwd / "dirs" / folder_name
    target.mkdir(parents=True)
    body = (
        "id: inj\nsteps:\n  - id: s\n    kind: cli\n"
        '    cwd: "dirs/${inputs.name}"\n    command: pwd\n'
    )
    result = start(cpf, body, {"name": folder_name})
    assert result.exit_code == 0, result.envelope
    assert_clean(cpf)
    out = step_output(cpf, result.envelope["run_id"], "s")
    assert out == str(target.resolve()) + "\n"


def test_many_values_in_one_command(cpf):
    body = """
id: multi
steps:
  - id: s
    kind: cli
    command: printf '%s|' ${inputs.a} "${inputs.b}" '${inputs.c}' x${inputs.d}y
"""
    values = {"a": "$(touch pwned)", "b": '"; touch pwned; "', "c": "'; touch pwned; '", "d": " * "}
    result = start(cpf, body, values)
    assert result.exit_code == 0, result.envelope
    assert_clean(cpf)
    out = step_output(cpf, result.envelope["run_id"], "s")
    assert out == f"{values['a']}|{values['b']}|{values['c']}|x{values['d']}y|"


def test_step_outputs_are_data_too(cpf):
    body = """
id: chain
steps:
  - id: make
    kind: cli
    command: |-
      printf '{"v": "$(touch pwned); `touch pwned`"}'
  - id: use
    kind: cli
    command: printf '%s' ${steps.make.outputs.v}
"""
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    assert_clean(cpf)
    out = step_output(cpf, result.envelope["run_id"], "use")
    assert out == "$(touch pwned); `touch pwned`"


def test_event_data_is_data(cpf):
    body = """
id: ev
steps:
  - id: ask
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
  - id: use
    kind: cli
    command: printf '%s' "${steps.ask.outputs.text}"
"""
    from e2e_helpers import resume

    run_id = start(cpf, body).envelope["run_id"]
    value = '"; touch pwned; $(touch pwned) `touch pwned`'
    done = resume(cpf, run_id, "go", {"text": value})
    assert done.exit_code == 0, done.envelope
    assert_clean(cpf)
    assert step_output(cpf, run_id, "use") == value
