"""Moving a run through its steps: entering, launching, waiting, ending, failing, and the
containers (foreach, parallel, workflow) that run lists of steps inside one step.

Steps run inside frames. The run's own steps are the frame "" (its cursor is
`current_step_id`); every foreach iteration, parallel branch and sub-workflow opens a frame
of its own (`deploy_all[2]`, `checks.lint`, `provision`) whose steps are keyed by the
frame's prefix (`deploy_all[2].confirm`). A frame that reaches its end reports to the step
that opened it. The interpreter's event handlers decide what an event means; these
functions decide what happens next. All pure, like the interpreter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import attrs

from checkpointflow import json_schema, verdicts, workflow_outputs
from checkpointflow import launch as effects_of
from checkpointflow.errors import InternalFailure, StepFailure
from checkpointflow.expressions import (
    ExpressionError,
    Node,
    evaluate,
    parse_template,
    render_shown,
    render_value,
    truthy,
    type_name,
)
from checkpointflow.model import (
    ApiStep,
    AwaitEventStep,
    CliStep,
    EndStep,
    ForeachStep,
    ParallelStep,
    Scope,
    Step,
    SwitchStep,
    Workflow,
    WorkflowStep,
)
from checkpointflow.persistent import Slots
from checkpointflow.state import (
    CANCELLED,
    COMPLETED,
    FAILED,
    FINISHED,
    RUNNING,
    WAITING,
    Effect,
    Frame,
    RunState,
    StepRecord,
    changed,
    flight,
)
from checkpointflow.timestamps import from_millis, to_millis

Outcome = tuple[RunState, tuple[Effect, ...]]
StepKind = TypeVar("StepKind", bound=Step)
MAIN = ""  # the frame of the run's own steps


@attrs.frozen(slots=False)
class Jump:
    """Go on at step `index` of `frame`: returned instead of entering the step at once, so
    that steps finishing at once follow each other in a loop (`resolve`), not in ever
    deeper calls. `effects` are those asked for on the way."""

    state: RunState
    frame: str
    index: int
    effects: tuple[Effect, ...] = ()


Next = tuple[RunState, tuple[Effect, ...]] | Jump


@attrs.frozen(slots=False)
class Spot:
    """A step where it runs: its frame, its key in `state.steps`, and the step itself."""

    frame: str
    key: str
    step: Step


def wait_token(state: RunState, key: str) -> str:
    """A token that names one wait: this step at this point of this run, never reused."""
    seed = f"{state.secret}:{state.run_id}:{key}:{state.seq}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


# --- frames ---------------------------------------------------------------------------------


def scope_of(workflow: Workflow, state: RunState, frame: str) -> Scope:
    return workflow.scopes[state.frames[frame].scope if frame else ""]


def spot_of(workflow: Workflow, state: RunState, frame: str, key: str) -> Spot:
    """The step behind a key of `frame` (an in-flight step's or a wait's)."""
    prefix = state.frames[frame].prefix if frame else ""
    return Spot(frame, key, scope_of(workflow, state, frame).step(key[len(prefix) :]))


def frame_is_open(state: RunState, frame: str) -> bool:
    return state.status not in FINISHED and (frame == MAIN or frame in state.frames)


def _set_frame(state: RunState, path: str, **changes: Any) -> RunState:
    frames = {**state.frames, path: changed(state.frames[path], **changes)}
    return changed(state, frames=frames)


def _set_current(state: RunState, frame: str, key: str) -> RunState:
    if frame == MAIN:
        return changed(state, current_step_id=key)
    return _set_frame(state, frame, current=key)


def settle_status(state: RunState) -> RunState:
    """Running while a step runs, else waiting while a wait is pending."""
    wait = state.waits[0] if state.waits else None
    if state.status in FINISHED:
        return changed(state, wait=None) if state.wait is not None else state
    status = RUNNING if state.in_flight else WAITING if state.waits else None
    if status is not None:
        if state.status == status and state.wait is wait:
            return state
        return changed(state, status=status, wait=wait)
    raise InternalFailure("ERR_INTERNAL", f"run {state.run_id} has nothing running or waiting")


# --- moving through the steps --------------------------------------------------------------


def start(workflow: Workflow, state: RunState, at: str) -> Outcome:
    return enter(workflow, state, MAIN, workflow.scopes[""].first, at)


def resolve(workflow: Workflow, step: Next, at: str) -> Outcome:
    """Follow jumps until the run needs the outside world (effects) or waits or ends."""
    effects: tuple[Effect, ...] = ()
    while isinstance(step, Jump):
        effects += step.effects
        step = _enter(workflow, step.state, step.frame, step.index, at)
    state, more = step
    return state, effects + more


def enter(workflow: Workflow, state: RunState, frame: str, index: int, at: str) -> Outcome:
    """Start the step at `index` of the frame's list, and go on as far as the run can."""
    return resolve(workflow, Jump(state, frame, index), at)


