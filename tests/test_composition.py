"""Containers in the pure interpreter: foreach, parallel and sub-workflows, with steps that
finish in any order, waits in several frames at once, and the replay invariant."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkpointflow.document import find_problems
from checkpointflow.errors import RuntimeFailure
from checkpointflow.interpreter import advance, replay
from checkpointflow.model import Workflow, build_workflow
from checkpointflow.state import (
    CANCELLED,
    COMPLETED,
    FAILED,
    WAITING,
    EventReceived,
    RunCommand,
    state_to_json,
)
from tests.test_interpreter import (
    PROPERTY,
    Run,
    at,
    await_event,
    cli,
    end,
    finished,
    workflow,
)


def sub_workflow(steps: list[dict[str, Any]], **fields: Any) -> Workflow:
    document = {
        "schema_version": "checkpointflow/v1",
        "workflow": {"id": "sub", "steps": steps, **fields},
    }
    assert find_problems(copy.deepcopy(document)) == []
    return build_workflow(document)


def with_subworkflow(steps: list[dict[str, Any]], sub: Workflow) -> Workflow:
    document = {"schema_version": "checkpointflow/v1", "workflow": {"id": "wf", "steps": steps}}
    assert find_problems(copy.deepcopy(document)) == []
    return build_workflow(document, {"sub.yaml": sub})


def foreach(step_id: str, body: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "foreach", "items": "${inputs.items}", "body": body, **fields}


def keys(effects: tuple[RunCommand, ...]) -> list[str]:
    return [effect.step_id for effect in effects]


def test_foreach_runs_in_item_order_one_at_a_time() -> None:
    run = Run(workflow([foreach("each", [cli("hello", "echo ${item} ${item_index}")])]))
    effects = run.start({"items": ["a", "b", "c"]})
    assert keys(effects) == ["each[0].hello"]
    assert effects[0].values == ("a", "0")
    for expected in (["each[1].hello"], ["each[2].hello"], []):
        run.finish(output={"n": run.effect().values[1]})
        assert keys(run.effects) == expected
    assert run.s.status == COMPLETED
    assert run.s.steps["each"].outputs == [{"n": "0"}, {"n": "1"}, {"n": "2"}]
    assert run.s.frames == {}


def test_foreach_keeps_at_most_concurrency_in_flight_and_outputs_in_item_order() -> None:
    run = Run(workflow([foreach("each", [cli("x", "echo ${item}")], concurrency=2)]))
    pending = list(run.start({"items": [10, 11, 12, 13]}))
    assert keys(tuple(pending)) == ["each[0].x", "each[1].x"]
    order = []
    while pending:
        effect = pending.pop()  # finish the newest first: out of item order
        order.append(effect.step_id)
        pending += run.send(finished(effect, output=int(effect.values[0])))
        assert len(run.s.in_flight) <= 2
    assert order[0] == "each[1].x"
    assert run.s.steps["each"].outputs == [10, 11, 12, 13]


def test_foreach_items_that_are_not_a_list_fail_the_step() -> None:
    run = Run(workflow([foreach("each", [cli("x")])]))
    run.start({"items": "abc"})
    assert run.s.status == FAILED
    assert run.s.error is not None
    assert "items must be a list" in run.s.error["message"]


def test_foreach_over_an_empty_list_completes_at_once() -> None:
    run = Run(workflow([foreach("each", [cli("x")]), end("done", result="${steps.each.outputs}")]))
    assert run.start({"items": []}) == ()
    assert (run.s.status, run.s.result) == (COMPLETED, [])


def test_a_thousand_instant_iterations_do_not_nest_calls() -> None:
    body = [
        {"id": "pick", "kind": "switch", "cases": [{"when": "item > 0", "next": "fin"}]},
        end("fin", result="${item}"),
    ]
    run = Run(workflow([foreach("each", body, concurrency=3)]))
    run.start({"items": list(range(1, 1001))})
    assert run.s.status == COMPLETED
    assert run.s.steps["each"].outputs == list(range(1, 1001))


def test_fail_fast_stops_opening_iterations_and_only_records_late_outcomes() -> None:
    run = Run(workflow([foreach("each", [cli("x")], concurrency=2)]))
    first, second = run.start({"items": [1, 2, 3]})
    run.send(finished(first, exit_code=1))
    assert run.s.status == FAILED
    assert run.s.error is not None and run.s.error["code"] == "ERR_STEP_FAILED"
    # the other iteration's command still runs; its outcome will only be recorded
    assert run.s.in_flight == {"each[1].x#1": "each[1]"}
    assert run.s.steps["each[1].x"].status == CANCELLED
    assert run.send(finished(second)) == ()
    assert (run.s.status, run.s.in_flight) == (FAILED, {})
    assert "each[2].x" not in run.s.steps
    assert len(run.s.steps["each[1].x"].attempts) == 1


def test_without_fail_fast_every_iteration_runs_and_each_failure_is_listed() -> None:
    run = Run(workflow([foreach("each", [cli("x")], fail_fast=False)]))
    run.start({"items": [1, 2, 3]})
    run.finish(exit_code=1)
    run.finish()
    run.finish(exit_code=2)
    assert run.s.status == FAILED
    assert run.s.error is not None
    assert [entry["child"] for entry in run.s.error["details"]] == ["each[0]", "each[2]"]


def test_on_error_inside_a_body_reads_the_error() -> None:
    body = [
        cli("risky", on_error={"next": "handle"}),
        end("ok", result="fine"),
        end("handle", result="${steps.risky.error.code}"),
    ]
    run = Run(workflow([foreach("each", body)]))
    run.start({"items": [1]})
    run.finish(exit_code=3)
    assert run.s.steps["each"].outputs == ["ERR_STEP_FAILED"]


def test_parallel_branches_wait_at_once_and_take_events_by_wait_id() -> None:
    wf = workflow(
        [
            {
                "id": "both",
                "kind": "parallel",
                "branches": [
                    {"id": "left", "steps": [await_event("ask")]},
                    {"id": "right", "steps": [await_event("ask")]},
                ],
            }
        ]
    )
    run = Run(wf)
    run.start()
    assert run.s.status == WAITING
    assert [wait["wait_id"] for wait in run.s.waits] == ["both.left.ask", "both.right.ask"]
    assert run.s.wait == run.s.waits[0]
    before = state_to_json(run.s)
    with pytest.raises(RuntimeFailure) as refused:
        advance(wf, run.s, EventReceived("go", {"approved": True}, at()))
    assert refused.value.code == "ERR_WAIT_AMBIGUOUS"
    assert state_to_json(run.s) == before
    run.send(EventReceived("go", {"approved": False}, at(), wait_id="both.right.ask"))
    assert [wait["wait_id"] for wait in run.s.waits] == ["both.left.ask"]
    run.send(EventReceived("go", {"approved": True}, at()))
    assert run.s.status == COMPLETED
    assert run.s.steps["both"].outputs == {
        "left": {"approved": True, "note": "none"},
        "right": {"approved": False, "note": "none"},
    }


def test_start_at_branches_run_once_and_list_order_skips_them() -> None:
    wf = workflow(
        [
            {
                "id": "checks",
                "kind": "parallel",
                "branches": [{"start_at": "lint"}, {"start_at": "unit"}],
            },
            cli("lint"),
            cli("unit", transitions=[{"next": "unit_report"}]),
            cli("unit_report"),
            cli("after"),
        ]
    )
    run = Run(wf)
    assert keys(run.start()) == ["lint", "unit"]
    lint, unit = run.effects
    assert keys(run.send(finished(unit, output=1))) == ["unit_report"]
    assert keys(run.send(finished(run.effects[0], output=2))) == []
    assert keys(run.send(finished(lint, output=3))) == ["after"]
    assert run.s.steps["checks"].outputs == {"lint": 3, "unit": 2}


def test_sub_workflow_is_isolated_and_its_outputs_become_the_steps() -> None:
    sub = sub_workflow(
        [await_event("confirm"), cli("echo", "echo ${inputs.name}")],
        inputs={"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        outputs={"said": "${steps.echo.outputs}", "ok": "${steps.confirm.outputs.approved}"},
    )
    wf = with_subworkflow(
        [
            cli("first"),
            {
                "id": "child",
                "kind": "workflow",
                "workflow_ref": "sub.yaml",
                "inputs": {"name": "${steps.first.outputs}"},
            },
        ],
        sub,
    )
    run = Run(wf)
    run.start()
    run.finish(output="Ann")
    assert run.s.wait is not None and run.s.wait["wait_id"] == "child.confirm"
    effects = run.send(EventReceived("go", {"approved": True}, at()))
    assert effects[0].values == ("Ann",)
    run.finish(output="said Ann")
    assert run.s.steps["child"].outputs == {"said": "said Ann", "ok": True}


def test_sub_workflow_inputs_are_checked_against_its_schema() -> None:
    sub = sub_workflow([cli("x")], inputs={"type": "object", "required": ["name"]})
    wf = with_subworkflow([{"id": "child", "kind": "workflow", "workflow_ref": "sub.yaml"}], sub)
    run = Run(wf)
    run.start()
    assert run.s.status == FAILED
    assert run.s.error is not None and run.s.error["code"] == "ERR_VALIDATION_INPUT"


def test_cancel_closes_every_frame_and_wait() -> None:
    run = Run(workflow([foreach("each", [await_event("ask")], concurrency=3)]))
    run.start({"items": [1, 2, 3]})
    assert len(run.s.waits) == 3
    run.send(cancelled_event())
    assert (run.s.status, run.s.waits, run.s.frames) == (CANCELLED, (), {})
    assert {run.s.steps[f"each[{i}].ask"].status for i in range(3)} == {CANCELLED}


def cancelled_event() -> Any:
    from checkpointflow.state import RunCancelled

    return RunCancelled(reason="stop", at=at())


# --- any finishing order replays to the same state -----------------------------------------

NESTED = [
    {
        "id": "outer",
        "kind": "foreach",
        "items": "${inputs.items}",
        "concurrency": 3,
        "fail_fast": False,
        "body": [
            cli("a", "echo ${item}"),
            {
                "id": "fan",
                "kind": "parallel",
                "branches": [
                    {"id": "p", "steps": [cli("b")]},
                    {
                        "id": "q",
                        "steps": [
                            cli("c", on_error={"next": "c_failed"}),
                            end("c_done"),
                            cli("c_failed"),
                        ],
                    },
                ],
            },
        ],
    },
    end("done", result="${steps.outer.outputs}"),
]


@PROPERTY
@given(
    choices=st.lists(st.integers(min_value=0, max_value=10**6), min_size=60, max_size=60),
    failures=st.sets(st.integers(min_value=0, max_value=40), max_size=6),
)
def test_any_finishing_order_gives_the_same_result_and_replays(
    choices: list[int], failures: set[int]
) -> None:
    wf = workflow(NESTED)
    run = Run(wf)
    pending = list(run.start({"items": [1, 2, 3, 4, 5]}))
    count = 0
    while pending:
        effect = pending.pop(choices[count % len(choices)] % len(pending))
        failed = count in failures and effect.step_id.endswith(".c")
        pending += run.send(finished(effect, exit_code=1 if failed else 0, output=effect.step_id))
        count += 1
        assert len({key.split("]")[0] for key in run.s.in_flight}) <= 3
    state = run.s
    assert state.status == COMPLETED
    assert state.in_flight == {} and state.frames == {} and state.waits == ()
    assert state_to_json(replay(wf, run.events)) == state_to_json(state)
    outputs = state.result
    assert isinstance(outputs, list) and len(outputs) == 5
    for index, entry in enumerate(outputs):
        assert entry["p"] == f"outer[{index}].fan.p.b"
        assert entry["q"] in (f"outer[{index}].fan.q.c", f"outer[{index}].fan.q.c_failed")


def test_a_start_at_branch_gives_its_last_steps_outputs_even_when_the_workflow_has_outputs() -> (
    None
):
    wf = workflow(
        [
            {"id": "checks", "kind": "parallel", "branches": [{"start_at": "smoke"}]},
            cli("smoke"),
        ],
        outputs={"final": "${steps.checks.outputs}"},
    )
    run = Run(wf)
    run.start()
    run.finish(output={"smoke": 1})
    assert run.s.result == {"final": {"smoke": {"smoke": 1}}}


def test_a_sub_workflow_result_is_checked_against_the_steps_outputs_schema() -> None:
    sub = sub_workflow([end("fin", result={"host": "db-2"})])
    wf = with_subworkflow(
        [
            {
                "id": "child",
                "kind": "workflow",
                "workflow_ref": "sub.yaml",
                "outputs": {"type": "object", "required": ["nope"]},
            }
        ],
        sub,
    )
    run = Run(wf)
    run.start()
    assert run.s.status == FAILED
    assert run.s.error is not None and run.s.error["code"] == "ERR_STEP_OUTPUT_INVALID"


def test_validate_warnings_know_start_at_branches_and_look_inside_containers() -> None:
    from checkpointflow.advice import warnings_for

    document = {
        "workflow": {
            "id": "wf",
            "steps": [
                {
                    "id": "fan",
                    "kind": "parallel",
                    "branches": [{"start_at": "lint"}],
                    "retry": {"max_attempts": 2},
                },
                cli("lint"),
                cli("after"),
                foreach("each", [await_event("ask"), end("fin"), cli("never")]),
            ],
        }
    }
    warnings = warnings_for(document)
    assert not any("'lint'" in w or "'after'" in w for w in warnings), warnings
    assert any("'never': no path" in w for w in warnings)
    assert any("'ask': an await_event without timeout_seconds" in w for w in warnings)
    assert any("'fan': retry has no effect on a parallel step" in w for w in warnings)


# --- found in review ----------------------------------------------------------------------


def test_steps_of_a_start_at_branch_read_the_inputs() -> None:
    wf = workflow(
        [
            {"id": "checks", "kind": "parallel", "branches": [{"start_at": "greet"}]},
            cli("greet", "echo ${inputs.name}"),
        ]
    )
    run = Run(wf)
    assert run.start({"name": "bob"})[0].values == ("bob",)


def test_a_container_entered_again_while_an_abandoned_attempt_runs() -> None:
    wf = workflow(
        [
            foreach("each", [cli("x")], concurrency=2, on_error={"next": "again"}),
            end("done"),
            cli("again", transitions=[{"next": "each"}]),
        ]
    )
    run = Run(wf)
    first, second = run.start({"items": [0, 1]})
    again = run.send(finished(first, exit_code=1))  # fail fast: each[1].x#1 runs on
    assert keys(again) == ["again"]
    relaunched = run.send(finished(again[0]))
    assert keys(relaunched) == ["each[0].x", "each[1].x"]
    assert set(run.s.in_flight) == {"each[0].x#2", "each[1].x#1", "each[1].x#2"}
    assert run.send(finished(second)) == ()  # the abandoned attempt: only logged
    for effect in relaunched:
        run.send(finished(effect, output=effect.step_id))
    assert run.s.status == COMPLETED
    assert run.s.in_flight == {}
    assert replay(wf, run.events) == run.s


def test_recover_settles_every_attempt_even_after_the_first_fails_the_run() -> None:
    from checkpointflow.state import RunRecovered

    run = Run(workflow([foreach("each", [cli("x")], concurrency=2)]))
    run.start({"items": [1, 2]})
    for key in ("each[0].x", "each[1].x"):
        run.send(RunRecovered(key, 1, f"steps/{key}/1.stdout", f"steps/{key}/1.stderr", at()))
    assert run.s.status == FAILED
    assert run.s.error is not None and run.s.error["code"] == "ERR_INTERRUPTED"
    assert run.s.in_flight == {}


def test_retry_from_a_step_only_a_branch_runs_is_refused() -> None:
    from checkpointflow.errors import ValidationFailure
    from checkpointflow.state import RunRetried

    wf = workflow(
        [
            {"id": "par", "kind": "parallel", "branches": [{"start_at": "lint"}]},
            cli("lint"),
            end("fin"),
        ]
    )
    run = Run(wf)
    run.start()
    run.finish(exit_code=1)
    assert run.s.status == FAILED
    with pytest.raises(ValidationFailure) as refused:
        advance(wf, run.s, RunRetried("lint", at()))
    assert refused.value.code == "ERR_STEP_NOT_FOUND"
    assert "retry from 'par'" in refused.value.message


@pytest.mark.parametrize(
    "nested",
    [{"id": "a", "command": "true"}, "oops", {"kind": "cli", "command": "true"}],
    ids=["no kind", "not a mapping", "no id"],
)
def test_malformed_nested_steps_are_problems_reported_once(nested: Any) -> None:
    from checkpointflow.document import find_problems as document_problems

    for holder in (
        {"id": "each", "kind": "foreach", "items": "${inputs.items}", "body": [nested]},
        {"id": "par", "kind": "parallel", "branches": [{"steps": [nested]}]},
    ):
        document = {
            "schema_version": "checkpointflow/v1",
            "workflow": {"id": "wf", "steps": [holder]},
        }
        problems = document_problems(document)
        assert problems
        assert len({(p.path, p.message) for p in problems}) == len(problems)


def test_a_long_chain_of_steps_that_finish_at_once_runs_in_one_transition() -> None:
    noop = sub_workflow([end("fin", result="ok")])
    steps = [{"id": f"w{i}", "kind": "workflow", "workflow_ref": "sub.yaml"} for i in range(3000)]
    run = Run(with_subworkflow(steps, noop))
    run.start()
    assert run.s.status == COMPLETED
    assert run.s.steps["w2999"].outputs == "ok"
