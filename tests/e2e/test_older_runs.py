"""Runs written by an earlier version of `cpf` stay readable and resumable: a waiting run
folder kept in tests/fixtures/runs (made before api responses, workflow names, signals and
fall-through transitions were recorded, with a state.json in the v1 form that still held
the steps of completed iterations) verifies, reports and finishes here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runs"
OLDER = "20261206T041002597Z-16d9569dd5"


def install(cpf) -> str:
    shutil.copytree(FIXTURES / OLDER, cpf.root / "runs" / OLDER)
    return OLDER


def test_an_older_waiting_run_verifies_and_reports_its_wait(cpf):
    run_id = install(cpf)
    assert cpf("verify", "--run-id", run_id).exit_code == 0
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"]) == (40, "waiting")
    assert status.envelope["wait"]["prompt"] == "Ship app.tar?"
    assert cpf("inspect", "--run-id", run_id).exit_code == 40


def test_an_older_waiting_run_resumes_to_its_end(cpf):
    run_id = install(cpf)
    done = cpf(
        "resume", "--run-id", run_id, "--event", "approval", "--input", '{"decision": "approve"}'
    )
    assert done.envelope["status"] == "completed", done.envelope
    assert done.envelope["result"] == {"artifact": "app.tar", "decision": "approve"}
    assert cpf("verify", "--run-id", run_id).exit_code == 0
    state = json.loads((cpf.run_folder(run_id) / "state.json").read_text())
    assert state["schema_version"] == "checkpointflow-state/v2"  # rewritten in today's form


def test_an_older_run_lists_with_the_new_ones(cpf):
    run_id = install(cpf)
    listed = cpf("list").envelope["result"]["runs"]
    assert [run["run_id"] for run in listed] == [run_id]
