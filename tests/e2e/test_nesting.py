"""Composable steps: foreach, parallel and workflow (sub-workflows), nested waits, errors
routed inside frames, validation of nested documents, and replay after concurrent runs."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import HEAD, doc, inspect, start, step_history
from http_server import Server, serving


@pytest.fixture
def server() -> Iterator[Server]:
    yield from serving()


def state_of(cpf: Any, run_id: str) -> dict[str, Any]:
    return inspect(cpf, run_id)["state"]


def wait_ids(result: Any) -> list[str]:
    return [wait["wait_id"] for wait in result.envelope.get("waits", [])]


def events(cpf: Any, run_id: str) -> list[dict[str, Any]]:
    log = cpf.run_folder(run_id) / "events.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def finished_steps(cpf: Any, run_id: str) -> list[str]:
    return [
        record["payload"]["step_id"]
        for record in events(cpf, run_id)
        if record["type"] == "step_finished"
    ]


def ref_step(step_id: str, ref: str) -> str:
    return f"  - id: {step_id}\n    kind: workflow\n    workflow_ref: {ref}\n"


def resume_wait(cpf: Any, run_id: str, event: str, data: Any, *args: str) -> Any:
    return cpf("resume", "--run-id", run_id, "--event", event, "--input", json.dumps(data), *args)


# --- foreach alone ----------------------------------------------------------------------------

FOREACH = """
id: each_item
inputs:
  type: object
  properties:
    names: {}
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - id: greet
        kind: cli
        argv: [printf, '{"name": "%s", "index": %s}', '${item}', '${item_index}']
  - id: done
    kind: end
    result: ${steps.each.outputs}
"""


def test_foreach_runs_the_body_once_per_item_with_item_and_index(cpf):
    result = start(cpf, FOREACH, {"names": ["ada", "grace", "linus"]})
    assert (result.exit_code, result.envelope["status"]) == (0, "completed")
    assert result.envelope["result"] == [
        {"name": "ada", "index": 0},
        {"name": "grace", "index": 1},
        {"name": "linus", "index": 2},
    ]
    run_id = result.envelope["run_id"]
    for index, name in enumerate(["ada", "grace", "linus"]):
        stdout = cpf.run_folder(run_id) / "steps" / f"each[{index}].greet" / "1.stdout"
        assert json.loads(stdout.read_text()) == {"name": name, "index": index}
    steps = state_of(cpf, run_id)["steps"]
    assert steps["each"]["status"] == "completed"
    # a completed iteration's steps leave the state; the history keeps them
    assert [key for key in steps if key.startswith("each[")] == []
    [row] = step_history(cpf, run_id)["each[1].greet"]
    assert (row["status"], row["outputs"]) == ("completed", {"name": "grace", "index": 1})


def test_foreach_with_concurrency_keeps_outputs_in_item_order(cpf):
    body = """
id: concurrent
steps:
  - id: each
    kind: foreach
    items: ${inputs.jobs}
    concurrency: 3
    body:
      - id: nap
        kind: cli
        argv: [sleep, '${item.delay}']
      - id: report
        kind: cli
        argv: [printf, '{"name": "%s", "index": %s}', '${item.name}', '${item_index}']
  - id: done
    kind: end
    result: ${steps.each.outputs}
"""
    delays = [0.6, 0.3, 0.0, 0.6, 0.3, 0.0]
    jobs = [{"name": f"job{i}", "delay": delay} for i, delay in enumerate(delays)]
    result = start(cpf, body, {"jobs": jobs})
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == [{"name": f"job{i}", "index": i} for i in range(6)]
    # The iterations really overlapped: a later, shorter one finished before the first.
    order = [key for key in finished_steps(cpf, result.envelope["run_id"]) if key.endswith("nap")]
    assert sorted(order) == [f"each[{i}].nap" for i in range(6)]
    assert order.index("each[2].nap") < order.index("each[0].nap")


def test_foreach_over_an_empty_list_completes_with_an_empty_list(cpf):
    result = start(cpf, FOREACH, {"names": []})
    assert (result.exit_code, result.envelope["status"]) == (0, "completed")
    assert result.envelope["result"] == []
    assert finished_steps(cpf, result.envelope["run_id"]) == []
    assert state_of(cpf, result.envelope["run_id"])["steps"]["each"]["outputs"] == []


@pytest.mark.parametrize("items", ["ada", {"name": "ada"}, 3, None])
def test_foreach_items_that_are_not_a_list_fail_the_run(cpf, items):
    result = start(cpf, FOREACH, {"names": items})
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED")
    assert result.envelope["status"] == "failed"
    assert "items must be a list" in result.envelope["error"]["message"]
    assert result.envelope["error"]["step_id"] == "each"


@pytest.mark.parametrize(
    ("printed", "ok"), [("'\"x\"'", True), ("7", False)], ids=["match", "mismatch"]
)
def test_a_foreach_outputs_schema_checks_the_list(cpf, printed, ok):
    body = f"""
id: checked
steps:
  - id: each
    kind: foreach
    items: ${{inputs.names}}
    outputs:
      type: array
      items: {{type: string}}
    body:
      - id: emit
        kind: cli
        command: printf {printed}
  - id: done
    kind: end
    result: ${{steps.each.outputs}}
"""
    result = start(cpf, body, {"names": ["a", "b"]})
    if ok:
        assert (result.exit_code, result.envelope["result"]) == (0, ["x", "x"]), result.envelope
    else:
        assert (result.exit_code, result.error_code) == (30, "ERR_STEP_OUTPUT_INVALID")
        assert result.envelope["error"]["step_id"] == "each"


# --- foreach fail_fast --------------------------------------------------------------------------

FAILING_FOREACH = """
id: fail_fast
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    concurrency: 1
    FAIL_FAST
    body:
      - id: work
        kind: cli
        command: 'touch "ran-${item}.txt"; test "${item}" != bad1 && test "${item}" != bad2'
  - id: after
    kind: cli
    command: touch after.txt
"""


@pytest.mark.parametrize("setting", ["", "fail_fast: true"], ids=["default", "explicit"])
def test_foreach_fail_fast_stops_at_the_first_failing_iteration(cpf, setting):
    body = FAILING_FOREACH.replace("FAIL_FAST", setting)
    result = start(cpf, body, {"names": ["ok1", "bad1", "ok2", "bad2"]})
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED")
    assert result.envelope["status"] == "failed"
    assert result.envelope["error"]["step_id"] == "each"
    assert (cpf.cwd / "ran-ok1.txt").exists()
    assert (cpf.cwd / "ran-bad1.txt").exists()
    assert not (cpf.cwd / "ran-ok2.txt").exists()
    assert not (cpf.cwd / "ran-bad2.txt").exists()
    assert not (cpf.cwd / "after.txt").exists()
    steps = state_of(cpf, result.envelope["run_id"])["steps"]
    assert steps["each"]["status"] == "failed"
    assert steps["each[1].work"]["status"] == "failed"
    assert "each[2].work" not in steps and "each[3].work" not in steps


def test_foreach_without_fail_fast_runs_all_and_lists_every_failure(cpf):
    body = FAILING_FOREACH.replace("FAIL_FAST", "fail_fast: false")
    result = start(cpf, body, {"names": ["ok1", "bad1", "ok2", "bad2"]})
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED")
    for name in ["ok1", "bad1", "ok2", "bad2"]:
        assert (cpf.cwd / f"ran-{name}.txt").exists(), name
    assert not (cpf.cwd / "after.txt").exists()
    details = result.envelope["error"]["details"]
    assert [detail["child"] for detail in details] == ["each[1]", "each[3]"]
    assert [detail["error"]["code"] for detail in details] == ["ERR_STEP_FAILED"] * 2
    assert [detail["error"]["step_id"] for detail in details] == ["each[1].work", "each[3].work"]
    steps = state_of(cpf, result.envelope["run_id"])["steps"]
    assert steps["each[1].work"]["status"] == "failed"  # failed iterations stay in the state
    assert "each[2].work" not in steps
    [row] = step_history(cpf, result.envelope["run_id"])["each[2].work"]
    assert row["status"] == "completed"


def test_fail_fast_stops_running_iterations_and_starts_no_more(cpf):
    body = """
