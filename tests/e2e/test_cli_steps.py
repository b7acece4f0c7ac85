"""The fields of a cli step: command forms, shell, cwd, env, outputs, success codes,
timeouts, retries and strict templates."""

from __future__ import annotations

import json
import os
import time

import pytest
from e2e_helpers import inspect, start, step_output


def one_step(step: str, extra: str = "") -> str:
    """A workflow with a single cli step `s` given as indented YAML lines."""
    lines = "\n".join("    " + line for line in step.strip("\n").splitlines())
    return f"id: one\n{extra}steps:\n  - id: s\n    kind: cli\n{lines}\n"


def test_string_command_output_is_captured(cpf):
    result = start(cpf, one_step("command: echo hello; echo oops >&2"))
    assert result.exit_code == 0
    run_id = result.envelope["run_id"]
    assert step_output(cpf, run_id, "s") == "hello\n"
    assert step_output(cpf, run_id, "s", stream="stderr") == "oops\n"


def test_argv_items_are_single_arguments(cpf):
    step = """argv: ["printf", "%s|", "a b", "${inputs.x}"]"""
    result = start(cpf, one_step(step), {"x": "c  d;e"})
    assert result.exit_code == 0
    assert step_output(cpf, result.envelope["run_id"], "s") == "a b|c  d;e|"


def test_argv_has_no_shell_syntax(cpf):
    step = """argv: ["echo", "$HOME", "*", ">", "out.txt", "$(id)"]"""
    result = start(cpf, one_step(step))
    assert result.exit_code == 0
    assert step_output(cpf, result.envelope["run_id"], "s") == "$HOME * > out.txt $(id)\n"
    assert not (cpf.cwd / "out.txt").exists()


def test_argv_mixed_text_and_expression(cpf):
    step = """argv: ["printf", "%s", "pre-${inputs.x}-post"]"""
    result = start(cpf, one_step(step), {"x": "mid dle"})
    assert step_output(cpf, result.envelope["run_id"], "s") == "pre-mid dle-post"


def test_shell_bash(cpf):
    step = """
shell: bash
command: "[[ 1 == 1 ]] && echo bash-ok"
"""
    result = start(cpf, one_step(step))
    assert result.exit_code == 0, result.envelope
    assert step_output(cpf, result.envelope["run_id"], "s") == "bash-ok\n"


def test_default_shell_is_posix_sh_without_bashisms(cpf):
    result = start(cpf, one_step('command: "[[ 1 == 1 ]] && echo bash-ok"'))
    assert result.exit_code == 30
    assert result.error_code == "ERR_STEP_FAILED"


def test_shell_with_words_is_split(cpf):
    step = """
shell: "bash -e"
command: "false; echo should-not-print"
"""
    result = start(cpf, one_step(step))
    assert result.exit_code == 30
    assert result.error_code == "ERR_STEP_FAILED"
    # nothing was printed, so no output file was kept
    assert not (cpf.run_folder(result.envelope["run_id"]) / "steps" / "s").exists()


def test_workflow_default_shell_applies_to_all_steps(cpf):
    body = """
id: d
defaults:
  shell: bash
steps:
  - id: a
    kind: cli
    command: "[[ a == a ]] && echo one"
  - id: b
    kind: cli
    command: 'test -n "$BASH_VERSION" && echo two'
"""
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    run_id = result.envelope["run_id"]
    assert step_output(cpf, run_id, "a") == "one\n"
    assert step_output(cpf, run_id, "b") == "two\n"


def test_step_shell_overrides_default(cpf):
    body = """
id: d
defaults:
  shell: bash
steps:
  - id: a
    kind: cli
    shell: sh
    command: 'test -z "$BASH_VERSION" && echo no-bash'
"""
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    assert step_output(cpf, result.envelope["run_id"], "a") == "no-bash\n"


def test_relative_cwd(cpf):
    (cpf.cwd / "sub" / "deeper").mkdir(parents=True)
    result = start(cpf, one_step("cwd: sub/deeper\ncommand: pwd"))
    assert result.exit_code == 0
    printed = step_output(cpf, result.envelope["run_id"], "s").strip()
    assert os.path.realpath(printed) == os.path.realpath(cpf.cwd / "sub" / "deeper")


def test_absolute_cwd_with_interpolation(cpf, tmp_path):
    target = tmp_path / "some where"
    target.mkdir()
    result = start(cpf, one_step("cwd: ${inputs.dir}\ncommand: pwd"), {"dir": str(target)})
    assert result.exit_code == 0, result.envelope
    printed = step_output(cpf, result.envelope["run_id"], "s").strip()
    assert os.path.realpath(printed) == os.path.realpath(target)


def test_missing_cwd_fails_the_step(cpf):
    result = start(cpf, one_step("cwd: does-not-exist\ncommand: pwd"))
    assert result.exit_code == 30
    assert result.error_code == "ERR_STEP_FAILED"
    assert "does-not-exist" in result.envelope["error"]["message"]


