"""Moving a run through its steps: entering, launching, waiting, ending, failing.

The interpreter's event handlers decide what an event means; these functions decide what
happens next. All pure, like the interpreter.
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

from checkpointflow import launch as effects_of
from checkpointflow import verdicts
from checkpointflow.errors import StepFailure
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
    COMPLETED,
    FAILED,
    RUNNING,
    WAITING,
    Effect,
    RunState,
    StepRecord,
)
from checkpointflow.timestamps import from_millis, to_millis

Outcome = tuple[RunState, tuple[Effect, ...]]


def wait_token(state: RunState, step_id: str) -> str:
    """A token that names one wait: this step at this point of this run, never reused."""
    seed = f"{state.secret}:{state.run_id}:{step_id}:{state.seq}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


def retry_or_fail(
    workflow: Workflow,
    state: RunState,
    step: Step,
    record: StepRecord,
    error: dict[str, Any],
    at: str,
) -> Outcome:
    if len(record.attempts) < step.retry.max_attempts:
        return launch(workflow, state, step, record, at)
    return step_failed(workflow, state, step, record, error, at)


# --- moving through the steps --------------------------------------------------------------


def after(workflow: Workflow, state: RunState, step: Step, event_input: Any, at: str) -> Outcome:
    """Follow the first matching transition, or go on to the next step in the list.

    When a step has transitions and none matches, an event is refused (the run keeps
    waiting for one that matches) and any other step fails.
    """
    if not step.transitions:
        return enter(workflow, state, workflow.positions[step.id] + 1, at)
    context = expression_context(state, event_input)
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
            return enter(workflow, state, workflow.positions[transition.next], at)
    message = f"No transition of step '{step.id}' matched"
    if isinstance(step, AwaitEventStep):
        raise StepFailure(
            "ERR_STEP_FAILED",
            f"{message} the event data; the run is still waiting. Resume with data that "
            "satisfies one of the step's `when` conditions.",
            step_id=step.id,
        )
    failure = verdicts.error("ERR_STEP_FAILED", f"{message} its outputs.", step.id)
    return step_failed(workflow, state, step, state.steps[step.id], failure, at)


def enter(workflow: Workflow, state: RunState, index: int, at: str) -> Outcome:
    """Start the step at `index`, skipping those whose `if` is false."""
    while index < len(workflow.steps):
        step = workflow.steps[index]
        if step.condition is None:
            break
        try:
            run_it = _true(step.condition, expression_context(state, None))
        except ExpressionError as error:
            return _expression_failure(workflow, state, step, "if", error, at)
        if run_it:
            break
        record = _visit(state, step.id, at, status="skipped")
        state = put(state, step.id, attrs.evolve(record, finished_at=at))
        index += 1
    else:
        return _complete(workflow, state, None), ()
    state = attrs.evolve(state, current_step_id=step.id)
    if isinstance(step, CliStep | ApiStep):
        return launch(workflow, state, step, _visit(state, step.id, at, status=RUNNING), at)
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
    return step_failed(workflow, state, step, record, failure, at)


def _visit(state: RunState, step_id: str, at: str, status: str) -> StepRecord:
    """A fresh visit of a step: history of earlier visits is kept only in the log."""
    previous = state.steps.get(step_id) or StepRecord(status=status)
    return StepRecord(
        status=status,
        visits=previous.visits + 1,
        executions=previous.executions,
        started_at=at,
    )


def launch(workflow: Workflow, state: RunState, step: Step, record: StepRecord, at: str) -> Outcome:
    """Ask the driver to run the step's next attempt."""
    context = expression_context(state, None)
    execution = record.executions + 1
    retry = len(record.attempts) + 1
    try:
        if isinstance(step, CliStep):
            effect: Effect = effects_of.command_effect(workflow, step, context, execution, retry)
        else:
            assert isinstance(step, ApiStep)
            effect = effects_of.request_effect(step, context, execution, retry)
    except ExpressionError as error:
        field = "command" if isinstance(step, CliStep) else "request"
        return _expression_failure(workflow, put(state, step.id, record), step, field, error, at)
    record = attrs.evolve(record, status=RUNNING, executions=execution)
    return put(state, step.id, record), (effect,)


def _wait(workflow: Workflow, state: RunState, step: AwaitEventStep, at: str) -> Outcome:
    context = expression_context(state, None)
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
    state = put(state, step.id, _visit(state, step.id, at, status=WAITING))
    return attrs.evolve(state, status=WAITING, wait=wait), ()


def _end(workflow: Workflow, state: RunState, step: EndStep, at: str) -> Outcome:
    record = attrs.evolve(_visit(state, step.id, at, status=COMPLETED), finished_at=at)
    try:
        result = render_value(step.result, expression_context(state, None))
    except ExpressionError as error:
        return _expression_failure(workflow, state, step, "result", error, at)
    return _complete(workflow, put(state, step.id, record), result), ()


def _complete(workflow: Workflow, state: RunState, result: Any) -> RunState:
    """Finish the run; without a result from an end step, the workflow's `outputs` give one."""
    if result is None and workflow.outputs is not None:
        context = expression_context(state, None)
        result = {name: evaluate(node, context) for name, node in workflow.outputs}
    return attrs.evolve(state, status=COMPLETED, result=result, wait=None)


def _switch(workflow: Workflow, state: RunState, step: SwitchStep, at: str) -> Outcome:
    """Go to the first case whose `when` holds, else to `default`."""
    context = expression_context(state, None)
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
    return step_failed(workflow, state, step, record, failure, at)


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
    return enter(workflow, put(state, step.id, record), workflow.positions[target], at)


# --- failures ------------------------------------------------------------------------------


def step_failed(
    workflow: Workflow,
    state: RunState,
    step: Step,
    record: StepRecord,
    error: dict[str, Any],
    at: str,
) -> Outcome:
    """A step failed for good: its `on_error` handler takes over, or the run fails."""
    record = attrs.evolve(record, status=FAILED, error=error, finished_at=at)
    state = put(state, step.id, record)
    if step.on_error is not None:
        return enter(workflow, state, workflow.positions[step.on_error], at)
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
    return step_failed(workflow, state, step, record, failure, at)


# --- small pieces --------------------------------------------------------------------------


def put(state: RunState, step_id: str, record: StepRecord) -> RunState:
    return attrs.evolve(state, steps={**state.steps, step_id: record})


def expression_context(state: RunState, event_input: Any) -> dict[str, Any]:
    steps = {
        step_id: {"outputs": record.outputs, "status": record.status, "error": record.error}
        for step_id, record in state.steps.items()
    }
    return {"inputs": state.inputs, "steps": steps, "event": event_input}


def _true(condition: Node, context: dict[str, Any]) -> bool:
    return truthy(evaluate(condition, context))


def _render_text(text: str | None, context: dict[str, Any]) -> str | None:
    return None if text is None else to_text(render(parse_template(text), context))