id: fast
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    concurrency: 2
    body:
      - id: work
        kind: cli
        command: 'if [ "${item}" = bad ]; then exit 4; fi; sleep 30; touch "done-${item}.txt"'
"""
    result = start(cpf, body, {"names": ["slow", "bad", "later"]})
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED")
    assert result.envelope["error"]["step_id"] == "each"
    assert not (cpf.cwd / "done-slow.txt").exists()
    assert not (cpf.cwd / "done-later.txt").exists()
    steps = state_of(cpf, result.envelope["run_id"])["steps"]
    # the iteration that was running is stopped, and its attempt is recorded
    [stopped] = steps["each[0].work"]["attempts"]
    assert stopped["exit_code"] != 0
    assert steps["each[0].work"]["status"] == "cancelled"
    assert steps["each[1].work"]["status"] == "failed"
    assert "each[2].work" not in steps
    assert sorted(finished_steps(cpf, result.envelope["run_id"])) == [
        "each[0].work",
        "each[1].work",
    ]


def test_fail_fast_cancels_a_pending_wait_of_another_iteration(cpf):
    body = """
id: cancel_wait
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    concurrency: 2
    body:
      - id: gate
        kind: switch
        cases:
          - when: item == "bad"
            next: boom
        default: confirm
      - id: confirm
        kind: await_event
        audience: user
        event_name: confirm
        input_schema: {type: object}
      - id: finished
        kind: end
        result: answered
      - id: boom
        kind: cli
        command: exit 5
"""
    result = start(cpf, body, {"names": ["asks", "bad"]})
    assert (result.exit_code, result.envelope["status"]) == (30, "failed"), result.envelope
    assert result.error_code == "ERR_STEP_FAILED"
    assert "waits" not in result.envelope
    run_id = result.envelope["run_id"]
    late = resume_wait(cpf, run_id, "confirm", {})
    assert (late.exit_code, late.error_code) == (20, "ERR_RUN_NOT_WAITING")
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"]) == (30, "failed")


def test_retrying_a_failed_foreach_runs_the_whole_step_again(cpf):
    body = """
id: redrive
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - id: work
        kind: cli
        command: 'echo "${item}" >> ran.log; test "${item}" != flaky || test -e fixed'
  - id: done
    kind: end
    result: ${steps.each.outputs}
"""
    failed = start(cpf, body, {"names": ["steady", "flaky"]})
    assert (failed.exit_code, failed.error_code) == (30, "ERR_STEP_FAILED")
    (cpf.cwd / "fixed").touch()
    retried = cpf("retry", "--run-id", failed.envelope["run_id"])
    assert (retried.exit_code, retried.envelope["status"]) == (0, "completed"), retried.envelope
    assert (cpf.cwd / "ran.log").read_text().splitlines() == ["steady", "flaky"] * 2


# --- parallel alone -----------------------------------------------------------------------------

PARALLEL = """
id: checks
steps:
  - id: checks
    kind: parallel
    MAX_CONCURRENCY
    branches:
      - id: lint
        steps:
          - id: run_lint
            kind: cli
            command: 'echo lint >> ran.log; printf "{\\"lint\\": \\"clean\\"}"'
      - id: unit
        steps:
          - id: run_tests
            kind: cli
            command: 'echo unit >> ran.log; UNIT_COMMAND'
          - id: count
            kind: cli
            argv: [printf, '{"passed": 12}']
      - start_at: audit
  - id: audit
    kind: cli
    command: echo audit >> audit.log
    transitions:
      - next: sign
  - id: sign
    kind: cli
    command: 'echo sign >> audit.log; printf "{\\"signed\\": true}"'
  - id: done
    kind: end
    result: ${steps.checks.outputs}
"""


@pytest.mark.parametrize("limit", ["", "max_concurrency: 1"], ids=["unlimited", "one_at_a_time"])
def test_parallel_outputs_are_keyed_by_branch_and_start_at_steps_run_once(cpf, limit):
    body = PARALLEL.replace("MAX_CONCURRENCY", limit).replace("UNIT_COMMAND", "true")
    result = start(cpf, body)
    assert (result.exit_code, result.envelope["status"]) == (0, "completed"), result.envelope
    assert result.envelope["result"] == {
        "lint": {"lint": "clean"},
        "unit": {"passed": 12},
        "audit": {"signed": True},
    }
    # the start_at branch ran audit -> sign once, and the main list skipped both
    assert (cpf.cwd / "audit.log").read_text().splitlines() == ["audit", "sign"]
    assert sorted((cpf.cwd / "ran.log").read_text().splitlines()) == ["lint", "unit"]
    steps = state_of(cpf, result.envelope["run_id"])["steps"]
    assert steps["checks"]["status"] == "completed"
    history = step_history(cpf, result.envelope["run_id"])
    for key in ["checks.lint.run_lint", "checks.unit.run_tests", "checks.unit.count"]:
        assert key not in steps
        assert [row["status"] for row in history[key]] == ["completed"], key
    # steps of a start_at branch belong to the frame around it and stay
    assert steps["audit"]["status"] == "completed"
    assert steps["sign"]["status"] == "completed"
    assert len(steps["audit"]["attempts"]) == 1
    assert len(steps["sign"]["attempts"]) == 1


@pytest.mark.parametrize("limit", ["", "max_concurrency: 1"], ids=["unlimited", "one_at_a_time"])
def test_a_failing_branch_fails_the_parallel_step_after_the_others_end(cpf, limit):
    body = PARALLEL.replace("MAX_CONCURRENCY", limit).replace("UNIT_COMMAND", "exit 3")
    result = start(cpf, body)
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED")
    assert result.envelope["status"] == "failed"
    assert result.envelope["error"]["step_id"] == "checks"
    details = result.envelope["error"]["details"]
    assert [detail["child"] for detail in details] == ["checks.unit"]
    assert details[0]["error"]["step_id"] == "checks.unit.run_tests"
    # every other branch still ran to its end
    assert sorted((cpf.cwd / "ran.log").read_text().splitlines()) == ["lint", "unit"]
    assert (cpf.cwd / "audit.log").read_text().splitlines() == ["audit", "sign"]
    steps = state_of(cpf, result.envelope["run_id"])["steps"]
    assert "checks.unit.count" not in steps
    assert "done" not in steps
    status = cpf("status", "--run-id", result.envelope["run_id"])
    assert (status.exit_code, status.envelope["status"]) == (30, "failed")


# --- workflow steps -----------------------------------------------------------------------------

CHILD = """
id: child
inputs:
  type: object
  required: [name]
  properties:
    name: {type: string}
