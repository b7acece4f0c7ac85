"""The driver: the only loop with I/O.

For each event it asks the interpreter what happens next, appends the event to the run's
log, checkpoints the state now and then, performs the effects the interpreter asked for
and turns their outcomes into the next events, until the run waits or finishes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkpointflow import answers, document, effects, interruptions, store
from checkpointflow.composition import Tree
from checkpointflow.errors import (
    CpfError,
    Interruption,
    LockConflict,
    RuntimeFailure,
    ValidationFailure,
)
from checkpointflow.history import (
    keep_sub_workflows,
    load_state,
    load_workflow_file,
    snapshot_workflow,
    sub_workflows_differ,
    summary_of,
)
from checkpointflow.inbox import Inbox
from checkpointflow.interpreter import advance, frame_is_open, overdue_waits, wait_deadline
from checkpointflow.model import Workflow
from checkpointflow.progress import Progress
from checkpointflow.state import (
    FINISHED,
    Effect,
    Event,
    EventReceived,
    ResponseReceived,
    RunCancelled,
    RunInterrupted,
    RunRecovered,
    RunRetried,
    RunStarted,
    RunState,
    SendRequest,
    StepFinished,
    WaitExpired,
    event_to_record,
    flight,
    flight_parts,
    state_to_json,
)
from checkpointflow.timestamps import to_millis

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

CHECKPOINT_EVERY_EVENTS = 100
CHECKPOINT_EVERY_SECONDS = 2.0
CHECKPOINT_SHARE = 0.02  # at most this share of a long run's time goes to checkpoints
DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024
OPPORTUNISTIC_OUTPUT_BYTES = 1024 * 1024
STDERR_TAIL_BYTES = 2000
MAX_WORKERS = 64  # effects performed at once; the workflow's own limits are usually lower
MAX_JSON_DEPTH = 200  # deeper inputs and outputs are refused before they reach the run
ANSWER_POLL_SECONDS = 0.2  # how often a run with pending waits looks for queued answers


def now() -> str:
    """The time recorded in events: UTC, milliseconds, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def max_output_bytes() -> int:
    configured = os.environ.get("CHECKPOINTFLOW_MAX_OUTPUT_BYTES", "")
    return int(configured) if configured.isdigit() else DEFAULT_MAX_OUTPUT_BYTES


