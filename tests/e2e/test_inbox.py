"""Answers accepted while a run is busy: `resume` on a run another process holds queues
the answer in the run's inbox (exit 40, result.queued), and the holder folds it in at its
next step boundary as the same event_received a direct resume records. A crash between
queueing and folding loses nothing; two answers to one wait end with one applied and the
other logged as answer_stale."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from conftest import CPF
from e2e_helpers import doc, start
from ops_helpers import holding_lock

GUARD = 90  # seconds; only stops a hang from stalling the suite

BUSY = """
id: busy
steps:
  - id: both
    kind: parallel
    branches:
      - start_at: slow
        steps:
          - id: slow
            kind: cli
            command: 'while [ ! -f gate ]; do sleep 0.02; done; echo slept'
            retry: {max_attempts: 2}
      - start_at: ask
        steps:
          - id: ask
            kind: await_event
            audience: user
            event_name: go
            input_schema:
              type: object
              required: [decision]
              properties: {decision: {type: string}}
  - id: done
    kind: end
    result: ${steps.both.outputs}
"""

ONE_WAIT = """
id: one_wait
steps:
  - id: ask
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object, required: [n], properties: {n: {type: integer}}}
  - id: done
    kind: end
    result: ${steps.ask.outputs.n}
"""

WAIT = "both.ask.ask"


def wait_until(check: Callable[[], Any], what: str, guard: float = GUARD) -> Any:
    """Poll until `check` gives something true; the guard only stops a hang."""
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within the {guard} s hang guard")


def records(cpf, run_id: str) -> list[dict[str, Any]]:
    path = cpf.run_folder(run_id) / "events.jsonl"
    lines = path.read_bytes().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def of_type(cpf, run_id: str, kind: str) -> list[dict[str, Any]]:
    return [record for record in records(cpf, run_id) if record["type"] == kind]


def inbox(cpf, run_id: str) -> list[str]:
    folder = cpf.run_folder(run_id) / "inbox"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def answer(cpf, run_id: str, data: Any, *args: str):
    return cpf("resume", "--run-id", run_id, "--event", "go", "--input", json.dumps(data), *args)


def is_queued(result) -> bool:
    body = result.envelope.get("result")
    return result.exit_code == 40 and isinstance(body, dict) and body.get("queued") is True


def start_busy_run(cpf) -> tuple[subprocess.Popen[bytes], str]:
    """`cpf run` of BUSY in the background, until its slow branch runs and the other waits."""
    cpf.write("busy.yaml", doc(BUSY))
    driver = cpf.start("run", "-f", "busy.yaml", "-q")
    runs = cpf.root / "runs"

    def waiting_beside_the_slow_step() -> str | None:
        for folder in runs.iterdir() if runs.is_dir() else ():
            kinds = [r["type"] for r in records(cpf, folder.name)]
            if kinds and (folder / "steps" / "both.slow.slow" / "1.stdout").exists():
                return folder.name
        return None

    run_id = wait_until(waiting_beside_the_slow_step, "the slow branch starting")
    status = cpf("status", "--run-id", run_id)
    assert status.envelope["status"] == "running", status.envelope
    return driver, run_id


def test_an_answer_to_a_busy_run_is_queued_then_applied_while_its_step_runs(cpf):
    driver, run_id = start_busy_run(cpf)
    queued = answer(cpf, run_id, {"decision": "ship"}, "--actor", "alice")
    assert is_queued(queued), queued.envelope
    assert queued.envelope["ok"] is True
    assert (queued.envelope["status"], queued.envelope["run_id"]) == ("running", run_id)
    assert queued.envelope["result"]["wait_id"] == WAIT
    assert queued.envelope["result"]["inbox_entry"].startswith("inbox/")
    # folded in by the driver while the slow step still runs: its gate is still closed
    received = wait_until(lambda: of_type(cpf, run_id, "event_received"), "the answer applied")
    assert not (cpf.cwd / "gate").exists()
    payload = received[0]["payload"]
    assert payload["input"] == {"decision": "ship"} and payload["actor"] == "alice"
    assert payload["queued"]["id"] == queued.envelope["result"]["answer_id"]
    assert payload["queued"]["at"] == queued.envelope["result"]["queued_at"]
    assert payload["wait_id"] == WAIT
    (cpf.cwd / "gate").touch()
    finished = cpf.finish(driver, GUARD)
    assert finished.envelope["status"] == "completed", finished.envelope
    assert finished.envelope["result"]["ask"] == {"decision": "ship"}
    assert inbox(cpf, run_id) == []
    assert cpf("verify", "--run-id", run_id).exit_code == 0


def test_a_direct_answer_is_recorded_as_before_without_queued(cpf):
    run_id = start(cpf, ONE_WAIT).envelope["run_id"]
    done = answer(cpf, run_id, {"n": 1})
    assert (done.exit_code, done.envelope["result"]) == (0, 1)
    (received,) = of_type(cpf, run_id, "event_received")
    assert "queued" not in received["payload"]
    assert not (cpf.run_folder(run_id) / "inbox").exists()


def test_an_answer_is_checked_before_it_is_queued(cpf):
    """Refusals while the run is busy say where the run stands, and queue nothing."""
    driver, run_id = start_busy_run(cpf)
    try:
        for data, args, code in (
            ({"decision": 7}, (), "ERR_VALIDATION_EVENT_INPUT"),
            ({"decision": "x"}, ("--token", "0" * 32), "ERR_STALE_WAIT"),
            ({"decision": "x"}, ("--wait-id", "both.nope"), "ERR_RESUME_EVENT_MISMATCH"),
        ):
            refused = answer(cpf, run_id, data, *args)
            assert refused.error_code == code, refused.envelope
            assert refused.envelope["run_id"] == run_id
            assert refused.envelope["status"] == "running"
        wrong = cpf("resume", "--run-id", run_id, "--event", "nope", "--input", "{}")
        assert (wrong.exit_code, wrong.error_code) == (20, "ERR_RESUME_EVENT_MISMATCH")
        assert inbox(cpf, run_id) == []
        assert of_type(cpf, run_id, "event_received") == []
    finally:
        (cpf.cwd / "gate").touch()
        cpf.finish(driver, GUARD)


def test_two_answers_to_one_wait_end_with_one_applied_and_one_stale(cpf):
    run_id = start(cpf, ONE_WAIT).envelope["run_id"]
    with holding_lock(cpf.run_folder(run_id)):  # a process advancing the run
        first = answer(cpf, run_id, {"n": 1}, "--actor", "alice")
        second = answer(cpf, run_id, {"n": 2}, "--actor", "bob")
        assert is_queued(first) and is_queued(second), (first.envelope, second.envelope)
        assert first.envelope["status"] == "waiting" and first.envelope["wait"]
        assert len(inbox(cpf, run_id)) == 2
        checked = cpf("verify", "--run-id", run_id)
        assert checked.exit_code == 0
        assert "2 answer(s) queued" in checked.envelope["result"]["runs"][0]["notes"][0]
    # the holder went away without folding them: the next command does, in arrival order
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["result"]) == (0, 1), status.envelope
    (applied,) = of_type(cpf, run_id, "event_received")
    (stale,) = of_type(cpf, run_id, "answer_stale")
    assert applied["payload"]["input"] == {"n": 1}
    assert applied["payload"]["queued"]["id"] == first.envelope["result"]["answer_id"]
    assert stale["payload"]["input"] == {"n": 2} and stale["payload"]["actor"] == "bob"
    assert stale["payload"]["queued"]["id"] == second.envelope["result"]["answer_id"]
    assert stale["payload"]["code"] == "ERR_STALE_WAIT"
    assert "ask" in stale["payload"]["message"]
    assert inbox(cpf, run_id) == []
    rows = cpf("logs", "--run-id", run_id).envelope["result"]["events"]
    assert [row["type"] for row in rows][-2:] == ["event_received", "answer_stale"]


def test_a_queued_answer_in_text_says_it_is_not_applied_yet(cpf):
    run_id = start(cpf, ONE_WAIT).envelope["run_id"]
    with holding_lock(cpf.run_folder(run_id)):
        process = subprocess.run(
            [CPF, "resume", "--run-id", run_id, "--event", "go", "--input", '{"n": 1}', "-q"],
            cwd=cpf.cwd, env={**cpf.env, "CPF_FORMAT": "text"}, capture_output=True, text=True,
            timeout=GUARD, check=False,
        )  # fmt: skip
    assert process.returncode == 40
    assert "answer to ask queued: the run is busy" in process.stdout
    assert f"cpf logs --run-id {run_id}" in process.stdout
    assert "next: cpf resume" not in process.stdout


def test_answers_queued_before_a_resume_come_first(cpf):
    run_id = start(cpf, ONE_WAIT).envelope["run_id"]
    with holding_lock(cpf.run_folder(run_id)):
        assert is_queued(answer(cpf, run_id, {"n": 1}))
    late = answer(cpf, run_id, {"n": 2})
    assert (late.exit_code, late.error_code) == (20, "ERR_RUN_NOT_WAITING"), late.envelope
    assert late.envelope["status"] == "completed"
    assert cpf("status", "--run-id", run_id).envelope["result"] == 1


def test_queued_answers_are_stale_once_the_run_is_cancelled(cpf):
    run_id = start(cpf, ONE_WAIT).envelope["run_id"]
    with holding_lock(cpf.run_folder(run_id)):
        assert is_queued(answer(cpf, run_id, {"n": 1}))
    cancelled = cpf("cancel", "--run-id", run_id, "--reason", "changed our mind")
    assert cancelled.exit_code == 0
    (stale,) = of_type(cpf, run_id, "answer_stale")
    assert stale["payload"]["input"] == {"n": 1}
    assert of_type(cpf, run_id, "event_received") == []


def test_a_crash_between_queueing_and_folding_loses_nothing(cpf):
    driver, run_id = start_busy_run(cpf)
    driver.send_signal(signal.SIGSTOP)  # it can no longer fold anything in
    try:
        queued = answer(cpf, run_id, {"decision": "ship"})
        assert is_queued(queued), queued.envelope
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.send_signal(signal.SIGCONT)
        driver.communicate(timeout=GUARD)
    assert len(inbox(cpf, run_id)) == 1
    assert of_type(cpf, run_id, "event_received") == []
    status = cpf("status", "--run-id", run_id)  # a dead process left a step in flight
    assert status.envelope["status"] == "running"
    assert any("cpf recover" in warning for warning in status.envelope["warnings"])
    (cpf.cwd / "gate").touch()
    recovered = cpf("recover", "--run-id", run_id)
    assert recovered.envelope["status"] == "completed", recovered.envelope
    assert recovered.envelope["result"]["ask"] == {"decision": "ship"}
    (received,) = of_type(cpf, run_id, "event_received")
    assert received["payload"]["queued"]["id"] == queued.envelope["result"]["answer_id"]
    assert inbox(cpf, run_id) == []
    assert cpf("verify", "--run-id", run_id).exit_code == 0


def test_an_answer_logged_just_before_a_crash_is_not_applied_twice(cpf):
    """A process that logged a queued answer and died before removing it from the inbox
    left the entry behind; the next one drops it instead of applying it again."""
    run_id = start(cpf, ONE_WAIT).envelope["run_id"]
    folder = cpf.run_folder(run_id)
    with holding_lock(folder):
        assert is_queued(answer(cpf, run_id, {"n": 1}))
    kept = {p.name: p.read_bytes() for p in (folder / "inbox").iterdir()}
    assert cpf("status", "--run-id", run_id).envelope["result"] == 1
    for name, data in kept.items():  # as if the removal never happened
        (folder / "inbox" / name).write_bytes(data)
    assert cpf("status", "--run-id", run_id).envelope["status"] == "completed"
    assert len(of_type(cpf, run_id, "event_received")) == 1
    assert of_type(cpf, run_id, "answer_stale") == []
    assert inbox(cpf, run_id) == []


def test_answers_racing_a_running_driver_apply_once(cpf, cpu_load):
    """Six answers with different inputs race the driver of a busy run on a loaded
    machine: one is applied; the others are refused at once or logged as stale."""
    driver, run_id = start_busy_run(cpf)
    try:
        racers = [
            cpf.start(
                "resume",
                "--run-id",
                run_id,
                "--event",
                "go",
                "--input",
                json.dumps({"decision": f"d{n}"}),
            )
            for n in range(6)
        ]
        results = [cpf.finish(racer, GUARD) for racer in racers]
    finally:
        (cpf.cwd / "gate").touch()
    finished = cpf.finish(driver, GUARD)
    assert finished.envelope["status"] == "completed", finished.envelope
    (applied,) = of_type(cpf, run_id, "event_received")
    stale = {r["payload"]["queued"]["id"] for r in of_type(cpf, run_id, "answer_stale")}
    queued_ids = {r.envelope["result"]["answer_id"] for r in results if is_queued(r)}
    applied_id = (applied["payload"].get("queued") or {}).get("id")
    assert queued_ids - {applied_id} <= stale, [r.envelope for r in results]
    for result in results:
        if not is_queued(result):
            assert result.error_code in ("ERR_STALE_WAIT", "ERR_RUN_NOT_WAITING"), result.envelope
    assert finished.envelope["result"]["ask"] == applied["payload"]["input"]
    assert inbox(cpf, run_id) == []