def after(workflow: Workflow, state: RunState, spot: Spot, event_input: Any, at: str) -> Outcome:
    """`_after`, followed as far as the run can go."""
    return resolve(workflow, _after(workflow, state, spot, event_input, at), at)


def retry_or_fail(
    workflow: Workflow, state: RunState, spot: Spot, record: StepRecord, error: Any, at: str
) -> Outcome:
    if len(record.attempts) < spot.step.retry.max_attempts:
        return resolve(workflow, launch(workflow, state, spot, record, at), at)
    return step_failed(workflow, state, spot, record, error, at)


def step_failed(
    workflow: Workflow, state: RunState, spot: Spot, record: StepRecord, error: Any, at: str
) -> Outcome:
    """`_step_failed`, followed as far as the run can go."""
    return resolve(workflow, _step_failed(workflow, state, spot, record, error, at), at)


def _after(workflow: Workflow, state: RunState, spot: Spot, event_input: Any, at: str) -> Next:
    """Follow the first matching transition; when none matches (or there are none), go on
    to the next step in the list. A `start_at` branch follows jumps only, so there the
    branch ends instead."""
    step = spot.step
    if spot.frame != MAIN:
        state = _set_frame(state, spot.frame, last=spot.key)
    scope = scope_of(workflow, state, spot.frame)
    context = expression_context(workflow, state, spot.frame, event_input)
    for transition in step.transitions:
        try:
            taken = transition.condition is None or _true(transition.condition, context)
        except ExpressionError as error:
            if isinstance(step, AwaitEventStep):
                raise StepFailure(
                    "ERR_EXPRESSION",
                    f"Step '{spot.key}' transitions: {error}. The run is still waiting.",
                    step_id=spot.key,
                ) from None
            return _expression_failure(workflow, state, spot, "transitions", error, at)
        if taken:
            return Jump(state, spot.frame, scope.positions[transition.next])
    follow = spot.frame == MAIN or state.frames[spot.frame].follow_list
    index = scope.following[scope.positions[step.id]] if follow else len(scope.steps)
    return Jump(state, spot.frame, index)


def _enter(workflow: Workflow, state: RunState, frame: str, index: int, at: str) -> Next:
    """Start the step at `index` of the frame's list, skipping those whose `if` is false."""
    scope = scope_of(workflow, state, frame)
    prefix = state.frames[frame].prefix if frame else ""
    follow = frame == MAIN or state.frames[frame].follow_list
    while index < len(scope.steps):
        step = scope.steps[index]
        spot = Spot(frame, prefix + step.id, step)
        if step.condition is None:
            break
        try:
            run_it = _true(step.condition, expression_context(workflow, state, frame, None))
        except ExpressionError as error:
            return _expression_failure(workflow, state, spot, "if", error, at)
        if run_it:
            break
        record = _visit(state, spot.key, at, status="skipped")
        state = put(state, spot.key, attrs.evolve(record, finished_at=at))
        index = scope.following[index] if follow else len(scope.steps)
    else:
        return frame_ended(workflow, state, frame, None, at)
    state = _set_current(state, frame, spot.key)
    if isinstance(step, CliStep | ApiStep):
        return launch(workflow, state, spot, _visit(state, spot.key, at, status=RUNNING), at)
    if isinstance(step, AwaitEventStep):
        return _wait(workflow, state, spot, step, at)
    if isinstance(step, EndStep):
        return _end(workflow, state, spot, step, at)
    if isinstance(step, SwitchStep):
        return _switch(workflow, state, spot, step, at)
    return _open_container(workflow, state, spot, at)