outputs:
  greeting: steps.hello.outputs.text
steps:
  - id: hello
    kind: cli
    argv: [printf, '{"text": "hello %s"}', '${inputs.name}']
"""

PARENT = """
id: parent
inputs:
  type: object
  properties:
    who: {}
steps:
  - id: sub
    kind: workflow
    workflow_ref: sub/child.yaml
    inputs:
      name: ${inputs.who}
  - id: done
    kind: end
    result: ${steps.sub.outputs}
"""


def test_workflow_ref_is_relative_to_the_referring_file(cpf):
    cpf.write("project/flows/parent.yaml", doc(PARENT))
    cpf.write("project/flows/sub/child.yaml", doc(CHILD))
    # a decoy where a path relative to the working folder would lead
    cpf.write("sub/child.yaml", doc(CHILD.replace("hello %s", "decoy %s")))
    assert cpf("validate", "-f", "project/flows/parent.yaml").exit_code == 0
    result = cpf("run", "-f", "project/flows/parent.yaml", "--input", '{"who": "Ada"}')
    assert (result.exit_code, result.envelope["status"]) == (0, "completed"), result.envelope
    assert result.envelope["result"] == {"greeting": "hello Ada"}
    steps = state_of(cpf, result.envelope["run_id"])["steps"]
    assert steps["sub"]["outputs"] == {"greeting": "hello Ada"}
    assert "sub.hello" not in steps
    [row] = step_history(cpf, result.envelope["run_id"])["sub.hello"]
    assert row["outputs"] == {"text": "hello Ada"}


def test_workflow_ref_follows_the_file_given_by_an_absolute_path(cpf):
    cpf.write("project/flows/parent.yaml", doc(PARENT))
    cpf.write("project/flows/sub/child.yaml", doc(CHILD))
    absolute = str(cpf.cwd / "project" / "flows" / "parent.yaml")
    result = cpf("run", "-f", absolute, "--input", '{"who": "Grace"}')
    assert result.envelope["result"] == {"greeting": "hello Grace"}


@pytest.mark.parametrize(
    "mapping",
    [
        "inputs:\n      name: ${inputs.who}",
        "inputs: {}",
        "inputs:\n      name: Ada\n      extra: 1",
    ],
    ids=["wrong_type", "missing", "unexpected"],
)
def test_workflow_inputs_are_checked_against_the_sub_workflow_schema(cpf, mapping):
    child = CHILD.replace(
        "    name: {type: string}\n", "    name: {type: string}\n  additionalProperties: false\n"
    ).replace("steps:\n", "steps:\n  - {id: first, kind: cli, command: touch ran.txt}\n")
    cpf.write(
        "flows/parent.yaml", doc(PARENT.replace("inputs:\n      name: ${inputs.who}", mapping))
    )
    cpf.write("flows/sub/child.yaml", doc(child))
    result = cpf("run", "-f", "flows/parent.yaml", "--input", '{"who": 42}')
    assert (result.exit_code, result.error_code) == (30, "ERR_VALIDATION_INPUT"), result.envelope
    assert result.envelope["status"] == "failed"
    assert result.envelope["error"]["step_id"] == "sub"
    steps = state_of(cpf, result.envelope["run_id"])["steps"]
    assert steps["sub"]["status"] == "failed"
    assert "sub.first" not in steps and "sub.hello" not in steps
    assert not (cpf.cwd / "ran.txt").exists()


def test_a_sub_workflow_end_result_wins_over_its_outputs_mapping(cpf):
    child = (
        CHILD
        + "  - id: finish\n    kind: end\n    result:\n      ended: ${steps.hello.outputs.text}\n"
    )
    cpf.write("flows/parent.yaml", doc(PARENT))
    cpf.write("flows/sub/child.yaml", doc(child))
    result = cpf("run", "-f", "flows/parent.yaml", "--input", '{"who": "Ada"}')
    assert result.envelope["result"] == {"ended": "hello Ada"}


WAITING_CHILD = """
id: child
inputs:
  type: object
  required: [name]
  properties:
    name: {type: string}
outputs:
  greeting: steps.hello.outputs.text
  note: steps.confirm.outputs.note
steps:
  - id: confirm
    kind: await_event
    audience: user
    event_name: confirm
    input_schema:
      type: object
      required: [note]
      properties:
        note: {type: string}
  - id: hello
    kind: cli
    argv: [printf, '{"text": "hello %s"}', '${inputs.name}']
"""


def test_a_running_sub_workflow_uses_its_snapshot_not_the_file(cpf):
    parent = cpf.write("flows/parent.yaml", doc(PARENT))
    child = cpf.write("flows/sub/child.yaml", doc(WAITING_CHILD))
    original = child.read_bytes()
    started = cpf("run", "-f", "flows/parent.yaml", "--input", '{"who": "Ada"}')
    assert started.exit_code == 40, started.envelope
    run_id = started.envelope["run_id"]
    folder = cpf.run_folder(run_id)
    child_sha = hashlib.sha256(original).hexdigest()
    parent_sha = hashlib.sha256(parent.read_bytes()).hexdigest()
    assert (folder / "workflows" / f"{child_sha}.yaml").read_bytes() == original
    refs = json.loads((folder / "workflows" / "refs.json").read_text())
    assert refs[parent_sha]["sub/child.yaml"] == child_sha
    # change the sub-workflow, then remove it altogether
    child.write_text(doc(WAITING_CHILD.replace("hello %s", "changed %s")))
    changed = cpf("status", "--run-id", run_id)
    assert changed.exit_code == 40
    child.unlink()
    done = resume_wait(cpf, run_id, "confirm", {"note": "fine"})
    assert (done.exit_code, done.envelope["status"]) == (0, "completed"), done.envelope
    assert done.envelope["result"] == {"greeting": "hello Ada", "note": "fine"}
    assert cpf("verify", "--run-id", run_id).exit_code == 0


# --- waits inside containers --------------------------------------------------------------------


def test_a_wait_inside_a_foreach_body_pauses_each_iteration_in_turn(cpf):
    body = """
id: confirm_each
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - id: prep
        kind: cli
        command: touch "prep-${item}.txt"
      - id: confirm
        kind: await_event
        audience: user
        event_name: confirm
        prompt: Go ahead with ${item}?
        input_schema:
          type: object
          required: [ok]
      - id: after
        kind: cli
        command: touch "after-${item}.txt"
      - id: out
        kind: end
        result:
          item: ${item}
          answer: ${steps.confirm.outputs}
  - id: done
    kind: end
    result: ${steps.each.outputs}
