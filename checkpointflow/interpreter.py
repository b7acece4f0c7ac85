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
from checkpointflow.addresses import FORBIDDEN_CODE
from checkpointflow.errors import InternalFailure, RuntimeFailure, ValidationFailure
from checkpointflow.flow import (
    MAIN,
    after,
    enter,
    frame_failed,
    frame_is_open,
    placed,
    put,
    resolve,
    retry_or_fail,
    settle_status,
    spot_of,
    start,
    step_failed,
    wait_token,
    without_wait,
)
from checkpointflow.model import (
    ApiStep,
    AwaitEventStep,
    CliStep,
    ParallelStep,
    Workflow,
    reachable,
)
from checkpointflow.state import (
    CANCELLED,
    COMPLETED,
    FAILED,
    FINISHED,
    RUNNING,
    WAITING,
    AnswerStale,
    Attempt,
    Effect,
    Event,
    EventReceived,
    HistoryMerged,
    ResponseReceived,
    RunCancelled,
    RunInterrupted,
    RunRecovered,
    RunRetried,
    RunStarted,
    RunState,
    StepFinished,
    WaitExpired,
    flight,
    flight_parts,
)
from checkpointflow.timestamps import to_millis

__all__ = [
    "advance",
    "answered_wait",
    "frame_is_open",
    "overdue_waits",
    "replay",
    "wait_deadline",
    "wait_token",
]

Outcome = tuple[RunState, tuple[Effect, ...]]

# Failures another attempt would only repeat: an address the step may not reach.
NOT_RETRIED = frozenset({FORBIDDEN_CODE})


def advance(workflow: Workflow, state: RunState | None, event: Event) -> Outcome:
    """The run's next state and the work to do next, after `event`."""
    try:
        return _advance(workflow, state, event)
    except RecursionError:
        raise ValidationFailure(
            "ERR_VALIDATION_WORKFLOW",
            f"Workflow '{workflow.id}' nests foreach, parallel and workflow steps too deeply "
            "to run; nothing was changed. Flatten the nesting.",
        ) from None


def _advance(workflow: Workflow, state: RunState | None, event: Event) -> Outcome:
    if isinstance(event, RunStarted):
        if state is not None:
            raise InternalFailure("ERR_INTERNAL", "run_started for a run that already started")
        return _start(workflow, event)
    if state is None:
        raise InternalFailure("ERR_INTERNAL", "the first event of a run must be run_started")
    if state.left:
        state = attrs.evolve(state, left=())
    if isinstance(event, StepFinished | ResponseReceived):
        state, effects = _attempt_finished(workflow, state, event)
    elif isinstance(event, EventReceived):
        state, effects = _event_received(workflow, state, event)
    elif isinstance(event, WaitExpired):
        state, effects = _wait_expired(workflow, state, event)
    elif isinstance(event, RunRecovered):
        state, effects = _recovered(workflow, state, event)
    elif isinstance(event, RunRetried):
        state, effects = _retried(workflow, state, event)
    elif isinstance(event, RunInterrupted):
        state, effects = _interrupted(workflow, state, event)
    elif isinstance(event, AnswerStale | HistoryMerged):
        state, effects = _tick(state, event.at), ()  # a record for people; nothing changes
    else:
        state, effects = _cancelled(state, event)
    return settle_status(state), effects


def replay(workflow: Workflow, events: Iterable[Event], state: RunState | None = None) -> RunState:
    """Fold events through `advance`: the state they describe."""
    for event in events:
        state, _ = advance(workflow, state, event)
    if state is None:
        raise InternalFailure("ERR_INTERNAL", "a run's event log has no run_started event")
    return state


def wait_deadline(state: RunState) -> str | None:
    """When the first pending wait times out, if any has a timeout."""
    deadlines = [w["deadline"] for w in state.waits if w.get("deadline")]
    return min(deadlines, key=to_millis) if deadlines and state.status not in FINISHED else None


def overdue_waits(state: RunState, at: str) -> list[str]:
    """Keys of the waits whose deadline has passed at `at`, earliest first."""
    if state.status in FINISHED:
        return []
    due = [
        w for w in state.waits if w.get("deadline") and to_millis(w["deadline"]) <= to_millis(at)
    ]
    return [w["wait_id"] for w in sorted(due, key=lambda w: to_millis(w["deadline"]))]


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
        workflow_name=event.workflow_name,
        workflow_description=event.workflow_description,
    )
    state, effects = start(workflow, state, event.at)
    return settle_status(state), effects


def _tick(state: RunState, at: str) -> RunState:
    return attrs.evolve(state, seq=state.seq + 1, updated_at=at)


