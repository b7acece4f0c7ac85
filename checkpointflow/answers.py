"""Answers that arrive while a run is busy: checked, queued in its inbox, folded in later.

`resume` on a run whose lock another process holds checks the answer against the run as
it stands (the wait exists, the token, the actor, the input schema, the deadline),
binds it to the wait it answers (that wait's token), and stores it in the run's inbox.
The process holding the lock folds queued answers in at its next step boundary, in
arrival order, as the same `event_received` event a direct resume records (with
`queued: {id, at}`). An answer whose wait is gone by then (answered by another, timed
out, the run finished) is recorded as `answer_stale`, with its input and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from checkpointflow import interruptions, store
from checkpointflow.errors import (
    CpfError,
    PersistenceFailure,
    RuntimeFailure,
    ValidationFailure,
)
from checkpointflow.history import load_state, snapshot_workflow
from checkpointflow.inbox import Entry, Inbox
from checkpointflow.interpreter import advance, answered_wait
from checkpointflow.state import AnswerStale, Effect, EventReceived, RunState
from checkpointflow.timestamps import to_millis

if TYPE_CHECKING:
    from checkpointflow.driver import Session


@attrs.frozen(slots=False)
class Queued:
    """An answer stored in the inbox, and the run as it stood when it was checked."""

    state: RunState
    entry: str  # the file name under inbox/
    id: str
    wait_id: str
    at: str


def queue(root: Path, folder: store.RunFolder, event: EventReceived) -> Queued:
    """Without the run's lock: check the answer as far as the run's current record
    allows, bind it to its wait, and store it; refusals are raised as for a resume."""
    state = load_state(root, folder)
    wait = answered_wait(state, event)
    deadline = wait.get("deadline")
    if deadline and to_millis(deadline) <= to_millis(event.at):
        raise RuntimeFailure(
            "ERR_RUN_NOT_WAITING",
            f"The wait {wait['wait_id']} of run {state.run_id} timed out at {deadline}, "
            "before this answer; the run is busy and records the timeout when it gets to it.",
            step_id=wait["step_id"],
        )
    event = attrs.evolve(event, token=wait.get("token") or event.token, wait_id=wait["wait_id"])
    advance(snapshot_workflow(root, folder, state.workflow_sha256), state, event)
    answer_id = os.urandom(8).hex()
    entry = Inbox(folder).put(_answer_of(event, answer_id))
    return Queued(state, entry, answer_id, wait["wait_id"], event.at)


def _answer_of(event: EventReceived, answer_id: str) -> dict[str, Any]:
    return {
        "id": answer_id,
        "queued_at": event.at,
        "event_name": event.event_name,
        "input": event.input,
        "token": event.token,
        "actor": event.actor,
        "wait_id": event.wait_id,
    }


def event_of(entry: Entry, at: str) -> EventReceived:
    """The event a queued answer becomes when it is folded in at `at`."""
    answer = entry.answer
    if not all(isinstance(answer.get(key), str) for key in ("id", "queued_at", "event_name")):
        raise PersistenceFailure(
            "ERR_PERSISTENCE",
            f"inbox/{entry.name} of this run is not a queued answer (it lacks id, queued_at "
            "or event_name); move it out of the inbox folder.",
        )
    return EventReceived(
        answer["event_name"],
        answer["input"],
        at,
        token=answer.get("token"),
        actor=answer.get("actor"),
        wait_id=answer.get("wait_id"),
        queued={"id": answer["id"], "at": answer["queued_at"]},
    )


def too_late(event: EventReceived, refusal: CpfError) -> CpfError:
    """The refusal of a queued answer, as its sender should read it."""
    message = (
        f"This answer was queued while the run was busy, and by its turn its wait "
        f"{event.wait_id} had closed (answered by another, timed out, or the run ended); "
        f"it is logged as answer_stale. {refusal.message}"
    )
    return type(refusal)(refusal.code, message, step_id=refusal.step_id)


def stale(event: EventReceived, refusal: CpfError) -> AnswerStale:
    """The record of a queued answer that was not applied: all of it, and why."""
    assert event.queued is not None
    return AnswerStale(
        event_name=event.event_name,
        input=event.input,
        token=event.token,
        actor=event.actor,
        wait_id=event.wait_id,
        queued=event.queued,
        code=refusal.code,
        message=too_late(event, refusal).message,
        at=event.at,
    )


def fold(
    session: Session, state: RunState, at: str, only: list[str] | None = None
) -> tuple[RunState, tuple[Effect, ...]]:
    """Within the run's lock: apply every queued answer (or `only` those entries), oldest
    first; each leaves the inbox once the log holds it (applied, or stale). Outcomes go
    to `session.answered`."""
    work: tuple[Effect, ...] = ()
    for entry in session.inbox.entries(only):
        event = event_of(entry, at)
        assert event.queued is not None
        if event.queued["id"] in session.logged_answers:  # a crash came before its removal
            session.inbox.remove(entry.name)
            continue
        with interruptions.shielded():  # the record and the removal go together
            state, more, refusal = _apply(session, state, event)
            session.inbox.remove(entry.name)
        session.answered[event.queued["id"]] = refusal
        work += more
    return state, work


def _apply(
    session: Session, state: RunState, event: EventReceived
) -> tuple[RunState, tuple[Effect, ...], CpfError | None]:
    try:
        state, more = session.apply(state, event)
    except (ValidationFailure, RuntimeFailure) as refusal:
        state, _ = session.apply(state, stale(event, refusal))
        return state, (), too_late(event, refusal)
    return state, more, None


def logged_last(folder: store.RunFolder, log: store.EventLog) -> set[str]:
    """The queued answer the log's last record holds, if any, for a process about to
    append: one that logged an answer and died before removing it from the inbox left it
    there (every other process removes an entry before it appends anything else)."""
    if not Inbox(folder).names():
        return set()
    record = store.record_ending_at(folder, log.offset) or {}
    queued = (record.get("payload") or {}).get("queued")
    return {queued["id"]} if isinstance(queued, dict) and "id" in queued else set()
