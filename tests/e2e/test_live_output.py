"""Live output: at a terminal (or with --live / CPF_LIVE=1) the lines running steps print
reach stderr as they come, each after its step key; stdout stays one envelope, what is
stored does not change, and --quiet, LLM=true, --no-live and CPF_LIVE=0 silence it."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from conftest import CPF, ENVELOPE
from e2e_helpers import doc, step_output

ANSI = re.compile(r"\x1b\[[0-9;]*m")
GUARD = 120.0  # seconds; only stops a hang from stalling the suite


def handshake(cwd: Path, then: str = "") -> str:
    """A step that prints a line, then waits until the test has seen it (the file `go`
    appears), so the line can only have been seen while the step ran."""
    return f"""
    id: live
    steps:
      - id: build
        kind: cli
        command: echo first; n=0; while [ ! -e {cwd}/go ] && [ $n -lt 3000 ]; do n=$((n+1)); sleep 0.05; done; echo second
    {then}
    """


def read_until(fd: int, needle: str, seen: bytearray, guard: float = GUARD) -> str:
    """Read `fd` into `seen` until its text (without colours and carriage returns) holds
    `needle`, or until the end; returns that text."""
    deadline = time.monotonic() + guard
    while needle not in _text(seen):
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} did not come within {guard} s: {_text(seen)!r}")
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # a terminal whose other side closed
            chunk = b""
        if not chunk:
            break
        seen.extend(chunk)
    return _text(seen)


def _text(data: bytes | bytearray) -> str:
    return ANSI.sub("", bytes(data).decode(errors="replace")).replace("\r\n", "\n")


def start_on_a_terminal(cpf, *args: str, env: dict[str, str] | None = None):
    """`cpf` with its stderr on a pseudo-terminal and its stdout on a pipe."""
    terminal, other_end = pty.openpty()
    process = subprocess.Popen(
        [CPF, *args],
        cwd=cpf.cwd,
        env={**cpf.env, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=other_end,
    )
    os.close(other_end)
    return process, terminal


def finish_on_a_terminal(process, terminal: int, seen: bytearray) -> tuple[dict, str]:
    """The envelope on stdout (checked against the schema) and all the terminal showed."""
    try:
        stdout, _ = process.communicate(timeout=GUARD)
        text = read_until(terminal, "\0never\0", seen)
    finally:
        process.kill()
        os.close(terminal)
    envelope = json.loads(stdout)
    ENVELOPE(envelope)
    assert envelope["exit_code"] == process.returncode
    return envelope, text


def test_a_terminal_sees_step_output_live_and_stdout_stays_one_envelope(cpf):
    cpf.write("wf.yaml", doc(handshake(cpf.cwd)))
    process, terminal = start_on_a_terminal(cpf, "run", "-f", "wf.yaml")
    seen = bytearray()
    try:
        shown = read_until(terminal, "build | first\n", seen)
        assert "second" not in shown  # the step is still running
        (cpf.cwd / "go").touch()
    finally:
        envelope, text = finish_on_a_terminal(process, terminal, seen)
    assert envelope["status"] == "completed" and envelope["exit_code"] == 0
    lines = text.splitlines()
    assert lines.index("build | first") < lines.index("build | second")
    assert lines.index("cpf: step build started") < lines.index("build | first")
    assert any(line.startswith("cpf: step build exited 0") for line in lines)
    assert "\x1b[" in bytes(seen).decode()  # a terminal gets colour
    stored = step_output(cpf, envelope["run_id"], "build")
    assert stored == "first\nsecond\n"  # what is stored is the step's own output


def test_at_a_terminal_quiet_llm_and_no_live_keep_step_output_off_stderr(cpf):
    cpf.write("wf.yaml", doc("id: q\nsteps:\n  - {id: say, kind: cli, command: echo hello}\n"))
    for args, env, progress in [
        (["--quiet"], {}, False),
        ([], {"LLM": "true"}, False),
        (["--no-live"], {}, True),
        ([], {"CPF_LIVE": "0"}, True),
    ]:
        process, terminal = start_on_a_terminal(cpf, "run", "-f", "wf.yaml", *args, env=env)
        envelope, text = finish_on_a_terminal(process, terminal, bytearray())
        assert envelope["status"] == "completed"
        assert "say | hello" not in text, (args, env)
        assert ("cpf: step say started" in text) == progress, (args, env, text)


SEVERAL = """
id: several
steps:
  - id: checks
    kind: parallel
    branches:
      - id: left
        steps:
          - id: noisy
            kind: cli
            command: >-
              for i in $(seq 1 300); do printf 'left %03d ' $i; printf '%0100d\\n' 0; done
      - id: right
        steps:
          - id: noisy
            kind: cli
            command: >-
              for i in $(seq 1 300); do printf 'right %03d ' $i; printf '%0100d\\n' 0; done
