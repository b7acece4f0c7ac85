"""`cpf logs`: events in order with when steps started and waits began, per step,
captured output, and following a running run with its steps' output."""

from __future__ import annotations

import subprocess
import time

from conftest import CPF, check_output
from e2e_helpers import doc, resume, start
from ops_helpers import completed_run, failed_run, waiting_run
from test_live_output import handshake, read_until

RETRIES = """
id: retries
steps:
  - id: flaky
    kind: cli
    command: echo "try"; echo "bad" >&2; exit 1
    retry: {max_attempts: 2}
"""

SLOW = """
id: slow
steps:
  - id: one
    kind: cli
    command: sleep 0.6; echo one
  - id: two
    kind: cli
    command: sleep 0.6; echo two
  - id: ask
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
"""

BIG = """
id: big
steps:
  - id: loud
    kind: cli
    command: head -c 5000 /dev/zero | tr '\\0' x
"""


def events(result):
    return result.envelope["result"]["events"]


def test_events_in_order_with_step_and_summary(cpf):
    run_id = completed_run(cpf)
    result = cpf("logs", "--run-id", run_id)
    assert result.exit_code == 0 and result.envelope["ok"]
    rows = events(result)
    assert [(row["seq"], row["type"], row["step_id"]) for row in rows] == [
        (1, "run_started", None),
        (1, "step_started", "hello"),  # not an event: it follows from the one before
        (2, "step_finished", "hello"),
        (2, "waiting", "ask"),
        (3, "event_received", "ask"),
    ]
    assert rows[1]["summary"] == "attempt 1 started"
    assert rows[2]["summary"].startswith("attempt 1: exit 0")
    assert rows[3]["summary"] == "waiting for event go from agent"
    assert rows[4]["summary"] == "event go: {}"
    assert all(row["at"].endswith("Z") for row in rows)
    assert result.envelope["result"]["count"] == 5


BACKOFF = """
id: backoff
steps:
  - id: flaky
    kind: cli
    command: test -e tried || { touch tried; exit 1; }
    retry: {max_attempts: 2, backoff_seconds: 0.2}
  - id: ask
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
    timeout_seconds: 3600
"""


def test_step_starts_are_shown_at_their_time_and_waits_with_their_deadline(cpf):
    cpf.write("wf.yaml", doc(BACKOFF))
    started = cpf("run", "-f", "wf.yaml")
    assert started.exit_code == 40
    rows = events(cpf("logs", "--run-id", started.envelope["run_id"]))
    assert [(row["type"], row["step_id"]) for row in rows] == [
        ("run_started", None),
        ("step_started", "flaky"),
        ("step_finished", "flaky"),
        ("step_started", "flaky"),
        ("step_finished", "flaky"),
        ("waiting", "ask"),
    ]
    assert rows[3]["summary"] == "attempt 2 started after 0.2s backoff"
    assert rows[3]["seq"] == rows[2]["seq"]  # it follows from the first attempt's end
    assert rows[3]["at"] > rows[2]["at"]  # and began once the backoff was over
    deadline = started.envelope["wait"]["deadline"]
    assert rows[5]["summary"] == f"waiting for event go from user until {deadline}"


def test_logs_of_a_waiting_run_exit_with_its_code(cpf):
    run_id = waiting_run(cpf)
    result = cpf("logs", "--run-id", run_id)
    assert result.exit_code == 40 and result.envelope["ok"]
    assert result.envelope["wait"]["event_name"] == "go"


def test_step_filter(cpf):
    run_id = completed_run(cpf)
    rows = events(cpf("logs", "--run-id", run_id, "--step", "ask"))
    assert [(row["type"], row["step_id"]) for row in rows] == [
        ("waiting", "ask"),
        ("event_received", "ask"),
    ]
    assert events(cpf("logs", "--run-id", run_id, "--step", "nothing")) == []


def test_output_of_the_latest_attempt(cpf):
    run_id = waiting_run(cpf)
    result = cpf("logs", "--run-id", run_id, "--output", "hello")
    output = result.envelope["result"]
    assert output["attempt"] == 1
    assert output["stdout"]["text"] == "hello\n" and output["stdout"]["truncated"] is False
    assert output["stderr"]["text"] == "oops\n"


def test_output_of_each_attempt(cpf):
    run_id = start(cpf, RETRIES).envelope["run_id"]
    rows = events(cpf("logs", "--run-id", run_id, "--step", "flaky"))
    assert [row["summary"].split(" in ")[0] for row in rows] == [
        "attempt 1 started",
        "attempt 1: exit 1",
        "attempt 2 started",
        "attempt 2: exit 1",
    ]
    for spec in (["--output", "flaky:1"], ["--output", "flaky", "--attempt", "1"]):
        output = cpf("logs", "--run-id", run_id, *spec).envelope["result"]
        assert output["attempt"] == 1 and output["stderr"]["text"] == "bad\n"
    assert cpf("logs", "--run-id", run_id, "--output", "flaky").envelope["result"]["attempt"] == 2