def _visit(state: RunState, key: str, at: str, status: str) -> StepRecord:
    """A fresh visit of a step: history of earlier visits is kept only in the log."""
    previous = state.steps.get(key)
    if previous is None:
        return StepRecord(
            status=status, visits=1, executions=_first_number(state, key), started_at=at
        )
    return StepRecord(
        status=status,
        visits=previous.visits + 1,
        executions=previous.executions,
        started_at=at,
    )


def _first_number(state: RunState, key: str) -> int:
    """Where the attempt numbers of a step met for the first time start: after those of
    the same key in earlier visits of its container, whose records left the state when
    their frame completed (see `_forget_steps`); the container kept them as `base`."""
    frame = state.frames.get(key.rpartition(".")[0])
    owner = state.steps.get(frame.owner) if frame is not None else None
    progress = owner.progress if owner is not None else None
    return int(progress.get("base", 0)) if progress is not None else 0


def placed(step: StepKind, key: str) -> StepKind:
    """The step named by its key, so messages and effects say where it ran."""
    return step if step.id == key else changed(step, id=key)


def launch(workflow: Workflow, state: RunState, spot: Spot, record: StepRecord, at: str) -> Next:
    """Ask the driver to run the step's next attempt."""
    context = expression_context(workflow, state, spot.frame, None)
    execution = record.executions + 1
    retry = len(record.attempts) + 1
    step = placed(spot.step, spot.key)
    document = scope_of(workflow, state, spot.frame).workflow
    try:
        if isinstance(step, CliStep):
            effect: Effect = effects_of.command_effect(document, step, context, execution, retry)
        else:
            assert isinstance(step, ApiStep)
            effect = effects_of.request_effect(step, context, execution, retry)
    except ExpressionError as error:
        field = "command" if isinstance(step, CliStep) else "request"
        return _expression_failure(workflow, put(state, spot.key, record), spot, field, error, at)
    record = changed(record, status=RUNNING, executions=execution)
    state = changed(
        state,
        steps=state.steps.set(spot.key, record),
        in_flight={**state.in_flight, flight(spot.key, execution): spot.frame},
    )
    return state, (effect,)


def _wait(workflow: Workflow, state: RunState, spot: Spot, step: AwaitEventStep, at: str) -> Next:
    context = expression_context(workflow, state, spot.frame, None)
    try:
        prompt = _render_text(step.prompt, context)
        summary = _render_text(step.summary, context)
        lines = step.instructions
        instructions = None if lines is None else [_shown(line, context) for line in lines]
    except ExpressionError as error:
        return _expression_failure(workflow, state, spot, "prompt", error, at)
    deadline = None
    if step.timeout_seconds:
        deadline = from_millis(to_millis(at) + round(step.timeout_seconds * 1000))
    wait = {
        "wait_id": spot.key,
        "step_id": spot.key,
        "frame": spot.frame,
        "event_name": step.event_name,
        "audience": step.audience,
        "prompt": prompt,
        "summary": summary,
        "input_schema": step.input_schema,
        "instructions": instructions,
        "risk_level": step.risk_level,
        "since": at,
        "deadline": deadline,
        "token": wait_token(state, spot.key),
        "audience_actors": None if step.audience_actors is None else list(step.audience_actors),
    }
    state = put(state, spot.key, _visit(state, spot.key, at, status=WAITING))
    return attrs.evolve(state, waits=(*state.waits, wait)), ()


def without_wait(state: RunState, key: str) -> RunState:
    return attrs.evolve(state, waits=tuple(w for w in state.waits if w["wait_id"] != key))


