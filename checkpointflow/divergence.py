"""Telling a whole run folder from a damaged one, and one history from two.

A run folder may travel through git. Two copies that each moved on and were merged can
leave git's conflict markers in `events.jsonl`, two runs of `seq` joined end to end (a
union merge), or a `state.json` that checkpoints another history than the log. Readers
meet these through the store and answer with one error that names `cpf verify`; verify
and `cpf reconcile` use the same words. No I/O here.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from checkpointflow.errors import PersistenceFailure

MARKERS = (b"<<<<<<<", b"|||||||", b"=======", b">>>>>>>")


def is_conflict_marker(line: bytes) -> bool:
    """Whether a line is one git writes around a conflict (`<<<<<<< HEAD`, `=======`...)."""
    return any(line.startswith(marker) for marker in MARKERS) and (
        len(line.rstrip(b"\r\n")) == 7 or line[7:8] == b" "
    )


def diverged(run_id: str, what: str) -> PersistenceFailure:
    """The run folder holds two histories; reading on would mix or lose one of them."""
    return PersistenceFailure(
        "ERR_RUN_DIVERGED",
        f"Run {run_id} holds two histories: {what}. Two copies of the run folder that each "
        f"moved on were joined (a git merge, say); nothing was changed. "
        f"`cpf verify --run-id {run_id}` shows both, and `cpf reconcile --run-id {run_id} "
        "--keep ours` (or `--keep theirs`) keeps one and records what the other did.",
    )


def damaged(run_id: str, what: str) -> PersistenceFailure:
    """The log is not a sequence of whole records; nothing can be read from it safely."""
    return PersistenceFailure(
        "ERR_RUN_DAMAGED",
        f"Run {run_id}'s events.jsonl is damaged: {what}; nothing was changed. "
        f"`cpf verify --run-id {run_id}` says what is wrong and how to fix it.",
    )


def bad_line(run_id: str, line: bytes, offset: int) -> PersistenceFailure:
    """A whole line of the log that is not a record."""
    if is_conflict_marker(line):
        shown = line[:7].decode()
        return diverged(run_id, f"events.jsonl has git's conflict marker {shown} at byte {offset}")
    return damaged(run_id, f"the line at byte {offset} is not an event record")


def out_of_order(run_id: str, expected: int, found: int, offset: int) -> PersistenceFailure:
    """A record whose seq does not follow the one before it."""
    if found < expected:
        return diverged(
            run_id,
            f"events.jsonl counts again from seq {found} at byte {offset}, after seq "
            f"{expected - 1} (two logs joined end to end, as a union merge does)",
        )
    return damaged(run_id, f"seq {found} at byte {offset} follows seq {expected - 1}")


def checkpoint_problem(state: Any, record: dict[str, Any] | None) -> str | None:
    """Why a checkpoint (state.json) does not belong to the log: the record that ends where
    the checkpoint says its last event ends must be that event (same seq, same time)."""
    if record is None:
        return "no whole event record of events.jsonl ends where state.json says its last one does"
    if record.get("seq") != state.seq or record.get("at") != state.updated_at:
        return (
            f"state.json is the checkpoint of event {state.seq} at {state.updated_at}, but "
            f"events.jsonl has event {record.get('seq')} at {record.get('at')} there"
        )
    return None


# --- telling the two histories apart ---------------------------------------------------


@attrs.frozen(slots=False)
class Split:
    """A log that holds two histories: the records both share, then each one's own.
    `ours` is the side git calls ours (HEAD, the first of a union merge)."""

    how: str  # "conflict markers" or "union merge"
    shared: tuple[bytes, ...]
    ours: tuple[bytes, ...]
    theirs: tuple[bytes, ...]

    def side(self, name: str) -> tuple[bytes, ...]:
        return self.ours if name == "ours" else self.theirs


def split_log(data: bytes) -> Split | None:
    """The two histories of a merged log; None when it is not two histories that each
    count seq 1, 2, 3... and share a beginning (it is whole, or damaged otherwise)."""
    lines = [line if line.endswith(b"\n") else line + b"\n" for line in data.splitlines(True)]
    if any(is_conflict_marker(line) for line in lines):
        sides, how = marked_sides(lines), "conflict markers"
    else:
        sides, how = _joined_sides(lines), "union merge"
    if sides is None or not all(_counts_up(side) for side in sides):
        return None
    ours, theirs = sides
    shared = 0
    while shared < min(len(ours), len(theirs)) and ours[shared] == theirs[shared]:
        shared += 1
    if shared == 0 or shared == len(ours) == len(theirs):
        return None
    return Split(how, tuple(ours[:shared]), tuple(ours[shared:]), tuple(theirs[shared:]))


def marked_sides(lines: list[bytes]) -> tuple[list[bytes], list[bytes]] | None:
    """Both versions of a file with conflict markers: outside the markers lines belong
    to both; `|||||||` (diff3) starts the base's lines, which belong to neither."""
    ours: list[bytes] = []
    theirs: list[bytes] = []
    where = "both"
    for line in lines:
        marker = line[:7] if is_conflict_marker(line) else None
        following = {b"<<<<<<<": "ours", b"|||||||": "base", b"=======": "theirs"}
        if marker == b">>>>>>>":
            where = "both"
        elif marker is not None:
            where = following[marker]
        else:
            if where in ("both", "ours"):
                ours.append(line)
            if where in ("both", "theirs"):
                theirs.append(line)
    return (ours, theirs) if where == "both" else None


def _joined_sides(lines: list[bytes]) -> tuple[list[bytes], list[bytes]] | None:
    """Two logs joined end to end past a shared beginning (git's union merge): where seq
    goes back, the second begins; it shares the first's records before its first seq."""
    seqs = [_seq(line) for line in lines]
    backs = [i for i in range(1, len(seqs)) if (seqs[i] or 0) <= (seqs[i - 1] or 0)]
    if len(backs) != 1 or None in seqs:
        return None
    cut = backs[0]
    first = seqs[cut] or 0
    return lines[:cut], lines[: first - 1] + lines[cut:]


def _seq(line: bytes) -> int | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if isinstance(seq, int) else None


def _counts_up(lines: list[bytes]) -> bool:
    return [_seq(line) for line in lines] == list(range(1, len(lines) + 1))


def describe(split: Split) -> str:
    """What each history did after the events they share, in a line for people."""
    shared = len(split.shared)
    both = "event 1" if shared == 1 else f"events 1 to {shared}"
    return (
        f"events.jsonl holds two histories ({split.how}): both have {both}, then ours "
        f"has {_story(split.ours)} and theirs has {_story(split.theirs)}"
    )


def _story(lines: tuple[bytes, ...], shown: int = 4) -> str:
    records = [json.loads(line) for line in lines]
    named = [_named(record) for record in records[:shown]]
    more = f", ... ({len(records)} in all)" if len(records) > shown else ""
    return f"{len(records)} event{'s' if len(records) != 1 else ''} ({', '.join(named)}{more})"


def _named(record: dict[str, Any]) -> str:
    payload = record.get("payload") or {}
    what = payload.get("step_id") or payload.get("event_name") or ""
    actor = f" by {payload['actor']}" if payload.get("actor") else ""
    return f"{record.get('type')} {what}{actor}".replace("  ", " ").strip()