"""


def test_parallel_branches_show_whole_lines_after_their_step_keys(cpf):
    cpf.write("wf.yaml", doc(SEVERAL))
    result = cpf("run", "-f", "wf.yaml", "--live")
    assert result.exit_code == 0
    shown = [line for line in result.stderr.splitlines() if not line.startswith("cpf: ")]
    zeros = "0" * 100
    for side in ("left", "right"):
        mine = [line for line in shown if line.startswith(f"checks.{side}.noisy | ")]
        expected = [f"checks.{side}.noisy | {side} {i:03d} {zeros}" for i in range(1, 301)]
        assert mine == expected  # every line whole and in order
    assert len(shown) == 600
    assert "left" not in result.stdout and "right 001" not in result.stdout


def test_live_output_is_asked_for_by_flag_or_environment_and_off_on_a_pipe(cpf):
    cpf.write("wf.yaml", doc("id: q\nsteps:\n  - {id: say, kind: cli, command: echo hello}\n"))
    assert "say | hello" not in cpf("run", "-f", "wf.yaml").stderr
    assert "say | hello" in cpf("run", "-f", "wf.yaml", "--live").stderr
    assert "say | hello" in cpf("run", "-f", "wf.yaml", env={"CPF_LIVE": "1"}).stderr
    assert (
        "say | hello" not in cpf("run", "-f", "wf.yaml", "--no-live", env={"CPF_LIVE": "1"}).stderr
    )
    assert cpf("run", "-f", "wf.yaml", "--live", "--quiet").stderr == ""
    assert cpf("run", "-f", "wf.yaml", "--live", env={"LLM": "true"}).stderr == ""


SECRET_AND_COLOUR = r"""
id: careful
steps:
  - id: say
    kind: cli
    command: >-
      echo "token ${env.API_TOKEN} used"; printf '\033[31mred\033[0m\n'; printf 'a\rb\n'
"""


def test_secrets_are_masked_and_control_characters_dropped_on_a_pipe(cpf):
    cpf.write("wf.yaml", doc(SECRET_AND_COLOUR))
    secret = "s3cr3t-value-42"
    result = cpf("run", "-f", "wf.yaml", "--live", env={"API_TOKEN": secret})
    assert result.exit_code == 0
    assert secret not in result.stderr
    lines = result.stderr.splitlines()
    assert "say | token *** used" in lines
    assert "say | red" in lines and "say | b" in lines
    stored = step_output(cpf, result.envelope["run_id"], "say")
    assert secret not in stored and "\x1b[31mred" in stored  # stored as printed, masked


def test_resume_retry_and_recover_take_the_option_too(cpf):
    body = """
    id: again
    steps:
      - id: ask
        kind: await_event
        audience: user
        event_name: go
        input_schema: {type: object}
      - id: say
        kind: cli
        command: echo "after the answer"; exit 1
    """
    cpf.write("wf.yaml", doc(body))
    run_id = cpf("run", "-f", "wf.yaml").envelope["run_id"]
    resumed = cpf("resume", "--run-id", run_id, "--event", "go", "--live")
    assert resumed.exit_code == 30 and "say | after the answer" in resumed.stderr
    retried = cpf("retry", "--run-id", run_id, "--live")
    assert retried.exit_code == 30 and "say | after the answer" in retried.stderr
    assert cpf("recover", "--run-id", run_id, "--live").error_code == "ERR_RUN_NOT_INTERRUPTED"


def test_a_step_that_prints_more_than_can_be_shown_is_stored_whole(cpf):
    body = "id: loud\nsteps:\n  - {id: loud, kind: cli, command: 'yes y | head -c 3000000'}\n"
    cpf.write("wf.yaml", doc(body))
    result = cpf("run", "-f", "wf.yaml", "--live")
    assert result.exit_code == 0
    assert len(step_output(cpf, result.envelope["run_id"], "loud")) == 3_000_000
    shown = [line for line in result.stderr.splitlines() if not line.startswith("cpf: ")]
    assert all(line == "loud | y" or "bytes not shown" in line for line in shown)