def _attempt_finished(
    workflow: Workflow, state: RunState, event: StepFinished | ResponseReceived
) -> Outcome:
    """Judge a command's or request's outcome: go on, retry, or settle the failure."""
    record = state.steps.get(event.step_id)
    entry = flight(event.step_id, event.attempt)
    frame = state.in_flight.get(entry)
    if frame is None or record is None:
        raise InternalFailure(
            "ERR_INTERNAL", f"an outcome for {event.step_id} #{event.attempt} was not expected"
        )
    state = attrs.evolve(
        state,
        seq=state.seq + 1,
        updated_at=event.at,
        in_flight={k: v for k, v in state.in_flight.items() if k != entry},
    )
    current = record.executions == event.attempt
    live = current and frame_is_open(state, frame) and record.status == RUNNING
    step = workflow.step_at(event.step_id) if not live else None
    spot = spot_of(workflow, state, frame, event.step_id) if live else None
    step = spot.step if spot is not None else step
    if isinstance(step, CliStep) and isinstance(event, StepFinished):
        error = verdicts.command_error(placed(step, event.step_id), event)
        outputs = event.output
        attempt = _attempt(event, event.exit_code, event.timed_out, event.stdout, event.stderr)
    elif isinstance(step, ApiStep) and isinstance(event, ResponseReceived):
        error = verdicts.response_error(placed(step, event.step_id), event)
        outputs = verdicts.response_outputs(event)
        attempt = _attempt(event, None, event.failure_code == "ERR_TIMEOUT", event.body_file, "")
        attempt = attrs.evolve(attempt, http_status=event.status)
        record = attrs.evolve(record, response=verdicts.response_summary(event))
    else:
        kind = step.kind if step is not None else "removed"
        raise InternalFailure("ERR_INTERNAL", f"{type(event).__name__} for a {kind} step")
    attempts = (*record.attempts, attrs.evolve(attempt, error=error) if error else attempt)
    if spot is None:  # its frame closed (or the step began anew) while it ran: only record
        if not current:
            return state, ()
        return put(state, event.step_id, attrs.evolve(record, attempts=attempts)), ()
    if error is None:
        record = attrs.evolve(
            record, attempts=attempts, status=COMPLETED, outputs=outputs, finished_at=event.at
        )
        return after(workflow, put(state, spot.key, record), spot, None, event.at)
    record = attrs.evolve(record, attempts=attempts)
    if error["code"] in NOT_RETRIED:
        return step_failed(workflow, state, spot, record, error, event.at)
    return retry_or_fail(workflow, state, spot, record, error, event.at)


