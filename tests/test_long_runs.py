"""Long runs keep a state the size of what is active: a completed iteration, branch or
sub-workflow leaves `steps` (the log keeps its history), its owner keeps the attempt
numbers it reached, and replay still rebuilds the state exactly."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from checkpointflow.interpreter import replay
from checkpointflow.state import COMPLETED, FAILED, WAITING, state_from_json, state_to_json
from tests.test_interpreter import Run, await_event, cli, end, finished, received, workflow


def foreach(body: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"id": "each", "kind": "foreach", "items": "${inputs.items}", "body": body, **fields}


def round_trips(run: Run) -> None:
    assert replay(run.workflow, run.events) == run.s
    assert state_from_json(json.loads(json.dumps(state_to_json(run.s)))) == run.s


def test_a_completed_iteration_leaves_the_state_and_its_result_stays() -> None:
    run = Run(workflow([foreach([cli("t", outputs={"type": "integer"})]), end("done")]))
    run.start({"items": list(range(5))})
    for index in range(5):
        assert set(run.s.steps) == {"each", f"each[{index}].t"}  # only the active iteration
        assert run.effect().attempt == 1
        run.finish(output=index * 10)
        round_trips(run)
    assert run.s.status == COMPLETED
    assert set(run.s.steps) == {"each", "done"}
    assert run.s.steps["each"].outputs == [0, 10, 20, 30, 40]
    assert run.s.steps["each"].executions == 1  # the highest attempt number inside it


def test_a_failed_iteration_keeps_its_records() -> None:
    body = [cli("t")]
    run = Run(workflow([foreach(body, fail_fast=False), end("done")]))
    run.start({"items": ["a", "b", "c"]})
    run.finish()
    run.finish(exit_code=3)
    run.finish()
    assert run.s.status == FAILED
    assert set(run.s.steps) == {"each", "each[1].t"}
    assert run.s.steps["each[1].t"].status == FAILED
    round_trips(run)


def test_a_later_visit_numbers_attempts_after_the_earlier_ones() -> None:
    """Output files are named by attempt number: a second pass of the foreach must not
    reuse the numbers of the first, whose records left the state."""
    again = await_event(
        "again",
        "go",
        transitions=[
            {"when": "${event.approved}", "next": "each"},
            {"next": "done"},
        ],
    )
    retried = cli("t", retry={"max_attempts": 3, "backoff_seconds": 0})
    run = Run(workflow([foreach([retried]), again, end("done")]))
    run.start({"items": ["a", "b"]})
    assert run.effect().attempt == 1
    run.finish(exit_code=1)  # each[0].t attempt 1 fails, attempt 2 succeeds
    assert run.effect().attempt == 2
    run.finish()
    assert (run.effect().step_id, run.effect().attempt) == ("each[1].t", 1)
    run.finish()
    assert run.s.status == WAITING
    assert run.s.steps["each"].executions == 2
    run.send(received("go", {"approved": True}))
    seen = []
    while run.s.status != WAITING:
        seen.append((run.effect().step_id, run.effect().attempt))
        run.finish()
    assert seen == [("each[0].t", 3), ("each[1].t", 3)]
    round_trips(run)


def test_nested_containers_forget_their_iterations_too() -> None:
    inner = {"id": "inner", "kind": "foreach", "items": "${item}", "body": [cli("cell")]}
    run = Run(workflow([foreach([inner]), end("done")]))
    run.start({"items": [[1, 2], [3]]})
    while run.s.status != COMPLETED:
        assert len(run.s.steps) <= 4  # each, each[i].inner, each[i].inner[j].cell
        run.finish()
    assert set(run.s.steps) == {"each", "done"}
    assert run.s.steps["each"].outputs == [[None, None], [None]]
    round_trips(run)


@settings(deadline=None, max_examples=60)
@given(st.lists(st.sampled_from([0, 1]), min_size=1, max_size=25), st.integers(1, 3))
def test_random_outcomes_in_a_foreach_replay_to_the_same_state(
    outcomes: list[int], concurrency: int
) -> None:
    retried = cli("t", retry={"max_attempts": 2, "backoff_seconds": 0})
    run = Run(workflow([foreach([retried], concurrency=concurrency, fail_fast=False), end()]))
    run.start({"items": list(range(8))})
    pending = list(run.effects)
    for exit_code in outcomes:
        if not pending:
            break
        effect = pending.pop(0)
        pending.extend(run.send(finished(effect, exit_code=exit_code)))
        inside = [record for key, record in run.s.steps.items() if key.startswith("each[")]
        assert len([record for record in inside if record.status != FAILED]) <= concurrency
        round_trips(run)
    if run.s.status == COMPLETED:
        assert set(run.s.steps) == {"each", "done"}
