"""`cpf list`: runs newest first, filters, summaries rebuilt, folders of other tools."""

from __future__ import annotations

import json

import pytest
from ops_helpers import age_summary, completed_run, failed_run, waiting_run


def ids(result):
    return [run["run_id"] for run in result.envelope["result"]["runs"]]


def test_empty_store_lists_nothing(cpf):
    result = cpf("list")
    assert result.exit_code == 0
    assert result.envelope["result"] == {"runs": [], "count": 0, "matched": 0}


def test_runs_newest_first_with_their_fields(cpf):
    first, second, third = waiting_run(cpf), completed_run(cpf), failed_run(cpf)
    result = cpf("list")
    assert ids(result) == [third, second, first]
    waiting = result.envelope["result"]["runs"][2]
    assert waiting == {
        "run_id": first,
        "workflow_id": "waits",
        "workflow_version": "1.0",
        "status": "waiting",
        "current_step_id": "ask",
        "created_at": waiting["created_at"],
        "updated_at": waiting["updated_at"],
        "event_name": "go",
        "audience": "agent",
    }
    assert "event_name" not in result.envelope["result"]["runs"][0]


def test_status_filter_takes_a_comma_list(cpf):
    waiting, done, failed = waiting_run(cpf), completed_run(cpf), failed_run(cpf)
    assert ids(cpf("list", "--status", "waiting")) == [waiting]
    assert ids(cpf("list", "--status", "failed,completed")) == [failed, done]


def test_unknown_status_is_a_usage_error(cpf):
    result = cpf("list", "--status", "waiting,paused")
    assert result.exit_code == 10
    assert result.error_code == "ERR_USAGE"
    assert "paused" in result.envelope["error"]["message"]


def test_workflow_filter(cpf):
    waiting, failed = waiting_run(cpf), failed_run(cpf)
    assert ids(cpf("list", "--workflow", "fails")) == [failed]
    assert ids(cpf("list", "--workflow", "waits")) == [waiting]
    assert ids(cpf("list", "--workflow", "nothing")) == []


def test_limit_keeps_the_newest(cpf):
    runs = [waiting_run(cpf) for _ in range(3)]
    result = cpf("list", "--limit", "2")
    assert ids(result) == [runs[2], runs[1]]
    assert result.envelope["result"]["matched"] == 3


def test_older_than_finds_forgotten_waits(cpf):
    forgotten, recent = waiting_run(cpf), waiting_run(cpf)
    completed_old = completed_run(cpf)
    age_summary(cpf, forgotten, "2020-01-01T00:00:00.000Z")
    age_summary(cpf, completed_old, "2020-01-01T00:00:00.000Z")
    assert ids(cpf("list", "--status", "waiting", "--older-than", "2d")) == [forgotten]
    assert recent in ids(cpf("list", "--older-than", "0s"))


@pytest.mark.parametrize(
    "since", ["1h", "30m", "2d", "1d12h", "2020-06-01", "2020-06-01T10:00:00Z"]
)
def test_since_takes_durations_and_dates(cpf, since):
    old, new = waiting_run(cpf), waiting_run(cpf)
    age_summary(cpf, old, "2020-01-01T00:00:00.000Z")
    assert ids(cpf("list", "--since", since)) == [new]


@pytest.mark.parametrize(
    "option, value",
    [
        ("--since", "yesterday"),
        ("--since", "2d ago"),
        ("--older-than", "2x"),
        ("--older-than", "2026-01-01"),
        ("--older-than", ""),
    ],
)
def test_malformed_times_are_usage_errors(cpf, option, value):
    result = cpf("list", option, value)
    assert result.exit_code == 10
    assert result.error_code == "ERR_USAGE"
    assert option in result.envelope["error"]["message"]


def test_missing_summary_is_rebuilt_and_saved(cpf):
    run_id = waiting_run(cpf)
    summary = cpf.run_folder(run_id) / "summary.json"
    before = json.loads(summary.read_text())
    summary.unlink()
    assert cpf("list").envelope["result"]["runs"][0]["status"] == "waiting"
    assert json.loads(summary.read_text()) == before


def test_damaged_summary_is_rebuilt(cpf):
    run_id = failed_run(cpf)
    (cpf.run_folder(run_id) / "summary.json").write_text("{not json")
    result = cpf("list")
    assert result.envelope["result"]["runs"][0]["status"] == "failed"
    assert json.loads((cpf.run_folder(run_id) / "summary.json").read_text())["run_id"] == run_id


def test_folders_of_other_tools_are_ignored_and_left_alone(cpf):
    run_id = waiting_run(cpf)
    other = cpf.root / "runs" / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("mine")
    (cpf.root / "runs" / ".hidden").mkdir()
    assert ids(cpf("list")) == [run_id]
    assert (other / "readme.txt").read_text() == "mine"


def test_a_damaged_checkpoint_is_rebuilt_from_the_log_and_an_unreadable_run_is_a_warning(cpf):
    good, healed, bad = waiting_run(cpf), waiting_run(cpf), waiting_run(cpf)
    for run_id in (healed, bad):
        (cpf.run_folder(run_id) / "summary.json").unlink()
        (cpf.run_folder(run_id) / "state.json").write_text("{broken")
    log = cpf.run_folder(bad) / "events.jsonl"
    kept = log.read_bytes()
    log.write_bytes(b"")
    result = cpf("list")
    assert result.exit_code == 0
    assert sorted(ids(result)) == sorted([good, healed])
    assert bad in result.envelope["warnings"][0]
    assert cpf("status", "--run-id", healed).exit_code == 40
    log.write_bytes(kept)  # leave runs the suite's replay check accepts
    for run_id in (healed, bad):
        (cpf.run_folder(run_id) / "state.json").unlink()
