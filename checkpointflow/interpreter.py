"""The interpreter: every decision about a run, as one pure function.

    advance(workflow, state, event) -> (state, effects)

No clock, no randomness, no files, no environment, no processes: time arrives inside
events, and work for the outside world leaves as effects. Folding a run's event log through
`advance` therefore rebuilds its state exactly (`replay`). An event that does not fit the
run's current situation is refused with a typed error and changes nothing.

Which events a run accepts in which status:

    status    run_started  step_finished  event_received  run_cancelled  run_recovered
    (none)    start        -              -               -              -
    running   -            advance        not waiting     cancel         retry or fail
    waiting   -            -              continue        cancel         not interrupted
    finished  -            -              not waiting     not waiting    not interrupted
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any

import attrs

from checkpointflow import json_schema
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
from checkpointflow.model import DEFAULT_SHELL, AwaitEventStep, CliStep, EndStep, Step, Workflow
from checkpointflow.shell import argv_script, secret_names, shell_script, text_with_secrets
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
    RunCancelled,
    RunCommand,
    RunRecovered,
    RunStarted,
    RunState,
    StepFinished,
    StepRecord,
)

Outcome = tuple[RunState, tuple[Effect, ...]]


def advance(workflow: Workflow, state: RunState | None, event: Event) -> Outcome:
    """The run's next state and the work to do next, after `event`."""
    if isinstance(event, RunStarted):
        if state is not None:
            raise InternalFailure("ERR_INTERNAL", "run_started for a run that already started")
        return _start(workflow, event)
    if state is None:
        raise InternalFailure("ERR_INTERNAL", "the first event of a run must be run_started")
    if isinstance(event, StepFinished):
        return _step_finished(workflow, _tick(state, event.at), event)
    if isinstance(event, EventReceived):
        return _event_received(workflow, state, event)
    if isinstance(event, RunRecovered):
        return _recovered(workflow, state, event)
    return _cancelled(workflow, state, event)


def replay(workflow: Workflow, events: Iterable[Event], state: RunState | None = None) -> RunState:
    """Fold events through `advance`: the state they describe."""
    for event in events:
        state, _ = advance(workflow, state, event)
    if state is None:
        raise InternalFailure("ERR_INTERNAL", "a run's event log has no run_started event")
    return state


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
    )
    return _enter(workflow, state, 0, event.at)


def _tick(state: RunState, at: str) -> RunState:
    return attrs.evolve(state, seq=state.seq + 1, updated_at=at)


def _step_finished(workflow: Workflow, state: RunState, event: StepFinished) -> Outcome:
    record = state.steps.get(event.step_id)
    if (
        state.status != RUNNING
        or state.current_step_id != event.step_id
        or record is None
        or record.executions != event.attempt
    ):
        raise InternalFailure(
            "ERR_INTERNAL", f"step_finished for {event.step_id} #{event.attempt} was not expected"
        )
    step = workflow.step(event.step_id)
    assert isinstance(step, CliStep)
    error = _attempt_error(step, event)
    outputs = event.output if step.outputs_schema is not None else _plain_outputs(event)
    attempt = Attempt(
        attempt=event.attempt,
        exit_code=event.exit_code,
        timed_out=event.timed_out,
        duration_ms=event.duration_ms,
        stdout=event.stdout,
        stderr=event.stderr,
        error=error,
        finished_at=event.at,
    )
    record = attrs.evolve(record, attempts=(*record.attempts, attempt))
    if error is None:
        record = attrs.evolve(record, status=COMPLETED, outputs=outputs, finished_at=event.at)
        return _after(workflow, _put(state, step.id, record), step, None, event.at)
    if len(record.attempts) < step.retry.max_attempts:
        return _launch(workflow, state, step, record)
    record = attrs.evolve(record, status=FAILED, error=error, finished_at=event.at)
    return _fail(_put(state, step.id, record), error), ()


def _plain_outputs(event: StepFinished) -> Any:
    return event.output


def _event_received(workflow: Workflow, state: RunState, event: EventReceived) -> Outcome:
    if state.status != WAITING or state.wait is None:
        raise RuntimeFailure(
            "ERR_RUN_NOT_WAITING",
            f"Run {state.run_id} is {state.status}, not waiting for an event; nothing to resume.",
            step_id=state.current_step_id,
        )
    wait = state.wait
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
    assert isinstance(step, CliStep)
    state = _tick(state, event.at)
    error = _error(
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
    if len(record.attempts) < step.retry.max_attempts:
        return _launch(workflow, state, step, record)
    record = attrs.evolve(record, status=FAILED, error=error, finished_at=event.at)
    return _fail(_put(state, step.id, record), error), ()


def _cancelled(workflow: Workflow, state: RunState, event: RunCancelled) -> Outcome:
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
    waiting for one that matches) and a command step fails the run.
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
            return _expression_failure(state, step, "transitions", error), ()
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
    failure = _error("ERR_STEP_FAILED", f"{message} its outputs.", step.id)
    record = attrs.evolve(state.steps[step.id], error=failure)
    return _fail(_put(state, step.id, record), failure), ()