def test_env_values_reach_the_command(cpf):
    step = """
env:
  GREETING: hello
  WHO: ${inputs.who}
  MIXED: "n=${inputs.n}"
  FLAG: true
  NUM: 3
command: 'printf "%s|%s|%s|%s|%s" "$GREETING" "$WHO" "$MIXED" "$FLAG" "$NUM"'
"""
    result = start(cpf, one_step(step), {"who": "ann lee", "n": 4})
    assert result.exit_code == 0, result.envelope
    assert step_output(cpf, result.envelope["run_id"], "s") == "hello|ann lee|n=4|true|3"


# --- outputs -------------------------------------------------------------------------------

OUTPUTS = """
outputs:
  type: object
  required: [n]
  properties:
    n: {type: integer}
"""


def q(command: str) -> str:
    """A command as a YAML scalar (JSON strings are YAML double-quoted scalars)."""
    return json.dumps(command)


def test_outputs_schema_accepts_matching_json(cpf):
    body = (
        "id: o\nsteps:\n  - id: s\n    kind: cli\n    command: " + q("""echo '{"n": 5}'""") + "\n"
        "    outputs: {type: object, required: [n], properties: {n: {type: integer}}}\n"
        "  - id: e\n    kind: end\n    result: ${steps.s.outputs.n}\n"
    )
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == 5
    assert inspect(cpf, result.envelope["run_id"])["step_outputs"]["s"] == {"n": 5}


@pytest.mark.parametrize(
    "command",
    [
        "echo not json",
        "true",
        """echo '{"n": "five"}'""",
        "echo '{}'",
        "printf '\\377\\376'",
        """echo '{"n": 1} {"n": 2}'""",
    ],
    ids=["text", "empty", "wrong-type", "missing-key", "non-utf8", "two-values"],
)
def test_outputs_schema_rejects_bad_stdout(cpf, command):
    result = start(cpf, one_step(f"command: {q(command)}\n" + OUTPUTS))
    assert result.exit_code == 30, result.envelope
    assert result.error_code == "ERR_STEP_OUTPUT_INVALID"
    assert result.envelope["error"]["step_id"] == "s"
    assert result.envelope["status"] == "failed"


def test_without_outputs_json_stdout_still_becomes_outputs(cpf):
    body = (
        "id: o\nsteps:\n  - id: s\n    kind: cli\n    command: "
        + q("""echo '{"k": [1, 2]}'""")
        + "\n"
        "  - id: e\n    kind: end\n    result: ${steps.s.outputs.k}\n"
    )
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == [1, 2]


def test_without_outputs_plain_text_gives_null_outputs(cpf):
    body = (
        "id: o\nsteps:\n  - id: s\n    kind: cli\n    command: echo just words\n"
        "  - id: e\n    kind: end\n    result:\n      out: ${steps.s.outputs}\n"
        "      none: ${steps.s.outputs == null}\n"
    )
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == {"out": None, "none": True}


# --- success codes -------------------------------------------------------------------------


def test_success_exit_codes_allow_other_codes(cpf):
    result = start(cpf, one_step("command: exit 3\nsuccess: {exit_codes: [0, 3]}"))
    assert result.exit_code == 0, result.envelope
    assert result.envelope["status"] == "completed"


def test_success_exit_codes_exclude_zero(cpf):
    result = start(cpf, one_step("command: exit 0\nsuccess: {exit_codes: [3]}"))
    assert result.exit_code == 30
    assert result.error_code == "ERR_STEP_FAILED"


def test_nonzero_exit_fails_and_stops_the_run(cpf):
    body = (
        "id: f\nsteps:\n  - id: a\n    kind: cli\n    command: exit 7\n"
        "  - id: b\n    kind: cli\n    command: touch reached\n"
    )
    result = start(cpf, body)
    assert result.exit_code == 30
    assert result.envelope["status"] == "failed"
    assert result.error_code == "ERR_STEP_FAILED"
    assert result.envelope["error"]["step_id"] == "a"
    assert result.envelope["ok"] is False
    assert not (cpf.cwd / "reached").exists()