def _end(workflow: Workflow, state: RunState, spot: Spot, step: EndStep, at: str) -> Next:
    record = attrs.evolve(_visit(state, spot.key, at, status=COMPLETED), finished_at=at)
    try:
        result = render_value(step.result, expression_context(workflow, state, spot.frame, None))
    except ExpressionError as error:
        return _expression_failure(workflow, state, spot, "result", error, at)
    state = put(state, spot.key, record)
    return frame_ended(workflow, state, spot.frame, result, at, ended_by=step)


def _switch(workflow: Workflow, state: RunState, spot: Spot, step: SwitchStep, at: str) -> Next:
    """Go to the first case whose `when` holds, else to `default`."""
    context = expression_context(workflow, state, spot.frame, None)
    record = _visit(state, spot.key, at, status=RUNNING)
    for index, case in enumerate(step.cases):
        try:
            taken = case.condition is None or _true(case.condition, context)
        except ExpressionError as error:
            return _expression_failure(workflow, state, spot, f"cases[{index}]", error, at)
        if taken:
            return _switch_to(workflow, state, spot, record, index, case.next, at)
    if step.default is not None:
        return _switch_to(workflow, state, spot, record, "default", step.default, at)
    failure = verdicts.error(
        "ERR_STEP_FAILED",
        f"Step '{spot.key}': no case matched and there is no default.",
        spot.key,
    )
    return _step_failed(workflow, state, spot, record, failure, at)


def _switch_to(
    workflow: Workflow,
    state: RunState,
    spot: Spot,
    record: StepRecord,
    case: int | str,
    target: str,
    at: str,
) -> Next:
    outputs = {"case": case, "next": target}
    record = attrs.evolve(record, status=COMPLETED, outputs=outputs, finished_at=at)
    state = put(state, spot.key, record)
    if spot.frame != MAIN:
        state = _set_frame(state, spot.frame, last=spot.key)
    scope = scope_of(workflow, state, spot.frame)
    return Jump(state, spot.frame, scope.positions[target])


# --- the end of a frame ---------------------------------------------------------------------


def frame_ended(
    workflow: Workflow,
    state: RunState,
    frame: str,
    result: Any,
    at: str,
    ended_by: EndStep | None = None,
) -> Next:
    """A frame ran out of steps or reached an `end`: the run completes, or the frame's
    result goes to the step that opened it."""
    scope = scope_of(workflow, state, frame)
    explicit = ended_by is not None and ended_by.result is not None
    whole = frame == MAIN or (scope.isolated and state.frames[frame].follow_list)
    if not explicit and whole and scope.workflow.outputs is not None:
        context = expression_context(workflow, state, frame, None)
        outputs = scope.workflow.outputs
        where = "the workflow's outputs" if frame == MAIN else f"outputs of frame '{frame}'"
        try:
            result = {name: evaluate(node, context) for name, node in outputs.entries}
        except ExpressionError as error:
            failure = verdicts.error("ERR_EXPRESSION", f"{where}: {error}", frame or "")
            return frame_failed(workflow, state, frame, failure, at)
        problem = workflow_outputs.problem(outputs, result)
        if problem is not None:
            failure = verdicts.error("ERR_STEP_OUTPUT_INVALID", f"{where}: {problem}", frame or "")
            return frame_failed(workflow, state, frame, failure, at)
    elif not explicit and frame != MAIN:
        last = state.frames[frame].last
        result = state.steps[last].outputs if last is not None else None
    if frame == MAIN:
        return attrs.evolve(state, status=COMPLETED, result=result, wait=None), ()
    opened = state.frames[frame]
    state = changed(state, frames={p: f for p, f in state.frames.items() if p != frame})
    state = _forget_steps(workflow, state, opened, frame)
    return _child_ended(workflow, state, opened, frame, result, None, at)