class Session:
    """One command's hold on one run: its folder, log, workflow and checkpoint pacing."""

    def __init__(self, folder: store.RunFolder, workflow: Workflow, progress: Progress) -> None:
        self.folder = folder
        self.workflow = workflow
        self.progress = progress
        self.log = store.EventLog(folder)
        self.unsaved_events = 0
        self.saved_at = time.monotonic()
        self.saving_took = 0.0  # seconds the last checkpoint took
        self.latest: RunState | None = None  # the state after the last event in the log
        self.stops: dict[str, threading.Event] = {}  # attempt in flight -> "stop it now"
        self.inbox = Inbox(folder)
        self.logged_answers = answers.logged_last(folder, self.log)
        self.answered: dict[str, CpfError | None] = {}  # queued answers folded: id -> refusal

    def apply(self, state: RunState | None, event: Event) -> tuple[RunState, tuple[Effect, ...]]:
        """Decide, then record: a refused event leaves no trace, and a signal cannot come
        between the record and `latest`."""
        state, work = advance(self.workflow, state, event)
        with interruptions.shielded():
            self.log.append(event_to_record(event, state.seq, store.EVENT_SCHEMA))
            self.latest = state
            self.unsaved_events += 1
            if self.checkpoint_due():
                self.checkpoint(state)
        return state, work

    def checkpoint_due(self) -> bool:
        """Every 100 events or 2 seconds, but never so often that checkpoints take more
        than a small share of the time: a state that grew big (a long foreach's items and
        results) is saved less often, so one more item costs the same as the first."""
        elapsed = time.monotonic() - self.saved_at
        due = self.unsaved_events >= CHECKPOINT_EVERY_EVENTS or elapsed >= CHECKPOINT_EVERY_SECONDS
        return due and elapsed * CHECKPOINT_SHARE >= self.saving_took

    def checkpoint(self, state: RunState) -> None:
        started = time.monotonic()
        with interruptions.shielded():
            store.write_state(self.folder, {**state_to_json(state), "log_offset": self.log.offset})
            store.write_summary(self.folder, summary_of(state))
        self.unsaved_events = 0
        self.saved_at = time.monotonic()
        self.saving_took = self.saved_at - started

    def drive(self, state: RunState, work: tuple[Effect, ...]) -> RunState:
        """Perform effects and feed their outcomes back until the run waits or finishes.

        A signal stops every running step and fails the run with ERR_INTERRUPTED (see
        `interrupted`), reported as an `Interruption`.
        """
        self.latest = state
        try:
            try:
                state = self.perform_all(state, work)
            except interruptions.Interrupted as signal:
                state = self.interrupted(signal.signal_name)
                self.progress.run_settled(state)
                raise _interruption(signal.signal_name, state) from None
            self.checkpoint(state)
        finally:
            self.log.close()
        self.progress.run_settled(state)
        return state

    def perform_all(self, state: RunState, work: tuple[Effect, ...]) -> RunState:
        """One effect at a time runs in this thread; several (foreach concurrency, parallel
        branches) run in worker threads, and their outcomes are applied here, one by one,
        in the order they finish: the log records that order, so replay needs no threads.
        """
        queue = list(work)
        pool: ThreadPoolExecutor | None = None
        running: set[Future[StepFinished | ResponseReceived]] = set()
        try:
            while True:
                state, more = self.take_answers(state)
                queue.extend(more)
                if not (queue or running):
                    break
                if not running and len(queue) == 1 and not state.waits:
                    effect = queue.pop()
                    state, more = self.settle(state, self.perform(effect, self.stop_of(effect)))
                    queue.extend(more)
                    continue
                from concurrent import futures  # only runs with concurrent steps pay for it

                pool = pool or futures.ThreadPoolExecutor(MAX_WORKERS, "cpf-step")
                running.update(pool.submit(self.perform, e, self.stop_of(e)) for e in queue)
                queue.clear()
                poll = ANSWER_POLL_SECONDS if state.waits else None  # answers may come
                done, running = futures.wait(running, poll, futures.FIRST_COMPLETED)
                for future in sorted(done, key=_finished_order):
                    state, more = self.settle(state, future.result())
                    queue.extend(more)
                self.stop_abandoned(state)
        except BaseException:
            self.stop_every_attempt()
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return state

    def take_answers(
        self, state: RunState, only: list[str] | None = None
    ) -> tuple[RunState, tuple[Effect, ...]]:
        """Fold in the answers queued while this process held the run (see answers.py):
        at every step boundary, and while steps run beside pending waits; `only` these
        inbox entries, when given."""
        if not (self.inbox.names() if only is None else only):
            return state, ()
        return answers.fold(self, state, now(), only)

    def stop_of(self, effect: Effect) -> threading.Event:
        """The switch that stops one attempt; made here, before the attempt can start, so
        that no attempt escapes a stop (all bookkeeping of switches is in this thread)."""
        return self.stops.setdefault(flight(effect.step_id, effect.attempt), threading.Event())

    def settle(
        self, state: RunState, outcome: StepFinished | ResponseReceived
    ) -> tuple[RunState, tuple[Effect, ...]]:
        self.stops.pop(flight(outcome.step_id, outcome.attempt), None)
        return self.apply(state, outcome)

    def stop_abandoned(self, state: RunState) -> None:
        """Stop attempts whose outcome no longer matters (a fail-fast foreach failed, the
        run failed): their frame is closed, and their outcome will only be recorded. One
        in its backoff, or not yet started, never starts its command."""
        for entry, frame in state.in_flight.items():
            stop = self.stops.get(entry)
            if stop is not None and not frame_is_open(state, frame):
                stop.set()

    def stop_every_attempt(self) -> None:
        for stop in self.stops.values():
            stop.set()

    def interrupted(self, signal_name: str) -> RunState:
        """Record that a signal stopped the run: every attempt in flight was stopped, and
        the run fails with ERR_INTERRUPTED (`cpf retry` runs those steps again). Further
        signals are ignored while this is written."""
        interruptions.hold()
        state = self.latest
        assert state is not None
        if state.in_flight:
            stopped = tuple(self.stopped_attempt(entry) for entry in state.in_flight)
            state, _ = self.apply(state, RunInterrupted(signal_name, stopped, now()))
        self.checkpoint(state)
        return state

    def stopped_attempt(self, entry: str) -> dict[str, Any]:
        """An in-flight attempt, with the output files it left in their place (None for a
        stream with no output, or one never created: it was stopped before it started)."""
        step_id, attempt = flight_parts(entry)
        with store.persisting(self.folder.path / "steps"):
            stdout, stderr = store.place_output(self.folder, step_id, attempt)
        return {"step_id": step_id, "attempt": attempt, "stdout": stdout, "stderr": stderr}

    def perform(self, effect: Effect, stop: threading.Event) -> StepFinished | ResponseReceived:
        if isinstance(effect, SendRequest):
            return self.send(effect, stop)
        attempt_of = (effect.step_id, effect.attempt)
        scratch_out, scratch_err = self.folder.scratch_files(*attempt_of)
        self.progress.step_started(effect)
        group_file = self.folder.process_file(effect.step_id, effect.attempt)
        noted: list[int] = []

        def note(group: int) -> None:
            store.settle_output(self.folder, effect.step_id, effect.attempt)
            store.note_process_group(group_file, group)
            noted.append(group)

        finals = [self.folder.path / name for name in self.folder.output_files(*attempt_of)]
        watched = ((scratch_out, finals[0]), (scratch_err, finals[1]))  # settled when long
        with store.persisting(scratch_out), self.progress.live_output(effect, watched):
            outcome = effects.perform(
                effect,
                self.folder.run_id,
                scratch_out,
                scratch_err,
                on_start=note,
                stop=stop,
            )
        if noted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(group_file)
        with store.persisting(scratch_out):
            stdout, stderr = store.place_output(self.folder, effect.step_id, effect.attempt)
            kept = [self.folder.path / name for name in (stdout, stderr) if name is not None]
            effects.mask_outputs(effect, kept)
        output, problem = None, None
        readable = outcome.failure is None and not outcome.timed_out
        if readable and (outcome.stdout_bytes or effect.parse_stdout):
            output, problem = self.read_output(stdout, effect.parse_stdout)
        event = StepFinished(
            step_id=effect.step_id,
            attempt=effect.attempt,
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            duration_ms=outcome.duration_ms,
            failure=outcome.failure,
            failure_code=outcome.failure_code,
            stdout=stdout,
            stderr=stderr,
            output=output,
            output_problem=problem,
            stderr_tail=(
                store.read_output_tail(self.folder, stderr, STDERR_TAIL_BYTES)
                if outcome.exit_code != 0 and stderr is not None
                else ""
            ),
            at=now(),
        )
        self.progress.step_finished(event)
        return event

    def send(self, effect: SendRequest, stop: threading.Event) -> ResponseReceived:
        body_file = self.folder.output_files(effect.step_id, effect.attempt)[0]
        self.progress.step_started(effect)
        outcome = effects.send(effect, self.folder.path / body_file, stop)
        body, is_json = None, False
        if outcome.failure is None:
            data, truncated = store.read_output_file(self.folder, body_file, max_output_bytes())
            if not truncated:
                body, problem = parse_json_output(data)
                is_json = problem is None
                if not is_json:
                    body = data.decode("utf-8", errors="replace")
        event = ResponseReceived(
            step_id=effect.step_id,
            attempt=effect.attempt,
            status=outcome.status,
            headers=outcome.headers,
            body=body,
            body_is_json=is_json,
            failure=outcome.failure,
            failure_code=outcome.failure_code,
            duration_ms=outcome.duration_ms,
            body_file=body_file,
            at=now(),
        )
        self.progress.response_received(event)
        return event

    def read_output(self, relative: str | None, required: bool) -> tuple[Any, str | None]:
        """Parse stdout as JSON: required for steps with `outputs`, opportunistic otherwise.

        Without an `outputs` schema, stdout that is not JSON (or is large) simply gives the
        step no outputs. No file (None) is empty output.
        """
        limit = max_output_bytes() if required else OPPORTUNISTIC_OUTPUT_BYTES
        data, truncated = b"", False
        if relative is not None:
            data, truncated = store.read_output_file(self.folder, relative, limit)
        output, problem = None, None
        if truncated:
            problem = f"is larger than {limit} bytes (CHECKPOINTFLOW_MAX_OUTPUT_BYTES)"
        else:
            output, problem = parse_json_output(data)
        return (output, problem) if required else (None if problem else output, None)