def test_output_is_capped_and_marked_truncated(cpf):
    run_id = start(cpf, BIG).envelope["run_id"]
    output = cpf("logs", "--run-id", run_id, "--output", "loud", "--max-bytes", "100")
    stdout = output.envelope["result"]["stdout"]
    assert stdout["truncated"] is True and stdout["bytes"] == 5000
    assert stdout["text"] == "x" * 100


def test_output_of_a_step_without_output_is_refused(cpf):
    run_id = waiting_run(cpf)
    for spec in ("ask", "hello:7"):
        result = cpf("logs", "--run-id", run_id, "--output", spec)
        assert result.exit_code == 10 and result.error_code == "ERR_OUTPUT_NOT_FOUND"


def test_output_spec_cannot_leave_the_run_folder(cpf):
    run_id = waiting_run(cpf)
    for spec in ("../../etc", "hello:x", "a/b", "hello:1:2"):
        result = cpf("logs", "--run-id", run_id, "--output", spec)
        assert result.exit_code == 10 and result.error_code == "ERR_USAGE", spec


def test_unknown_run(cpf):
    for run_id in ("20260101T000000000Z-0000000000", "../x"):
        result = cpf("logs", "--run-id", run_id)
        assert result.exit_code == 10 and result.error_code == "ERR_RUN_NOT_FOUND"


def test_follow_of_a_finished_run_returns_at_once(cpf):
    run_id = failed_run(cpf)
    began = time.monotonic()
    result = cpf("logs", "--run-id", run_id, "--follow")
    assert time.monotonic() - began < 5
    assert result.exit_code == 30 and result.envelope["ok"]
    assert "step_finished" in result.stderr


def test_follow_streams_to_stderr_and_ends_with_one_envelope(cpf):
    cpf.write("slow.yaml", "schema_version: checkpointflow/v1\nworkflow:\n" + _indent(SLOW))
    runner = subprocess.Popen(
        [CPF, "run", "-f", "slow.yaml"],
        cwd=cpf.cwd,
        env=cpf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    run_id = _first_run(cpf)
    follower = subprocess.run(
        [CPF, "logs", "--run-id", run_id, "--follow"],
        cwd=cpf.cwd,
        env=cpf.env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    runner.communicate(timeout=60)
    result = check_output(follower.returncode, follower.stdout, follower.stderr)
    assert result.exit_code == 40 and result.envelope["status"] == "waiting"
    assert [row["step_id"] for row in events(result) if row["type"] != "step_started"] == [
        None,
        "one",
        "two",
        "ask",
    ]
    lines = [line for line in result.stderr.splitlines() if "step_finished" in line]
    assert len(lines) == 2 and "one" in lines[0] and "two" in lines[1]
    assert "waiting for event go from user" in result.stderr.splitlines()[-1]
    assert resume(cpf, run_id, "go").exit_code == 0


def test_follow_stops_at_the_timeout(cpf):
    cpf.write("slow.yaml", "schema_version: checkpointflow/v1\nworkflow:\n" + _indent(SLOW))
    runner = subprocess.Popen(
        [CPF, "run", "-f", "slow.yaml"],
        cwd=cpf.cwd,
        env=cpf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    run_id = _first_run(cpf)
    result = cpf("logs", "--run-id", run_id, "--follow", "--timeout", "0.3")
    runner.communicate(timeout=60)
    assert result.envelope["ok"]
    assert "Stopped following after 0.3 s" in result.envelope["warnings"][0]


def _first_run(cpf):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = cpf.root / "runs"
        found = (
            [p for p in runs.iterdir() if (p / "events.jsonl").is_file()] if runs.is_dir() else []
        )
        if found and (found[0] / "events.jsonl").stat().st_size:
            return found[0].name
        time.sleep(0.02)
    raise AssertionError("the run did not start")


def _indent(body):
    import textwrap

    return textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\n"


def test_follow_streams_the_output_of_running_steps_and_ends_when_the_run_waits(cpf):
    then = "  - {id: ask, kind: await_event, audience: user, event_name: go, input_schema: {}}"
    cpf.write("wf.yaml", doc(handshake(cpf.cwd, then)))
    runner = subprocess.Popen(
        [CPF, "run", "-f", "wf.yaml", "-q"], cwd=cpf.cwd, env=cpf.env, stdout=subprocess.PIPE
    )
    follower = subprocess.Popen(
        [CPF, "logs", "--run-id", _first_run(cpf), "--follow"],
        cwd=cpf.cwd,
        env=cpf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = bytearray()
    try:
        shown = read_until(follower.stderr.fileno(), "build | first\n", seen)
        assert "second" not in shown and "step_finished" not in shown  # while it runs
        (cpf.cwd / "go").touch()
        stdout, rest = follower.communicate(timeout=120)
    finally:
        runner.communicate(timeout=120)
        follower.kill()
    result = check_output(follower.returncode, stdout, bytes(seen) + rest)
    assert result.exit_code == 40 and result.envelope["status"] == "waiting"
    lines = result.stderr.splitlines()
    started = next(i for i, line in enumerate(lines) if "step_started" in line)
    finished = next(i for i, line in enumerate(lines) if "step_finished" in line)
    assert started < lines.index("build | first") < lines.index("build | second") < finished
    assert "waiting for event go" in lines[-1]
    assert "first" not in stdout.decode()
