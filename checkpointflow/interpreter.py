"""The interpreter: every decision about a run, as one pure function.

    advance(workflow, state, event) -> (state, effects)

No clock, no randomness, no files, no environment, no processes: time arrives inside
events, and work for the outside world leaves as effects. Folding a run's event log through
`advance` therefore rebuilds its state exactly (`replay`). An event that does not fit the
run's current situation is refused with a typed error and changes nothing.

Which events a run accepts in which status:

    status    run_started  step_finished   event_received  wait_expired  run_cancelled
              (response_received)                                        (run_recovered)
    (none)    start        -               -               -             -
    running   -            judge, go on    not waiting     not waiting   cancel (settle)
    waiting   -            -               continue        time out      cancel (-)
    finished  -            -               not waiting     not waiting   not waiting (-)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from checkpointflow import json_schema, verdicts
from checkpointflow.errors import InternalFailure, RuntimeFailure, ValidationFailure
from checkpointflow.flow import (
    after,
    enter,
    put,
    retry_or_fail,
    step_failed,
    wait_token,
)
from checkpointflow.model import (
    ApiStep,
    AwaitEventStep,
    CliStep,
    Workflow,
)
from checkpointflow.state import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    WAITING,
    Attempt,
    Effect,
    Event,
    EventReceived,
    ResponseReceived,
    RunCancelled,
    RunRecovered,
    RunRetried,
    RunStarted,
    RunState,
    StepFinished,
    WaitExpired,
)
from checkpointflow.timestamps import to_millis

__all__ = ["advance", "replay", "wait_deadline", "wait_token"]

Outcome = tuple[RunState, tuple[Effect, ...]]


def advance(workflow: Workflow, state: RunState | None, event: Event) -> Outcome:
    """The run's next state and the work to do next, after `event`."""
    if isinstance(event, RunStarted):
        if state is not None:
            raise InternalFailure("ERR_INTERNAL", "run_started for a run that already started")
        return _start(workflow, event)
    if state is None:
        raise InternalFailure("ERR_INTERNAL", "the first event of a run must be run_started")
    if isinstance(event, StepFinished | ResponseReceived):
        return _attempt_finished(workflow, state, event)
    if isinstance(event, EventReceived):
        return _event_received(workflow, state, event)
    if isinstance(event, WaitExpired):
        return _wait_expired(workflow, state, event)
    if isinstance(event, RunRecovered):
        return _recovered(workflow, state, event)
    if isinstance(event, RunRetried):
        return _retried(workflow, state, event)
    return _cancelled(state, event)


def replay(workflow: Workflow, events: Iterable[Event], state: RunState | None = None) -> RunState:
    """Fold events through `advance`: the state they describe."""
    for event in events:
        state, _ = advance(workflow, state, event)
    if state is None:
        raise InternalFailure("ERR_INTERNAL", "a run's event log has no run_started event")
    return state


def wait_deadline(state: RunState) -> str | None:
    """When the pending wait times out, if it has a timeout."""
    return (state.wait or {}).get("deadline") if state.status == WAITING else None


# --- events -------------------------------------------------------------------------------


def _start(workflow: Workflow, event: RunStarted) -> Outcome:
    inputs = event.inputs
    if workflow.inputs_schema is not None:
        inputs, problem = json_schema.checked(workflow.inputs_schema, inputs, "inputs")
        if problem is not None:
            raise ValidationFailure(
                "ERR_VALIDATION_INPUT",
                f"The inputs do not match the workflow's inputs schema: {problem}.",
                details={"inputs_schema": workflow.inputs_schema},
            )
    state = RunState(
        run_id=event.run_id,
        workflow_id=event.workflow_id,
        workflow_version=event.workflow_version,
        workflow_sha256=event.workflow_sha256,
        workflow_path=event.workflow_path,
        status=RUNNING,
        inputs=inputs,
        created_at=event.at,
        updated_at=event.at,
        seq=1,
        secret=event.secret,
    )
    return enter(workflow, state, 0, event.at)


def _tick(state: RunState, at: str) -> RunState:
    return attrs.evolve(state, seq=state.seq + 1, updated_at=at)


