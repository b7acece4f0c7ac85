"""`cpf verify`: check that a run folder is whole and tells one consistent story.

events.jsonl must be whole JSON lines with consecutive `seq` (a log that holds two
histories, as a git merge leaves it, is described side by side); replaying its first `seq`
records must give state.json exactly, and `log_offset` must be where record `seq` ends;
state.json must match its checksum; workflow.yaml must be the bytes the run started with;
every output file the state refers to must exist, and every output file under steps/ must
be one an event accounts for. Every problem names the file, says what is wrong and how to
fix it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import attrs

from checkpointflow import divergence, history, json_schema, store
from checkpointflow.errors import CpfError
from checkpointflow.inbox import Inbox
from checkpointflow.model import Workflow
from checkpointflow.state import (
    EVENT_TYPES,
    OLDER_STATE_SCHEMAS,
    RunState,
    event_from_record,
    flight_parts,
    state_to_json,
)

REBUILD = (
    "move state.json aside: `cpf status` rebuilds it from events.jsonl (the log is the record)"
)


@attrs.frozen(slots=False)
class Problem:
    file: str
    what: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "problem": self.what, "fix": self.fix}


@attrs.frozen(slots=False)
class Log:
    """The records of events.jsonl and the byte offset after each of them."""

    records: tuple[dict[str, Any], ...]
    ends: tuple[int, ...]
    torn_tail: bool


@attrs.frozen(slots=False)
class Report:
    run_id: str
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "ok": not self.problems,
            "problems": [problem.to_json() for problem in self.problems],
            "notes": list(self.notes),
        }


def verify(root: Path, folder: store.RunFolder) -> Report:
    """Every problem found in one run folder."""
    problems: list[Problem] = []
    log = read_log(folder, problems)
    state = read_checkpoint(folder, problems)
    workflow = read_snapshot(root, folder, state, log, problems)
    whole = None
    if workflow is not None and log is not None:
        whole = check_replay(root, folder, log, state, problems)
    if state is not None:
        check_seal(folder, problems)
        check_outputs(folder, state, problems)
    if whole is not None and log is not None:
        check_accounted(folder, log, whole, problems)
    notes = (
        ("events.jsonl ends in a torn line (a write cut short); it is dropped on the next resume.",)
        if log is not None and log.torn_tail
        else ()
    )
    return Report(folder.run_id, tuple(problems), notes + queued_note(folder))


def queued_note(folder: store.RunFolder) -> tuple[str, ...]:
    """Answers waiting in the run's inbox are not a problem: the next command folds them."""
    count = len(Inbox(folder).names())
    if not count:
        return ()
    return (
        f"{count} answer(s) queued in inbox/ while the run was busy; the process advancing "
        "it, or the next command that takes it (status, resume, recover), folds them in.",
    )


def read_log(folder: store.RunFolder, problems: list[Problem]) -> Log | None:
    """The log's records, each line checked: whole JSON, a known type, the next `seq`."""
    name = str(folder.events_file)
    try:
        data = folder.events_file.read_bytes()
    except OSError as error:
        problems.append(
            Problem(name, f"cannot be read ({error.strerror})", "restore it from a copy of the run")
        )
        return None
    records: list[dict[str, Any]] = []
    ends: list[int] = []
    position = 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        position += len(line)
        if not line.endswith(b"\n"):
            return Log(tuple(records), tuple(ends), torn_tail=True)
        record = _record(line)
        problem = _line_problem(record, len(records) + 1)
        if problem:
            problems.append(_log_problem(folder, data, f"line {number}: {problem}"))
            return None
        records.append(record or {})
        ends.append(position)
    if not records:
        problems.append(Problem(name, "holds no events", "restore the log from a copy of the run"))
        return None
    return Log(tuple(records), tuple(ends), torn_tail=False)


_LOG_FIX = "the log was edited or damaged; restore events.jsonl from a copy of the run"