def _forget_steps(workflow: Workflow, state: RunState, opened: Frame, path: str) -> RunState:
    """A completed iteration, branch or sub-workflow leaves the state: the records of its
    steps go (the log keeps their history), so a long foreach keeps a state the size of
    what is active. Its owner keeps the highest attempt number they reached (`executions`),
    so a later visit numbers its output files after theirs. Steps of a `start_at` branch
    belong to the frame around it and stay."""
    if opened.prefix != path + ".":
        return state
    steps, gone = state.steps, []
    for step in workflow.scopes[opened.scope].steps:
        record = steps.get(opened.prefix + step.id)
        if record is not None:
            gone.append((opened.prefix + step.id, record))
            steps = steps.remove(opened.prefix + step.id)
    if not gone:
        return state
    owner = steps[opened.owner]
    highest = max(record.executions for _, record in gone)
    if highest > owner.executions:
        steps = steps.set(opened.owner, changed(owner, executions=highest))
    return changed(state, steps=steps, left=(state.left, tuple(gone)))


def frame_failed(workflow: Workflow, state: RunState, frame: str, error: Any, at: str) -> Next:
    """A step in the frame failed for good and nothing there routes the failure."""
    if frame == MAIN:
        state = _abandon_frames(state, lambda _: True, at)
        return attrs.evolve(state, status=FAILED, error=error, wait=None), ()
    opened = state.frames[frame]
    state = _abandon_frames(state, lambda path: _within(state, path, frame), at)
    return _child_ended(workflow, state, opened, frame, None, error, at)


def _step_failed(
    workflow: Workflow, state: RunState, spot: Spot, record: StepRecord, error: Any, at: str
) -> Next:
    """A step failed for good: its `on_error` handler takes over, or its frame fails."""
    record = attrs.evolve(record, status=FAILED, error=error, finished_at=at)
    state = put(state, spot.key, record)
    if spot.step.on_error is not None:
        scope = scope_of(workflow, state, spot.frame)
        return Jump(state, spot.frame, scope.positions[spot.step.on_error])
    return frame_failed(workflow, state, spot.frame, error, at)


def _expression_failure(
    workflow: Workflow, state: RunState, spot: Spot, field: str, error: ExpressionError, at: str
) -> Next:
    failure = verdicts.error("ERR_EXPRESSION", f"Step '{spot.key}' {field}: {error}", spot.key)
    record = state.steps.get(spot.key) or _visit(state, spot.key, at, status=FAILED)
    return _step_failed(workflow, state, spot, record, failure, at)


def _abandon_frames(state: RunState, chosen: Any, at: str) -> RunState:
    """Close frames (and their waits) whose work no longer matters. Steps still running
    in them stay in `in_flight` until their outcome arrives, which is then only recorded."""
    gone = {path for path in state.frames if chosen(path)}
    if not gone:
        return state
    steps = state.steps
    for wait in state.waits:
        if wait["frame"] in gone:
            steps = steps.set(
                wait["wait_id"],
                attrs.evolve(steps[wait["wait_id"]], status=CANCELLED, finished_at=at),
            )
    for path in gone:
        current = state.frames[path].current
        record = steps.get(current) if current else None
        if current is not None and record is not None and record.status in (RUNNING, WAITING):
            steps = steps.set(current, attrs.evolve(record, status=CANCELLED, finished_at=at))
    return attrs.evolve(
        state,
        steps=steps,
        waits=tuple(w for w in state.waits if w["frame"] not in gone),
        frames={p: f for p, f in state.frames.items() if p not in gone},
    )


# --- containers: foreach, parallel, workflow ------------------------------------------------


def _open_container(workflow: Workflow, state: RunState, spot: Spot, at: str) -> Next:
    """Start a foreach, parallel or workflow step: decide its children, open the first."""
    step = spot.step
    record = _visit(state, spot.key, at, status=RUNNING)
    context = expression_context(workflow, state, spot.frame, None)
    if isinstance(step, ForeachStep):
        try:
            items = evaluate(step.items, context, strict=True)
        except ExpressionError as error:
            return _expression_failure(workflow, state, spot, "items", error, at)
        if not isinstance(items, list):
            failure = verdicts.error(
                "ERR_STEP_FAILED",
                f"Step '{spot.key}': items must be a list, but the expression gave "
                f"{type_name(items)}.",
                spot.key,
            )
            return _step_failed(workflow, state, spot, record, failure, at)
        total, limit = len(items), step.concurrency
        results: Any = Slots(total)
    elif isinstance(step, ParallelStep):
        items = [branch.id for branch in step.branches]
        total, limit = len(items), step.max_concurrency or len(items)
        results = {}
    else:
        items, total, limit, results = [None], 1, 1, None
    progress = {
        "total": total,
        "limit": limit,
        "opened": 0,
        "active": 0,
        "results": results,
        "failures": [],
        "items": items if isinstance(step, ForeachStep) else None,
        "base": record.executions,  # where attempt numbers of steps met first start
    }
    state = put(state, spot.key, changed(record, progress=progress))
    return _open_children(workflow, state, spot, at)


