"""Faults while several steps run at once: a killed `cpf` leaves two branches in flight,
and `cpf recover` settles each of them (stops its processes, retries where allowed)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.conftest import CPF

FLOW = """\
schema_version: checkpointflow/v1
workflow:
  id: fanout
  steps:
    - id: both
      kind: parallel
      branches:
        - id: slow
          steps:
            - {id: nap, kind: cli, command: 'sleep 30'}
        - id: flaky
          steps:
            - id: once
              kind: cli
              command: '[ -f marker ] || { touch marker; sleep 30; }'
              retry: {max_attempts: 2}
      on_error: {next: report}
    - id: fine
      kind: end
      result: all branches finished
    - id: report
      kind: end
      result: ${steps.both.error.details}
"""


def test_recover_settles_every_step_left_in_flight(cpf):
    cpf.write("fanout.yaml", FLOW)
    process = subprocess.Popen(
        [CPF, "run", "-f", "fanout.yaml", "-q"],
        cwd=cpf.cwd,
        env=cpf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    runs = cpf.root / "runs"
    pid_files: list = []
    while len(pid_files) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        pid_files = list(runs.glob("*/steps/*/1.pid")) if runs.exists() else []
    assert len(pid_files) == 2, "both branches should have started their commands"
    run_id = pid_files[0].parent.parent.parent.name
    process.send_signal(signal.SIGKILL)
    process.communicate()

    status = cpf("status", "--run-id", run_id)
    assert status.envelope["status"] == "running"
    state = read_state(cpf, run_id)
    assert sorted(state["in_flight"]) == ["both.flaky.once", "both.slow.nap"]

    recovered = cpf("recover", "--run-id", run_id)
    stopped = [w for w in recovered.envelope.get("warnings", []) if "Stopped process group" in w]
    assert len(stopped) == 2
    # the slow branch's attempt is lost; the flaky one is retried and succeeds; the
    # parallel step fails because one branch failed, and on_error routes to the report
    assert recovered.envelope["status"] == "completed"
    [failure] = recovered.envelope["result"]
    assert failure["child"] == "both.slow"
    assert failure["error"]["code"] == "ERR_INTERRUPTED"
    state = read_state(cpf, run_id)
    assert state["in_flight"] == {}
    assert len(state["steps"]["both.flaky.once"]["attempts"]) == 2
    assert state["steps"]["both.flaky.once"]["status"] == "completed"


def read_state(cpf, run_id: str) -> dict:
    return json.loads((cpf.run_folder(run_id) / "state.json").read_text())
