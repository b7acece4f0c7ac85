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

import hashlib
from collections.abc import Iterable
from typing import Any

import attrs

from checkpointflow import json_schema, launch, verdicts
from checkpointflow.errors import InternalFailure, RuntimeFailure, StepFailure, ValidationFailure
from checkpointflow.expressions import (
    ExpressionError,
    Node,
    evaluate,
    parse_template,
    render,
    render_value,
    to_text,
    truthy,
)
from checkpointflow.model import (
    ApiStep,
    AwaitEventStep,
    CliStep,
    EndStep,
    Step,
    SwitchStep,
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
    StepRecord,
    WaitExpired,
)
from checkpointflow.timestamps import from_millis, to_millis

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


def wait_token(state: RunState, step_id: str) -> str:
    """A token that names one wait: this step at this point of this run, never reused."""
    seed = f"{state.secret}:{state.run_id}:{step_id}:{state.seq}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


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
    return _enter(workflow, state, 0, event.at)


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
        return _after(workflow, _put(state, step.id, record), step, None, event.at)
    return _retry_or_fail(workflow, state, step, record, error, event.at)


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


def _retry_or_fail(
    workflow: Workflow,
    state: RunState,
    step: Step,
    record: StepRecord,
    error: dict[str, Any],
    at: str,
) -> Outcome:
    if len(record.attempts) < step.retry.max_attempts:
        return _launch(workflow, state, step, record, at)
    return _step_failed(workflow, state, step, record, error, at)


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
    state = attrs.evolve(_put(state, step.id, record), status=RUNNING, wait=None)
    return _after(workflow, state, step, payload, event.at)


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
        state = _put(state, step.id, record)
        return _enter(workflow, state, workflow.positions[step.on_timeout], event.at)
    return _step_failed(workflow, state, step, record, error, event.at)


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
    return _retry_or_fail(workflow, state, step, record, error, event.at)


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
    return _enter(workflow, state, workflow.positions[target], event.at)


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
            state = _put(state, state.current_step_id, record)
    return attrs.evolve(state, status=CANCELLED, wait=None, cancel_reason=event.reason), ()


# --- moving through the steps --------------------------------------------------------------


def _after(workflow: Workflow, state: RunState, step: Step, event_input: Any, at: str) -> Outcome:
    """Follow the first matching transition, or go on to the next step in the list.

    When a step has transitions and none matches, an event is refused (the run keeps
    waiting for one that matches) and any other step fails.
    """
    if not step.transitions:
        return _enter(workflow, state, workflow.positions[step.id] + 1, at)
    context = _context(state, event_input)
    for transition in step.transitions:
        try:
            taken = transition.condition is None or _true(transition.condition, context)
        except ExpressionError as error:
            if isinstance(step, AwaitEventStep):
                raise StepFailure(
                    "ERR_EXPRESSION",
                    f"Step '{step.id}' transitions: {error}. The run is still waiting.",
                    step_id=step.id,
                ) from None
            return _expression_failure(workflow, state, step, "transitions", error, at)
        if taken:
            return _enter(workflow, state, workflow.positions[transition.next], at)
    message = f"No transition of step '{step.id}' matched"
    if isinstance(step, AwaitEventStep):
        raise StepFailure(
            "ERR_STEP_FAILED",
            f"{message} the event data; the run is still waiting. Resume with data that "
            "satisfies one of the step's `when` conditions.",
            step_id=step.id,
        )
    failure = verdicts.error("ERR_STEP_FAILED", f"{message} its outputs.", step.id)
    return _step_failed(workflow, state, step, state.steps[step.id], failure, at)


def _enter(workflow: Workflow, state: RunState, index: int, at: str) -> Outcome:
    """Start the step at `index`, skipping those whose `if` is false."""
    while index < len(workflow.steps):
        step = workflow.steps[index]
        if step.condition is None:
            break
        try:
            run_it = _true(step.condition, _context(state, None))
        except ExpressionError as error:
            return _expression_failure(workflow, state, step, "if", error, at)
        if run_it:
            break
        record = _visit(state, step.id, at, status="skipped")
        state = _put(state, step.id, attrs.evolve(record, finished_at=at))
        index += 1
    else:
        return _complete(workflow, state, None), ()
    state = attrs.evolve(state, current_step_id=step.id)
    if isinstance(step, CliStep | ApiStep):
        return _launch(workflow, state, step, _visit(state, step.id, at, status=RUNNING), at)
    if isinstance(step, AwaitEventStep):
        return _wait(workflow, state, step, at)
    if isinstance(step, EndStep):
        return _end(workflow, state, step, at)
    if isinstance(step, SwitchStep):
        return _switch(workflow, state, step, at)
    failure = verdicts.error(
        "ERR_UNSUPPORTED_STEP",
        f"Step '{step.id}' has kind '{step.kind}', which this version cannot run yet.",
        step.id,
    )
    record = _visit(state, step.id, at, status=FAILED)
    return _step_failed(workflow, state, step, record, failure, at)


def _visit(state: RunState, step_id: str, at: str, status: str) -> StepRecord:
    """A fresh visit of a step: history of earlier visits is kept only in the log."""
    previous = state.steps.get(step_id) or StepRecord(status=status)
    return StepRecord(
        status=status,
        visits=previous.visits + 1,
        executions=previous.executions,
        started_at=at,
    )