def _open_children(workflow: Workflow, state: RunState, spot: Spot, at: str) -> Next:
    """Open children while the container has room; finish it once all have ended.

    Children that end at once report back while this loop still holds the container
    (`opening`), so a thousand instant iterations never nest a thousand calls deep.
    """
    effects: list[Effect] = []
    while True:
        progress = state.steps[spot.key].progress
        stop = progress["failures"] and _fail_fast(spot.step)
        if (
            stop
            or progress["opened"] >= progress["total"]
            or progress["active"] >= progress["limit"]
        ):
            break
        index = progress["opened"]
        state = _put_progress(
            state, spot.key, opened=index + 1, active=progress["active"] + 1, opening=True
        )
        state, work = _open_child(workflow, state, spot, index, at)
        effects.extend(work)
        if spot.key in state.steps and state.steps[spot.key].progress is not None:
            state = _put_progress(state, spot.key, opening=False)
        if not _container_open(state, spot):
            return state, tuple(effects)
    finished = _maybe_finish(workflow, state, spot, at)
    if isinstance(finished, Jump):
        return attrs.evolve(finished, effects=(*effects, *finished.effects))
    state, work = finished
    return state, (*effects, *work)


def _container_open(state: RunState, spot: Spot) -> bool:
    record = state.steps.get(spot.key)
    return (
        record is not None
        and record.status == RUNNING
        and record.progress is not None
        and frame_is_open(state, spot.frame)
    )


def _open_child(workflow: Workflow, state: RunState, spot: Spot, index: int, at: str) -> Outcome:
    step = spot.step
    parent = state.frames[spot.frame] if spot.frame else None
    parent_prefix = parent.prefix if parent else ""
    parent_scope = parent.scope if parent else ""
    scope_name = parent_scope + "." + step.id if parent_scope else step.id
    if isinstance(step, ForeachStep):
        path = f"{spot.key}[{index}]"
        item = state.steps[spot.key].progress["items"][index]
        frame = Frame(
            owner=spot.key,
            parent=spot.frame,
            scope=scope_name,
            prefix=path + ".",
            item=item,
            item_index=index,
            index=index,
        )
        if step.workflow is not None:
            context = {
                **expression_context(workflow, state, spot.frame, None),
                "item": item,
                "item_index": index,
            }
            inputs, failure = _sub_inputs(step, step.workflow.inputs_schema, context, spot, path)
            if failure is not None:
                return resolve(
                    workflow, _child_ended(workflow, state, frame, path, None, failure, at), at
                )
            frame = changed(frame, inputs=inputs)
    elif isinstance(step, ParallelStep):
        branch = step.branches[index]
        path = f"{spot.key}.{branch.id}"
        if not branch.steps:
            frame = Frame(
                owner=spot.key,
                parent=spot.frame,
                scope=parent_scope,
                prefix=parent_prefix,
                follow_list=False,
                index=index,
            )
            state = changed(state, frames={**state.frames, path: frame})
            scope = workflow.scopes[parent_scope]
            return enter(workflow, state, path, scope.positions[str(branch.start_at)], at)
        frame = Frame(
            owner=spot.key,
            parent=spot.frame,
            scope=f"{scope_name}.{branch.id}",
            prefix=path + ".",
            index=index,
        )
        if branch.start_at is not None:
            state = changed(state, frames={**state.frames, path: frame})
            scope = workflow.scopes[frame.scope]
            return enter(workflow, state, path, scope.positions[branch.start_at], at)
    else:
        assert isinstance(step, WorkflowStep)
        path = spot.key
        frame = Frame(owner=spot.key, parent=spot.frame, scope=scope_name, prefix=path + ".")
        inputs, failure = _sub_inputs(
            step,
            step.workflow.inputs_schema,
            expression_context(workflow, state, spot.frame, None),
            spot,
            path,
        )
        if failure is not None:
            return resolve(
                workflow, _child_ended(workflow, state, frame, path, None, failure, at), at
            )
        frame = changed(frame, inputs=inputs)
    state = changed(state, frames={**state.frames, path: frame})
    return enter(workflow, state, path, workflow.scopes[frame.scope].first, at)


