"""The pure interpreter: `advance(workflow, state, event)` with synthetic events, no I/O."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkpointflow.document import build_workflow, find_problems
from checkpointflow.errors import InternalFailure, RuntimeFailure, ValidationFailure
from checkpointflow.interpreter import advance, replay, wait_token
from checkpointflow.model import ForeachStep, Workflow
from checkpointflow.state import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    WAITING,
    Event,
    EventReceived,
    RunCancelled,
    RunCommand,
    RunStarted,
    RunState,
    StepFinished,
    event_from_record,
    event_to_record,
    state_from_json,
    state_to_json,
)

PROPERTY = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])


# --- helpers ------------------------------------------------------------------------------


def workflow(steps: list[dict[str, Any]], **fields: Any) -> Workflow:
    """A workflow built from the dict form of a document that validation accepts."""
    document = {
        "schema_version": "checkpointflow/v1",
        "workflow": {"id": "wf", "steps": steps, **fields},
    }
    assert find_problems(copy.deepcopy(document)) == []
    return build_workflow(document)


_clock = iter(range(10**9))


def at() -> str:
    return f"2024-01-01T00:00:{next(_clock):06d}Z"


def started(inputs: Any = None, when: str | None = None) -> RunStarted:
    return RunStarted(
        run_id="run-1",
        workflow_id="wf",
        workflow_version=None,
        workflow_sha256="0" * 64,
        workflow_path=None,
        inputs={} if inputs is None else inputs,
        at=when or at(),
    )


def finished(
    effect_or_step: RunCommand | str,
    attempt: int | None = None,
    *,
    exit_code: int | None = 0,
    timed_out: bool = False,
    failure: str | None = None,
    output: Any = None,
    output_problem: str | None = None,
    when: str | None = None,
) -> StepFinished:
    """A StepFinished for an effect (or a step id and attempt), filling every other field."""
    if isinstance(effect_or_step, RunCommand):
        step_id, number = effect_or_step.step_id, effect_or_step.attempt
    else:
        step_id, number = effect_or_step, attempt
    assert number is not None
    values: dict[str, Any] = {
        "step_id": step_id,
        "attempt": number,
        "exit_code": exit_code,
        "timed_out": timed_out,
        "duration_ms": 5,
        "failure": failure,
        "stdout": f"steps/{step_id}/{number}.stdout",
        "stderr": f"steps/{step_id}/{number}.stderr",
        "output": output,
        "output_problem": output_problem,
        "stderr_tail": "",
        "at": when or at(),
    }
    fields = attrs.fields_dict(StepFinished)
    for name, field in fields.items():  # fields added later default to "nothing special"
        if name not in values:
            values[name] = None if field.default is attrs.NOTHING else field.default
    return StepFinished(**{name: values[name] for name in fields})


def received(name: str, payload: Any) -> EventReceived:
    return EventReceived(event_name=name, input=payload, at=at())


def cancelled(reason: str | None = "stop") -> RunCancelled:
    return RunCancelled(reason=reason, at=at())


class Run:
    """Feeds events through `advance`, keeping the log, and checks purity on every step."""

    def __init__(self, wf: Workflow) -> None:
        self.workflow = wf
        self.state: RunState | None = None
        self.events: list[Event] = []
        self.effects: tuple[RunCommand, ...] = ()

    def send(self, event: Event) -> tuple[RunCommand, ...]:
        before = None if self.state is None else copy.deepcopy(state_to_json(self.state))
        original = self.state
        state, effects = advance(self.workflow, self.state, event)
        if original is not None:
            assert state_to_json(original) == before, "advance mutated its input state"
        self.state, self.effects = state, effects
        self.events.append(event)
        return effects

    def start(self, inputs: Any = None) -> tuple[RunCommand, ...]:
        return self.send(started(inputs))

    def effect(self) -> RunCommand:
        assert len(self.effects) == 1, self.effects
        return self.effects[0]

    def finish(self, **outcome: Any) -> tuple[RunCommand, ...]:
        return self.send(finished(self.effect(), **outcome))

    @property
    def s(self) -> RunState:
        assert self.state is not None
        return self.state


def cli(step_id: str, command: Any = "true", **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "cli", "command": command, **fields}


def await_event(step_id: str, event_name: str = "go", **fields: Any) -> dict[str, Any]:
    spec = {
        "id": step_id,
        "kind": "await_event",
        "audience": "user",
        "event_name": event_name,
        "input_schema": {
            "type": "object",
            "properties": {
                "approved": {"type": "boolean"},
                "note": {"type": "string", "default": "none"},
            },
            "required": ["approved"],
        },
    }
    return {**spec, **fields}


def end(step_id: str = "done", **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "end", **fields}


def error_code(state: RunState) -> str:
    assert state.error is not None
    return str(state.error["code"])


# --- starting -----------------------------------------------------------------------------


def test_start_emits_the_first_command_with_interpolated_values() -> None:
    wf = workflow(
        [cli("greet", 'echo "Hello, ${inputs.name}" ${inputs.n}', timeout_seconds=7), end()]
    )
    when = "2024-05-05T10:00:00.000Z"
    state, effects = advance(wf, None, started({"name": "Ann $(x)", "n": 3}, when=when))
    assert len(effects) == 1
    effect = effects[0]
    assert effect.step_id == "greet"
    assert effect.attempt == 1
    assert effect.script == 'echo "Hello, ${CPF_VALUE_1}" "${CPF_VALUE_2}"'
    assert effect.shell == ("/bin/sh",)
    assert effect.values == ("Ann $(x)", "3")
    assert effect.cwd is None
    assert effect.timeout_seconds == 7
    assert effect.delay_seconds == 0.0
    assert effect.parse_stdout is False
    assert effects[0].env == ()
    assert state.status == RUNNING
    assert state.run_id == "run-1"
    assert state.workflow_id == "wf"
    assert state.inputs == {"name": "Ann $(x)", "n": 3}
    assert state.created_at == when
    assert state.updated_at == when
    assert state.seq == 1
    assert state.current_step_id == "greet"
    record = state.steps["greet"]
    assert record.status == RUNNING
    assert record.visits == 1
    assert record.executions == 1
    assert record.attempts == ()
    assert record.started_at == when


def test_start_with_argv_builds_a_script_of_quoted_words() -> None:
    wf = workflow([{"id": "a", "kind": "cli", "argv": ["printf", "%s", "${inputs.x}", "it's"]}])
    _, effects = advance(wf, None, started({"x": "a b"}))
    assert effects[0].script == "printf %s \"${CPF_VALUE_1}\" 'it'\"'\"'s'"
    assert effects[0].values == ("a b",)


def test_start_with_a_list_command_chains_its_items() -> None:
    wf = workflow([cli("a", ["echo ${inputs.x}", "make # all", "echo '${inputs.n}'"])])
    _, effects = advance(wf, None, started({"x": "a b", "n": 3}))
    assert effects[0].script == (
        "{ echo \"${CPF_VALUE_1}\"\n} && { make # all\n} && { echo ''\"${CPF_VALUE_2}\"''\n}"
    )
    assert effects[0].values == ("a b", "3")


def test_timeout_and_retry_come_from_the_step_then_the_defaults() -> None:
    own = {"max_attempts": 2}
    wf = workflow(
        [cli("a"), cli("b", timeout_seconds=0, retry=own), cli("c", timeout_seconds=9)],
        defaults={"timeout_seconds": 5, "retry": {"max_attempts": 3, "backoff_seconds": 1}},
    )
    steps = {step.id: step for step in wf.steps}
    assert (steps["a"].timeout_seconds, steps["a"].retry.max_attempts) == (5, 3)
    assert steps["a"].retry.backoff_seconds == 1
    assert (steps["b"].timeout_seconds, steps["b"].retry.max_attempts) == (None, 2)
    assert steps["b"].retry.backoff_seconds == 0
    assert (steps["c"].timeout_seconds, steps["c"].retry.max_attempts) == (9, 3)


def test_defaults_reach_nested_cli_and_api_steps_only() -> None:
    wf = workflow(
        [
            await_event("ask", timeout_seconds=60),
            {
                "id": "each",
                "kind": "foreach",
                "items": "${inputs.list}",
                "body": [
                    cli("inner"),
                    {"id": "call", "kind": "api", "method": "GET", "url": "http://x"},
                ],
            },
            await_event("later"),
        ],
        defaults={"timeout_seconds": 5, "retry": {"max_attempts": 4}},
    )
    foreach = wf.step("each")
    assert isinstance(foreach, ForeachStep)
    assert [(step.timeout_seconds, step.retry.max_attempts) for step in foreach.body] == [
        (5, 4),
        (5, 4),
    ]
    assert (foreach.timeout_seconds, foreach.retry.max_attempts) == (None, 1)
    assert wf.step("ask").timeout_seconds == 60
    assert wf.step("later").timeout_seconds is None


def test_shell_comes_from_the_step_then_the_defaults() -> None:
    wf = workflow(
        [cli("a", shell="/bin/bash -e"), cli("b")],
        defaults={"shell": "/usr/bin/env zsh"},
    )
    run = Run(wf)
    run.start()
    assert run.effect().shell == ("/bin/bash", "-e")
    run.finish()
    assert run.effect().shell == ("/usr/bin/env", "zsh")


def test_outputs_schema_asks_to_parse_stdout() -> None:
    wf = workflow([cli("a", outputs={"type": "object"}), cli("b")])
    run = Run(wf)
    run.start()
    assert run.effect().parse_stdout is True
    run.finish(output={"k": 1})
    assert run.effect().parse_stdout is False


def test_inputs_are_validated_and_defaults_filled() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "n": {"type": "integer", "default": 3}},
        "required": ["name"],
    }
    wf = workflow([cli("a", "echo ${inputs.n}")], inputs=schema)
    given_inputs = {"name": "x"}
    state, effects = advance(wf, None, started(given_inputs))
    assert state.inputs == {"name": "x", "n": 3}
    assert effects[0].values == ("3",)
    assert given_inputs == {"name": "x"}


@pytest.mark.parametrize("inputs", [{}, {"name": 5}, {"name": "x", "n": "three"}, [], "text"])
def test_inputs_not_matching_the_schema_are_refused(inputs: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "n": {"type": "integer", "default": 3}},
        "required": ["name"],
    }
    wf = workflow([cli("a")], inputs=schema)
    with pytest.raises(ValidationFailure) as caught:
        advance(wf, None, started(inputs))
    assert caught.value.code == "ERR_VALIDATION_INPUT"


def test_run_started_twice_is_an_internal_failure() -> None:
    wf = workflow([cli("a")])
    state, _ = advance(wf, None, started())
    with pytest.raises(InternalFailure):
        advance(wf, state, started())


@pytest.mark.parametrize(
    "event", [finished("a", 1), received("go", {}), cancelled()], ids=["step", "event", "cancel"]
)
def test_first_event_must_be_run_started(event: Event) -> None:
    wf = workflow([cli("a")])
    with pytest.raises(InternalFailure):
        advance(wf, None, event)


def test_replay_without_run_started_fails() -> None:
    with pytest.raises(InternalFailure):
        replay(workflow([cli("a")]), [])


# --- command steps ------------------------------------------------------------------------


def test_success_moves_to_the_next_step() -> None:
    wf = workflow([cli("a"), cli("b", "echo ${steps.a.outputs}"), end()])
    run = Run(wf)
    run.start()
    when = at()
    effects = run.send(finished(run.effect(), output="plain stdout", when=when))
    a = run.s.steps["a"]
    assert a.status == COMPLETED
    assert a.outputs == "plain stdout"
    assert a.finished_at == when
    assert len(a.attempts) == 1
    assert a.attempts[0].exit_code == 0
    assert a.attempts[0].error is None
    assert a.attempts[0].finished_at == when
    assert effects[0].step_id == "b"
    assert effects[0].attempt == 1
    assert effects[0].values == ("plain stdout",)
    assert run.s.current_step_id == "b"
    assert run.s.seq == 2
    assert run.s.updated_at == when


def test_last_step_completing_completes_the_run() -> None:
    run = Run(workflow([cli("a")]))
    run.start()
    assert run.finish() == ()
    assert run.s.status == COMPLETED
    assert run.s.result is None
    assert run.s.error is None


def test_success_exit_codes() -> None:
    wf = workflow([cli("a", success={"exit_codes": [0, 3]})])
    run = Run(wf)
    run.start()
    run.finish(exit_code=3)
    assert run.s.status == COMPLETED
    run = Run(wf)
    run.start()
    run.finish(exit_code=1)
    assert run.s.status == FAILED


def test_failure_without_retry_fails_the_run() -> None:
    run = Run(workflow([cli("a"), cli("b")]))
    run.start()
    assert run.finish(exit_code=2) == ()
    assert run.s.status == FAILED
    assert error_code(run.s) == "ERR_STEP_FAILED"
    assert run.s.error["step_id"] == "a"
    record = run.s.steps["a"]
    assert record.status == FAILED
    assert record.error == run.s.error
    assert record.attempts[0].exit_code == 2
    assert "b" not in run.s.steps


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("exponential", [2.0, 4.0, 8.0]), ("fixed", [2.0, 2.0, 2.0])],
)
def test_retry_backoff(strategy: str, expected: list[float]) -> None:
    retry = {"max_attempts": 4, "backoff_seconds": 2, "strategy": strategy}
    run = Run(workflow([cli("a", retry=retry), cli("b")]))
    run.start()
    assert run.effect().delay_seconds == 0.0
    delays = []
    for number in (2, 3, 4):
        effect = run.finish(exit_code=1)[0]
        assert effect.step_id == "a"
        assert effect.attempt == number
        delays.append(effect.delay_seconds)
        record = run.s.steps["a"]
        assert record.status == RUNNING
        assert record.executions == number
        assert len(record.attempts) == number - 1
        assert [a.attempt for a in record.attempts] == list(range(1, number))
        assert all(a.error["code"] == "ERR_STEP_FAILED" for a in record.attempts)
        assert run.s.status == RUNNING
    assert delays == expected
    assert run.finish(exit_code=1) == ()
    assert run.s.status == FAILED
    assert error_code(run.s) == "ERR_STEP_FAILED"
    assert len(run.s.steps["a"].attempts) == 4
    assert run.s.steps["a"].status == FAILED


def test_retry_then_success_continues() -> None:
    run = Run(workflow([cli("a", retry={"max_attempts": 3}), cli("b")]))
    run.start()
    run.finish(exit_code=1)
    effects = run.finish(exit_code=0)
    assert effects[0].step_id == "b"
    record = run.s.steps["a"]
    assert record.status == COMPLETED
    assert [a.exit_code for a in record.attempts] == [1, 0]
    assert record.executions == 2


def test_timeout_is_err_timeout() -> None:
    run = Run(workflow([cli("a", timeout_seconds=1.5)]))
    run.start()
    assert run.effect().timeout_seconds == 1.5
    run.finish(exit_code=None, timed_out=True)
    assert run.s.status == FAILED
    assert error_code(run.s) == "ERR_TIMEOUT"


def test_could_not_start_fails_the_step() -> None:
    run = Run(workflow([cli("a")]))
    run.start()
    run.finish(exit_code=None, failure="shell not found")
    assert run.s.status == FAILED
    assert "shell not found" in run.s.error["message"]


@pytest.mark.parametrize(
    ("output", "problem"),
    [({"count": "three"}, None), ({}, None), ([1], None), (None, "is not JSON")],
)
def test_outputs_not_matching_the_schema(output: Any, problem: str | None) -> None:
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    run = Run(workflow([cli("a", outputs=schema), cli("b")]))
    run.start()
    run.finish(output=output, output_problem=problem)
    assert run.s.status == FAILED
    assert error_code(run.s) == "ERR_STEP_OUTPUT_INVALID"


def test_outputs_matching_the_schema_are_recorded() -> None:
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    run = Run(workflow([cli("a", outputs=schema), cli("b", "echo ${steps.a.outputs.count}")]))
    run.start()
    run.finish(output={"count": 4})
    assert run.s.steps["a"].outputs == {"count": 4}
    assert run.effect().values == ("4",)


def test_expression_failure_in_a_command_fails_the_run() -> None:
    run = Run(workflow([cli("a"), cli("b", "echo ${steps.a.outputs.missing}")]))
    run.start()
    assert run.finish(output={"x": 1}) == ()
    assert run.s.status == FAILED
    assert error_code(run.s) == "ERR_EXPRESSION"
    assert run.s.steps["b"].status == FAILED


@pytest.mark.parametrize(
    "event",
    [
        lambda e: finished("other", e.attempt),
        lambda e: finished(e.step_id, e.attempt + 1),
        lambda e: finished(e.step_id, e.attempt - 1),
    ],
    ids=["wrong-step", "future-attempt", "past-attempt"],
)
def test_step_finished_that_does_not_match_the_running_step(event: Any) -> None:
    run = Run(workflow([cli("a"), cli("other")]))
    run.start()
    before = state_to_json(run.s)
    with pytest.raises(InternalFailure):
        advance(run.workflow, run.s, event(run.effect()))
    assert state_to_json(run.s) == before


def test_step_finished_twice_is_refused() -> None:
    run = Run(workflow([cli("a"), cli("b")]))
    run.start()
    first = run.effect()
    run.finish()
    with pytest.raises(InternalFailure):
        advance(run.workflow, run.s, finished(first))


def test_step_finished_while_waiting_is_refused() -> None:
    run = Run(workflow([await_event("w")]))
    run.start()
    with pytest.raises(InternalFailure):
        advance(run.workflow, run.s, finished("w", 1))


def test_step_finished_after_the_run_failed_is_refused() -> None:
    run = Run(workflow([cli("a")]))
    run.start()
    effect = run.effect()
    run.finish(exit_code=1)
    with pytest.raises(InternalFailure):
        advance(run.workflow, run.s, finished(effect))


# --- conditions ---------------------------------------------------------------------------


def test_if_false_skips_the_step() -> None:
    wf = workflow(
        [
            cli("a", outputs={"type": "object"}),
            cli("b", **{"if": "steps.a.outputs.go == true"}),
            cli("c", **{"if": "${inputs.flag}"}),
            cli("d"),
        ]
    )
    run = Run(wf)
    run.start({"flag": False})
    when = at()
    effects = run.send(finished(run.effect(), output={"go": False}, when=when))
    assert effects[0].step_id == "d"
    for skipped in ("b", "c"):
        record = run.s.steps[skipped]
        assert record.status == "skipped"
        assert record.visits == 1
        assert record.executions == 0
        assert record.finished_at == when
    assert run.s.current_step_id == "d"


def test_if_true_runs_the_step() -> None:
    wf = workflow([cli("a", **{"if": "inputs.n > 1"}), cli("b", **{"if": True})])
    run = Run(wf)
    run.start({"n": 2})
    assert run.effect().step_id == "a"
    run.finish()
    assert run.effect().step_id == "b"


def test_if_false_on_the_last_step_completes_the_run() -> None:
    run = Run(workflow([cli("a", **{"if": False})]))
    assert run.start() == ()
    assert run.s.status == COMPLETED
    assert run.s.steps["a"].status == "skipped"


def test_condition_that_cannot_be_evaluated_fails_the_run() -> None:
    run = Run(workflow([cli("a", **{"if": "inputs.n < 'text'"})]))
    run.start({"n": 1})
    assert run.s.status == FAILED
    assert error_code(run.s) == "ERR_EXPRESSION"


# --- waiting for events -------------------------------------------------------------------


def waiting_run(**fields: Any) -> Run:
    steps = [
        await_event(
            "approve",
            "approval",
            prompt="Ship ${inputs.name}?",
            summary="v${inputs.n}",
            instructions=["look", "decide"],
            risk_level="high",
            **fields,
        ),
        cli("after", "echo ${steps.approve.outputs.note}"),
    ]
    run = Run(workflow(steps))
    run.start({"name": "app", "n": 2})
    return run


def test_await_event_waits() -> None:
    run = waiting_run()
    assert run.effects == ()
    state = run.s
    assert state.status == WAITING
    assert state.current_step_id == "approve"
    assert state.wait == {
        "wait_id": "approve",
        "frame": "",
        "step_id": "approve",
        "event_name": "approval",
        "audience": "user",
        "prompt": "Ship app?",
        "summary": "v2",
        "input_schema": run.workflow.step("approve").input_schema,
        "instructions": ["look", "decide"],
        "risk_level": "high",
        "since": state.created_at,
        "deadline": None,
        "token": wait_token(state, "approve"),
        "audience_actors": None,
    }
    assert state.steps["approve"].status == WAITING
    assert state.steps["approve"].visits == 1


def test_event_received_continues_with_defaults_filled() -> None:
    run = waiting_run()
    payload = {"approved": True}
    effects = run.send(received("approval", payload))
    assert payload == {"approved": True}
    record = run.s.steps["approve"]
    assert record.status == COMPLETED
    assert record.outputs == {"approved": True, "note": "none"}
    assert run.s.status == RUNNING
    assert run.s.wait is None
    assert run.s.seq == 2
    assert effects[0].step_id == "after"
    assert effects[0].values == ("none",)


def test_event_with_the_wrong_name_is_refused() -> None:
    run = waiting_run()
    before = state_to_json(run.s)
    with pytest.raises(RuntimeFailure) as caught:
        advance(run.workflow, run.s, received("other", {"approved": True}))
    assert caught.value.code == "ERR_RESUME_EVENT_MISMATCH"
    assert caught.value.step_id == "approve"
    assert "approval" in caught.value.message
    assert state_to_json(run.s) == before


@pytest.mark.parametrize("payload", [{}, {"approved": "yes"}, None, [], {"note": "x"}])
def test_event_with_invalid_input_is_refused(payload: Any) -> None:
    run = waiting_run()
    with pytest.raises(ValidationFailure) as caught:
        advance(run.workflow, run.s, received("approval", payload))
    assert caught.value.code == "ERR_VALIDATION_EVENT_INPUT"
    assert caught.value.step_id == "approve"
    assert run.s.status == WAITING


def test_event_on_a_completed_run_is_refused() -> None:
    run = Run(workflow([cli("a")]))
    run.start()
    run.finish()
    assert run.s.status == COMPLETED
    with pytest.raises(RuntimeFailure) as caught:
        advance(run.workflow, run.s, received("go", {"approved": True}))
    assert caught.value.code == "ERR_RUN_NOT_WAITING"


def test_event_on_a_running_run_is_refused() -> None:
    run = Run(workflow([cli("a"), await_event("w")]))
    run.start()
    with pytest.raises(RuntimeFailure) as caught:
        advance(run.workflow, run.s, received("go", {"approved": True}))
    assert caught.value.code == "ERR_RUN_NOT_WAITING"


# --- transitions and loops ----------------------------------------------------------------


def approval_workflow() -> Workflow:
    return workflow(
        [
            await_event(
                "ask",
                transitions=[
                    {"when": "event.approved == true", "next": "ship"},
                    {"when": "event.approved == false and event.note == 'retry'", "next": "ask"},
                    {"when": "event.approved == false", "next": "reject"},
                ],
            ),
            end("ship", result={"outcome": "shipped", "note": "${steps.ask.outputs.note}"}),
            end("reject", result="rejected: ${steps.ask.outputs.note}"),
        ]
    )


def test_transition_chooses_the_target() -> None:
    run = Run(approval_workflow())
    run.start()
    run.send(received("go", {"approved": True, "note": "lgtm"}))
    assert run.s.status == COMPLETED
    assert run.s.result == {"outcome": "shipped", "note": "lgtm"}
    assert run.s.current_step_id == "ship"
    assert "reject" not in run.s.steps

    run = Run(approval_workflow())
    run.start()
    run.send(received("go", {"approved": False}))
    assert run.s.status == COMPLETED
    assert run.s.result == "rejected: none"


def test_transition_back_to_the_same_await_step_waits_again() -> None:
    run = Run(approval_workflow())
    run.start()
    run.send(received("go", {"approved": False, "note": "retry"}))
    assert run.s.status == WAITING
    assert run.s.steps["ask"].visits == 2
    assert run.s.steps["ask"].status == WAITING
    run.send(received("go", {"approved": True}))
    assert run.s.result == {"outcome": "shipped", "note": "none"}


def test_await_transition_without_a_match_goes_on_in_list_order() -> None:
    wf = workflow(
        [
            await_event("ask", transitions=[{"when": "event.approved", "next": "done"}]),
            cli("next_in_list"),
            end("done"),
        ]
    )
    run = Run(wf)
    run.start()
    run.send(received("go", {"approved": False}))
    assert run.s.status == RUNNING
    assert run.effect().step_id == "next_in_list"


def test_cli_transition_without_a_match_goes_on_in_list_order() -> None:
    wf = workflow(
        [
            cli(
                "a",
                outputs={"type": "object"},
                transitions=[{"when": "steps.a.outputs.ok", "next": "c"}],
            ),
            cli("b"),
            cli("c"),
        ]
    )
    run = Run(wf)
    run.start()
    assert run.finish(output={"ok": False})[0].step_id == "b"
    assert run.finish()[0].step_id == "c"


def test_last_step_without_a_matching_transition_completes_the_run() -> None:
    wf = workflow([cli("a", transitions=[{"when": "inputs.never", "next": "a"}])])
    run = Run(wf)
    run.start()
    run.finish()
    assert run.s.status == COMPLETED


def test_unconditional_transition_jumps() -> None:
    wf = workflow([cli("a", transitions=[{"next": "c"}]), cli("b"), cli("c")])
    run = Run(wf)
    run.start()
    assert run.finish()[0].step_id == "c"
    assert "b" not in run.s.steps


def loop_workflow(max_attempts: int = 1) -> Workflow:
    return workflow(
        [
            cli("work", "echo ${inputs.n}", retry={"max_attempts": max_attempts}),
            cli(
                "check",
                "check",
                outputs={"type": "object", "properties": {"again": {"type": "boolean"}}},
                transitions=[
                    {"when": "steps.check.outputs.again", "next": "work"},
                    {"next": "done"},
                ],
            ),
            end("done", result={"last": "${steps.check.outputs}"}),
        ]
    )


def test_loop_revisits_a_step() -> None:
    run = Run(loop_workflow(max_attempts=3))
    run.start({"n": 1})
    # visit 1 of work: one failure then success (executions 1, 2)
    assert run.effect().attempt == 1
    assert run.finish(exit_code=1)[0].attempt == 2
    run.finish()
    assert run.effect().step_id == "check"
    effect = run.finish(output={"again": True})[0]
    # visit 2 of work: a fresh visit; executions keep counting
    assert effect.step_id == "work"
    assert effect.attempt == 3
    assert effect.delay_seconds == 0.0
    work = run.s.steps["work"]
    assert work.visits == 2
    assert work.executions == 3
    assert work.attempts == ()
    assert work.status == RUNNING
    assert work.outputs is None
    run.finish()
    run.finish(output={"again": False})
    assert run.s.status == COMPLETED
    assert run.s.result == {"last": {"again": False}}
    assert run.s.steps["work"].visits == 2
    assert run.s.steps["check"].visits == 2
    assert run.s.steps["check"].executions == 2
    assert run.s.seq == len(run.events)


# --- end steps ----------------------------------------------------------------------------


def test_end_renders_the_result() -> None:
    wf = workflow(
        [
            cli("a", outputs={"type": "object"}),
            end(
                "finish",
                result={
                    "n": "${steps.a.outputs.n}",
                    "text": "n is ${steps.a.outputs.n}",
                    "list": ["${inputs.name}", 1, None],
                    "status": "${steps.a.status}",
                },
            ),
            cli("never"),
        ]
    )
    run = Run(wf)
    run.start({"name": "x"})
    assert run.finish(output={"n": 7}) == ()
    assert run.s.status == COMPLETED
    assert run.s.result == {"n": 7, "text": "n is 7", "list": ["x", 1, None], "status": "completed"}
    assert run.s.steps["finish"].status == COMPLETED
    assert "never" not in run.s.steps


def test_end_result_with_a_missing_path_fails_the_run() -> None:
    run = Run(workflow([end(result="${inputs.missing}")]))
    run.start({})
    assert run.s.status == FAILED
    assert error_code(run.s) == "ERR_EXPRESSION"


def test_cancel_a_waiting_run() -> None:
    run = waiting_run()
    assert run.send(cancelled("no longer needed")) == ()
    assert run.s.status == CANCELLED
    assert run.s.cancel_reason == "no longer needed"
    assert run.s.wait is None
    assert run.s.steps["approve"].status == CANCELLED
    assert run.s.seq == 2


def test_cancel_a_running_run() -> None:
    run = Run(workflow([cli("a")]))
    run.start()
    run.send(cancelled(None))
    assert run.s.status == CANCELLED
    assert run.s.steps["a"].status == CANCELLED


@pytest.mark.parametrize("outcome", ["completed", "failed", "cancelled"])
def test_cancel_a_finished_run_is_refused(outcome: str) -> None:
    run = Run(workflow([cli("a")]))
    run.start()
    if outcome == "completed":
        run.finish()
    elif outcome == "failed":
        run.finish(exit_code=1)
    else:
        run.send(cancelled())
    assert run.s.status == outcome
    with pytest.raises(RuntimeFailure) as caught:
        advance(run.workflow, run.s, cancelled())
    assert caught.value.code == "ERR_RUN_NOT_WAITING"


def test_event_after_cancel_is_refused() -> None:
    run = waiting_run()
    run.send(cancelled())
    with pytest.raises(RuntimeFailure) as caught:
        advance(run.workflow, run.s, received("approval", {"approved": True}))
    assert caught.value.code == "ERR_RUN_NOT_WAITING"


# --- replay, purity and serialisation -----------------------------------------------------


def full_scenario() -> Run:
    wf = workflow(
        [
            cli("build", "make ${inputs.target}", retry={"max_attempts": 2, "backoff_seconds": 1}),
            await_event("approve", "approval"),
            cli("deploy", ["deploy", "${inputs.target}"], outputs={"type": "object"}),
            end("done", result={"deployed": "${steps.deploy.outputs}"}),
        ],
        inputs={"type": "object", "properties": {"target": {"type": "string", "default": "all"}}},
    )
    run = Run(wf)
    run.start({})
    run.finish(exit_code=1)
    run.finish()
    run.send(received("approval", {"approved": True}))
    run.finish(output={"url": "https://x"})
    return run


def test_replay_equals_folding_advance() -> None:
    run = full_scenario()
    assert run.s.status == COMPLETED
    assert run.s.result == {"deployed": {"url": "https://x"}}
    assert replay(run.workflow, run.events) == run.s
    # Replaying from an intermediate state gives the same result.
    middle = replay(run.workflow, run.events[:3])
    assert replay(run.workflow, run.events[3:], middle) == run.s


def test_state_json_round_trip() -> None:
    run = full_scenario()
    data = state_to_json(run.s)
    assert data["schema_version"] == "checkpointflow-state/v2"
    text = json.dumps(data)
    assert state_from_json(json.loads(text)) == run.s
    assert state_from_json(data) == run.s


def test_waiting_state_json_round_trip() -> None:
    run = waiting_run()
    assert state_from_json(json.loads(json.dumps(state_to_json(run.s)))) == run.s


def test_event_records_round_trip() -> None:
    run = full_scenario()
    for seq, event in enumerate(run.events, 1):
        record = json.loads(json.dumps(event_to_record(event, seq, "x/v1")))
        assert record["seq"] == seq
        assert event_from_record(record) == event


def test_advance_does_not_mutate_inputs_of_events() -> None:
    wf = workflow(
        [await_event("w"), cli("a", outputs={"type": "object"}), cli("b")],
        inputs={"type": "object", "properties": {"d": {"type": "integer", "default": 1}}},
    )
    inputs: dict[str, Any] = {"x": {"y": [1]}}
    state, _ = advance(wf, None, started(inputs))
    assert inputs == {"x": {"y": [1]}}
    payload: dict[str, Any] = {"approved": True}
    state, effects = advance(wf, state, received("go", payload))
    assert payload == {"approved": True}
    output: dict[str, Any] = {"k": [1, 2]}
    event = finished(effects[0], output=output)
    advance(wf, state, event)
    assert output == {"k": [1, 2]}


# --- property: random outcomes on a workflow with retries and a loop ----------------------

outcomes = st.lists(
    st.one_of(
        st.tuples(st.just("finish"), st.sampled_from([0, 1]), st.booleans()),
        st.tuples(st.just("cancel"), st.just(0), st.just(False)),
    ),
    max_size=30,
)


def walk(steps: list[tuple[str, int, bool]]) -> Iterator[tuple[Run, Event]]:
    run = Run(loop_workflow(max_attempts=2))
    run.start({"n": 5})
    yield run, run.events[-1]
    for kind, exit_code, again in steps:
        if run.s.status != RUNNING:
            return
        if kind == "cancel":
            run.send(cancelled())
        else:
            effect = run.effect()
            output = {"again": again} if effect.parse_stdout else None
            run.send(finished(effect, exit_code=exit_code, output=output))
        yield run, run.events[-1]


@PROPERTY
@given(outcomes)
def test_random_outcomes_replay_to_the_same_state(steps: list[tuple[str, int, bool]]) -> None:
    run = None
    for run, _ in walk(steps):
        state = run.s
        # Invariants that hold after every event.
        assert state.seq == len(run.events)
        for record in state.steps.values():
            assert record.executions >= len(record.attempts)
            assert record.visits >= 1
        if state.status == RUNNING:
            effect = run.effect()
            assert effect.step_id == state.current_step_id
            record = state.steps[effect.step_id]
            assert effect.attempt == record.executions
            assert record.status == RUNNING
            assert len(record.attempts) < 2
        else:
            assert run.effects == ()
        assert state.status in (RUNNING, COMPLETED, FAILED, CANCELLED)
    assert run is not None
    final = run.s
    assert replay(run.workflow, run.events) == final
    assert state_from_json(json.loads(json.dumps(state_to_json(final)))) == final
    records = [event_to_record(event, seq, "v") for seq, event in enumerate(run.events, 1)]
    events = [event_from_record(json.loads(json.dumps(record))) for record in records]
    assert replay(run.workflow, events) == final
    finishes = [event for event in run.events if isinstance(event, StepFinished)]
    assert sum(record.executions for record in final.steps.values()) >= len(finishes)
    assert final.steps["work"].executions == sum(1 for e in finishes if e.step_id == "work") + (
        1 if final.status in (RUNNING, CANCELLED) and final.current_step_id == "work" else 0
    )


# --- queued answers and merged histories ---------------------------------------------------

ASK = [
    {
        "id": "ask",
        "kind": "await_event",
        "audience": "user",
        "event_name": "go",
        "input_schema": {"type": "object"},
    },
    {"id": "done", "kind": "end", "result": "${steps.ask.outputs}"},
]


def test_a_queued_answer_is_the_same_event_as_a_direct_one():
    wf = workflow(ASK)
    waiting, _ = advance(wf, None, started(when="2024-01-01T00:00:00Z"))
    when = "2024-01-01T00:00:01Z"
    direct, _ = advance(wf, waiting, EventReceived("go", {"a": 1}, when))
    queued = EventReceived("go", {"a": 1}, when, queued={"id": "q1", "at": "2024-01-01T00:00:00Z"})
    folded, _ = advance(wf, waiting, queued)
    assert state_to_json(folded) == state_to_json(direct)
    assert "queued" not in event_to_record(EventReceived("go", {}, when), 2, "v")["payload"]
    record = event_to_record(queued, 2, "v")
    assert record["payload"]["queued"] == {"id": "q1", "at": "2024-01-01T00:00:00Z"}
    assert event_from_record(record) == queued


def test_records_for_people_only_move_seq_and_time():
    from checkpointflow.state import AnswerStale, HistoryMerged

    wf = workflow(ASK)
    waiting, _ = advance(wf, None, started(when="2024-01-01T00:00:00Z"))
    stale = AnswerStale(
        "go",
        {},
        None,
        "bob",
        "ask",
        {"id": "q", "at": "t"},
        "ERR_STALE_WAIT",
        "m",
        "2024-01-01T00:00:05Z",
    )
    merged = HistoryMerged("ours", (), (), "2024-01-01T00:00:06Z")
    for event in (stale, merged):
        after, work = advance(wf, waiting, event)
        assert work == ()
        assert after.seq == waiting.seq + 1 and after.updated_at == event.at
        assert attrs.evolve(after, seq=waiting.seq, updated_at=waiting.updated_at) == waiting
        waiting = after