def _launch(
    workflow: Workflow, state: RunState, step: Step, record: StepRecord, at: str
) -> Outcome:
    """Ask the driver to run the step's next attempt."""
    context = _context(state, None)
    execution = record.executions + 1
    retry = len(record.attempts) + 1
    try:
        if isinstance(step, CliStep):
            effect: Effect = launch.command_effect(workflow, step, context, execution, retry)
        else:
            assert isinstance(step, ApiStep)
            effect = launch.request_effect(step, context, execution, retry)
    except ExpressionError as error:
        field = "command" if isinstance(step, CliStep) else "request"
        return _expression_failure(workflow, _put(state, step.id, record), step, field, error, at)
    record = attrs.evolve(record, status=RUNNING, executions=execution)
    return _put(state, step.id, record), (effect,)


def _wait(workflow: Workflow, state: RunState, step: AwaitEventStep, at: str) -> Outcome:
    context = _context(state, None)
    try:
        prompt = _render_text(step.prompt, context)
        summary = _render_text(step.summary, context)
    except ExpressionError as error:
        return _expression_failure(workflow, state, step, "prompt", error, at)
    deadline = None
    if step.timeout_seconds:
        deadline = from_millis(to_millis(at) + round(step.timeout_seconds * 1000))
    wait = {
        "step_id": step.id,
        "event_name": step.event_name,
        "audience": step.audience,
        "prompt": prompt,
        "summary": summary,
        "input_schema": step.input_schema,
        "instructions": None if step.instructions is None else list(step.instructions),
        "risk_level": step.risk_level,
        "since": at,
        "deadline": deadline,
        "token": wait_token(state, step.id),
        "audience_actors": None if step.audience_actors is None else list(step.audience_actors),
    }
    state = _put(state, step.id, _visit(state, step.id, at, status=WAITING))
    return attrs.evolve(state, status=WAITING, wait=wait), ()


def _end(workflow: Workflow, state: RunState, step: EndStep, at: str) -> Outcome:
    record = attrs.evolve(_visit(state, step.id, at, status=COMPLETED), finished_at=at)
    try:
        result = render_value(step.result, _context(state, None))
    except ExpressionError as error:
        return _expression_failure(workflow, state, step, "result", error, at)
    return _complete(workflow, _put(state, step.id, record), result), ()


def _complete(workflow: Workflow, state: RunState, result: Any) -> RunState:
    """Finish the run; without a result from an end step, the workflow's `outputs` give one."""
    if result is None and workflow.outputs is not None:
        context = _context(state, None)
        result = {name: evaluate(node, context) for name, node in workflow.outputs}
    return attrs.evolve(state, status=COMPLETED, result=result, wait=None)


def _switch(workflow: Workflow, state: RunState, step: SwitchStep, at: str) -> Outcome:
    """Go to the first case whose `when` holds, else to `default`."""
    context = _context(state, None)
    record = _visit(state, step.id, at, status=RUNNING)
    for index, case in enumerate(step.cases):
        try:
            taken = case.condition is None or _true(case.condition, context)
        except ExpressionError as error:
            return _expression_failure(workflow, state, step, f"cases[{index}]", error, at)
        if taken:
            return _switch_to(workflow, state, step, record, index, case.next, at)
    if step.default is not None:
        return _switch_to(workflow, state, step, record, "default", step.default, at)
    failure = verdicts.error(
        "ERR_STEP_FAILED",
        f"Step '{step.id}': no case matched and there is no default.",
        step.id,
    )
    return _step_failed(workflow, state, step, record, failure, at)


def _switch_to(
    workflow: Workflow,
    state: RunState,
    step: SwitchStep,
    record: StepRecord,
    case: int | str,
    target: str,
    at: str,
) -> Outcome:
    outputs = {"case": case, "next": target}
    record = attrs.evolve(record, status=COMPLETED, outputs=outputs, finished_at=at)
    return _enter(workflow, _put(state, step.id, record), workflow.positions[target], at)


# --- failures ------------------------------------------------------------------------------


def _step_failed(
    workflow: Workflow,
    state: RunState,
    step: Step,
    record: StepRecord,
    error: dict[str, Any],
    at: str,
) -> Outcome:
    """A step failed for good: its `on_error` handler takes over, or the run fails."""
    record = attrs.evolve(record, status=FAILED, error=error, finished_at=at)
    state = _put(state, step.id, record)
    if step.on_error is not None:
        return _enter(workflow, state, workflow.positions[step.on_error], at)
    return attrs.evolve(state, status=FAILED, error=error, wait=None), ()


def _expression_failure(
    workflow: Workflow,
    state: RunState,
    step: Step,
    field: str,
    error: ExpressionError,
    at: str,
) -> Outcome:
    failure = verdicts.error("ERR_EXPRESSION", f"Step '{step.id}' {field}: {error}", step.id)
    record = state.steps.get(step.id) or _visit(state, step.id, at, status=FAILED)
    return _step_failed(workflow, state, step, record, failure, at)


# --- small pieces --------------------------------------------------------------------------


def _put(state: RunState, step_id: str, record: StepRecord) -> RunState:
    return attrs.evolve(state, steps={**state.steps, step_id: record})


def _context(state: RunState, event_input: Any) -> dict[str, Any]:
    steps = {
        step_id: {"outputs": record.outputs, "status": record.status, "error": record.error}
        for step_id, record in state.steps.items()
    }
    return {"inputs": state.inputs, "steps": steps, "event": event_input}


def _true(condition: Node, context: dict[str, Any]) -> bool:
    return truthy(evaluate(condition, context))


def _render_text(text: str | None, context: dict[str, Any]) -> str | None:
    return None if text is None else to_text(render(parse_template(text), context))