def _sub_inputs(
    step: ForeachStep | WorkflowStep,
    schema: Any,
    context: Mapping[str, Any],
    spot: Spot,
    path: str,
) -> tuple[Any, Any]:
    """A sub-workflow's inputs, rendered and checked against its inputs schema."""
    try:
        inputs = render_value(step.inputs if step.inputs is not None else {}, context)
    except ExpressionError as error:
        message = f"Step '{spot.key}' inputs: {error}"
        return None, verdicts.error("ERR_EXPRESSION", message, path)
    if schema is not None:
        inputs, problem = json_schema.checked(schema, inputs, "inputs")
        if problem is not None:
            message = (
                f"Step '{spot.key}': the inputs given to {step.workflow_ref} do not match "
                f"its inputs schema: {problem}."
            )
            return None, verdicts.error("ERR_VALIDATION_INPUT", message, path)
    return inputs, None


def _child_ended(
    workflow: Workflow,
    state: RunState,
    child: Frame,
    path: str,
    result: Any,
    error: Any,
    at: str,
) -> Next:
    """One iteration, branch or sub-workflow finished (error None) or failed."""
    owner = child.owner
    spot = spot_of(workflow, state, child.parent, owner)
    record = state.steps[owner]
    progress = record.progress
    results = progress["results"]
    if isinstance(results, Slots):
        results = results.set(child.index, result)
    elif isinstance(results, dict):
        branch_id = path[len(owner) + 1 :]
        results = {**results, branch_id: result} if error is None else results
    else:
        results = result
    failures = progress["failures"]
    if error is not None:
        failures = [*failures, {"child": path, "error": error}]
    state = _put_progress(
        state, owner, active=progress["active"] - 1, results=results, failures=failures
    )
    if progress.get("opening"):
        return state, ()  # the loop that opened this child carries on
    if error is not None and _fail_fast(spot.step):
        return _maybe_finish(workflow, state, spot, at)
    return _open_children(workflow, state, spot, at)


def _fail_fast(step: Step) -> bool:
    return isinstance(step, WorkflowStep) or (isinstance(step, ForeachStep) and step.fail_fast)


def _maybe_finish(workflow: Workflow, state: RunState, spot: Spot, at: str) -> Next:
    """Settle the container once every child has ended (or one failed, when it fails fast)."""
    record = state.steps[spot.key]
    progress = record.progress
    failures = progress["failures"]
    done = progress["active"] == 0 and progress["opened"] >= progress["total"]
    if failures and _fail_fast(spot.step):
        opened = [path for path, frame in state.frames.items() if frame.owner == spot.key]
        state = _abandon_frames(
            state, lambda path: any(_within(state, path, top) for top in opened), at
        )
    elif not done:
        return state, ()
    record = changed(state.steps[spot.key], progress=None)
    if failures:
        return _step_failed(workflow, state, spot, record, _container_error(spot, failures), at)
    outputs = progress["results"]
    if isinstance(outputs, Slots):
        outputs = outputs.to_list()
    step = spot.step
    assert isinstance(step, ForeachStep | ParallelStep | WorkflowStep)
    if step.outputs_schema is not None:
        problem = json_schema.problem(step.outputs_schema, outputs, "outputs")
        if problem is not None:
            message = f"Step '{spot.key}' outputs do not match its outputs schema: {problem}"
            failure = verdicts.error("ERR_STEP_OUTPUT_INVALID", message, spot.key)
            return _step_failed(workflow, state, spot, record, failure, at)
    record = changed(record, status=COMPLETED, outputs=outputs, finished_at=at)
    return _after(workflow, put(state, spot.key, record), spot, None, at)