def _interruption(signal_name: str, state: RunState) -> Interruption:
    error = state.error or {}
    if error.get("code") == "ERR_INTERRUPTED":
        message, step_id = error["message"], error.get("step_id")
    else:
        message = f"{signal_name} stopped cpf; run {state.run_id} is {state.status}."
        step_id = state.current_step_id
    return Interruption(signal_name, message, state_to_json(state), step_id)


def _finished_order(future: Future[StepFinished | ResponseReceived]) -> tuple[str, str]:
    """Outcomes that finished together are applied in the order of their timestamps."""
    event = future.result()
    return event.at, event.step_id


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest inside a JSON value (without recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item)
    return deepest


def parse_json_output(data: bytes) -> tuple[Any, str | None]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"is not UTF-8 text (bad byte at offset {error.start})"
    try:
        value = json.loads(text)
    except RecursionError:
        return None, "is JSON nested too deeply"
    except ValueError as error:
        return None, f"is not valid JSON ({error})" if text.strip() else "is empty"
    if nesting_depth(value) > MAX_JSON_DEPTH:
        return None, f"is JSON nested deeper than {MAX_JSON_DEPTH} levels"
    return value, None


def start_run(
    root: Path, path: str, inputs: Any, actor: str, progress: Progress
) -> tuple[RunState, list[str]]:
    tree, data = load_workflow_file(root, path)
    workflow = tree.workflow
    event = RunStarted(
        run_id=store.new_run_id(datetime.now(UTC)),
        workflow_id=workflow.id,
        workflow_version=workflow.version,
        workflow_sha256=hashlib.sha256(data).hexdigest(),
        workflow_path=document.absolute(path),
        inputs=inputs,
        at=now(),
        secret=os.urandom(16).hex(),
        actor=actor,
        workflow_name=workflow.name,
        workflow_description=workflow.description,
    )
    state, work = advance(workflow, None, event)
    folder = store.create_run(root, event.run_id, data)
    with store.locked(folder):
        session = Session(folder, workflow, progress)
        try:
            keep_sub_workflows(folder, tree)
            state, work = session.apply(None, event)
        except BaseException:
            session.log.close()
            shutil.rmtree(folder.path, ignore_errors=True)  # the run never began
            raise
        session.checkpoint(state)
        state = session.drive(state, work)
    return take_over(root, folder, progress)[0] or state, []