"""
    started = start(cpf, body, {"names": ["a", "b"]})
    assert (started.exit_code, started.envelope["status"]) == (40, "waiting")
    run_id = started.envelope["run_id"]
    wait = started.envelope["wait"]
    assert (wait["wait_id"], wait["step_id"]) == ("each[0].confirm", "each[0].confirm")
    assert wait["event_name"] == "confirm"
    assert wait["prompt"] == "Go ahead with a?"
    assert wait_ids(started) == ["each[0].confirm"]
    assert (cpf.cwd / "prep-a.txt").exists()
    assert not (cpf.cwd / "after-a.txt").exists()
    assert not (cpf.cwd / "prep-b.txt").exists()

    second = resume_wait(cpf, run_id, "confirm", {"ok": 1})
    assert (second.exit_code, second.envelope["status"]) == (40, "waiting")
    assert second.envelope["wait"]["wait_id"] == "each[1].confirm"
    assert wait_ids(second) == ["each[1].confirm"]
    assert (cpf.cwd / "after-a.txt").exists()
    assert (cpf.cwd / "prep-b.txt").exists()
    assert not (cpf.cwd / "after-b.txt").exists()

    done = resume_wait(cpf, run_id, "confirm", {"ok": 2})
    assert (done.exit_code, done.envelope["status"]) == (0, "completed")
    assert done.envelope["result"] == [
        {"item": "a", "answer": {"ok": 1}},
        {"item": "b", "answer": {"ok": 2}},
    ]
    assert (cpf.cwd / "after-b.txt").exists()
    # each step ran exactly once
    assert sorted(finished_steps(cpf, run_id)) == sorted(
        ["each[0].prep", "each[0].after", "each[1].prep", "each[1].after"]
    )


def test_a_wait_inside_a_sub_workflow_flows_its_outputs_to_the_parent(cpf):
    cpf.write("flows/parent.yaml", doc(PARENT))
    cpf.write("flows/sub/child.yaml", doc(WAITING_CHILD))
    started = cpf("run", "-f", "flows/parent.yaml", "--input", '{"who": "Ada"}')
    assert (started.exit_code, started.envelope["status"]) == (40, "waiting")
    assert started.envelope["wait"]["wait_id"] == "sub.confirm"
    assert started.envelope["wait"]["step_id"] == "sub.confirm"
    assert wait_ids(started) == ["sub.confirm"]
    run_id = started.envelope["run_id"]
    refused = resume_wait(cpf, run_id, "confirm", {"note": 5})
    assert (refused.exit_code, refused.error_code) == (10, "ERR_VALIDATION_EVENT_INPUT")
    assert cpf("status", "--run-id", run_id).exit_code == 40
    done = resume_wait(cpf, run_id, "confirm", {"note": "looks good"})
    assert (done.exit_code, done.envelope["status"]) == (0, "completed")
    assert done.envelope["result"] == {"greeting": "hello Ada", "note": "looks good"}
    steps = state_of(cpf, run_id)["steps"]
    assert steps["sub"]["outputs"] == {"greeting": "hello Ada", "note": "looks good"}


TWO_APPROVALS = """
id: approvals
steps:
  - id: approvals
    kind: parallel
    branches:
      - id: security
        steps:
          - id: confirm
            kind: await_event
            audience: user
            event_name: approve
            input_schema: {type: object}
          - id: record
            kind: end
            result:
              by: security
              answer: ${steps.confirm.outputs}
      - id: legal
        steps:
          - id: confirm
            kind: await_event
            audience: user
            event_name: approve
            input_schema: {type: object}
          - id: record
            kind: end
            result:
              by: legal
              answer: ${steps.confirm.outputs}
  - id: done
    kind: end
    result: ${steps.approvals.outputs}
"""

SECURITY = "approvals.security.confirm"
LEGAL = "approvals.legal.confirm"
BOTH_DONE = {
    "security": {"by": "security", "answer": {"from": "security"}},
    "legal": {"by": "legal", "answer": {"from": "legal"}},
}


def start_two_approvals(cpf: Any) -> tuple[str, Any]:
    started = start(cpf, TWO_APPROVALS)
    assert (started.exit_code, started.envelope["status"]) == (40, "waiting"), started.envelope
    return started.envelope["run_id"], started


def test_two_parallel_waits_are_both_listed(cpf):
    run_id, started = start_two_approvals(cpf)
    assert wait_ids(started) == [SECURITY, LEGAL]
    first, entry = started.envelope["wait"], started.envelope["waits"][0]
    assert {key: first[key] for key in entry} == entry  # the short entry of the same wait
    assert "input_schema" not in entry and "instructions" not in entry
    tokens = {wait["wait_token"] for wait in started.envelope["waits"]}
    assert len(tokens) == 2
    for wait in started.envelope["waits"]:
        assert wait["step_id"] == wait["wait_id"]
        assert wait["event_name"] == "approve"
        assert f"--token {wait['wait_token']}" in wait["resume"]["command"]
    status = cpf("status", "--run-id", run_id)
    assert status.exit_code == 40
    assert wait_ids(status) == [SECURITY, LEGAL]


def test_an_ambiguous_resume_is_refused_and_changes_nothing(cpf):
    run_id, _ = start_two_approvals(cpf)
    log = cpf.run_folder(run_id) / "events.jsonl"
    before = log.read_bytes()
    refused = resume_wait(cpf, run_id, "approve", {"from": "someone"})
    assert (refused.exit_code, refused.error_code) == (20, "ERR_WAIT_AMBIGUOUS")
    assert log.read_bytes() == before
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"]) == (40, "waiting")
    assert wait_ids(status) == [SECURITY, LEGAL]


@pytest.mark.parametrize(
    "order", [[SECURITY, LEGAL], [LEGAL, SECURITY]], ids=["sec_first", "legal_first"]
)
def test_resuming_parallel_waits_by_wait_id_in_either_order(cpf, order):
    run_id, _ = start_two_approvals(cpf)
    first, second = order
    who = {SECURITY: "security", LEGAL: "legal"}
    half = resume_wait(cpf, run_id, "approve", {"from": who[first]}, "--wait-id", first)
    assert (half.exit_code, half.envelope["status"]) == (40, "waiting")
    assert wait_ids(half) == [second]
    assert half.envelope["wait"]["wait_id"] == second
    done = resume_wait(cpf, run_id, "approve", {"from": who[second]}, "--wait-id", second)
    assert (done.exit_code, done.envelope["status"]) == (0, "completed"), done.envelope
    assert done.envelope["result"] == BOTH_DONE


def test_resuming_a_parallel_wait_by_its_token(cpf):
    run_id, started = start_two_approvals(cpf)
    tokens = {wait["wait_id"]: wait["wait_token"] for wait in started.envelope["waits"]}
    half = resume_wait(cpf, run_id, "approve", {"from": "legal"}, "--token", tokens[LEGAL])
    assert (half.exit_code, half.envelope["status"]) == (40, "waiting")
    assert wait_ids(half) == [SECURITY]
    assert half.envelope["wait"]["wait_token"] == tokens[SECURITY]
    # the answered token is stale now
    again = resume_wait(cpf, run_id, "approve", {"from": "legal"}, "--token", tokens[LEGAL])
    assert (again.exit_code, again.error_code) == (10, "ERR_STALE_WAIT")
    # with one wait left, the event name alone is enough
    done = resume_wait(cpf, run_id, "approve", {"from": "security"})
    assert (done.exit_code, done.envelope["status"]) == (0, "completed")
    assert done.envelope["result"] == BOTH_DONE


def test_an_unknown_wait_id_is_refused(cpf):
    run_id, _ = start_two_approvals(cpf)
    log = cpf.run_folder(run_id) / "events.jsonl"
    before = log.read_bytes()
    refused = resume_wait(cpf, run_id, "approve", {}, "--wait-id", "approvals.finance.confirm")
    assert (refused.exit_code, refused.error_code) == (20, "ERR_RESUME_EVENT_MISMATCH")
    wrong_event = resume_wait(cpf, run_id, "sign_off", {}, "--wait-id", SECURITY)
    assert (wrong_event.exit_code, wrong_event.error_code) == (20, "ERR_RESUME_EVENT_MISMATCH")
    assert log.read_bytes() == before
    assert wait_ids(cpf("status", "--run-id", run_id)) == [SECURITY, LEGAL]


def test_a_wait_in_one_branch_pauses_the_run_only_after_the_other_branch_ends(cpf):
    body = """
