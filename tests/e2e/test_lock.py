"""Two processes resuming the same run at once: one advances it, the other is refused,
and the step runs exactly once."""

from __future__ import annotations

import subprocess
import time

from conftest import CPF, check_output
from e2e_helpers import start

SLOW = """
id: slow
steps:
  - id: ask
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
  - id: work
    kind: cli
    command: sleep 1; echo x >> side_effect.txt
  - id: done
    kind: end
    result: finished
"""


def test_concurrent_resumes_run_the_step_once(cpf):
    run_id = start(cpf, SLOW).envelope["run_id"]
    command = [CPF, "resume", "--run-id", run_id, "--event", "go", "--input", "{}"]
    processes = [
        subprocess.Popen(
            command,
            cwd=cpf.cwd,
            env=cpf.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        results.append(check_output(process.returncode, stdout, stderr))
    envelopes = [r.envelope for r in results]
    [winner] = [result for result in results if result.exit_code == 0]
    [loser] = [result for result in results if result is not winner]
    assert winner.envelope["result"] == "finished", envelopes
    # the loser is refused at once, or queued while the winner held the run (and then
    # logged as answer_stale when folded in): never applied a second time
    queued = loser.exit_code == 40 and (loser.envelope.get("result") or {}).get("queued")
    refused = (loser.exit_code, loser.error_code) in (
        (20, "ERR_RUN_NOT_WAITING"),
        (10, "ERR_STALE_WAIT"),
    )
    assert queued or refused, envelopes
    assert (cpf.cwd / "side_effect.txt").read_text() == "x\n"
    assert cpf("status", "--run-id", run_id).envelope["status"] == "completed"


def test_resume_after_the_winner_finishes_is_refused(cpf):
    run_id = start(cpf, SLOW).envelope["run_id"]
    first = cpf("resume", "--run-id", run_id, "--event", "go", "--input", "{}")
    assert first.exit_code == 0
    second = cpf("resume", "--run-id", run_id, "--event", "go", "--input", "{}")
    assert (second.exit_code, second.error_code) == (20, "ERR_RUN_NOT_WAITING")
    assert (cpf.cwd / "side_effect.txt").read_text() == "x\n"


def test_cancel_while_a_resume_is_running_is_a_lock_conflict(cpf):
    run_id = start(cpf, SLOW.replace("sleep 1", "sleep 3")).envelope["run_id"]
    resumer = subprocess.Popen(
        [CPF, "resume", "--run-id", run_id, "--event", "go", "--input", "{}"],
        cwd=cpf.cwd,
        env=cpf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # wait until the resumed step has visibly started (its output file exists)
        folder = cpf.run_folder(run_id) / "steps" / "work"
        deadline = time.monotonic() + 30
        while not (folder / "1.stdout").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (folder / "1.stdout").exists()
        cancel = cpf("cancel", "--run-id", run_id)
    finally:
        stdout, stderr = resumer.communicate(timeout=60)
    assert (cancel.exit_code, cancel.error_code) == (70, "ERR_LOCK_CONFLICT")
    assert check_output(resumer.returncode, stdout, stderr).exit_code == 0
    assert cpf("status", "--run-id", run_id).envelope["status"] == "completed"