def settle_overdue_wait(
    root: Path, folder: store.RunFolder, state: RunState, progress: Progress
) -> RunState:
    """Within the run's lock: time out the waits whose deadline has passed, and drive on."""
    return time_out_overdue_waits(root, folder, state, progress)[0]


def time_out_overdue_waits(
    root: Path, folder: store.RunFolder, state: RunState, progress: Progress
) -> tuple[RunState, tuple[str, ...]]:
    """Within the run's lock: time out the overdue waits and drive on; also says which
    waits (by wait id) timed out, since the run may still wait for the others."""
    deadline = wait_deadline(state)
    at = now()
    if deadline is None or to_millis(at) < to_millis(deadline):
        return state, ()
    session = Session(folder, snapshot_workflow(root, folder, state.workflow_sha256), progress)
    work: tuple[Effect, ...] = ()
    expired: list[str] = []
    try:
        for key in overdue_waits(state, at):
            if any(wait["wait_id"] == key for wait in state.waits):
                state, more = session.apply(state, WaitExpired(key, at))
                work += more
                expired.append(key)
    except BaseException:
        session.log.close()
        raise
    return session.drive(state, work), tuple(expired)


def settle_if_overdue(root: Path, folder: store.RunFolder, progress: Progress) -> RunState:
    """For readers (`status`): time out an overdue wait and fold in queued answers,
    unless someone holds the run or a dead process left steps in flight (`recover`)."""
    state = time_out_if_overdue(root, folder, progress)[0]
    if state.in_flight or not Inbox(folder).names():
        return state
    return take_over(root, folder, progress)[0] or state