def _attempt(
    event: StepFinished | ResponseReceived,
    exit_code: int | None,
    timed_out: bool,
    stdout: str | None,
    stderr: str | None,
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
    wait = _chosen_wait(state, event)
    allowed = wait.get("audience_actors")
    if allowed and event.actor not in allowed:
        raise ValidationFailure(
            "ERR_NOT_ALLOWED",
            f"Step '{wait['step_id']}' accepts answers only from {', '.join(allowed)}, not "
            f"from {event.actor!r}. Resume with --actor set to one of them (or CPF_ACTOR).",
            step_id=wait["step_id"],
        )
    spot = spot_of(workflow, state, wait["frame"], wait["wait_id"])
    step = spot.step
    assert isinstance(step, AwaitEventStep)
    payload, problem = json_schema.checked(step.input_schema, event.input, "event")
    if problem is not None:
        raise ValidationFailure(
            "ERR_VALIDATION_EVENT_INPUT",
            f"The event input does not match the input_schema of step '{spot.key}': "
            f"{problem}. The run is still waiting; resume again with corrected input.",
            step_id=spot.key,
            details={"input_schema": step.input_schema},
        )
    state = without_wait(_tick(state, event.at), spot.key)
    record = attrs.evolve(
        state.steps[spot.key], status=COMPLETED, outputs=payload, finished_at=event.at
    )
    state = attrs.evolve(put(state, spot.key, record), status=RUNNING)
    return after(workflow, state, spot, payload, event.at)


def answered_wait(state: RunState, event: EventReceived) -> dict[str, Any]:
    """The pending wait `event` would answer, or the refusal `advance` would raise."""
    return _chosen_wait(state, event)


def _chosen_wait(state: RunState, event: EventReceived) -> dict[str, Any]:
    """The pending wait an event answers: by token, by wait id, else by event name."""
    waits = list(state.waits if state.status not in FINISHED else ())
    if event.token is not None:
        waits = [wait for wait in waits if wait.get("token") == event.token]
        if not waits:
            raise ValidationFailure(
                "ERR_STALE_WAIT",
                f"Token {event.token[:64]!r} is not the token of a wait run {state.run_id} "
                "has pending (that wait was already answered, or the token belongs to "
                "another run). Nothing was changed; `cpf status` shows the current waits "
                "and their tokens.",
                step_id=state.current_step_id,
            )
    pending = _pending_waits(state)
    waits = [wait for wait in waits if wait in pending]
    if event.wait_id is not None:
        waits = [wait for wait in waits if wait["wait_id"] == event.wait_id]
        if not waits:
            raise RuntimeFailure(
                "ERR_RESUME_EVENT_MISMATCH",
                f"Run {state.run_id} has no pending wait '{event.wait_id[:200]}'; its waits: "
                f"{_describe(_pending_waits(state))}.",
                step_id=state.current_step_id,
            )
    matching = [wait for wait in waits if wait["event_name"] == event.event_name]
    if not matching:
        first = waits[0]
        raise RuntimeFailure(
            "ERR_RESUME_EVENT_MISMATCH",
            f"Run {state.run_id} waits for event '{first['event_name']}' at step "
            f"'{first['step_id']}', not '{event.event_name}'. Resume with "
            f"--event {first['event_name']}"
            + (f" (all waits: {_describe(waits)})." if len(waits) > 1 else "."),
            step_id=first["step_id"],
        )
    if len(matching) > 1:
        raise RuntimeFailure(
            "ERR_WAIT_AMBIGUOUS",
            f"{len(matching)} waits of run {state.run_id} take event '{event.event_name}': "
            f"{', '.join(w['wait_id'] for w in matching)}. Resume with --wait-id naming one "
            "of them.",
            step_id=matching[0]["step_id"],
        )
    chosen: dict[str, Any] = matching[0]
    return chosen


def _describe(waits: Iterable[dict[str, Any]]) -> str:
    return ", ".join(f"{w['wait_id']} ({w['event_name']})" for w in waits)


def _pending_waits(state: RunState) -> tuple[dict[str, Any], ...]:
    if state.status in FINISHED or not state.waits:
        raise RuntimeFailure(
            "ERR_RUN_NOT_WAITING",
            f"Run {state.run_id} is {state.status}, not waiting for an event; nothing to resume.",
            step_id=state.current_step_id,
        )
    return state.waits


def _wait_expired(workflow: Workflow, state: RunState, event: WaitExpired) -> Outcome:
    """Nobody answered in time: follow on_timeout, else on_error, else fail the frame."""
    waits = [w for w in _pending_waits(state) if w["wait_id"] == event.step_id]
    deadline = waits[0].get("deadline") if waits else None
    if deadline is None or to_millis(event.at) < to_millis(deadline):
        raise InternalFailure("ERR_INTERNAL", f"wait_expired for {event.step_id} is not due")
    spot = spot_of(workflow, state, waits[0]["frame"], event.step_id)
    step = spot.step
    assert isinstance(step, AwaitEventStep)
    state = attrs.evolve(without_wait(_tick(state, event.at), spot.key), status=RUNNING)
    error = verdicts.error(
        "ERR_TIMEOUT",
        f"Step '{spot.key}' waited {step.timeout_seconds or 0:g}s for event "
        f"'{step.event_name}' and nobody answered (deadline {deadline}).",
        spot.key,
    )
    record = attrs.evolve(state.steps[spot.key], status=FAILED, error=error, finished_at=event.at)
    if step.on_timeout is not None:
        state = put(state, spot.key, record)
        scope = workflow.scopes[state.frames[spot.frame].scope if spot.frame else ""]
        return enter(workflow, state, spot.frame, scope.positions[step.on_timeout], event.at)
    return step_failed(workflow, state, spot, record, error, event.at)


def _recovered(workflow: Workflow, state: RunState, event: RunRecovered) -> Outcome:
    """Settle an attempt a dead process left in flight: retry it if allowed, else fail."""
    if not state.in_flight:
        raise RuntimeFailure(
            "ERR_RUN_NOT_INTERRUPTED",
            f"Run {state.run_id} is {state.status}; recover only settles a run whose "
            "process stopped while a step was running.",
            step_id=state.current_step_id,
        )
    record = state.steps.get(event.step_id)
    entry = flight(event.step_id, event.attempt)
    frame = state.in_flight.get(entry)
    if frame is None or record is None:
        raise InternalFailure("ERR_INTERNAL", "run_recovered does not name a step in flight")
    state = _tick(state, event.at)
    state = attrs.evolve(state, in_flight={k: v for k, v in state.in_flight.items() if k != entry})
    if record.executions != event.attempt:
        return state, ()  # an attempt of an earlier visit: nothing to settle
    error = verdicts.error(
        "ERR_INTERRUPTED",
        f"Step '{event.step_id}' was interrupted: the cpf process running attempt "
        f"{event.attempt} stopped before the step finished, so its outcome is unknown.",
        event.step_id,
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
    if not frame_is_open(state, frame) or record.status != RUNNING:
        return put(state, event.step_id, record), ()
    spot = spot_of(workflow, state, frame, event.step_id)
    return retry_or_fail(workflow, state, spot, record, error, event.at)


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
    if target in workflow.scopes[""].owned:
        owner = next(
            step.id
            for step in workflow.steps
            if isinstance(step, ParallelStep)
            and any(
                b.start_at and not b.steps and target in reachable(workflow.steps, b.start_at)
                for b in step.branches
            )
        )
        raise ValidationFailure(
            "ERR_STEP_NOT_FOUND",
            f"Step '{target}' runs only as part of a branch of parallel step '{owner}'; "
            f"retry from '{owner}' instead.",
            step_id=target,
        )
    state = attrs.evolve(
        _tick(state, event.at),
        status=RUNNING,
        error=None,
        result=None,
        frames={},
        waits=(),
        in_flight={},
    )
    if event.workflow_sha256 is not None:
        state = attrs.evolve(state, workflow_sha256=event.workflow_sha256)
    if event.workflow_path is not None:
        state = attrs.evolve(
            state,
            workflow_path=event.workflow_path,
            workflow_version=event.workflow_version,
            workflow_name=event.workflow_name,
            workflow_description=event.workflow_description,
        )
    return enter(workflow, state, MAIN, workflow.positions[target], event.at)


def _interrupted(workflow: Workflow, state: RunState, event: RunInterrupted) -> Outcome:
    """A signal stopped the steps in flight: each gets an interrupted attempt, and the run
    fails (unless it had already finished) so that `cpf retry` runs them again. Unlike
    `recover`, nothing is retried and no `on_error` runs: a person chose to stop."""
    if not state.in_flight:
        raise InternalFailure("ERR_INTERNAL", "run_interrupted for a run with nothing in flight")
    keys = ", ".join(attempt["step_id"] for attempt in event.attempts)
    error = verdicts.error(
        "ERR_INTERRUPTED",
        f"{event.signal} stopped cpf while step {keys} ran; the step was stopped and its "
        f"outcome is unknown. Run `cpf retry --run-id {state.run_id}` to run it again.",
        event.attempts[0]["step_id"] if event.attempts else state.current_step_id or "",
        {"signal": event.signal},
    )
    state = attrs.evolve(_tick(state, event.at), in_flight={})
    for stopped in event.attempts:
        state = _stopped_attempt(state, stopped, error, event.at)
    if state.status in FINISHED:
        return state, ()
    return resolve(workflow, frame_failed(workflow, state, MAIN, error, event.at), event.at)


def _stopped_attempt(state: RunState, stopped: dict[str, Any], error: Any, at: str) -> RunState:
    record = state.steps[stopped["step_id"]]
    if record.executions != stopped["attempt"]:
        return state  # an attempt of an earlier visit: nothing to settle
    attempt = Attempt(
        attempt=stopped["attempt"],
        exit_code=None,
        timed_out=False,
        duration_ms=0,
        stdout=stopped["stdout"],
        stderr=stopped["stderr"],
        error=error,
        finished_at=at,
    )
    record = attrs.evolve(record, attempts=(*record.attempts, attempt))
    if record.status == RUNNING:
        record = attrs.evolve(record, status=FAILED, error=error, finished_at=at)
    return put(state, stopped["step_id"], record)


def _cancelled(state: RunState, event: RunCancelled) -> Outcome:
    if state.status not in (WAITING, RUNNING):
        raise RuntimeFailure(
            "ERR_RUN_NOT_WAITING",
            f"Run {state.run_id} is {state.status}; only a waiting or running run can be "
            "cancelled.",
            step_id=state.current_step_id,
        )
    state = _tick(state, event.at)
    running = [flight_parts(entry)[0] for entry in state.in_flight]
    active = [state.current_step_id, *running, *(w["wait_id"] for w in state.waits)]
    active += [frame.current for frame in state.frames.values()]
    steps = state.steps
    for key in active:
        record = steps.get(key) if key else None
        if key and record is not None and record.status in (WAITING, RUNNING):
            steps = steps.set(key, attrs.evolve(record, status=CANCELLED, finished_at=event.at))
    return attrs.evolve(
        state,
        steps=steps,
        status=CANCELLED,
        wait=None,
        waits=(),
        in_flight={},
        frames={},
        cancel_reason=event.reason,
    ), ()
