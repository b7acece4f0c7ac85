"""A run's sub-workflows are the ones it started with, placed by where they sit in the
tree: identical files in two folders keep their own references, and editing a sub-workflow
on disk never changes a run, nor a refused retry."""

from __future__ import annotations

from e2e_helpers import doc

LEAF_WAITS = doc(
    """
    id: leaf
    steps:
      - id: ask
        kind: await_event
        audience: user
        event_name: go
        input_schema: {type: object}
    """
)
LEAF_ENDS = doc(
    """
    id: leaf
    steps:
      - id: other
        kind: end
        result: from y
    """
)
COMMON = doc(
    """
    id: common
    steps:
      - id: inner
        kind: workflow
        workflow_ref: leaf.yaml
    """
)
MAIN = doc(
    """
    id: main
    steps:
      - id: one
        kind: workflow
        workflow_ref: x/common.yaml
      - id: two
        kind: workflow
        workflow_ref: y/common.yaml
      - id: fin
        kind: end
        result: {one: "${steps.one.outputs}", two: "${steps.two.outputs}"}
    """
)


def test_identical_files_in_two_folders_keep_their_own_references(cpf):
    cpf.write("x/common.yaml", COMMON)
    cpf.write("y/common.yaml", COMMON)
    cpf.write("x/leaf.yaml", LEAF_WAITS)
    cpf.write("y/leaf.yaml", LEAF_ENDS)
    cpf.write("wf.yaml", MAIN)
    started = cpf("run", "-f", "wf.yaml")
    assert started.envelope["wait"]["wait_id"] == "one.inner.ask"
    run_id = started.envelope["run_id"]
    done = cpf("resume", "--run-id", run_id, "--event", "go", "--input", '{"ok": 1}')
    assert done.envelope["status"] == "completed", done.envelope
    assert done.envelope["result"] == {"one": {"ok": 1}, "two": "from y"}
    assert cpf("verify", "--run-id", run_id).envelope["ok"]


SUB = doc(
    """
    id: sub
    steps:
      - id: ask
        kind: await_event
        audience: user
        event_name: go
        input_schema: {type: object}
      - id: work
        kind: cli
        command: "exit 1"
    """
)
TOP = doc(
    """
    id: top
    version: "1"
    steps:
      - id: child
        kind: workflow
        workflow_ref: sub.yaml
    """
)


def test_editing_a_sub_workflow_changes_no_run_and_a_refused_retry_loses_nothing(cpf):
    cpf.write("sub.yaml", SUB)
    cpf.write("wf.yaml", TOP)
    run_id = cpf("run", "-f", "wf.yaml").envelope["run_id"]
    cpf.write("sub.yaml", SUB.replace("id: ask", "id: ask2").replace("exit 1", "true"))
    refused = cpf("retry", "--run-id", run_id, "--workflow", "wf.yaml")
    assert refused.error_code == "ERR_RUN_NOT_FAILED"
    failed = cpf("resume", "--run-id", run_id, "--event", "go", "--input", "{}")
    assert failed.envelope["status"] == "failed"  # the snapshot's `exit 1`, not the edit
    assert failed.envelope["error"]["details"]["step_id"] == "child.work"

    # the same main document with other sub-workflows cannot be told apart: refused
    same_main = cpf("retry", "--run-id", run_id, "--workflow", "wf.yaml")
    assert same_main.error_code == "ERR_VALIDATION_WORKFLOW"
    assert "edit the main workflow too" in same_main.envelope["error"]["message"]
    assert cpf("verify", "--run-id", run_id).envelope["ok"]

    cpf.write("wf.yaml", TOP.replace('version: "1"', 'version: "2"'))
    retried = cpf("retry", "--run-id", run_id, "--workflow", "wf.yaml")
    assert retried.envelope["status"] == "waiting"
    assert retried.envelope["wait"]["wait_id"] == "child.ask2"
    done = cpf("resume", "--run-id", run_id, "--event", "go", "--input", "{}")
    assert done.envelope["status"] == "completed"
    assert cpf("verify", "--run-id", run_id).envelope["ok"]
