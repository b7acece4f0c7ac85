"""The quick start from the README: init, run, pause, resume, status."""

from __future__ import annotations


def test_init_template_pauses_then_completes_on_approval(cpf):
    assert cpf("init").exit_code == 0
    started = cpf("run", "-f", "checkpointflow.yaml")
    assert started.exit_code == 40
    wait = started.envelope["wait"]
    assert wait["event_name"] == "approval"
    assert wait["prompt"] == "Approve greeting world?"
    run_id = started.envelope["run_id"]
    assert f"--run-id {run_id} --event approval" in wait["resume"]["command"]

    done = cpf(
        "resume", "--run-id", run_id, "--event", "approval", "--input", '{"decision": "approve"}'
    )
    assert done.exit_code == 0
    assert done.envelope["result"] == {"approved": True, "name": "world"}
    assert cpf("status", "--run-id", run_id).envelope["status"] == "completed"
