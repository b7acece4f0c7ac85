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


def test_every_example_validates_and_the_incident_runbook_runs(cpf):
    import pathlib

    examples = sorted((pathlib.Path(__file__).parents[2] / "examples").glob("*.yaml"))
    assert len(examples) >= 2
    for example in examples:
        assert cpf("validate", "-f", str(example)).exit_code == 0, example
    incident = str(examples[[e.name for e in examples].index("incident.yaml")])
    low = cpf("run", "-f", incident, "--input", '{"service": "api", "severity": "low"}')
    assert low.exit_code == 0
    high = cpf("run", "-f", incident, "--input", '{"service": "api", "severity": "high"}')
    assert high.exit_code == 40 and high.envelope["wait"]["deadline"]
    done = cpf(
        "resume",
        "--run-id",
        high.envelope["run_id"],
        "--event",
        "oncall_decision",
        "--input",
        '{"action": "mitigate"}',
    )
    assert done.envelope["result"] == {"decision": "mitigate", "mitigated": "completed"}
