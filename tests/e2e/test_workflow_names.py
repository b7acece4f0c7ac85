"""Envelopes about a run name its workflow as people do: `workflow_name` and
`workflow_description`, when the workflow has them (as checkpointflow 1.x does)."""

from __future__ import annotations

import subprocess

from conftest import CPF
from e2e_helpers import doc

NAMED = """
id: named
name: Release approval
description: Ask before releasing.
steps:
  - id: ask
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
  - id: work
    kind: cli
    command: test -f ok
  - id: done
    kind: end
    result: done
"""

NAMES = {"workflow_name": "Release approval", "workflow_description": "Ask before releasing."}


def names(result) -> dict:
    return {key: result.envelope.get(key) for key in NAMES}


def test_every_command_about_a_run_names_its_workflow(cpf):
    cpf.write("wf.yaml", doc(NAMED))
    started = cpf("run", "-f", "wf.yaml")
    run_id = started.envelope["run_id"]
    assert names(started) == NAMES
    for command in ("status", "inspect", "logs"):
        assert names(cpf(command, "--run-id", run_id)) == NAMES, command
    failed = cpf("resume", "--run-id", run_id, "--event", "go")
    assert (failed.exit_code, names(failed)) == (30, NAMES)
    (cpf.cwd / "ok").touch()
    retried = cpf("retry", "--run-id", run_id)
    assert (retried.exit_code, names(retried)) == (0, NAMES)
    assert cpf("list").envelope["result"]["runs"][0]["workflow_id"] == "named"


def test_cancel_and_refusals_name_the_workflow_too(cpf):
    cpf.write("wf.yaml", doc(NAMED))
    run_id = cpf("run", "-f", "wf.yaml").envelope["run_id"]
    refused = cpf("resume", "--run-id", run_id, "--event", "other")
    assert (refused.exit_code, names(refused)) == (20, NAMES)
    cancelled = cpf("cancel", "--run-id", run_id)
    assert (cancelled.exit_code, names(cancelled)) == (0, NAMES)


def test_recover_names_the_workflow(cpf):
    cpf.write("wf.yaml", doc(NAMED.replace("test -f ok", "echo ok")))
    run_id = cpf("run", "-f", "wf.yaml").envelope["run_id"]
    subprocess.run(
        [CPF, "resume", "--run-id", run_id, "--event", "go"],
        cwd=cpf.cwd,
        env={**cpf.env, "CHECKPOINTFLOW_TEST_CRASH": "append:2"},  # dies as `work` starts
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert cpf("status", "--run-id", run_id).envelope["status"] == "running"
    recovered = cpf("recover", "--run-id", run_id)
    assert names(recovered) == NAMES


def test_validate_and_delete_name_the_workflow(cpf):
    cpf.write("wf.yaml", doc(NAMED))
    assert names(cpf("validate", "-f", "wf.yaml")) == NAMES
    run_id = cpf("run", "-f", "wf.yaml").envelope["run_id"]
    deleted = cpf("delete", "--run-id", run_id, "--force")
    assert (deleted.exit_code, names(deleted)) == (0, NAMES)


def test_a_workflow_without_a_name_has_none_in_its_envelopes(cpf):
    cpf.write("wf.yaml", doc("id: plain\nsteps:\n  - {id: done, kind: end}\n"))
    run_id = cpf("run", "-f", "wf.yaml").envelope["run_id"]
    status = cpf("status", "--run-id", run_id).envelope
    assert "workflow_name" not in status and "workflow_description" not in status
