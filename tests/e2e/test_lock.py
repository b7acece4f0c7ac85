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
    codes = sorted(result.exit_code for result in results)
    assert codes[0] == 0, [r.envelope for r in results]
    assert codes[1] in (20, 70), [r.envelope for r in results]
    loser = next(result for result in results if result.exit_code != 0)
    assert loser.error_code in ("ERR_LOCK_CONFLICT", "ERR_RUN_NOT_WAITING")
    winner = next(result for result in results if result.exit_code == 0)
    assert winner.envelope["result"] == "finished"
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