def _attempt_finished(
    workflow: Workflow, state: RunState, event: StepFinished | ResponseReceived
) -> Outcome:
    """Judge a command's or request's outcome: go on, retry, or settle the failure."""
    record = state.steps.get(event.step_id)
    if (
        state.status != RUNNING
        or state.current_step_id != event.step_id
        or record is None
        or record.executions != event.attempt
    ):
        raise InternalFailure(
            "ERR_INTERNAL", f"an outcome for {event.step_id} #{event.attempt} was not expected"
        )
    state = _tick(state, event.at)
    step = workflow.step(event.step_id)
    if isinstance(step, CliStep) and isinstance(event, StepFinished):
        error = verdicts.command_error(step, event)
        outputs = event.output
        attempt = _attempt(event, event.exit_code, event.timed_out, event.stdout, event.stderr)
    elif isinstance(step, ApiStep) and isinstance(event, ResponseReceived):
        error = verdicts.response_error(step, event)
        outputs = {"status": event.status, "headers": event.headers, "body": event.body}
        attempt = _attempt(event, None, event.failure_code == "ERR_TIMEOUT", event.body_file, "")
        attempt = attrs.evolve(attempt, http_status=event.status)
    else:
        raise InternalFailure("ERR_INTERNAL", f"{type(event).__name__} for a {step.kind} step")
    record = attrs.evolve(record, attempts=(*record.attempts, attrs.evolve(attempt, error=error)))
    if error is None:
        record = attrs.evolve(record, status=COMPLETED, outputs=outputs, finished_at=event.at)
        return after(workflow, put(state, step.id, record), step, None, event.at)
    return retry_or_fail(workflow, state, step, record, error, event.at)


def _attempt(
    event: StepFinished | ResponseReceived,
    exit_code: int | None,
    timed_out: bool,
    stdout: str,
    stderr: str,
) -> Attempt:
    return Attempt(
        attempt=event.attempt,
        exit_code=exit_code,
        timed_out=timed_out,
        duration_ms=event.duration_ms,
        stdout=stdout,
        stderr=stderr,
        error=None,
        finished_at=event.at,
    )


def _event_received(workflow: Workflow, state: RunState, event: EventReceived) -> Outcome:
    if event.token is not None and (state.wait or {}).get("token") != event.token:
        raise ValidationFailure(
            "ERR_STALE_WAIT",
            f"Token {event.token[:64]!r} is not the token of the wait run {state.run_id} has "
            "pending (that wait was already answered, or the token belongs to another run). "
            "Nothing was changed; `cpf status` shows the current wait and its token.",
            step_id=state.current_step_id,
        )
    wait = _pending_wait(state)
    allowed = wait.get("audience_actors")
    if allowed and event.actor not in allowed:
        raise ValidationFailure(
            "ERR_NOT_ALLOWED",
            f"Step '{wait['step_id']}' accepts answers only from {', '.join(allowed)}, not "
            f"from {event.actor!r}. Resume with --actor set to one of them (or CPF_ACTOR).",
            step_id=wait["step_id"],
        )
    if event.event_name != wait["event_name"]:
        raise RuntimeFailure(
            "ERR_RESUME_EVENT_MISMATCH",
            f"Run {state.run_id} waits for event '{wait['event_name']}' at step "
            f"'{wait['step_id']}', not '{event.event_name}'. Resume with "
            f"--event {wait['event_name']}.",
            step_id=wait["step_id"],
        )
    step = workflow.step(wait["step_id"])
    assert isinstance(step, AwaitEventStep)
    payload, problem = json_schema.checked(step.input_schema, event.input, "event")
    if problem is not None:
        raise ValidationFailure(
            "ERR_VALIDATION_EVENT_INPUT",
            f"The event input does not match the input_schema of step '{step.id}': {problem}. "
            "The run is still waiting; resume again with corrected input.",
            step_id=step.id,
            details={"input_schema": step.input_schema},
        )
    state = _tick(state, event.at)
    record = attrs.evolve(
        state.steps[step.id], status=COMPLETED, outputs=payload, finished_at=event.at
    )
    state = attrs.evolve(put(state, step.id, record), status=RUNNING, wait=None)
    return after(workflow, state, step, payload, event.at)


def _pending_wait(state: RunState) -> dict[str, Any]:
    if state.status != WAITING or state.wait is None:
        raise RuntimeFailure(
            "ERR_RUN_NOT_WAITING",
            f"Run {state.run_id} is {state.status}, not waiting for an event; nothing to resume.",
            step_id=state.current_step_id,
        )
    wait: dict[str, Any] = state.wait
    return wait