def time_out_if_overdue(
    root: Path, folder: store.RunFolder, progress: Progress
) -> tuple[RunState, tuple[str, ...]]:
    """For `tick`: time out the overdue waits unless someone holds the run; which did."""
    state = load_state(root, folder)
    if wait_deadline(state) is None:
        return state, ()
    try:
        with store.locked(folder):
            return time_out_overdue_waits(root, folder, load_state(root, folder), progress)
    except LockConflict:
        return state, ()


def resume_run(
    root: Path,
    run_id: str,
    event_name: str,
    payload: Any,
    token: str | None,
    actor: str,
    progress: Progress,
    wait_id: str | None = None,
) -> tuple[RunState, answers.Queued | None]:
    """Apply an answer and drive the run on; while another process holds the run, queue
    the answer in its inbox instead (the `Queued` part says so; see answers.py)."""
    folder = store.find_run(root, run_id)
    event = EventReceived(event_name, payload, now(), token=token, actor=actor, wait_id=wait_id)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(store.locked(folder))
        except LockConflict:
            return _queue_while_busy(root, folder, event, progress)
        earlier = Inbox(folder).names()  # queued before this process took the run
        state = _resume(root, folder, event, progress, earlier)
    return take_over(root, folder, progress)[0] or state, None


def _resume(
    root: Path,
    folder: store.RunFolder,
    event: EventReceived,
    progress: Progress,
    earlier: list[str],
) -> RunState:
    """Within the run's lock: the answers queued before it took the run first (a dead
    or departing holder left them), then this one; later ones at the next boundary."""
    state = load_state(root, folder)
    deadline = wait_deadline(state)
    settled = settle_overdue_wait(root, folder, state, progress)
    if settled is not state and not _still_pending(
        settled, event.event_name, event.token, event.wait_id
    ):
        raise RuntimeFailure(
            "ERR_RUN_NOT_WAITING",
            f"The wait at step {state.current_step_id} timed out at {deadline}, before "
            f"this resume; the run has moved on and is now {settled.status}.",
            step_id=settled.current_step_id,
        )
    state = settled
    workflow = snapshot_workflow(root, folder, state.workflow_sha256)
    session = Session(folder, workflow, progress)
    try:
        state, work = session.take_answers(state, earlier)
        try:
            state, more = session.apply(state, event)
        except CpfError:
            if session.answered:  # drive on what the earlier answers started, then refuse
                session.drive(state, work)
            raise
    except BaseException:
        session.log.close()
        raise
    return session.drive(state, work + more)


