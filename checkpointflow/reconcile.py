"""`cpf reconcile`: make a run folder that two copies wrote into one history again.

When copies of a run folder each moved on and were merged (through git, say), the folder
may hold both histories in events.jsonl (conflict markers, or two logs joined end to end
by a union merge), or one history with the other's output files beside it (a merge that
took one side, `-X ours` or `-X theirs`). Reconciling keeps one history, the one named by
`--keep` when there are two, and records what the other did in a `history_merged` event:
its events after the shared part, and its output files, moved out of the way under
`merged/<seq>/` so the kept history can never overwrite them. The state is then rebuilt
from the log. Nothing of either side is lost, and replay stays one story.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from checkpointflow import divergence, history, interruptions, store
from checkpointflow.errors import PersistenceFailure, ValidationFailure
from checkpointflow.state import (
    HistoryMerged,
    RunState,
    event_from_record,
    event_to_record,
    flight_parts,
    state_to_json,
)
from checkpointflow.verification import named_files, output_files_under

MERGED = "merged"


@attrs.frozen(slots=False)
class Plan:
    """What reconciling will do: the lines of the history kept, which side that is, and
    the other side's records after the shared part."""

    kept: str  # "ours", "theirs", or "log" when the log held one history
    lines: tuple[bytes, ...]
    dropped: tuple[bytes, ...]


def reconcile(
    root: Path, folder: store.RunFolder, keep: str | None, at: str, actor: str
) -> tuple[RunState, HistoryMerged | None]:
    """Within the run's lock: keep one history and record the other; returns the rebuilt
    state and the history_merged event (None when there was nothing to record)."""
    plan = plan_for(folder, keep)
    records = [_record(line) for line in plan.lines]
    kept_state = history.fold(root, folder, map(event_from_record, records))
    seq = len(records) + 1
    with interruptions.shielded():  # a stop never leaves files set aside without a record
        files = _set_aside(folder, plan, records, kept_state, seq)
        if plan.kept == "log" and not files:
            return _rewrite(folder, plan.lines, kept_state), None
        event = HistoryMerged(
            plan.kept, tuple(_record(line) for line in plan.dropped), tuple(files), at, actor
        )
        record = event_to_record(event, seq, store.EVENT_SCHEMA)
        state = history.fold(root, folder, [event], kept_state)
        line = store.utf8(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        return _rewrite(folder, (*plan.lines, line), state), event


def plan_for(folder: store.RunFolder, keep: str | None) -> Plan:
    """Which history to keep, from the log as the merge left it."""
    data = _read(folder.events_file)
    try:
        records, end = store.read_events(folder)
    except PersistenceFailure:
        records, end = None, 0
    if records is not None:  # one history (a torn last line, if any, is dropped)
        return Plan("log", tuple(data[:end].splitlines(keepends=True)), ())
    split = divergence.split_log(data)
    if split is None:
        raise divergence.damaged(
            folder.run_id, "it is not two histories `cpf reconcile` can tell apart"
        )
    if keep is None:
        raise ValidationFailure(
            "ERR_USAGE",
            f"Run {folder.run_id}: {divergence.describe(split)}. Say which to keep with "
            "--keep ours or --keep theirs; the other is recorded in a history_merged event.",
        )
    other = "theirs" if keep == "ours" else "ours"
    return Plan(keep, (*split.shared, *split.side(keep)), split.side(other))


def _set_aside(
    folder: store.RunFolder,
    plan: Plan,
    records: list[dict[str, Any]],
    kept: RunState,
    seq: int,
) -> list[dict[str, Any]]:
    """Move every output file the kept history does not account for (and the other
    side's version of a file both wrote, which git left with conflict markers) to
    merged/<seq>/; returns what was moved where."""
    named = {name for record in records for name in named_files(record)}
    for entry in kept.in_flight:
        named.update(folder.output_files(*flight_parts(entry)))
    target = f"{MERGED}/{seq}"
    moved = []
    for relative in output_files_under(folder):
        if relative not in named:
            _move(folder.path, relative, f"{target}/{relative}")
            moved.append({"file": relative, "kept_at": f"{target}/{relative}"})
        elif _split_file(folder.path, relative, plan, f"{target}/{relative}"):
            moved.append({"file": relative, "kept_at": f"{target}/{relative}"})
    return moved


def _split_file(root: Path, relative: str, plan: Plan, aside: str) -> bool:
    """A file both sides wrote, with git's conflict markers: the kept side's version
    stays, the other's goes aside. False for a file without markers."""
    path = root / relative
    data = _read(path)
    lines = data.splitlines(keepends=True)
    if not any(divergence.is_conflict_marker(line) for line in lines):
        return False
    sides = divergence.marked_sides(lines)
    if sides is None:
        return False
    ours, theirs = (b"".join(side) for side in sides)
    kept, other = (ours, theirs) if plan.kept != "theirs" else (theirs, ours)
    with store.persisting(path):
        (root / aside).parent.mkdir(parents=True, exist_ok=True)
        store.write_file_atomically(root / aside, other)
        store.write_file_atomically(path, kept)
    return True


def _move(root: Path, relative: str, to: str) -> None:
    with store.persisting(root / to):
        (root / to).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).replace(root / to)


def _rewrite(folder: store.RunFolder, lines: tuple[bytes, ...], state: RunState) -> RunState:
    """The log as one history, and a fresh checkpoint and summary of it."""
    data = b"".join(lines)
    with store.persisting(folder.events_file):
        store.write_file_atomically(folder.events_file, data)
    store.write_state(folder, {**state_to_json(state), "log_offset": len(data)})
    store.write_summary(folder, history.summary_of(state))
    return state


def _record(line: bytes) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(line)
    return record


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise PersistenceFailure(
            "ERR_PERSISTENCE", f"Could not read {path}: {error.strerror}."
        ) from None