def _within(state: RunState, path: str, frame: str) -> bool:
    """Whether frame `path` is `frame` or was opened inside it."""
    while path:
        if path == frame:
            return True
        path = state.frames[path].parent if path in state.frames else ""
    return False


def _container_error(spot: Spot, failures: list[dict[str, Any]]) -> dict[str, Any]:
    first = failures[0]["error"] or {}
    if isinstance(spot.step, WorkflowStep):
        message = f"Step '{spot.key}': the sub-workflow failed: {first.get('message')}"
        return verdicts.error(first.get("code", "ERR_STEP_FAILED"), message, spot.key, first)
    names = ", ".join(failure["child"] for failure in failures)
    message = f"Step '{spot.key}': {len(failures)} failed ({names}); first: {first.get('message')}"
    details = [{"child": f["child"], "error": f["error"]} for f in failures]
    return verdicts.error(first.get("code", "ERR_STEP_FAILED"), message, spot.key, details)


def _put_progress(state: RunState, key: str, **changes: Any) -> RunState:
    record = state.steps[key]
    return put(state, key, changed(record, progress={**record.progress, **changes}))


# --- small pieces --------------------------------------------------------------------------


def put(state: RunState, key: str, record: StepRecord) -> RunState:
    return changed(state, steps=state.steps.set(key, record))


def expression_context(
    workflow: Workflow, state: RunState, frame: str, event_input: Any
) -> Context:
    """What expressions in `frame` read: its own steps, the steps of the frames around it
    (up to a sub-workflow's edge), the nearest foreach item, and the inputs."""
    return Context(workflow, state, frame, event_input)


class Context(Mapping[str, Any]):
    """The data expressions read, gathered only when an expression asks for it (most
    commands have no expression at all, and gathering `steps` costs a pass over them)."""

    def __init__(self, workflow: Workflow, state: RunState, frame: str, event_input: Any):
        self._workflow, self._state, self._frame = workflow, state, frame
        self._roots: dict[str, Any] | None = None
        self._event = event_input

    def _gather(self) -> dict[str, Any]:
        if self._roots is not None:
            return self._roots
        workflow, state = self._workflow, self._state
        steps: dict[str, Any] = {}
        roots: dict[str, Any] = {"event": self._event}
        inputs = state.inputs
        path = self._frame
        while True:
            opened = state.frames[path] if path else None
            scope = workflow.scopes[opened.scope if opened else ""]
            prefix = opened.prefix if opened else ""
            for step in scope.steps:
                record = state.steps.get(prefix + step.id)
                if record is not None and step.id not in steps:
                    steps[step.id] = {
                        "outputs": record.outputs,
                        "status": record.status,
                        "error": record.error,
                        "response": record.response,
                    }
            if opened is None:
                break
            if scope.isolated and opened.follow_list:  # a sub-workflow's own frame
                inputs = opened.inputs
                break
            if opened.item_index is not None and "item" not in roots:
                roots["item"] = opened.item
                roots["item_index"] = opened.item_index
            path = opened.parent
        roots["inputs"] = inputs
        roots["steps"] = steps
        self._roots = roots
        return roots

    def __getitem__(self, name: str) -> Any:
        return self._gather()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._gather())

    def __len__(self) -> int:
        return len(self._gather())


def _true(condition: Node, context: Mapping[str, Any]) -> bool:
    return truthy(evaluate(condition, context))


def _render_text(text: str | None, context: Mapping[str, Any]) -> str | None:
    return None if text is None else _shown(text, context)


def _shown(text: str, context: Mapping[str, Any]) -> str:
    """Text shown to whoever answers a wait; a missing optional value reads as empty."""
    return render_shown(parse_template(text), context)