def _queue_while_busy(
    root: Path, folder: store.RunFolder, event: EventReceived, progress: Progress
) -> tuple[RunState, answers.Queued | None]:
    """Another process holds the run: queue the answer for it; if it let go meanwhile,
    fold the answer in here and report what became of it."""
    queued = answers.queue(root, folder, event)
    latest, answered = take_over(root, folder, progress)
    if queued.id not in answered:
        return latest or queued.state, queued
    refusal = answered[queued.id]
    if refusal is not None:
        raise refusal
    assert latest is not None
    return latest, None


def take_over(
    root: Path, folder: store.RunFolder, progress: Progress
) -> tuple[RunState | None, dict[str, CpfError | None]]:
    """After letting go of the run: answers queued while it was held are folded in by
    whoever holds it next; when nobody does, take it and fold them here (a process that
    queued one just before the holder let go relies on this). Returns the latest state
    (None when nothing was queued) and what became of each answer folded here."""
    state: RunState | None = None
    answered: dict[str, CpfError | None] = {}
    while Inbox(folder).names():
        try:
            with store.locked(folder):
                state, more = _fold_queued(root, folder, progress)
        except LockConflict:
            break  # its holder folds them
        answered.update(more)
    return state, answered


def _fold_queued(
    root: Path, folder: store.RunFolder, progress: Progress
) -> tuple[RunState, dict[str, CpfError | None]]:
    """Within the run's lock: fold the queued answers in and drive the run on."""
    state = load_state(root, folder)
    session = Session(folder, snapshot_workflow(root, folder, state.workflow_sha256), progress)
    try:
        state, work = session.take_answers(state)
    except BaseException:
        session.log.close()
        raise
    return session.drive(state, work), session.answered


def _still_pending(
    state: RunState, event_name: str, token: str | None, wait_id: str | None
) -> bool:
    """Whether a wait this resume could answer survived the timeouts just settled."""
    return (
        any(
            wait["event_name"] == event_name
            and (token is None or wait.get("token") == token)
            and (wait_id is None or wait["wait_id"] == wait_id)
            for wait in state.waits
        )
        and state.status not in FINISHED
    )


def recover_run(root: Path, run_id: str, progress: Progress) -> tuple[RunState, list[str]]:
    """Settle a run whose process died mid-step, then drive it on."""
    folder = store.find_run(root, run_id)
    with store.locked(folder):
        state = load_state(root, folder)
        notes = stop_orphans(folder, state)
        session = Session(folder, snapshot_workflow(root, folder, state.workflow_sha256), progress)
        work: tuple[Effect, ...] = ()
        try:
            in_flight = list(state.in_flight) or [flight(state.current_step_id or "", 0)]
            for entry in in_flight:
                left = session.stopped_attempt(entry)
                state, more = session.apply(
                    state,
                    RunRecovered(
                        left["step_id"], left["attempt"], left["stdout"], left["stderr"], now()
                    ),
                )
                work += more
        except BaseException:
            session.log.close()
            raise
        state = session.drive(state, work)
    return take_over(root, folder, progress)[0] or state, notes


def stop_orphans(folder: store.RunFolder, state: RunState) -> list[str]:
    """Kill the process groups of steps whose `cpf` died, so they cannot run on unseen:
    those noted in steps/<key>/<n>.pid, and those found by their environment."""
    notes = []
    for entry in state.in_flight:
        step_id, attempt = flight_parts(entry)
        group_file = folder.process_file(step_id, attempt)
        try:
            noted = {int(group_file.read_text().strip() or 0)}
        except (OSError, ValueError):
            noted = set()
        group_file.unlink(missing_ok=True)
        for group in sorted((noted | effects.find_orphan_groups(folder.run_id, step_id)) - {0}):
            if effects.stop_orphan(group, folder.run_id):
                notes.append(f"Stopped process group {group}, left running by step {step_id}.")
    return notes


