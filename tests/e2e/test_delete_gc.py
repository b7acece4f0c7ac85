"""`cpf delete` and `cpf gc`: remove runs, never one in progress, never another tool's folder."""

from __future__ import annotations

import pytest
from ops_helpers import completed_run, failed_run, holding_lock, waiting_run


def test_delete_a_finished_run(cpf):
    run_id = completed_run(cpf)
    result = cpf("delete", "--run-id", run_id)
    assert result.exit_code == 0 and result.envelope["run_id"] == run_id
    assert result.envelope["result"] == {"deleted": run_id, "status": "completed", "forced": False}
    assert not cpf.run_folder(run_id).exists()
    assert cpf("status", "--run-id", run_id).error_code == "ERR_RUN_NOT_FOUND"
    assert list((cpf.root / "runs").iterdir()) == []


def test_a_waiting_run_needs_force(cpf):
    run_id = waiting_run(cpf)
    refused = cpf("delete", "--run-id", run_id)
    assert refused.exit_code == 20 and refused.error_code == "ERR_RUN_ACTIVE"
    assert "--force" in refused.envelope["error"]["message"]
    assert cpf.run_folder(run_id).is_dir()
    assert cpf("delete", "--run-id", run_id, "--force").exit_code == 0
    assert not cpf.run_folder(run_id).exists()


def test_a_run_being_advanced_is_never_deleted(cpf):
    run_id = completed_run(cpf)
    with holding_lock(cpf.run_folder(run_id)):
        result = cpf("delete", "--run-id", run_id, "--force")
    assert result.exit_code == 70 and result.error_code == "ERR_LOCK_CONFLICT"
    assert (cpf.run_folder(run_id) / "events.jsonl").is_file()


@pytest.mark.parametrize("run_id", ["20260101T000000000Z-0000000000", "../runs", "a/b", "-x"])
def test_delete_unknown_run(cpf, run_id):
    keep = completed_run(cpf)
    result = cpf("delete", "--run-id", run_id, "--force")
    assert result.exit_code == 10 and result.error_code == "ERR_RUN_NOT_FOUND"
    assert cpf.run_folder(keep).is_dir()


def test_delete_refuses_another_tools_folder(cpf):
    other = cpf.root / "runs" / "notes"
    other.mkdir(parents=True)
    result = cpf("delete", "--run-id", "notes", "--force")
    assert result.error_code == "ERR_RUN_NOT_FOUND" and other.is_dir()


def test_gc_dry_run_reports_and_keeps(cpf):
    done, failed, waiting = completed_run(cpf), failed_run(cpf), waiting_run(cpf)
    result = cpf("gc", "--older-than", "0s", "--dry-run")
    assert result.exit_code == 0
    would = [run["run_id"] for run in result.envelope["result"]["would_delete"]]
    assert would == [failed, done]
    assert all(cpf.run_folder(run_id).is_dir() for run_id in (done, failed, waiting))


def test_gc_removes_old_finished_runs_only(cpf):
    done, failed, waiting = completed_run(cpf), failed_run(cpf), waiting_run(cpf)
    other = cpf.root / "runs" / "notes"
    other.mkdir()
    result = cpf("gc", "--older-than", "0s")
    assert {run["run_id"] for run in result.envelope["result"]["deleted"]} == {done, failed}
    assert result.envelope["result"]["statuses"] == ["cancelled", "completed", "failed"]
    assert not cpf.run_folder(done).exists() and not cpf.run_folder(failed).exists()
    assert cpf.run_folder(waiting).is_dir() and other.is_dir()


def test_gc_keeps_recent_runs(cpf):
    done = completed_run(cpf)
    result = cpf("gc", "--older-than", "30d")
    assert result.envelope["result"]["deleted"] == []
    assert cpf.run_folder(done).is_dir()


def test_gc_of_waiting_runs_only_when_listed(cpf):
    waiting, done = waiting_run(cpf), completed_run(cpf)
    result = cpf("gc", "--older-than", "0s", "--status", "waiting")
    assert [run["run_id"] for run in result.envelope["result"]["deleted"]] == [waiting]
    assert cpf.run_folder(done).is_dir()


def test_gc_skips_a_locked_run(cpf):
    done = completed_run(cpf)
    with holding_lock(cpf.run_folder(done)):
        result = cpf("gc", "--older-than", "0s")
    assert result.envelope["result"]["deleted"] == []
    kept = result.envelope["result"]["kept"]
    assert kept[0]["run_id"] == done and "another process" in kept[0]["reason"]
    assert cpf.run_folder(done).is_dir()


@pytest.mark.parametrize(
    "args", [("--older-than", "soon"), ("--older-than", "0s", "--status", "done"), ()]
)
def test_gc_bad_options(cpf, args):
    done = completed_run(cpf)
    result = cpf("gc", *args)
    assert result.exit_code == 10 and result.error_code == "ERR_USAGE"
    assert cpf.run_folder(done).is_dir()