id: mixed
steps:
  - id: both
    kind: parallel
    branches:
      - id: ask
        steps:
          - id: confirm
            kind: await_event
            audience: user
            event_name: confirm
            input_schema: {type: object}
      - id: work
        steps:
          - id: slow
            kind: cli
            argv: [sh, -c, 'sleep 0.3; touch slow.txt; printf "{\\"done\\": true}"']
  - id: done
    kind: end
    result: ${steps.both.outputs}
"""
    started = start(cpf, body)
    assert (started.exit_code, started.envelope["status"]) == (40, "waiting")
    assert wait_ids(started) == ["both.ask.confirm"]
    assert (cpf.cwd / "slow.txt").exists()
    run_id = started.envelope["run_id"]
    assert "both.work.slow" not in state_of(cpf, run_id)["steps"]  # its branch completed
    assert [row["status"] for row in step_history(cpf, run_id)["both.work.slow"]] == ["completed"]
    done = resume_wait(cpf, run_id, "confirm", {"ok": True})
    assert done.envelope["result"] == {"ask": {"ok": True}, "work": {"done": True}}
    assert finished_steps(cpf, run_id) == ["both.work.slow"]


def test_parallel_waits_on_different_events_resume_by_event_name(cpf):
    body = TWO_APPROVALS.replace(
        "            event_name: approve\n            input_schema: {type: object}\n"
        "          - id: record\n            kind: end\n            result:\n              by: legal",
        "            event_name: sign_off\n            input_schema: {type: object}\n"
        "          - id: record\n            kind: end\n            result:\n              by: legal",
    )
    assert "sign_off" in body
    started = start(cpf, body)
    run_id = started.envelope["run_id"]
    assert [w["event_name"] for w in started.envelope["waits"]] == ["approve", "sign_off"]
    half = resume_wait(cpf, run_id, "sign_off", {"from": "legal"})
    assert (half.exit_code, wait_ids(half)) == (40, [SECURITY])
    wrong = resume_wait(cpf, run_id, "sign_off", {"from": "legal"})
    assert (wrong.exit_code, wrong.error_code) == (20, "ERR_RESUME_EVENT_MISMATCH")
    done = resume_wait(cpf, run_id, "approve", {"from": "security"})
    assert done.envelope["result"] == BOTH_DONE


def test_cancelling_a_run_with_several_waits(cpf):
    run_id, _ = start_two_approvals(cpf)
    cancelled = cpf("cancel", "--run-id", run_id, "--reason", "not needed")
    assert (cancelled.exit_code, cancelled.envelope["status"]) == (0, "cancelled")
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"]) == (50, "cancelled")
    assert "waits" not in status.envelope and "wait" not in status.envelope


def test_foreach_over_a_waiting_sub_workflow_holds_several_waits(cpf):
    cpf.write(
        "flows/main.yaml",
        doc(
            """
id: main
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    concurrency: 2
    workflow_ref: sub/child.yaml
    inputs:
      name: ${item}
  - id: done
    kind: end
    result: ${steps.each.outputs}
"""
        ),
    )
    cpf.write("flows/sub/child.yaml", doc(WAITING_CHILD))
    started = cpf("run", "-f", "flows/main.yaml", "--input", '{"names": ["a", "b", "c"]}')
    assert (started.exit_code, started.envelope["status"]) == (40, "waiting")
    assert wait_ids(started) == ["each[0].confirm", "each[1].confirm"]
    run_id = started.envelope["run_id"]
    ambiguous = resume_wait(cpf, run_id, "confirm", {"note": "x"})
    assert ambiguous.error_code == "ERR_WAIT_AMBIGUOUS"

    # answering iteration 1 lets iteration 2 start (concurrency 2)
    next_ = resume_wait(cpf, run_id, "confirm", {"note": "B"}, "--wait-id", "each[1].confirm")
    assert next_.exit_code == 40
    assert wait_ids(next_) == ["each[0].confirm", "each[2].confirm"]
    after_c = resume_wait(cpf, run_id, "confirm", {"note": "C"}, "--wait-id", "each[2].confirm")
    assert wait_ids(after_c) == ["each[0].confirm"]
    done = resume_wait(cpf, run_id, "confirm", {"note": "A"})
    assert (done.exit_code, done.envelope["status"]) == (0, "completed")
    assert done.envelope["result"] == [
        {"greeting": "hello a", "note": "A"},
        {"greeting": "hello b", "note": "B"},
        {"greeting": "hello c", "note": "C"},
    ]


# --- errors as data inside frames ---------------------------------------------------------------


def test_on_error_inside_a_foreach_body_routes_to_a_handler_in_the_body(cpf):
    body = """
id: rollback_each
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - id: deploy
        kind: cli
        command: 'test "${item}" != bad'
        on_error:
          next: rollback
      - id: deployed
        kind: end
        result:
          item: ${item}
          status: deployed
      - id: rollback
        kind: cli
        command: echo "${steps.deploy.error.code}" > "rollback-${item}.txt"
      - id: rolled_back
        kind: end
        result:
          item: ${item}
          error: ${steps.deploy.error.code}
  - id: done
    kind: end
    result: ${steps.each.outputs}
"""
    result = start(cpf, body, {"names": ["good", "bad"]})
    assert (result.exit_code, result.envelope["status"]) == (0, "completed"), result.envelope
    assert result.envelope["result"] == [
        {"item": "good", "status": "deployed"},
        {"item": "bad", "error": "ERR_STEP_FAILED"},
    ]
    assert (cpf.cwd / "rollback-bad.txt").read_text() == "ERR_STEP_FAILED\n"
    assert not (cpf.cwd / "rollback-good.txt").exists()
    history = step_history(cpf, result.envelope["run_id"])
    assert [row["status"] for row in history["each[1].deploy"]] == ["failed"]
    assert [row["status"] for row in history["each[1].rollback"]] == ["completed"]


def test_on_error_of_a_failing_foreach_routes_to_a_handler(cpf):
    body = """
id: handled
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    on_error:
      next: handle
    body:
      - id: work
        kind: cli
        command: 'test "${item}" != bad'
  - id: never
    kind: cli
    command: touch never.txt
  - id: handle
    kind: end
    result:
      code: ${steps.each.error.code}
      message: ${steps.each.error.message}
"""
    result = start(cpf, body, {"names": ["ok", "bad"]})
    assert (result.exit_code, result.envelope["status"]) == (0, "completed"), result.envelope
    assert result.envelope["result"]["code"] == "ERR_STEP_FAILED"
    assert "each[1].work" in result.envelope["result"]["message"]
    assert not (cpf.cwd / "never.txt").exists()
    steps = state_of(cpf, result.envelope["run_id"])["steps"]
    assert steps["each"]["status"] == "failed"


def test_on_error_of_a_failing_sub_workflow_and_parallel_step(cpf):
    cpf.write(
        "flows/sub/fail.yaml",
        doc("id: failing\nsteps:\n  - {id: boom, kind: cli, command: exit 6}\n"),
    )
    cpf.write(
        "flows/main.yaml",
        doc(
            """
