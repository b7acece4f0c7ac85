"""switch, on_error, await timeouts (via resume, status and tick) and workflow outputs."""

from __future__ import annotations

import json
import time

import pytest

HEAD = "schema_version: checkpointflow/v1\nworkflow:\n  id: kinds\n"


def run(cpf, steps: str, *args: str, extra: str = ""):
    cpf.write("flow.yaml", HEAD + extra + "  steps:\n" + steps)
    return cpf("run", "-f", "flow.yaml", *args)


# --- switch ---------------------------------------------------------------------------------

SWITCH = """\
    - id: route
      kind: switch
      cases:
        - when: inputs.size > 100
          next: big
        - when: inputs.size > 10
          next: medium
      default: small
    - {id: big, kind: end, result: big}
    - {id: medium, kind: end, result: medium}
    - {id: small, kind: end, result: small}
"""


@pytest.mark.parametrize(("size", "expected"), [(500, "big"), (50, "medium"), (5, "small")])
def test_switch_takes_the_first_matching_case_or_the_default(cpf, size, expected):
    result = run(cpf, SWITCH, "--input", json.dumps({"size": size}))
    assert result.envelope["result"] == expected
    state = cpf("inspect", "--run-id", result.envelope["run_id"]).envelope["result"]["state"]
    assert state["steps"]["route"]["outputs"]["next"] == expected


def test_switch_without_a_match_or_default_fails_clearly(cpf):
    steps = SWITCH.replace("      default: small\n", "")
    result = run(cpf, steps, "--input", '{"size": 1}')
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED")
    assert "no case matched" in result.envelope["error"]["message"]


def test_validate_checks_switch_targets(cpf):
    steps = SWITCH.replace("next: medium", "next: nowhere").replace(
        "default: small", "default: gone"
    )
    cpf.write("flow.yaml", HEAD + "  steps:\n" + steps)
    result = cpf("validate", "-f", "flow.yaml")
    paths = {problem["path"] for problem in result.envelope["error"]["details"]}
    assert paths == {"/workflow/steps/0/cases/1/next", "/workflow/steps/0/default"}


# --- on_error -------------------------------------------------------------------------------


def test_on_error_routes_a_failure_to_a_handler_that_reads_the_error(cpf):
    steps = """\
    - id: deploy
      kind: cli
      command: echo boom >&2; exit 7
      retry: {max_attempts: 2}
      on_error: {next: rollback}
    - {id: never, kind: cli, command: touch never.txt}
    - id: rollback
      kind: cli
      command: echo "rolling back after ${steps.deploy.error.code}" > rollback.txt
    - id: done
      kind: end
      result:
        failed_step_error: ${steps.deploy.error.code}
        message: ${steps.deploy.error.message}
"""
    result = run(cpf, steps)
    assert result.exit_code == 0
    assert result.envelope["result"]["failed_step_error"] == "ERR_STEP_FAILED"
    assert "exited with code 7" in result.envelope["result"]["message"]
    assert (cpf.cwd / "rollback.txt").read_text() == "rolling back after ERR_STEP_FAILED\n"
    assert not (cpf.cwd / "never.txt").exists()
    state = cpf("inspect", "--run-id", result.envelope["run_id"]).envelope["result"]["state"]
    assert [a["exit_code"] for a in state["steps"]["deploy"]["attempts"]] == [7, 7]


# --- workflow outputs -----------------------------------------------------------------------


def test_workflow_outputs_become_the_result_without_an_end_result(cpf):
    steps = """\
    - id: build
      kind: cli
      command: "echo '{\\"artifact\\": \\"app.tar\\", \\"size\\": 3}'"
"""
    extra = "  outputs:\n    artifact: {from: steps.build.outputs.artifact}\n    size: steps.build.outputs.size\n"
    result = run(cpf, steps, extra=extra)
    assert result.envelope["result"] == {"artifact": "app.tar", "size": 3}


# --- await timeouts -------------------------------------------------------------------------

TIMED_WAIT = """\
    - id: approve
      kind: await_event
      audience: user
      event_name: approval
      input_schema: {type: object}
      timeout_seconds: 0.5
      on_timeout: {next: escalate}
    - {id: approved, kind: end, result: approved}
    - id: escalate
      kind: cli
      command: echo escalated > escalated.txt
    - {id: timed_out, kind: end, result: "${steps.approve.error.code}"}
"""


def waiting_past_deadline(cpf, steps: str = TIMED_WAIT) -> str:
    started = run(cpf, steps)
    assert started.exit_code == 40
    time.sleep(0.8)
    return started.envelope["run_id"]


def test_timeout_reached_through_status_follows_on_timeout(cpf):
    run_id = waiting_past_deadline(cpf)
    status = cpf("status", "--run-id", run_id)
    assert status.exit_code == 0
    assert status.envelope["result"] == "ERR_TIMEOUT"
    assert (cpf.cwd / "escalated.txt").exists()


def test_timeout_reached_through_resume_refuses_the_late_event(cpf):
    run_id = waiting_past_deadline(cpf)
    late = cpf("resume", "--run-id", run_id, "--event", "approval")
    assert (late.exit_code, late.error_code) == (20, "ERR_RUN_NOT_WAITING")
    assert "timed out" in late.envelope["error"]["message"]
    assert cpf("status", "--run-id", run_id).envelope["result"] == "ERR_TIMEOUT"


def test_tick_advances_every_overdue_run_and_leaves_the_others(cpf):
    overdue = waiting_past_deadline(cpf)
    (cpf.run_folder(overdue) / "summary.json").unlink()  # tick rebuilds it from the state
    patient = run(cpf, TIMED_WAIT.replace("timeout_seconds: 0.5", "timeout_seconds: 3600"))
    ticked = cpf("tick")
    assert ticked.exit_code == 0
    assert ticked.envelope["result"]["advanced"] == [
        {"run_id": overdue, "status": "completed", "timed_out": ["approve"]}
    ]
    assert cpf("status", "--run-id", patient.envelope["run_id"]).exit_code == 40


def test_an_answer_in_time_wins(cpf):
    started = run(cpf, TIMED_WAIT.replace("timeout_seconds: 0.5", "timeout_seconds: 3600"))
    done = cpf("resume", "--run-id", started.envelope["run_id"], "--event", "approval")
    assert done.envelope["result"] == "approved"


def test_timeout_without_on_timeout_fails_the_run(cpf):
    steps = TIMED_WAIT.replace("      on_timeout: {next: escalate}\n", "")
    run_id = waiting_past_deadline(cpf, steps)
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["error"]["code"]) == (30, "ERR_TIMEOUT")


def test_on_timeout_needs_timeout_seconds(cpf):
    cpf.write(
        "flow.yaml", HEAD + "  steps:\n" + TIMED_WAIT.replace("      timeout_seconds: 0.5\n", "")
    )
    result = cpf("validate", "-f", "flow.yaml")
    assert result.error_code == "ERR_VALIDATION_WORKFLOW"
    assert "needs timeout_seconds" in result.envelope["error"]["message"]