def retry_run(
    root: Path,
    run_id: str,
    from_step: str | None,
    workflow_path: str | None,
    actor: str,
    progress: Progress,
) -> RunState:
    """Continue a failed run from its failed step (or `from_step`), keeping what completed;
    with `workflow_path`, against an edited version of its workflow."""
    folder = store.find_run(root, run_id)
    with store.locked(folder):
        state = load_state(root, folder)
        if state.status == "failed":
            notes = stop_orphans(folder, state)  # steps a dead process left running
            progress.notes(notes)
        workflow = snapshot_workflow(root, folder, state.workflow_sha256)
        sha = None
        if workflow_path is not None:
            tree, data = _edited_workflow(root, workflow_path, state)
            if state.status != "failed":
                raise RuntimeFailure(
                    "ERR_RUN_NOT_FAILED",
                    f"Run {state.run_id} is {state.status}; only a failed run can be retried.",
                    step_id=state.current_step_id,
                )
            if sub_workflows_differ(folder, tree):
                raise ValidationFailure(
                    "ERR_VALIDATION_WORKFLOW",
                    f"{workflow_path} is the workflow run {state.run_id} started with, but "
                    "its sub-workflows changed; the run keeps one set of sub-workflows per "
                    "version of its main workflow, so edit the main workflow too (for "
                    "example its version) to retry with them.",
                )
            workflow = tree.workflow
            sha = _keep_snapshots(folder, state, data)
            keep_sub_workflows(folder, tree)
        session = Session(folder, workflow, progress)
        try:
            switch = _switch_to(workflow, sha, workflow_path) if workflow_path is not None else {}
            event = RunRetried(from_step, now(), actor=actor, **switch)
            state, work = session.apply(state, event)
            if workflow_path is not None:
                with store.persisting(folder.workflow_file):
                    store.write_file_atomically(folder.workflow_file, data)
        except BaseException:
            session.log.close()
            raise
        state = session.drive(state, work)
    return take_over(root, folder, progress)[0] or state


def _switch_to(workflow: Workflow, sha: str | None, path: str) -> dict[str, Any]:
    """What a retry records to make the edited file the run's workflow from then on."""
    return {
        "workflow_sha256": sha,
        "workflow_path": document.absolute(path),
        "workflow_version": workflow.version,
        "workflow_name": workflow.name,
        "workflow_description": workflow.description,
    }


def _edited_workflow(root: Path, path: str, state: RunState) -> tuple[Tree, bytes]:
    tree, data = load_workflow_file(root, path)
    workflow = tree.workflow
    if workflow.id != state.workflow_id:
        raise ValidationFailure(
            "ERR_VALIDATION_WORKFLOW",
            f"{path} defines workflow '{workflow.id}', but run {state.run_id} runs "
            f"'{state.workflow_id}'; --workflow must be an edited version of the same workflow.",
        )
    return tree, data


def _keep_snapshots(folder: store.RunFolder, state: RunState, data: bytes) -> str:
    """Keep every version the run has used under workflows/<sha>.yaml; returns the new hash."""
    kept = folder.path / "workflows"
    with store.persisting(kept):
        kept.mkdir(exist_ok=True)
        old = kept / f"{state.workflow_sha256}.yaml"
        if not old.exists():
            store.write_file_atomically(old, folder.workflow_file.read_bytes())
        sha = hashlib.sha256(data).hexdigest()
        store.write_file_atomically(kept / f"{sha}.yaml", data)
    return sha


def cancel_run(
    root: Path, run_id: str, reason: str | None, actor: str, progress: Progress
) -> RunState:
    folder = store.find_run(root, run_id)
    with store.locked(folder):
        state = load_state(root, folder)
        stop_orphans(folder, state)
        session = Session(folder, snapshot_workflow(root, folder, state.workflow_sha256), progress)
        try:
            state, _ = session.apply(state, RunCancelled(reason, now(), actor=actor))
            state, _ = session.take_answers(state)  # each is stale now: the run is over
            session.checkpoint(state)
        finally:
            session.log.close()
    return take_over(root, folder, progress)[0] or state
