"""Faults while several steps run at once: a killed `cpf` leaves two branches in flight,
and `cpf recover` settles each of them (stops its processes, retries where allowed)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from e2e_helpers import step_history

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
    assert state["in_flight"] == {"both.flaky.once#1": "both.flaky", "both.slow.nap#1": "both.slow"}

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
    assert "both.flaky.once" not in state["steps"]  # its branch completed
    rows = step_history(cpf, run_id)["both.flaky.once"]
    assert [(row["attempt"], row["error_code"]) for row in rows] == [
        (1, "ERR_INTERRUPTED"),
        (2, None),
    ]


def read_state(cpf, run_id: str) -> dict:
    return json.loads((cpf.run_folder(run_id) / "state.json").read_text())


FAIL_FAST = """\
schema_version: checkpointflow/v1
workflow:
  id: fast
  steps:
    - id: each
      kind: foreach
      items: ${inputs.items}
      concurrency: 2
      body:
        - {id: x, kind: cli, command: 'if [ ${item} = 0 ]; then exit 1; fi; sleep 300'}
"""


def check_stopped_fast(cpf, result) -> None:
    envelope = result.envelope
    assert (envelope["status"], envelope["error"]["code"]) == ("failed", "ERR_STEP_FAILED")
    state = read_state(cpf, envelope["run_id"])
    assert state["in_flight"] == {}
    [stopped] = state["steps"]["each[1].x"]["attempts"]
    assert state["steps"]["each[1].x"]["status"] == "cancelled"
    assert stopped["exit_code"] != 0


def test_fail_fast_stops_the_iterations_still_running(cpf):
    cpf.write("fast.yaml", FAIL_FAST)
    process = cpf.start("run", "-f", "fast.yaml", "--input", '{"items": [0, 1]}', "-q")
    check_stopped_fast(cpf, cpf.finish(process))  # the guard: the sleep takes 300 s


def test_fail_fast_holds_under_load_with_many_runs_at_once(cpf, cpu_load):
    """A sibling whose process starts late (a busy machine, many runs) is stopped too."""
    cpf.write("fast.yaml", FAIL_FAST)
    processes = [
        cpf.start("run", "-f", "fast.yaml", "--input", '{"items": [0, 1]}', "-q") for _ in range(8)
    ]
    for process in processes:
        check_stopped_fast(cpf, cpf.finish(process, guard=240))


BACKOFF_SIBLING = """\
schema_version: checkpointflow/v1
workflow:
  id: sibling
  steps:
    - id: each
      kind: foreach
      items: ${inputs.items}
      concurrency: 2
      body:
        - {id: quick, if: '${item == "a"}', kind: cli, command: 'sleep 0.5; exit 1'}
        - id: slow
          if: ${item == "b"}
          kind: cli
          command: 'echo run >> slow.txt; exit 2'
          retry: {max_attempts: 3, backoff_seconds: 600}
"""


def test_fail_fast_ends_a_siblings_backoff_and_starts_no_new_attempt(cpf, cpu_load):
    """`b` fails at once and backs off for 600 s; `a` fails for good half a second later.
    The run must end then: the backoff is cut short and attempt 2 never runs."""
    cpf.write("sibling.yaml", BACKOFF_SIBLING)
    for _ in range(3):
        (cpf.cwd / "slow.txt").unlink(missing_ok=True)
        process = cpf.start("run", "-f", "sibling.yaml", "--input", '{"items": ["a", "b"]}')
        result = cpf.finish(process, guard=240)  # far below the 600 s backoff
        assert result.envelope["status"] == "failed"
        assert result.envelope["error"]["code"] == "ERR_STEP_FAILED"
        assert (cpf.cwd / "slow.txt").read_text().split() == ["run"]
        state = read_state(cpf, result.envelope["run_id"])
        attempts = state["steps"]["each[1].slow"]["attempts"]
        assert [attempt["attempt"] for attempt in attempts] in ([1], [1, 2])
        assert all(attempt["exit_code"] == 2 for attempt in attempts[:1])
        assert cpf("verify", "--run-id", result.envelope["run_id"]).exit_code == 0


def test_step_keys_too_long_for_a_file_name_get_a_digest_folder(cpf):
    outer, inner = "a" * 128, "b" * 128
    cpf.write(
        "long.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n  id: long\n  steps:\n"
        f"    - id: {outer}\n      kind: foreach\n      items: ${{inputs.items}}\n"
        f"      body:\n        - {{id: {inner}, kind: cli, command: 'echo hi'}}\n",
    )
    assert cpf("validate", "-f", "long.yaml").exit_code == 0
    result = cpf("run", "-f", "long.yaml", "--input", '{"items": [1]}')
    assert result.envelope["status"] == "completed", result.envelope
    key = f"{outer}[0].{inner}"
    shown = cpf("logs", "--run-id", result.envelope["run_id"], "--output", key)
    assert shown.envelope["result"]["stdout"]["text"] == "hi\n"
    folder = Path(shown.envelope["result"]["stdout"]["path"]).parent
    assert len(folder.name.encode()) <= 200 and "~" in folder.name