def _log_problem(folder: store.RunFolder, data: bytes, found: str) -> Problem:
    """A log whose lines are wrong: two histories side by side when that is what it
    holds, else the first line that is wrong."""
    split = divergence.split_log(data)
    if split is None:
        return Problem(str(folder.events_file), found, _LOG_FIX)
    return Problem(
        str(folder.events_file),
        divergence.describe(split),
        f"`cpf reconcile --run-id {folder.run_id} --keep ours` (or `--keep theirs`) keeps "
        "one history and records the other's events and output files in a history_merged "
        "event",
    )


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def _line_problem(record: dict[str, Any] | None, expected_seq: int) -> str | None:
    if record is None:
        return "is not a JSON object"
    if record.get("type") not in EVENT_TYPES:
        return f"has an unknown event type {record.get('type')!r}"
    if record.get("seq") != expected_seq:
        return f"has seq {record.get('seq')!r} where {expected_seq} was expected"
    return None


def read_checkpoint(folder: store.RunFolder, problems: list[Problem]) -> dict[str, Any] | None:
    """state.json as JSON, checked against its schema; None when absent or damaged."""
    name = str(folder.state_file)
    try:
        state = store.read_state(folder, sealed_only=False)
    except CpfError as error:
        problems.append(Problem(name, error.message, REBUILD))
        return None
    if state is None:
        return None
    message = json_schema.problem(json_schema.packaged("state.schema.json"), state, "state.json")
    if message is not None:
        problems.append(Problem(name, f"does not match the state schema: {message}", REBUILD))
        return None
    if state["run_id"] != folder.run_id:
        problems.append(
            Problem(
                name,
                f"names run {state['run_id']!r}, not its folder's {folder.run_id!r}",
                "rename the folder to the run id in state.json, or restore state.json",
            )
        )
    return state


def read_snapshot(
    root: Path,
    folder: store.RunFolder,
    state: dict[str, Any] | None,
    log: Log | None,
    problems: list[Problem],
) -> Workflow | None:
    """The workflow snapshot, checked against the digest the run recorded."""
    name = str(folder.workflow_file)
    try:
        data = folder.workflow_file.read_bytes()
    except OSError as error:
        problems.append(
            Problem(
                name,
                f"cannot be read ({error.strerror})",
                "restore the workflow file the run started with",
            )
        )
        return None
    expected = _recorded_digest(state, log)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        problems.append(
            Problem(
                name,
                "differs from the workflow the run started with (its sha256 does not "
                "match workflow_sha256 in state.json)",
                "restore the original workflow.yaml; "
                "a run must continue with the workflow it started with",
            )
        )
        return None
    try:
        return history.workflow_from_bytes(root, data, name, folder)
    except CpfError as error:
        problems.append(
            Problem(
                name,
                f"is not a valid workflow: {error.message}",
                "restore the original workflow.yaml",
            )
        )
        return None


def _recorded_digest(state: dict[str, Any] | None, log: Log | None) -> str | None:
    if state is not None:
        return str(state["workflow_sha256"])
    if log is not None and log.records:
        digests = [record.get("payload", {}).get("workflow_sha256") for record in log.records]
        latest = next((digest for digest in reversed(digests) if digest), None)
        return str(latest) if latest else None  # a retry --workflow switches it
    return None


def check_replay(
    root: Path,
    folder: store.RunFolder,
    log: Log,
    state: dict[str, Any] | None,
    problems: list[Problem],
) -> RunState | None:
    """The log replays without error, and its first `seq` records give state.json;
    returns the state the whole log gives."""
    try:
        events = [event_from_record(record) for record in log.records]
        whole = history.fold(root, folder, events)
    except (CpfError, KeyError, TypeError, ValueError) as error:
        problems.append(Problem(str(folder.events_file), f"does not replay: {error}", _LOG_FIX))
        return None
    if whole.run_id != folder.run_id:
        problems.append(
            Problem(
                str(folder.events_file),
                f"is the log of run {whole.run_id!r}, not {folder.run_id!r}",
                _LOG_FIX,
            )
        )
    if state is not None:
        check_checkpoint(root, folder, log, events, state, problems, whole)
    return whole