id: main
steps:
  - id: sub
    kind: workflow
    workflow_ref: sub/fail.yaml
    on_error:
      next: after_sub
  - id: never
    kind: cli
    command: touch never.txt
  - id: after_sub
    kind: cli
    command: echo "${steps.sub.error.code}" > sub-error.txt
  - id: par
    kind: parallel
    on_error:
      next: after_par
    branches:
      - id: good
        steps:
          - {id: fine, kind: cli, command: touch good.txt}
      - id: bad
        steps:
          - {id: broken, kind: cli, command: exit 1}
  - id: never_again
    kind: cli
    command: touch never.txt
  - id: after_par
    kind: end
    result:
      sub: ${steps.sub.error.code}
      par: ${steps.par.error.code}
"""
        ),
    )
    result = cpf("run", "-f", "flows/main.yaml")
    assert (result.exit_code, result.envelope["status"]) == (0, "completed"), result.envelope
    assert result.envelope["result"] == {"sub": "ERR_STEP_FAILED", "par": "ERR_STEP_FAILED"}
    assert (cpf.cwd / "sub-error.txt").read_text() == "ERR_STEP_FAILED\n"
    assert (cpf.cwd / "good.txt").exists()
    assert not (cpf.cwd / "never.txt").exists()
    steps = state_of(cpf, result.envelope["run_id"])["steps"]
    assert steps["sub"]["status"] == "failed"
    assert steps["sub.boom"]["status"] == "failed"
    assert steps["par"]["status"] == "failed"


# --- timeouts of nested waits -------------------------------------------------------------------

TIMED_STEPS = """
- id: confirm
  kind: await_event
  audience: user
  event_name: confirm
  input_schema: {type: object}
  timeout_seconds: 1
  on_timeout:
    next: escalate
- id: confirmed
  kind: end
  result: confirmed
- id: escalate
  kind: cli
  command: touch escalated.txt
- id: timed_out
  kind: end
  result: ${steps.confirm.error.code}
"""

NO_ON_TIMEOUT = "  on_timeout:\n    next: escalate\n"


def indented(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.strip("\n").splitlines())


def start_timed(cpf: Any, container: str, on_timeout: bool = True) -> tuple[Any, str, Any]:
    """A run waiting at a timed await_event nested in a container: (envelope, key, result)."""
    steps = TIMED_STEPS if on_timeout else TIMED_STEPS.replace(NO_ON_TIMEOUT, "")
    if container == "foreach":
        body = (
            "id: timed_each\nsteps:\n  - id: each\n    kind: foreach\n    items: ${inputs.names}\n"
            "    body:\n" + indented(steps, 6) + "  - id: done\n    kind: end\n"
            "    result: ${steps.each.outputs}\n"
        )
        return start(cpf, body, {"names": ["a"]}), "each[0].confirm", ["ERR_TIMEOUT"]
    cpf.write("flows/sub/child.yaml", doc("id: child\nsteps:\n" + indented(steps, 2)))
    cpf.write(
        "flows/main.yaml",
        doc(
            "id: main\nsteps:\n"
            + ref_step("sub", "sub/child.yaml")
            + "  - id: done\n    kind: end\n    result: ${steps.sub.outputs}\n"
        ),
    )
    return cpf("run", "-f", "flows/main.yaml"), "sub.confirm", "ERR_TIMEOUT"


def past_deadline(cpf: Any, started: Any, key: str) -> str:
    assert (started.exit_code, started.envelope["status"]) == (40, "waiting"), started.envelope
    assert started.envelope["wait"]["wait_id"] == key
    assert "deadline" in started.envelope["wait"]
    time.sleep(1.2)
    return started.envelope["run_id"]


@pytest.mark.parametrize("container", ["foreach", "workflow"])
@pytest.mark.parametrize("command", ["resume", "status", "tick"])
def test_a_nested_wait_past_its_deadline_follows_on_timeout(cpf, command, container):
    started, key, expected = start_timed(cpf, container)
    run_id = past_deadline(cpf, started, key)
    assert not (cpf.cwd / "escalated.txt").exists()
    if command == "resume":
        late = resume_wait(cpf, run_id, "confirm", {})
        assert (late.exit_code, late.error_code) == (20, "ERR_RUN_NOT_WAITING")
        assert "timed out" in late.envelope["error"]["message"]
    elif command == "status":
        status = cpf("status", "--run-id", run_id)
        assert (status.exit_code, status.envelope["status"]) == (0, "completed")
    else:
        ticked = cpf("tick")
        assert ticked.exit_code == 0
        assert ticked.envelope["result"]["advanced"] == [
            {"run_id": run_id, "status": "completed", "timed_out": [key]}
        ]
    assert (cpf.cwd / "escalated.txt").exists()
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"]) == (0, "completed")
    assert status.envelope["result"] == expected
    history = step_history(cpf, run_id)
    assert [row["status"] for row in history[key]] == ["waiting", "failed"]
    assert history[key][-1]["error_code"] == "ERR_TIMEOUT"
    assert key.replace("confirm", "confirmed") not in history


@pytest.mark.parametrize("container", ["foreach", "workflow"])
def test_a_nested_wait_without_on_timeout_fails_the_run(cpf, container):
    started, key, _ = start_timed(cpf, container, on_timeout=False)
    run_id = past_deadline(cpf, started, key)
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"]) == (30, "failed"), status.envelope
    assert status.envelope["error"]["code"] == "ERR_TIMEOUT"
    assert not (cpf.cwd / "escalated.txt").exists()
    assert state_of(cpf, run_id)["steps"][key]["error"]["code"] == "ERR_TIMEOUT"


@pytest.mark.parametrize("container", ["foreach", "workflow"])
def test_a_nested_wait_answered_in_time_takes_the_normal_path(cpf, container):
    started, _, _ = start_timed(cpf, container)
    done = resume_wait(cpf, started.envelope["run_id"], "confirm", {})
    assert (done.exit_code, done.envelope["status"]) == (0, "completed")
    assert done.envelope["result"] == (["confirmed"] if container == "foreach" else "confirmed")
    assert not (cpf.cwd / "escalated.txt").exists()


# --- api retries inside a foreach ---------------------------------------------------------------


def test_api_retries_inside_a_foreach_body(cpf, server):
    server.script = [(500, {}, 0), (503, {}, 0), (200, {"n": 1}, 0), (200, {"n": 2}, 0)]
    body = f"""
id: api_each
steps:
  - id: each
    kind: foreach
    items: ${{inputs.names}}
    body:
      - id: call
        kind: api
        method: GET
        url: {server.url}/items
        query:
          name: ${{item}}
        retry:
          max_attempts: 3
      - id: out
        kind: end
        result: ${{steps.call.outputs}}
  - id: done
    kind: end
    result: ${{steps.each.outputs}}
