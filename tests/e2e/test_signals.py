"""Signals: Ctrl-C, SIGTERM (a CI runner cancelling, `timeout`, systemd) and SIGHUP (a
closed terminal) all stop `cpf` the same way: every running step's process group is
stopped, the run is recorded as failed with ERR_INTERRUPTED, one envelope is printed with
the run's id and real status, and `cpf retry` continues the run afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.e2e_helpers import doc

LONG = doc(
    """
    id: long
    steps:
      - {id: first, kind: cli, command: 'echo first >> side.txt'}
      - {id: nap, kind: cli, command: 'echo nap >> side.txt; sleep 300'}
      - {id: last, kind: cli, command: 'echo last >> side.txt'}
    """
)

STUBBORN = doc(
    """
    id: stubborn
    steps:
      - id: nap
        kind: cli
        command: 'trap "" TERM; echo ready; sleep 300'
    """
)

PAIR = doc(
    """
    id: pair
    steps:
      - id: both
        kind: parallel
        branches:
          - {id: a, steps: [{id: nap, kind: cli, command: 'sleep 300'}]}
          - {id: b, steps: [{id: nap, kind: cli, command: 'sleep 300'}]}
    """
)

BACKOFF = doc(
    """
    id: backoff
    steps:
      - id: flaky
        kind: cli
        command: 'echo try >> side.txt; exit 1'
        retry: {max_attempts: 3, backoff_seconds: 600}
    """
)


def wait_for(found, guard: float = 60) -> list[Path]:
    """Poll until `found()` gives something (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        result = found()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail("the run never reached the point the test waits for")


def logged(cpf, event_type: str) -> list[dict]:
    """The records of one type in the (only) run's log so far."""
    return [
        record
        for log in cpf.root.glob("runs/*/events.jsonl")
        for line in log.read_text().splitlines()
        if line.endswith("}") and (record := json.loads(line))["type"] == event_type
    ]


def process_files(cpf, count: int) -> list[Path]:
    """The files noting the process groups of `count` long-running commands."""

    def noted() -> list[Path]:
        found = list((cpf.root / "runs").glob("*/steps/**/1.pid"))
        return found if len(found) >= count else []

    return wait_for(noted)


def alive(group: int) -> bool:
    """Whether any process of the group still runs (zombies awaiting their parent do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def interrupted(result, signal_name: str) -> str:
    """The envelope of an interrupted run: its id, its real status, a listed code."""
    envelope = result.envelope
    assert result.exit_code == 30
    assert envelope["status"] == "failed"
    assert envelope["error"]["code"] == "ERR_INTERRUPTED"
    assert envelope["error"]["details"] == {"signal": signal_name}
    assert "cpf retry --run-id" in envelope["error"]["message"]
    return envelope["run_id"]


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_step_records_the_run_and_retry_continues(cpf, sent):
    cpf.write("long.yaml", LONG)
    process = cpf.start("run", "-f", "long.yaml")
    [pid_file] = process_files(cpf, 1)
    group = int(pid_file.read_text())
    process.send_signal(sent)
    run_id = interrupted(cpf.finish(process), sent.name)

    assert not alive(group), "the step's command was left running"
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"]) == (30, "failed")
    assert status.envelope["error"]["code"] == "ERR_INTERRUPTED"
    assert not any("recover" in warning for warning in status.envelope.get("warnings", []))
    assert cpf("verify", "--run-id", run_id).exit_code == 0
    [attempt] = cpf("inspect", "--run-id", run_id).envelope["result"]["state"]["steps"]["nap"][
        "attempts"
    ]
    assert attempt["error"]["code"] == "ERR_INTERRUPTED"

    cpf.write("fixed.yaml", LONG.replace("sleep 300", "true"))
    retried = cpf("retry", "--run-id", run_id, "--workflow", "fixed.yaml")
    assert retried.envelope["status"] == "completed"
    assert (cpf.cwd / "side.txt").read_text().split() == ["first", "nap", "nap", "last"]


def test_a_command_that_ignores_sigterm_is_killed_after_a_grace(cpf):
    cpf.write("stubborn.yaml", STUBBORN)
    process = cpf.start("run", "-f", "stubborn.yaml")
    [pid_file] = process_files(cpf, 1)
    group = int(pid_file.read_text())
    wait_for(lambda: b"ready" in next(pid_file.parent.glob("1.stdout")).read_bytes())
    process.send_signal(signal.SIGTERM)
    interrupted(cpf.finish(process), "SIGTERM")
    assert not alive(group)


def test_signals_during_the_shutdown_leave_one_envelope_and_a_whole_run(cpf):
    """While `cpf` waits out the grace period of a command that ignores SIGTERM, more
    signals arrive; they change nothing: one envelope, and the log replays to the state
    (checked after every test)."""
    cpf.write("stubborn.yaml", STUBBORN)
    process = cpf.start("run", "-f", "stubborn.yaml")
    [pid_file] = process_files(cpf, 1)
    wait_for(lambda: b"ready" in next(pid_file.parent.glob("1.stdout")).read_bytes())
    process.send_signal(signal.SIGTERM)
    for again in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        time.sleep(0.2)
        if process.poll() is None:
            process.send_signal(again)
    run_id = interrupted(cpf.finish(process), "SIGTERM")
    events = (cpf.run_folder(run_id) / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in events].count("run_interrupted") == 1
    assert cpf("verify", "--run-id", run_id).exit_code == 0


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_running_branch(cpf, sent):
    cpf.write("pair.yaml", PAIR)
    process = cpf.start("run", "-f", "pair.yaml", "-q")
    groups = [int(path.read_text()) for path in process_files(cpf, 2)]
    process.send_signal(sent)
    run_id = interrupted(cpf.finish(process), sent.name)
    assert not any(alive(group) for group in groups)
    state = cpf("inspect", "--run-id", run_id).envelope["result"]["state"]
    assert state["in_flight"] == {}
    for key in ("both.a.nap", "both.b.nap"):
        assert state["steps"][key]["attempts"][-1]["error"]["code"] == "ERR_INTERRUPTED"
    assert cpf("verify", "--run-id", run_id).exit_code == 0


def test_a_signal_during_a_retry_backoff_ends_it_at_once(cpf):
    """The backoff is 600 s: only a stop that ends it lets the run finish within the guard."""
    cpf.write("backoff.yaml", BACKOFF)
    process = cpf.start("run", "-f", "backoff.yaml")
    wait_for(lambda: logged(cpf, "step_finished"))  # attempt 1 ended: the backoff began
    process.send_signal(signal.SIGTERM)
    run_id = interrupted(cpf.finish(process), "SIGTERM")
    assert (cpf.cwd / "side.txt").read_text().split() == ["try"]
    state = cpf("inspect", "--run-id", run_id).envelope["result"]["state"]
    assert [a["attempt"] for a in state["steps"]["flaky"]["attempts"]] == [1, 2]
    assert cpf("verify", "--run-id", run_id).exit_code == 0


def test_a_signal_to_a_waiting_resume_reports_the_real_status(cpf):
    """A command that had nothing running when the signal came reports the run as it is."""
    cpf.write(
        "gate.yaml",
        doc(
            """
            id: gate
            steps:
              - {id: ask, kind: await_event, audience: user, event_name: go,
                 input_schema: {type: object}}
              - {id: nap, kind: cli, command: 'sleep 300'}
            """
        ),
    )
    run_id = cpf("run", "-f", "gate.yaml").envelope["run_id"]
    process = cpf.start("resume", "--run-id", run_id, "--event", "go")
    process_files(cpf, 1)
    process.send_signal(signal.SIGHUP)
    assert interrupted(cpf.finish(process), "SIGHUP") == run_id


def test_a_signal_to_a_command_that_advances_no_run_is_reported(cpf):
    """`logs --follow` is stopped by Ctrl-C: one envelope, a listed exit code."""
    cpf.write("long.yaml", LONG)
    runner = cpf.start("run", "-f", "long.yaml", "-q")
    process_files(cpf, 1)
    run_id = next((cpf.root / "runs").iterdir()).name
    follower = cpf.start("logs", "--run-id", run_id, "--follow")
    time.sleep(0.5)
    follower.send_signal(signal.SIGINT)
    followed = cpf.finish(follower)
    assert followed.exit_code in (0, 30)
    runner.send_signal(signal.SIGTERM)
    interrupted(cpf.finish(runner), "SIGTERM")


def leftovers(cpf) -> list[str]:
    """Processes still running with this test's state root in their environment: steps
    that a stopped `cpf` left behind (zombies awaiting their parent do not count)."""
    marker = f"CHECKPOINTFLOW_BASE_DIR={cpf.root}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                stat = (environ.parent / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append((environ.parent / "cmdline").read_bytes().decode(errors="replace"))
        except OSError:
            continue
    return found


def test_stdout_holds_one_envelope_even_when_the_signal_comes_first(cpf):
    """A signal at any early moment of `cpf run` (starting up, starting a step's process)
    still yields exactly one envelope and leaves no step running."""
    cpf.write("long.yaml", LONG)
    for delay in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4):
        process = cpf.start("run", "-f", "long.yaml", "-q")
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("cpf did not stop after SIGTERM")
        if process.returncode == -signal.SIGTERM:
            continue  # the signal came before Python installed its handlers
        from tests.conftest import check_output

        result = check_output(process.returncode, stdout, stderr)
        assert result.envelope["error"]["code"] == "ERR_INTERRUPTED"
        assert leftovers(cpf) == []