# --- timeouts ------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_timeout_kills_the_whole_process_group(cpf):
    step = """
timeout_seconds: 1
command: "sh -c 'sleep 30 & echo $! > child.pid; wait'"
"""
    result = start(cpf, one_step(step))
    assert result.exit_code == 30, result.envelope
    assert result.error_code == "ERR_TIMEOUT"
    pid = int((cpf.cwd / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid), "the background child of a timed-out step is still running"


def test_timeout_zero_means_no_limit(cpf):
    result = start(cpf, one_step("timeout_seconds: 0\ncommand: sleep 0.3; echo finished"))
    assert result.exit_code == 0, result.envelope
    assert step_output(cpf, result.envelope["run_id"], "s") == "finished\n"


def test_fast_command_within_timeout_succeeds(cpf):
    result = start(cpf, one_step("timeout_seconds: 30\ncommand: echo quick"))
    assert result.exit_code == 0


# --- retry ---------------------------------------------------------------------------------

FLAKY = """
retry: {max_attempts: 3, backoff_seconds: 0}
command: "echo try >> attempts.txt; echo try; test $(wc -l < attempts.txt) -ge 3"
"""


def test_retry_until_success(cpf):
    result = start(cpf, one_step(FLAKY))
    assert result.exit_code == 0, result.envelope
    run_id = result.envelope["run_id"]
    assert (cpf.cwd / "attempts.txt").read_text().count("try") == 3
    state = inspect(cpf, run_id)["state"]
    attempts = state["steps"]["s"]["attempts"]
    assert [attempt["exit_code"] for attempt in attempts] == [1, 1, 0]
    for number, attempt in enumerate(attempts, 1):
        stdout = cpf.run_folder(run_id) / "steps" / "s" / f"{number}.stdout"
        assert stdout.read_text() == "try\n"
        assert attempt["stdout"] == f"steps/s/{number}.stdout"
        # stderr stayed empty: no file, and the state says so
        assert attempt["stderr"] is None
        assert not (cpf.run_folder(run_id) / "steps" / "s" / f"{number}.stderr").exists()
    rows = [row for row in inspect(cpf, run_id)["step_results"] if row["step_id"] == "s"]
    assert [row["exit_code"] for row in rows] == [1, 1, 0]


def test_retry_exhausted(cpf):
    step = "retry: {max_attempts: 4, backoff_seconds: 0}\ncommand: echo x >> count.txt; exit 1"
    result = start(cpf, one_step(step))
    assert result.exit_code == 30
    assert result.error_code == "ERR_STEP_FAILED"
    assert (cpf.cwd / "count.txt").read_text().count("x") == 4


def test_retry_exponential_strategy_accepted(cpf):
    step = FLAKY.replace("backoff_seconds: 0", "backoff_seconds: 0, strategy: exponential")
    result = start(cpf, one_step(step))
    assert result.exit_code == 0, result.envelope
    assert (cpf.cwd / "attempts.txt").read_text().count("try") == 3


def test_no_retry_by_default(cpf):
    result = start(cpf, one_step("command: echo x >> count.txt; exit 1"))
    assert result.exit_code == 30
    assert (cpf.cwd / "count.txt").read_text().count("x") == 1


# --- strict templates ----------------------------------------------------------------------


def test_missing_path_in_command_is_an_expression_error(cpf):
    result = start(cpf, one_step("command: echo ${inputs.missing} > ran.txt"))
    assert result.exit_code == 30
    assert result.error_code == "ERR_EXPRESSION"
    assert result.envelope["error"]["step_id"] == "s"
    assert not (cpf.cwd / "ran.txt").exists()


def test_missing_path_in_env_is_an_expression_error(cpf):
    result = start(cpf, one_step("env: {X: '${inputs.nope}'}\ncommand: touch ran.txt"))
    assert (result.exit_code, result.error_code) == (30, "ERR_EXPRESSION")
    assert not (cpf.cwd / "ran.txt").exists()


def test_missing_path_in_argv_is_an_expression_error(cpf):
    result = start(cpf, one_step('argv: ["touch", "${inputs.nope}", "ran.txt"]'))
    assert (result.exit_code, result.error_code) == (30, "ERR_EXPRESSION")
    assert not (cpf.cwd / "ran.txt").exists()


def test_missing_path_in_a_later_list_item_runs_no_item(cpf):
    result = start(cpf, one_step('command: ["touch ran.txt", "touch ${inputs.nope}"]'))
    assert (result.exit_code, result.error_code) == (30, "ERR_EXPRESSION")
    assert not (cpf.cwd / "ran.txt").exists()


def test_null_value_renders_as_empty_text(cpf):
    result = start(cpf, one_step('command: printf "[%s]" "${inputs.x}"'), {"x": None})
    assert result.exit_code == 0, result.envelope
    assert step_output(cpf, result.envelope["run_id"], "s") == "[]"


def test_structured_values_render_as_json(cpf):
    result = start(cpf, one_step('command: printf "%s" "${inputs.x}"'), {"x": {"a": [1, True]}})
    assert step_output(cpf, result.envelope["run_id"], "s") == '{"a":[1,true]}'


def test_dollar_dollar_escape_is_a_literal(cpf):
    result = start(cpf, one_step("command: printf '%s' '$${inputs.x}'"), {"x": "no"})
    assert result.exit_code == 0, result.envelope
    assert step_output(cpf, result.envelope["run_id"], "s") == "${inputs.x}"