def _enter(workflow: Workflow, state: RunState, index: int, at: str) -> Outcome:
    """Start the step at `index`, skipping those whose `if` is false."""
    while index < len(workflow.steps):
        step = workflow.steps[index]
        if step.condition is None:
            break
        try:
            run_it = _true(step.condition, _context(state, None))
        except ExpressionError as error:
            return _expression_failure(state, step, "if", error), ()
        if run_it:
            break
        record = _visit(state, step.id, at, status="skipped")
        state = _put(state, step.id, attrs.evolve(record, finished_at=at))
        index += 1
    else:
        return attrs.evolve(state, status=COMPLETED, wait=None), ()
    state = attrs.evolve(state, current_step_id=step.id)
    if isinstance(step, CliStep):
        return _launch(workflow, state, step, _visit(state, step.id, at, status=RUNNING))
    if isinstance(step, AwaitEventStep):
        return _wait(state, step, at), ()
    if isinstance(step, EndStep):
        return _end(state, step, at), ()
    failure = _error(
        "ERR_UNSUPPORTED_STEP",
        f"Step '{step.id}' has kind '{step.kind}', which this version cannot run yet.",
        step.id,
    )
    record = attrs.evolve(_visit(state, step.id, at, status=FAILED), error=failure)
    return _fail(_put(state, step.id, record), failure), ()


def _visit(state: RunState, step_id: str, at: str, status: str) -> StepRecord:
    """A fresh visit of a step: history of earlier visits is kept only in the log."""
    previous = state.steps.get(step_id) or StepRecord(status=status)
    return StepRecord(
        status=status,
        visits=previous.visits + 1,
        executions=previous.executions,
        started_at=at,
    )


def _launch(workflow: Workflow, state: RunState, step: CliStep, record: StepRecord) -> Outcome:
    """Ask the driver to run the step's next attempt."""
    context = _context(state, None)
    commands = (step.command,) if isinstance(step.command, str) else step.command
    templates = tuple(map(parse_template, commands))
    secrets = [name for template in templates for name in secret_names(template)]
    try:
        if isinstance(step.command, str):
            script, values = shell_script(templates[0], context)
        else:
            script, values = argv_script(templates, context)
        cwd = None
        if step.cwd:
            cwd, names = text_with_secrets(parse_template(step.cwd), context)
            secrets += names
        env = []
        for name, value in step.env:
            text, names = text_with_secrets(parse_template(value), context)
            env.append((name, text))
            secrets += names
    except ExpressionError as error:
        return _expression_failure(state, step, "command", error), ()
    record = attrs.evolve(record, status=RUNNING, executions=record.executions + 1)
    effect = RunCommand(
        step_id=step.id,
        attempt=record.executions,
        script=script,
        shell=tuple(shlex.split(step.shell or workflow.default_shell or DEFAULT_SHELL)),
        values=values,
        env=tuple(env),
        cwd=cwd,
        secrets=tuple(dict.fromkeys(secrets)),
        timeout_seconds=step.timeout_seconds,
        delay_seconds=step.retry.delay_before(len(record.attempts) + 1),
        parse_stdout=step.outputs_schema is not None,
    )
    return _put(state, step.id, record), (effect,)


def _wait(state: RunState, step: AwaitEventStep, at: str) -> RunState:
    context = _context(state, None)
    try:
        prompt = _render_text(step.prompt, context)
        summary = _render_text(step.summary, context)
    except ExpressionError as error:
        return _expression_failure(state, step, "prompt", error)
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
    }
    state = _put(state, step.id, _visit(state, step.id, at, status=WAITING))
    return attrs.evolve(state, status=WAITING, wait=wait)


def _end(state: RunState, step: EndStep, at: str) -> RunState:
    try:
        result = render_value(step.result, _context(state, None))
    except ExpressionError as error:
        return _expression_failure(state, step, "result", error)
    record = attrs.evolve(_visit(state, step.id, at, status=COMPLETED), finished_at=at)
    return attrs.evolve(_put(state, step.id, record), status=COMPLETED, result=result, wait=None)


# --- small pieces --------------------------------------------------------------------------


def _attempt_error(step: CliStep, event: StepFinished) -> dict[str, Any] | None:
    details = {
        "attempt": event.attempt,
        "exit_code": event.exit_code,
        "stdout": event.stdout,
        "stderr": event.stderr,
        "stderr_tail": event.stderr_tail,
    }
    if event.failure is not None:
        return _error(
            event.failure_code or "ERR_STEP_FAILED",
            f"Step '{step.id}' could not start: {event.failure}",
            step.id,
            details,
        )
    if event.timed_out:
        message = (
            f"Step '{step.id}' timed out after {step.timeout_seconds or 0:g}s; "
            "its process group was stopped"
        )
        return _error("ERR_TIMEOUT", message, step.id, details)
    if event.exit_code not in step.success_exit_codes:
        message = f"Step '{step.id}' exited with code {event.exit_code}"
        return _error("ERR_STEP_FAILED", message, step.id, details)
    if step.outputs_schema is None:
        return None
    if event.output_problem is not None:
        message = f"Step '{step.id}' declares outputs but its stdout {event.output_problem}"
        return _error("ERR_STEP_OUTPUT_INVALID", message, step.id, details)
    problem = json_schema.problem(step.outputs_schema, event.output, "outputs")
    if problem is not None:
        message = f"Step '{step.id}' stdout does not match its outputs schema: {problem}"
        return _error("ERR_STEP_OUTPUT_INVALID", message, step.id, details)
    return None


def _error(code: str, message: str, step_id: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "step_id": step_id, "details": details}


def _expression_failure(
    state: RunState, step: Step, field: str, error: ExpressionError
) -> RunState:
    failure = _error("ERR_EXPRESSION", f"Step '{step.id}' {field}: {error}", step.id)
    record = state.steps.get(step.id) or StepRecord(status=FAILED)
    record = attrs.evolve(record, status=FAILED, error=failure)
    return _fail(_put(state, step.id, record), failure)


def _fail(state: RunState, error: dict[str, Any]) -> RunState:
    return attrs.evolve(state, status=FAILED, error=error, wait=None)


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