"""
    result = start(cpf, body, {"names": ["a", "b"]})
    assert (result.exit_code, result.envelope["status"]) == (0, "completed"), result.envelope
    assert result.envelope["result"] == [{"n": 1}, {"n": 2}]
    paths = [request["path"] for request in server.requests]
    assert paths == ["/items?name=a"] * 3 + ["/items?name=b"]
    responses = [
        (record["payload"]["step_id"], record["payload"]["status"])
        for record in events(cpf, result.envelope["run_id"])
        if record["type"] == "response_received"
    ]
    assert responses == [("each[0].call", s) for s in (500, 503, 200)] + [("each[1].call", 200)]


# --- validation ---------------------------------------------------------------------------------


def validate(cpf: Any, text: str, name: str = "wf.yaml") -> Any:
    cpf.write(name, text)
    return cpf("validate", "-f", name)


def problems(result: Any) -> list[dict[str, Any]]:
    assert (result.exit_code, result.envelope["ok"]) == (10, False), result.envelope
    details = result.envelope["error"]["details"]
    for problem in details:
        assert problem["path"].startswith("/"), problem
        assert "step_id" in problem, problem
    return details


def test_validate_reports_every_nested_problem_at_once(cpf):
    body = """
id: bad
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - id: a
        kind: cli
        command: echo a
        transitions:
          - next: nowhere
      - id: a
        kind: cli
        command: echo again
      - id: outer
        kind: cli
        command: echo clash
  - id: outer
    kind: cli
    command: echo outer
  - id: par
    kind: parallel
    branches:
      - start_at: missing
  - id: literal
    kind: foreach
    items: [1, 2]
    body:
      - id: x
        kind: cli
        command: echo x
"""
    found = {(p["path"], p["step_id"]) for p in problems(validate(cpf, doc(body)))}
    assert found == {
        ("/workflow/steps/0/body/0/transitions/0/next", "a"),
        ("/workflow/steps/0/body/1/id", "a"),
        ("/workflow/steps/0/body/2/id", "outer"),
        ("/workflow/steps/2/branches/0/start_at", "par"),
        ("/workflow/steps/3/items", "literal"),
    }


NESTED_CASES = {
    "unknown_next_in_body": (
        """
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - id: a
        kind: cli
        command: echo a
        on_error:
          next: nowhere
""",
        "/workflow/steps/0/body/0/on_error/next",
        "a",
        "nowhere",
    ),
    "unknown_next_in_branch": (
        """
  - id: par
    kind: parallel
    branches:
      - steps:
          - id: a
            kind: cli
            command: echo a
            transitions:
              - next: done
  - id: done
    kind: end
""",
        "/workflow/steps/0/branches/0/steps/0/transitions/0/next",
        "a",
        "done",
    ),
    "on_timeout_to_an_outer_step": (
        """
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - id: confirm
        kind: await_event
        audience: user
        event_name: confirm
        input_schema: {type: object}
        timeout_seconds: 5
        on_timeout:
          next: outside
  - id: outside
    kind: end
""",
        "/workflow/steps/0/body/0/on_timeout/next",
        "confirm",
        "outside",
    ),
    "body_and_workflow_ref": (
        """
  - id: each
    kind: foreach
    items: ${inputs.names}
    workflow_ref: other.yaml
    body:
      - {id: a, kind: cli, command: echo a}
""",
        "/workflow/steps/0",
        "each",
        "exactly one of body",
    ),
    "duplicate_in_body": (
        """
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - {id: a, kind: cli, command: echo one}
      - {id: a, kind: cli, command: echo two}
""",
        "/workflow/steps/0/body/1/id",
        "a",
        "'a'",
    ),
    "clash_with_outer": (
        """
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - {id: each, kind: cli, command: echo inner}
""",
        "/workflow/steps/0/body/0/id",
        "each",
        "each",
    ),
    "start_at_missing": (
        """
  - id: par
    kind: parallel
    branches:
      - steps:
          - {id: a, kind: cli, command: echo a}
      - start_at: ghost
""",
        "/workflow/steps/0/branches/1/start_at",
        "par",
        "ghost",
    ),
    "items_literal": (
        """
  - id: each
    kind: foreach
    items: [a, b]
    body:
      - {id: a, kind: cli, command: echo a}
""",
        "/workflow/steps/0/items",
        "each",
        "items",
    ),
    "concurrency_zero": (
        """
  - id: each
    kind: foreach
    items: ${inputs.names}
    concurrency: 0
    body:
      - {id: a, kind: cli, command: echo a}
""",
        "/workflow/steps/0/concurrency",
        "each",
        "concurrency",
    ),
    "max_concurrency_zero": (
        """
  - id: par
    kind: parallel
    max_concurrency: 0
    branches:
      - steps:
          - {id: a, kind: cli, command: echo a}
""",
        "/workflow/steps/0/max_concurrency",
        "par",
        "max_concurrency",
    ),
}


@pytest.mark.parametrize("case", sorted(NESTED_CASES))
def test_validate_finds_each_nested_problem(cpf, case):
    steps, path, step_id, mentioned = NESTED_CASES[case]
    cpf.write("other.yaml", doc(CHILD))  # a valid file for the workflow_ref case
    result = validate(cpf, HEAD + "  id: nested\n  steps:" + steps.replace("\n", "\n  "))
    details = problems(result)
    assert [(p["path"], p["step_id"]) for p in details] == [(path, step_id)]
    assert mentioned in details[0]["message"]
    assert result.envelope["error"]["step_id"] == step_id
    run = cpf("run", "-f", "wf.yaml", "--input", '{"names": ["x"]}')
    assert run.exit_code == 10
    assert not (cpf.root / "runs").exists() or not any((cpf.root / "runs").iterdir())


def test_validate_reports_a_missing_sub_workflow_file(cpf):
    result = validate(
        cpf, doc("id: main\nsteps:\n" + ref_step("sub", "sub/gone.yaml")), "flows/main.yaml"
    )
    details = problems(result)
    assert [(p["path"], p["step_id"]) for p in details] == [
        ("/workflow/steps/0/workflow_ref", "sub")
    ]
    assert "gone.yaml" in details[0]["message"]
    assert "does not exist" in details[0]["message"]


def test_validate_reports_recursion_between_files(cpf):
    cpf.write("flows/a.yaml", doc("id: a\nsteps:\n" + ref_step("to_b", "lib/b.yaml")))
    cpf.write("flows/lib/b.yaml", doc("id: b\nsteps:\n" + ref_step("back", "../a.yaml")))
    result = cpf("validate", "-f", "flows/a.yaml")
    details = problems(result)
    assert len(details) == 1
    assert (details[0]["path"], details[0]["step_id"]) == ("/workflow/steps/0/workflow_ref", "back")
    assert details[0]["file"].endswith("lib/b.yaml")
    assert "cannot include itself" in details[0]["message"]
    run = cpf("run", "-f", "flows/a.yaml")
    assert (run.exit_code, run.error_code) == (10, "ERR_VALIDATION_WORKFLOW")


def test_validate_reports_a_workflow_referring_to_itself(cpf):
    cpf.write("flows/a.yaml", doc("id: a\nsteps:\n" + ref_step("again", "a.yaml")))
    details = problems(cpf("validate", "-f", "flows/a.yaml"))
    assert [(p["path"], p["step_id"]) for p in details] == [
        ("/workflow/steps/0/workflow_ref", "again")
    ]


def test_validate_reports_problems_inside_a_sub_workflow_with_its_file(cpf):
    cpf.write(
        "flows/main.yaml",
        doc(
            "id: main\nsteps:\n"
            + ref_step("good", "lib/good.yaml")
            + ref_step("bad", "lib/bad.yaml")
        ),
    )
    cpf.write("flows/lib/good.yaml", doc(CHILD))
    cpf.write(
        "flows/lib/bad.yaml",
        doc(
            """
