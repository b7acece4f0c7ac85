"""`retry --workflow FILE`: the edited file becomes the run's workflow, by path, hash and
version, and `status` watches that file from then on."""

from __future__ import annotations

import json

from e2e_helpers import doc

BROKEN = """
id: fixable
name: Fixable
version: "1"
steps:
  - id: prepare
    kind: cli
    command: echo prepared >> ran.txt
  - id: work
    kind: cli
    command: "false"
  - id: done
    kind: end
    result: done
"""

FIXED = BROKEN.replace('version: "1"', 'version: "2"').replace(
    'command: "false"', "command: echo fixed >> ran.txt"
)


def failed_run(cpf) -> str:
    cpf.write("wf.yaml", doc(BROKEN))
    failed = cpf("run", "-f", "wf.yaml")
    assert (failed.exit_code, failed.envelope["current_step_id"]) == (30, "work")
    return failed.envelope["run_id"]


def state_of(cpf, run_id: str) -> dict:
    return json.loads((cpf.run_folder(run_id) / "state.json").read_text())


def test_the_fixed_file_becomes_the_runs_workflow(cpf):
    run_id = failed_run(cpf)
    fixed = cpf.write("fixes/wf-fixed.yaml", doc(FIXED))
    retried = cpf("retry", "--run-id", run_id, "--workflow", "fixes/wf-fixed.yaml")
    assert (retried.exit_code, retried.envelope["result"]) == (0, "done")
    assert retried.envelope["workflow_version"] == "2"
    status = cpf("status", "--run-id", run_id)
    assert "warnings" not in status.envelope, status.envelope["warnings"]
    assert status.envelope["workflow_version"] == "2"
    state = state_of(cpf, run_id)
    assert (state["workflow_path"], state["workflow_version"]) == (str(fixed), "2")
    records = cpf("inspect", "--run-id", run_id, "--full").envelope["result"]["history"]
    started = records[0]["payload"]
    assert (started["workflow_path"], started["workflow_version"]) == (
        str(cpf.cwd / "wf.yaml"),
        "1",
    )  # the log keeps the file the run started from
    retry = next(record["payload"] for record in records if record["type"] == "run_retried")
    assert (retry["workflow_path"], retry["workflow_version"]) == (str(fixed), "2")


def test_status_warns_about_changes_to_the_fixed_file_only(cpf):
    run_id = failed_run(cpf)
    cpf.write("wf-fixed.yaml", doc(FIXED))
    cpf("retry", "--run-id", run_id, "--workflow", "wf-fixed.yaml")
    (cpf.cwd / "wf.yaml").unlink()  # the first file no longer matters
    assert "warnings" not in cpf("status", "--run-id", run_id).envelope
    cpf.write("wf-fixed.yaml", doc(FIXED + "  # edited again\n"))
    warnings = cpf("status", "--run-id", run_id).envelope["warnings"]
    assert len(warnings) == 1 and str(cpf.cwd / "wf-fixed.yaml") in warnings[0]
    assert "changed" in warnings[0]


def test_a_retry_logged_without_the_files_path_replays_as_before(cpf):
    """Logs written before retries recorded the file keep the run's first path and version."""
    run_id = failed_run(cpf)
    cpf.write("wf-fixed.yaml", doc(FIXED))
    cpf("retry", "--run-id", run_id, "--workflow", "wf-fixed.yaml")
    folder = cpf.run_folder(run_id)
    records = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    for record in records:
        if record["type"] == "run_retried":
            for key in ("workflow_path", "workflow_version", "workflow_name"):
                del record["payload"][key]
            del record["payload"]["workflow_description"]
    (folder / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "state.json").unlink()  # rebuilt from the log
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["result"]) == (0, "done")
    assert status.envelope["workflow_version"] == "1"
    assert cpf("verify", "--run-id", run_id).exit_code == 0
