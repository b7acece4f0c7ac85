"""`cpf verify`: a run's log, checkpoint, snapshot and outputs must agree; every problem is
named with its file and how to fix it."""

from __future__ import annotations

import contextlib
import json
import shutil

import pytest
from ops_helpers import completed_run, failed_run, waiting_run


@contextlib.contextmanager
def damaged(folder):
    """Let a test damage a run folder; put it back for the suite's own checks."""
    saved = folder.with_name(folder.name + ".saved")
    shutil.copytree(folder, saved)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)
        saved.rename(folder)


def problems(result):
    assert result.exit_code == 20 and result.error_code == "ERR_VERIFY_FAILED", result.envelope
    assert result.envelope["ok"] is False
    return [p for run in result.envelope["error"]["details"] for p in run["problems"]]


def test_healthy_runs_verify(cpf):
    for run_id in (waiting_run(cpf), completed_run(cpf), failed_run(cpf)):
        result = cpf("verify", "--run-id", run_id)
        assert result.exit_code == 0, result.envelope
        assert result.envelope["result"]["runs"][0] == {
            "run_id": run_id,
            "ok": True,
            "problems": [],
            "notes": [],
        }


def test_hand_edited_state_is_caught(cpf):
    run_id = waiting_run(cpf)
    with damaged(cpf.run_folder(run_id)) as folder:
        state = json.loads((folder / "state.json").read_text())
        state["inputs"] = {"sneaky": True}
        (folder / "state.json").write_text(json.dumps(state, indent=2))
        found = problems(cpf("verify", "--run-id", run_id))
    assert found[0]["file"].endswith("state.json")
    assert "replay" in found[0]["problem"] and found[0]["fix"]


def test_wrong_log_offset_is_caught(cpf):
    run_id = waiting_run(cpf)
    with damaged(cpf.run_folder(run_id)) as folder:
        state = json.loads((folder / "state.json").read_text())
        state["log_offset"] += 1
        (folder / "state.json").write_text(json.dumps(state, indent=2))
        found = problems(cpf("verify", "--run-id", run_id))
    assert any("log_offset" in p["problem"] for p in found)


def test_truncated_log_is_caught(cpf):
    run_id = completed_run(cpf)
    with damaged(cpf.run_folder(run_id)) as folder:
        lines = (folder / "events.jsonl").read_bytes().splitlines(keepends=True)
        (folder / "events.jsonl").write_bytes(b"".join(lines[:-1]))
        found = problems(cpf("verify", "--run-id", run_id))
    assert found[0]["file"].endswith("state.json")
    assert "is at seq 3 but events.jsonl has only 2 records" in found[0]["problem"]


def test_corrupted_state_names_the_file(cpf):
    run_id = waiting_run(cpf)
    with damaged(cpf.run_folder(run_id)) as folder:
        (folder / "state.json").write_text("{ this is not json")
        result = cpf("verify", "--run-id", run_id)
        found = problems(result)
    assert found[0]["file"] == str(cpf.run_folder(run_id) / "state.json")
    assert "not valid JSON" in found[0]["problem"]
    assert "state.json" in result.envelope["error"]["message"]


def test_state_that_is_not_a_state_is_caught(cpf):
    run_id = waiting_run(cpf)
    with damaged(cpf.run_folder(run_id)) as folder:
        (folder / "state.json").write_text('{"run_id": 7}')
        found = problems(cpf("verify", "--run-id", run_id))
    assert "schema" in found[0]["problem"]


def test_bad_log_lines_are_caught(cpf):
    run_id = completed_run(cpf)
    for edit, words in (
        (lambda lines: [lines[0], b"not json\n", *lines[2:]], "line 2: is not a JSON object"),
        (lambda lines: [lines[0], *lines[2:]], "line 2: has seq 3 where 2 was expected"),
    ):
        with damaged(cpf.run_folder(run_id)) as folder:
            log = folder / "events.jsonl"
            log.write_bytes(b"".join(edit(log.read_bytes().splitlines(keepends=True))))
            found = problems(cpf("verify", "--run-id", run_id))
        assert found[0]["file"].endswith("events.jsonl") and found[0]["problem"] == words


def test_torn_last_line_is_a_note(cpf):
    run_id = waiting_run(cpf)
    with damaged(cpf.run_folder(run_id)) as folder:
        with open(folder / "events.jsonl", "ab") as log:
            log.write(b'{"seq": 4, "ty')
        result = cpf("verify", "--run-id", run_id)
    assert result.exit_code == 0
    assert "torn" in result.envelope["result"]["runs"][0]["notes"][0]


def test_edited_snapshot_is_caught(cpf):
    run_id = waiting_run(cpf)
    with damaged(cpf.run_folder(run_id)) as folder:
        with open(folder / "workflow.yaml", "a") as snapshot:
            snapshot.write("# edited\n")
        found = problems(cpf("verify", "--run-id", run_id))
    assert found[0]["file"].endswith("workflow.yaml") and "sha256" in found[0]["problem"]


def test_missing_output_file_is_caught(cpf):
    run_id = waiting_run(cpf)
    with damaged(cpf.run_folder(run_id)) as folder:
        (folder / "steps" / "hello" / "1.stderr").unlink()
        found = problems(cpf("verify", "--run-id", run_id))
    assert found[0]["file"].endswith("steps/hello/1.stderr") and "missing" in found[0]["problem"]


def test_all_checks_every_run_and_names_the_bad_one(cpf):
    good, bad = waiting_run(cpf), completed_run(cpf)
    assert cpf("verify", "--all").envelope["result"]["checked"] == 2
    with damaged(cpf.run_folder(bad)) as folder:
        (folder / "workflow.yaml").unlink()
        result = cpf("verify", "--all")
        problems(result)
    assert [run["run_id"] for run in result.envelope["error"]["details"]] == [bad]
    assert good not in json.dumps(result.envelope["error"])


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((), "ERR_USAGE"),
        (("--all", "--run-id", "x"), "ERR_RUN_NOT_FOUND"),  # wins over the usage problem
    ],
)
def test_verify_needs_one_target(cpf, args, code):
    result = cpf("verify", *args)
    assert result.exit_code == 10 and result.error_code == code


def test_verify_unknown_run(cpf):
    result = cpf("verify", "--run-id", "20260101T000000000Z-0000000000")
    assert result.exit_code == 10 and result.error_code == "ERR_RUN_NOT_FOUND"