id: bad
steps:
  - id: first
    kind: cli
    command: echo first
  - id: each
    kind: foreach
    items: ${inputs.names}
    body:
      - id: one
        kind: cli
        command: echo one
        transitions:
          - next: nowhere
"""
        ),
    )
    details = problems(cpf("validate", "-f", "flows/main.yaml"))
    assert len(details) == 1
    problem = details[0]
    assert problem["file"].endswith("lib/bad.yaml")
    assert (problem["path"], problem["step_id"]) == (
        "/workflow/steps/1/body/0/transitions/0/next",
        "one",
    )


def test_validate_reports_every_sub_workflow_problem_at_once(cpf):
    cpf.write(
        "flows/main.yaml",
        doc(
            "id: main\nsteps:\n"
            + ref_step("missing", "lib/gone.yaml")
            + ref_step("loop", "lib/loop.yaml")
            + ref_step("broken", "lib/broken.yaml")
        ),
    )
    cpf.write("flows/lib/loop.yaml", doc("id: loop\nsteps:\n" + ref_step("back", "../main.yaml")))
    cpf.write("flows/lib/broken.yaml", doc("id: broken\nsteps:\n  - id: x\n    kind: cli\n"))
    details = problems(cpf("validate", "-f", "flows/main.yaml"))
    by_step = {p["step_id"]: p for p in details}
    assert set(by_step) == {"missing", "back", "x"}
    assert by_step["missing"]["path"] == "/workflow/steps/0/workflow_ref"
    assert by_step["back"]["path"] == "/workflow/steps/0/workflow_ref"
    assert by_step["back"]["file"].endswith("lib/loop.yaml")
    assert by_step["x"]["file"].endswith("lib/broken.yaml")
    assert by_step["x"]["path"].startswith("/workflow/steps/0")


def test_validate_reports_sub_workflow_problems_alongside_the_documents_own(cpf):
    # "cpf validate loads every referenced file ... listing all problems": a missing
    # sub-workflow is reported together with a bad target elsewhere in the same document.
    body = (
        "id: main\nsteps:\n"
        + ref_step("sub", "lib/gone.yaml")
        + (
            "  - id: x\n    kind: cli\n    command: echo x\n    transitions:\n      - next: nowhere\n"
        )
    )
    cpf.write("flows/main.yaml", doc(body))
    details = problems(cpf("validate", "-f", "flows/main.yaml"))
    assert {(p["path"], p["step_id"]) for p in details} == {
        ("/workflow/steps/0/workflow_ref", "sub"),
        ("/workflow/steps/1/transitions/0/next", "x"),
    }


def test_a_sub_workflow_cannot_see_the_parents_steps(cpf):
    cpf.write(
        "flows/parent.yaml",
        doc(
            "id: parent\nsteps:\n  - id: setup\n    kind: cli\n    command: echo '{}'\n"
            + ref_step("sub", "sub/peek.yaml")
        ),
    )
    cpf.write(
        "flows/sub/peek.yaml",
        doc(
            "id: peek\nsteps:\n  - id: look\n    kind: cli\n    command: echo ${steps.setup.outputs}\n"
        ),
    )
    details = problems(cpf("validate", "-f", "flows/parent.yaml"))
    assert len(details) == 1
    assert details[0]["file"].endswith("sub/peek.yaml")
    assert details[0]["step_id"] == "look"
    assert "setup" in details[0]["message"]


def test_a_valid_nested_workflow_validates(cpf):
    cpf.write("flows/parent.yaml", doc(PARENT))
    cpf.write("flows/sub/child.yaml", doc(CHILD))
    result = cpf("validate", "-f", "flows/parent.yaml")
    assert (result.exit_code, result.envelope["result"]["valid"]) == (0, True)


# --- more composition ---------------------------------------------------------------------------


def test_nested_foreach_keys_compose_and_item_is_the_nearest(cpf):
    body = """
id: grid
steps:
  - id: setup
    kind: cli
    argv: [printf, '{"prefix": "v"}']
  - id: outer
    kind: foreach
    items: ${inputs.rows}
    body:
      - id: inner
        kind: foreach
        items: ${item.cells}
        body:
          - id: cell
            kind: cli
            argv: [printf, '"%s%s-%s"', '${steps.setup.outputs.prefix}', '${item}', '${item_index}']
  - id: done
    kind: end
    result: ${steps.outer.outputs}
"""
    rows = [{"cells": ["a", "b"]}, {"cells": ["c"]}]
    result = start(cpf, body, {"rows": rows})
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == [["va-0", "vb-1"], ["vc-0"]]
    history = step_history(cpf, result.envelope["run_id"])
    for key in ["outer[0].inner[0].cell", "outer[0].inner[1].cell", "outer[1].inner[0].cell"]:
        assert [row["status"] for row in history[key]] == ["completed"], key
    assert history["outer[0].inner"][-1]["outputs"] == ["va-0", "vb-1"]
    assert list(state_of(cpf, result.envelope["run_id"])["steps"]) == ["done", "outer", "setup"]
    stdout = (
        cpf.run_folder(result.envelope["run_id"]) / "steps" / "outer[0].inner[1].cell" / "1.stdout"
    )
    assert stdout.read_text() == '"vb-1"'


def test_parallel_inside_foreach_and_default_branch_ids(cpf):
    body = """
id: fan
steps:
  - id: each
    kind: foreach
    items: ${inputs.names}
    concurrency: 2
    body:
      - id: checks
        kind: parallel
        branches:
          - steps:
              - id: one
                kind: cli
                argv: [printf, '"%s-1"', '${item}']
          - steps:
              - id: two
                kind: cli
                argv: [printf, '"%s-2"', '${item}']
  - id: done
    kind: end
    result: ${steps.each.outputs}
"""
    result = start(cpf, body, {"names": ["a", "b"]})
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == [
        {"branch_1": "a-1", "branch_2": "a-2"},
        {"branch_1": "b-1", "branch_2": "b-2"},
    ]
    [row] = step_history(cpf, result.envelope["run_id"])["each[1].checks.branch_2.two"]
    assert row["outputs"] == "b-2"


# --- replay after concurrency -------------------------------------------------------------------


def test_a_concurrent_foreach_replays_from_its_log(cpf):
    body = """
id: replay
steps:
  - id: each
    kind: foreach
    items: ${inputs.delays}
    concurrency: 4
    body:
      - id: nap
        kind: cli
        argv: [sleep, '${item}']
      - id: report
        kind: cli
        argv: [printf, '{"index": %s}', '${item_index}']
  - id: done
    kind: end
    result: ${steps.each.outputs}
"""
    delays = [0.4, 0.1, 0.3, 0, 0.2, 0.05, 0.35, 0]
    result = start(cpf, body, {"delays": delays})
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == [{"index": i} for i in range(len(delays))]
    run_id = result.envelope["run_id"]
    finished = finished_steps(cpf, run_id)
    for index in range(len(delays)):
        assert finished.count(f"each[{index}].nap") == 1
        assert finished.count(f"each[{index}].report") == 1
    assert len(finished) == 2 * len(delays)
    verified = cpf("verify", "--run-id", run_id)
    assert verified.exit_code == 0, verified.envelope
    # the conftest fixture also replays events.jsonl and compares with state.json
