"""Every path through every workflow in examples/, run with the real `cpf`.

Timeouts are reached by running a copy of the example whose deadline was cut to half a
second; everything else runs the files exactly as shipped.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import resume, step_output

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EVERY_FILE = sorted([*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("*/*.yaml")])


def run(cpf: Any, name: str, inputs: dict[str, Any], folder: Path = EXAMPLES) -> Any:
    return cpf("run", "-f", str(folder / name), "--input", json.dumps(inputs))


def with_short_deadline(cpf: Any, name: str, written: str) -> Path:
    """A copy of examples/ whose file `name` waits half a second where it says `written`."""
    folder = cpf.cwd / "examples"
    shutil.copytree(EXAMPLES, folder)
    text = (folder / name).read_text()
    assert f"timeout_seconds: {written}" in text
    (folder / name).write_text(text.replace(f"timeout_seconds: {written}", "timeout_seconds: 0.5"))
    return folder


def after_deadline(cpf: Any, run_id: str) -> Any:
    time.sleep(0.8)
    return cpf("status", "--run-id", run_id)


@pytest.mark.parametrize("example", EVERY_FILE, ids=lambda path: path.name)
def test_every_example_validates_without_a_warning(cpf, example):
    checked = cpf("validate", "-f", str(example))
    assert checked.exit_code == 0
    assert "warnings" not in checked.envelope, checked.envelope["warnings"]


# --- release.yaml ---------------------------------------------------------------------------


def waiting_release(cpf: Any, folder: Path = EXAMPLES) -> str:
    started = run(cpf, "release.yaml", {"service": "billing"}, folder)
    assert started.exit_code == 40
    assert started.envelope["wait"]["prompt"] == "Release billing 1.4.2? 128 tests passed."
    return str(started.envelope["run_id"])


def test_release_approved_releases(cpf):
    done = resume(cpf, waiting_release(cpf), "release_approval", {"decision": "approve"})
    assert done.exit_code == 0
    assert done.envelope["result"] == {
        "released": True,
        "service": "billing",
        "version": "1.4.2",
        "note": None,
    }
    assert step_output(cpf, done.envelope["run_id"], "release") == "releasing billing 1.4.2\n"


def test_release_approved_with_a_note_keeps_it(cpf):
    answer = {"decision": "approve", "note": "ship it"}
    done = resume(cpf, waiting_release(cpf), "release_approval", answer)
    assert done.envelope["result"]["note"] == "ship it"


def test_release_rejected_with_a_note_gives_it_as_the_reason(cpf):
    answer = {"decision": "reject", "note": "wait for the freeze to end"}
    done = resume(cpf, waiting_release(cpf), "release_approval", answer)
    assert done.exit_code == 0
    assert done.envelope["result"] == {"released": False, "reason": "wait for the freeze to end"}


def test_release_rejected_without_a_note_still_completes(cpf):
    done = resume(cpf, waiting_release(cpf), "release_approval", {"decision": "reject"})
    assert done.exit_code == 0
    assert done.envelope["result"] == {"released": False, "reason": "rejected without a note"}


def test_release_stops_before_asking_when_tests_fail(cpf):
    done = run(cpf, "release.yaml", {"service": "billing", "failing_tests": 2})
    assert done.exit_code == 0
    assert done.envelope["result"] == {"released": False, "reason": "2 tests failed"}


def test_release_nobody_answers_in_time(cpf):
    folder = with_short_deadline(cpf, "release.yaml", "86400")
    status = after_deadline(cpf, waiting_release(cpf, folder))
    assert status.exit_code == 0
    assert status.envelope["result"] == {
        "released": False,
        "reason": "nobody approved the release within a day",
    }


# --- incident.yaml --------------------------------------------------------------------------


def paged(cpf: Any, severity: str = "high", folder: Path = EXAMPLES, **extra: Any) -> str:
    started = run(cpf, "incident.yaml", {"service": "api", "severity": severity, **extra}, folder)
    assert started.exit_code == 40
    assert started.envelope["wait"]["prompt"] == (
        f"{severity} alert on api. Mitigate now or escalate?"
    )
    return str(started.envelope["run_id"])


@pytest.mark.parametrize("severity", ["low", "medium"])
def test_incident_below_high_is_only_noted(cpf, severity):
    done = run(cpf, "incident.yaml", {"service": "api", "severity": severity})
    assert done.exit_code == 0
    assert done.envelope["result"] == {"decision": None, "mitigated": None}
    assert step_output(cpf, done.envelope["run_id"], "log_only") == (
        f"noted {severity} alert for api\n"
    )


def test_incident_mitigated(cpf):
    done = resume(cpf, paged(cpf), "oncall_decision", {"action": "mitigate"})
    assert done.exit_code == 0
    assert done.envelope["result"] == {"decision": "mitigate", "mitigated": "completed"}
    assert step_output(cpf, done.envelope["run_id"], "mitigate") == "restarting api\n"


def test_incident_critical_escalated_with_a_note(cpf):
    answer = {"action": "escalate", "note": "database is down too"}
    done = resume(cpf, paged(cpf, "critical"), "oncall_decision", answer)
    assert done.exit_code == 0
    assert done.envelope["result"] == {"decision": "escalate", "mitigated": None}
    assert step_output(cpf, done.envelope["run_id"], "escalate") == (
        "escalating api to the incident commander: database is down too\n"
    )


def test_incident_escalated_without_a_note(cpf):
    done = resume(cpf, paged(cpf), "oncall_decision", {"action": "escalate"})
    assert done.exit_code == 0
    assert step_output(cpf, done.envelope["run_id"], "escalate") == (
        "escalating api to the incident commander: no note from on-call\n"
    )


def test_incident_failed_restart_escalates(cpf):
    run_id = paged(cpf, restart_works=False)
    done = resume(cpf, run_id, "oncall_decision", {"action": "mitigate"})
    assert done.exit_code == 0
    assert done.envelope["result"] == {"decision": "mitigate", "mitigated": "failed"}
    assert (cpf.run_folder(run_id) / "steps" / "mitigate" / "2.stdout").is_file()  # retried
    assert "no note from on-call" in step_output(cpf, run_id, "escalate")


def test_incident_nobody_answers_in_time(cpf):
    folder = with_short_deadline(cpf, "incident.yaml", "900")
    status = after_deadline(cpf, paged(cpf, folder=folder))
    assert status.exit_code == 0
    assert status.envelope["result"] == {"decision": None, "mitigated": None}
    assert "no note from on-call" in step_output(cpf, status.envelope["run_id"], "escalate")


# --- rollout.yaml ---------------------------------------------------------------------------

SERVICES = ["api", "billing", "search"]


def rolling(cpf: Any, folder: Path = EXAMPLES, **extra: Any) -> Any:
    return run(cpf, "rollout.yaml", {"version": "2.4.0", "services": SERVICES, **extra}, folder)


def health(cpf: Any, run_id: str, index: int, answer: dict[str, Any]) -> Any:
    wait = f"deploy_all[{index}].confirm"
    return cpf(
        "resume",
        "--run-id",
        run_id,
        "--event",
        "health_check",
        "--wait-id",
        wait,
        "--input",
        json.dumps(answer),
    )


def pending(result: Any) -> list[str]:
    """The pending waits (in the order their deploys happened to finish, so sorted)."""
    return sorted(wait["wait_id"] for wait in result.envelope.get("waits", []))


def test_rollout_every_service_healthy(cpf):
    started = rolling(cpf)
    assert started.exit_code == 40
    assert pending(started) == ["deploy_all[0].confirm", "deploy_all[1].confirm"]
    run_id = started.envelope["run_id"]
    third = health(cpf, run_id, 0, {"healthy": True, "note": "p99 is fine"})
    assert pending(third) == ["deploy_all[1].confirm", "deploy_all[2].confirm"]
    health(cpf, run_id, 1, {"healthy": True})
    done = health(cpf, run_id, 2, {"healthy": True})
    assert done.exit_code == 0
    result = done.envelope["result"]
    assert (result["status"], result["version"], result["environment"]) == (
        "rolled_out",
        "2.4.0",
        "staging",
    )
    assert [service["note"] for service in result["services"]] == ["p99 is fine", "", ""]
    assert [service["service"] for service in result["services"]] == SERVICES


def test_rollout_unhealthy_service_rolls_every_service_back(cpf):
    run_id = rolling(cpf).envelope["run_id"]
    done = health(cpf, run_id, 1, {"healthy": False})
    assert done.exit_code == 0
    assert done.envelope["result"]["status"] == "rolled_back"
    assert "deploy_all" in done.envelope["result"]["reason"]
    restored = [step_output(cpf, run_id, f"rollback[{i}].restore") for i in range(3)]
    assert restored == [f"restoring the previous release of {name}\n" for name in SERVICES]


def test_rollout_change_freeze_aborts_before_deploying(cpf):
    done = rolling(cpf, change_freeze=True)
    assert done.exit_code == 0
    assert done.envelope["result"]["status"] == "aborted"
    assert not (cpf.run_folder(done.envelope["run_id"]) / "steps" / "deploy_all[0].deploy").exists()


def test_rollout_health_check_nobody_answers_in_time(cpf):
    folder = with_short_deadline(cpf, "rollout/deploy-service.yaml", "3600")
    status = after_deadline(cpf, rolling(cpf, folder).envelope["run_id"])
    assert status.exit_code == 0
    assert status.envelope["result"]["status"] == "rolled_back"


def test_deploy_service_runs_on_its_own(cpf):
    inputs = {"service": "api", "version": "2.4.0"}
    started = run(cpf, "rollout/deploy-service.yaml", inputs)
    assert started.envelope["wait"]["prompt"] == (
        "api 2.4.0 is live in staging with 3 replicas. Is it healthy?"
    )
    done = resume(cpf, started.envelope["run_id"], "health_check", {"healthy": True})
    assert done.envelope["result"] == {**inputs, "replicas": 3, "note": ""}