def check_checkpoint(
    root: Path,
    folder: store.RunFolder,
    log: Log,
    events: list[Any],
    state: dict[str, Any],
    problems: list[Problem],
    whole: RunState | None = None,
) -> None:
    """state.json is the replay of the first `seq` records, and says where record `seq` ends.
    `whole`, when known, is the replay of every record (not computed again)."""
    name = str(folder.state_file)
    if state.get("schema_version") in OLDER_STATE_SCHEMAS:
        return  # an older checkpoint format, not compared: readers rebuild it from the log
    stored = {key: value for key, value in state.items() if key != "log_offset"}
    seq = stored["seq"]
    if seq > len(events):
        problems.append(
            Problem(
                name, f"is at seq {seq} but events.jsonl has only {len(events)} records", REBUILD
            )
        )
        return
    if whole is not None and seq == len(events):
        replayed = whole
    else:
        replayed = history.fold(root, folder, events[:seq])
    if state_to_json(replayed) != stored:
        problems.append(
            Problem(
                name, f"differs from the replay of the first {seq} records of events.jsonl", REBUILD
            )
        )
    if state["log_offset"] != log.ends[seq - 1]:
        problems.append(
            Problem(
                name,
                f"log_offset is {state['log_offset']} but record {seq} of events.jsonl "
                f"ends at byte {log.ends[seq - 1]}",
                REBUILD,
            )
        )


def check_seal(folder: store.RunFolder, problems: list[Problem]) -> None:
    """state.json matches the checksum it was written with."""
    try:
        store.read_state(folder)
    except CpfError as error:
        problems.append(Problem(str(folder.state_file), error.message, REBUILD))


def check_outputs(folder: store.RunFolder, state: dict[str, Any], problems: list[Problem]) -> None:
    """Every captured output file the state refers to is in the run folder."""
    for step_id, record in state["steps"].items():
        for attempt in record.get("attempts", []):
            for relative in _captured_files(attempt):
                if not (folder.path / relative).is_file():
                    problems.append(
                        Problem(
                            str(folder.path / relative),
                            f"is missing (output of step {step_id} attempt {attempt.get('attempt')})",
                            "restore the steps/ folder from a copy of the run",
                        )
                    )


def _captured_files(attempt: dict[str, Any]) -> list[str]:
    """The files an attempt names; an empty name means it has none (an api step keeps the
    response body as `stdout` and has no `stderr`)."""
    names = (attempt.get("stdout"), attempt.get("stderr"))
    return [name for name in names if isinstance(name, str) and name]


OUTPUT_NAME = re.compile(r"[0-9]+\.(stdout|stderr)")


def check_accounted(
    folder: store.RunFolder, log: Log, whole: RunState, problems: list[Problem]
) -> None:
    """Every output file under steps/ is named by an event, or belongs to an attempt in
    flight: any other is the trace of a history this log does not hold (a copy of the
    run that went its own way and was merged in), or of a hand-made file."""
    named = {name for record in log.records for name in named_files(record)}
    for entry in whole.in_flight:
        named.update(folder.output_files(*flight_parts(entry)))
    for relative in output_files_under(folder):
        if relative not in named:
            problems.append(
                Problem(
                    str(folder.path / relative),
                    "is an output file that no event of events.jsonl accounts for: it "
                    "was left by a history this log does not hold (a copy of the run "
                    "merged in by git keeps its files but not its events)",
                    f"`cpf reconcile --run-id {folder.run_id}` records it in a "
                    "history_merged event; or delete it if it is not a step's output",
                )
            )


def output_files_under(folder: store.RunFolder) -> list[str]:
    """Captured output files under steps/ (relative to the run folder), in order."""
    steps = folder.path / "steps"
    if not steps.is_dir():
        return []
    found = (
        f"steps/{child.parent.name}/{child.name}"
        for child in steps.glob("*/*")
        if OUTPUT_NAME.fullmatch(child.name) and child.is_file()
    )
    return sorted(found)


def named_files(record: dict[str, Any]) -> list[str]:
    """The output files an event record names."""
    payload = record.get("payload")
    if not isinstance(payload, dict):
        return []
    items = [payload, *(payload.get("attempts") or [])]
    names = [item.get(key) for item in items for key in ("stdout", "stderr", "body_file")]
    for kept in payload.get("files") or []:  # a history_merged event
        names += [kept.get("file"), kept.get("kept_at")]
    return [name for name in names if isinstance(name, str) and name]