def _wait_expired(workflow: Workflow, state: RunState, event: WaitExpired) -> Outcome:
    """Nobody answered in time: follow on_timeout, else on_error, else fail the run."""
    wait = _pending_wait(state)
    deadline = wait.get("deadline")
    if (
        wait["step_id"] != event.step_id
        or deadline is None
        or to_millis(event.at) < to_millis(deadline)
    ):
        raise InternalFailure("ERR_INTERNAL", f"wait_expired for {event.step_id} is not due")
    step = workflow.step(event.step_id)
    assert isinstance(step, AwaitEventStep)
    state = attrs.evolve(_tick(state, event.at), status=RUNNING, wait=None)
    error = verdicts.error(
        "ERR_TIMEOUT",
        f"Step '{step.id}' waited {step.timeout_seconds or 0:g}s for event "
        f"'{step.event_name}' and nobody answered (deadline {deadline}).",
        step.id,
    )
    record = attrs.evolve(state.steps[step.id], status=FAILED, error=error, finished_at=event.at)
    if step.on_timeout is not None:
        state = put(state, step.id, record)
        return enter(workflow, state, workflow.positions[step.on_timeout], event.at)
    return step_failed(workflow, state, step, record, error, event.at)


def _recovered(workflow: Workflow, state: RunState, event: RunRecovered) -> Outcome:
    """Settle the attempt a dead process left in flight: retry it if allowed, else fail."""
    record = state.steps.get(state.current_step_id or "")
    if state.status != RUNNING or record is None or record.status != RUNNING:
        raise RuntimeFailure(
            "ERR_RUN_NOT_INTERRUPTED",
            f"Run {state.run_id} is {state.status}; recover only settles a run whose "
            "process stopped while a step was running.",
            step_id=state.current_step_id,
        )
    if (event.step_id, event.attempt) != (state.current_step_id, record.executions):
        raise InternalFailure("ERR_INTERNAL", "run_recovered does not name the step in flight")
    step = workflow.step(event.step_id)
    state = _tick(state, event.at)
    error = verdicts.error(
        "ERR_INTERRUPTED",
        f"Step '{step.id}' was interrupted: the cpf process running attempt {event.attempt} "
        "stopped before the step finished, so its outcome is unknown.",
        step.id,
        {"attempt": event.attempt, "stdout": event.stdout, "stderr": event.stderr},
    )
    attempt = Attempt(
        attempt=event.attempt,
        exit_code=None,
        timed_out=False,
        duration_ms=0,
        stdout=event.stdout,
        stderr=event.stderr,
        error=error,
        finished_at=event.at,
    )
    record = attrs.evolve(record, attempts=(*record.attempts, attempt))
    return retry_or_fail(workflow, state, step, record, error, event.at)


def _retried(workflow: Workflow, state: RunState, event: RunRetried) -> Outcome:
    """Run a failed run again from the failed step (or an earlier one), keeping the
    recorded outputs of every step that completed."""
    if state.status != FAILED:
        raise RuntimeFailure(
            "ERR_RUN_NOT_FAILED",
            f"Run {state.run_id} is {state.status}; only a failed run can be retried.",
            step_id=state.current_step_id,
        )
    target = event.from_step or state.current_step_id
    if target is None or target not in workflow.positions:
        known = ", ".join(step.id for step in workflow.steps)
        raise ValidationFailure(
            "ERR_STEP_NOT_FOUND",
            f"Run {state.run_id} has no step {target!r} to retry from (steps: {known}).",
            step_id=target,
        )
    state = attrs.evolve(_tick(state, event.at), status=RUNNING, error=None, result=None)
    if event.workflow_sha256 is not None:
        state = attrs.evolve(state, workflow_sha256=event.workflow_sha256)
    return enter(workflow, state, workflow.positions[target], event.at)


def _cancelled(state: RunState, event: RunCancelled) -> Outcome:
    if state.status not in (WAITING, RUNNING):
        raise RuntimeFailure(
            "ERR_RUN_NOT_WAITING",
            f"Run {state.run_id} is {state.status}; only a waiting or running run can be "
            "cancelled.",
            step_id=state.current_step_id,
        )
    state = _tick(state, event.at)
    if state.current_step_id is not None:
        record = state.steps[state.current_step_id]
        if record.status in (WAITING, RUNNING):
            record = attrs.evolve(record, status=CANCELLED, finished_at=event.at)
            state = put(state, state.current_step_id, record)
    return attrs.evolve(state, status=CANCELLED, wait=None, cancel_reason=event.reason), ()
