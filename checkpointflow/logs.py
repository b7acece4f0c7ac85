"""`cpf logs`: a run's events as short readable rows, a step attempt's captured output,
and following a running run (its events and its running steps' output) until it waits or
ends.

Besides one row per event, the rows say when a step started (its command began, after any
retry backoff) and when a wait began: those are not events in the log, they follow from
replaying it, and carry the `seq` of the event they follow.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from checkpointflow import history, store
from checkpointflow.errors import CpfError, ValidationFailure
from checkpointflow.interpreter import advance
from checkpointflow.live_output import LiveOutput
from checkpointflow.model import Workflow
from checkpointflow.state import (
    RUNNING,
    Effect,
    RunCommand,
    RunState,
    SendRequest,
    event_from_record,
    flight,
)
from checkpointflow.timestamps import from_millis, to_millis

Row = dict[str, Any]
STARTED, WAITING = "step_started", "waiting"  # rows that follow from the log
DEFAULT_MAX_BYTES = 64 * 1024
POLL_SECONDS = 0.2
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_-]{0,127}(?:\[\d{1,9}\])*"
_STEP_ID = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT}){{0,31}}")  # a step key: deploy_all[2].confirm
_OUTPUT_SPEC = re.compile(r"(?P<step>[^:]+)(?::(?P<attempt>\d+))?")


class Narrator:
    """Replays a log record by record, to tell which step each event belongs to, which
    steps it started and which waits it began."""

    def __init__(self, workflow: Workflow | None) -> None:
        self.workflow = workflow
        self.state: RunState | None = None
        self.commands: dict[str, RunCommand] = {}  # running attempts (build#2) and commands

    def rows(self, record: dict[str, Any]) -> list[Row]:
        """The event's row, then the rows of the steps it started and the waits it began."""
        payload = record.get("payload") or {}
        step_id = payload.get("step_id") or payload.get("wait_id")
        if step_id is None and self.state is not None and record.get("type") != "run_started":
            step_id = self.state.current_step_id
        before = _wait_names(self.state)
        work = self._advance(record)
        row = {
            "seq": record.get("seq"),
            "type": record.get("type"),
            "at": record.get("at"),
            "step_id": step_id,
            "actor": payload.get("actor"),
            "summary": describe(record.get("type"), payload),
        }
        return [row, *self._started(record, work), *self._waiting(record, before)]

    def _advance(self, record: dict[str, Any]) -> tuple[Effect, ...]:
        if self.workflow is None:
            return ()
        try:
            self.state, work = advance(self.workflow, self.state, event_from_record(record))
        except (CpfError, KeyError, TypeError):
            self.workflow = None  # cannot follow the log further; rows keep their payloads
            return ()
        running = self.state.in_flight
        self.commands = {name: c for name, c in self.commands.items() if name in running}
        return work

    def _started(self, record: dict[str, Any], work: tuple[Effect, ...]) -> list[Row]:
        rows = []
        for effect in work:
            if not isinstance(effect, RunCommand | SendRequest):
                continue
            if isinstance(effect, RunCommand):
                self.commands[flight(effect.step_id, effect.attempt)] = effect
            backoff = f" after {effect.delay_seconds:g}s backoff" if effect.delay_seconds else ""
            at = _later(record.get("at"), effect.delay_seconds)
            summary = f"attempt {effect.attempt} started{backoff}"
            rows.append(_derived(record, STARTED, at, effect.step_id, summary))
        return rows

    def _waiting(self, record: dict[str, Any], before: set[tuple[str, str]]) -> list[Row]:
        rows = []
        for wait in self.state.waits if self.state is not None else ():
            if _wait_name(wait) in before:
                continue
            until = f" until {wait['deadline']}" if wait.get("deadline") else ""
            summary = f"waiting for event {wait['event_name']} from {wait['audience']}{until}"
            at = wait.get("since") or record.get("at")
            rows.append(_derived(record, WAITING, at, wait["wait_id"], summary))
        return rows


def _derived(record: dict[str, Any], kind: str, at: Any, step_id: str, summary: str) -> Row:
    return {
        "seq": record.get("seq"),
        "type": kind,
        "at": at,
        "step_id": step_id,
        "actor": None,
        "summary": summary,
    }


def _wait_names(state: RunState | None) -> set[tuple[str, str]]:
    return {_wait_name(wait) for wait in state.waits} if state is not None else set()


def _wait_name(wait: dict[str, Any]) -> tuple[str, str]:
    """A wait by its id and token: a step waiting again (a loop) is a new wait."""
    return wait["wait_id"], str(wait.get("token") or wait.get("since"))


def _later(at: Any, seconds: float) -> Any:
    if not seconds or not isinstance(at, str):
        return at
    try:
        return from_millis(to_millis(at) + round(seconds * 1000))
    except ValueError:
        return at


def describe(kind: Any, payload: dict[str, Any]) -> str:
    """One short line about an event."""
    if kind == "run_started":
        version = f" {payload['workflow_version']}" if payload.get("workflow_version") else ""
        return f"started {payload.get('workflow_id')}{version} with inputs {_short(payload.get('inputs'))}"
    if kind == "step_finished":
        return f"attempt {payload.get('attempt')}: {_attempt_outcome(payload)}"
    if kind == "event_received":
        queued = payload.get("queued")
        was = f" (queued at {queued.get('at')})" if isinstance(queued, dict) else ""
        return f"event {payload.get('event_name')}{was}: {_short(payload.get('input'))}"
    if kind == "answer_stale":
        return (
            f"queued answer to {payload.get('wait_id')} not applied ({payload.get('code')}): "
            f"{_short(payload.get('input'))}"
        )
    if kind == "history_merged":
        return (
            f"kept {payload.get('kept')}; the other history's {len(payload.get('events') or [])} "
            f"events and {len(payload.get('files') or [])} files recorded here"
        )
    if kind == "run_cancelled":
        return f"cancelled: {payload['reason']}" if payload.get("reason") else "cancelled"
    if kind == "run_recovered":
        return f"attempt {payload.get('attempt')} interrupted: the process running it died"
    if kind == "run_interrupted":
        stopped = ", ".join(str(attempt.get("step_id")) for attempt in payload.get("attempts", []))
        return f"{payload.get('signal')} stopped cpf; stopped step {stopped or '(none)'}"
    return _short(payload)


def _attempt_outcome(payload: dict[str, Any]) -> str:
    took = f" in {payload.get('duration_ms')} ms" if payload.get("duration_ms") is not None else ""
    if payload.get("failure_code") == "ERR_CANCELLED":
        return "stopped before it started: its outcome was no longer needed"
    if payload.get("failure"):
        return f"could not start: {payload['failure']}"
    if payload.get("timed_out"):
        return f"timed out{took}"
    outcome = f"exit {payload.get('exit_code')}{took}"
    if payload.get("output_problem"):
        outcome += f"; stdout {payload['output_problem']}"
    return outcome


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_line(row: Row) -> str:
    """A row as a line; rows that are not events in the log show no sequence number."""
    actor = f" (by {row['actor']})" if row.get("actor") else ""
    seq = "" if row["type"] in (STARTED, WAITING) else row["seq"]
    return (
        f"{seq:>5}  {row['at']}  {row['type']:<15} {row['step_id'] or '-':<20} "
        f"{row['summary']}{actor}"
    )


def narrator_for(root: Path, folder: store.RunFolder) -> Narrator:
    try:
        return Narrator(history.snapshot_workflow(root, folder))
    except CpfError:
        return Narrator(None)


# --- captured output ------------------------------------------------------------------


@attrs.frozen(slots=False)
class OutputRequest:
    step_id: str
    attempt: int | None  # None: the latest attempt


def parse_output_spec(spec: str, attempt: int | None) -> OutputRequest:
    """`STEP` or `STEP:N` (or `STEP` with --attempt N)."""
    match = _OUTPUT_SPEC.fullmatch(spec)
    if match is None or not _STEP_ID.fullmatch(match["step"]):
        raise ValidationFailure(
            "ERR_USAGE",
            f"--output {spec!r} is not a step id or key (build, deploy_all[2].confirm), "
            "optionally with an attempt number (build:2).",
        )
    if match["attempt"] and attempt is not None and int(match["attempt"]) != attempt:
        raise ValidationFailure("ERR_USAGE", f"--output {spec} and --attempt {attempt} disagree.")
    number = int(match["attempt"]) if match["attempt"] else attempt
    return OutputRequest(match["step"], number)


def step_output(folder: store.RunFolder, request: OutputRequest, max_bytes: int) -> Row:
    """The captured stdout and stderr of one attempt: at most the last `max_bytes` of each.
    A stream the attempt printed nothing on has no file: it reads as empty, path null."""
    logged = logged_attempts(folder, request.step_id)
    attempt = request.attempt or latest_attempt(folder, request.step_id, logged)
    stdout, stderr = folder.output_files(request.step_id, attempt)
    found = (folder.path / stdout).is_file() or (folder.path / stderr).is_file()
    if not found and attempt not in logged:
        raise ValidationFailure(
            "ERR_OUTPUT_NOT_FOUND",
            f"Run {folder.run_id} has no captured output for step {request.step_id} attempt "
            f"{attempt} (in {folder.path / 'steps'}). `cpf logs --run-id {folder.run_id}` "
            "lists the attempts.",
        )
    return {
        "step_id": request.step_id,
        "attempt": attempt,
        "stdout": _captured(folder.path / stdout, max_bytes),
        "stderr": _captured(folder.path / stderr, max_bytes),
    }


def latest_attempt(folder: store.RunFolder, step_id: str, logged: set[int]) -> int:
    """The highest attempt number that ended (in the log) or has captured output (one
    still running), 0 when there is none."""
    numbers = [
        int(path.stem)
        for path in (folder.path / "steps" / store.step_folder(step_id)).glob("*.std*")
        if path.stem.isdigit()
    ]
    return max([*numbers, *logged], default=0)


def logged_attempts(folder: store.RunFolder, step_id: str) -> set[int]:
    """The attempt numbers of a step that the log records as ended. Only the lines that
    name the step are parsed, so this costs one pass over the bytes of the log."""
    try:
        data = folder.events_file.read_bytes()
    except OSError:
        return set()
    needle = json.dumps(step_id, ensure_ascii=False).encode()
    numbers: set[int] = set()
    start = data.find(needle)
    while start >= 0:
        begin, end = data.rfind(b"\n", 0, start) + 1, data.find(b"\n", start)
        if end < 0:
            break  # a torn last line
        numbers.update(_attempts_in(data[begin:end], step_id))
        start = data.find(needle, end)
    return numbers


def _attempts_in(line: bytes, step_id: str) -> list[int]:
    try:
        payload = json.loads(line).get("payload") or {}
    except (ValueError, AttributeError):
        return []
    ended = [payload, *payload.get("attempts", [])]  # run_interrupted lists several
    return [
        attempt["attempt"]
        for attempt in ended
        if isinstance(attempt, dict)
        and attempt.get("step_id") == step_id
        and isinstance(attempt.get("attempt"), int)
    ]


def _captured(path: Path, max_bytes: int) -> Row:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return {"path": None, "bytes": 0, "text": "", "truncated": False}
    except OSError as error:
        raise ValidationFailure(
            "ERR_FILE_NOT_FOUND", f"{path} cannot be read: {error.strerror}."
        ) from None
    text = data.decode("utf-8", errors="replace")
    return {"path": str(path), "bytes": size, "text": text, "truncated": size > max_bytes}


# --- following ------------------------------------------------------------------------


def follow(
    folder: store.RunFolder,
    narrator: Narrator,
    timeout: float,
    emit: Callable[[Row], None],
    output: LiveOutput,
    step_id: str | None = None,
) -> tuple[list[Row], str | None]:
    """Every row of the run's log, each emitted as it comes, with the output of the steps
    (of `step_id`, if given) running meanwhile, until the run stops running; and why it
    stopped early (no process advancing the run, or the timeout), if it did."""
    rows: list[Row] = []
    followed = RunningSteps(folder, narrator, output, step_id)
    deadline = time.monotonic() + timeout
    offset = 0
    try:
        while True:
            advancing = store.is_locked(folder)  # before reading: its last events are in
            records, offset = store.read_events(folder, offset)
            for record in records:
                found = narrator.rows(record)
                followed.catch_up()  # the output of the steps this event ended, before it
                for row in found:
                    rows.append(row)
                    emit(row)
                followed.catch_up()  # the steps it started
            output.poll()
            if narrator.state is None or narrator.state.status != RUNNING:
                return rows, None
            if not advancing:
                return rows, f"No process is advancing run {folder.run_id}; stopped following."
            if time.monotonic() >= deadline:
                return rows, f"Stopped following after {timeout:g} s; the run is still running."
            time.sleep(POLL_SECONDS)
    finally:
        followed.close()


class RunningSteps:
    """Follows the output files of every command the run has running, as the log says."""

    def __init__(
        self, folder: store.RunFolder, narrator: Narrator, output: LiveOutput, step_id: str | None
    ) -> None:
        self.folder = folder
        self.narrator = narrator
        self.output = output
        self.step_id = step_id
        self.names: set[str] = set()

    def catch_up(self) -> None:
        """Finish the attempts that ended (showing the rest of their output), follow the
        ones that began."""
        running = {
            name: command
            for name, command in self.narrator.commands.items()
            if self.step_id is None or command.step_id == self.step_id
        }
        for name in sorted(self.names - running.keys()):
            self.output.finish(name)
        for name in sorted(running.keys() - self.names):
            command = running[name]
            files = self.folder.output_files(command.step_id, command.attempt)
            paths = tuple(self.folder.path / file for file in files)
            secrets = tuple(os.environ.get(secret, "") for secret in command.secrets)
            self.output.follow(name, command.step_id, paths, secrets)
        self.names = set(running)

    def close(self) -> None:
        for name in sorted(self.names):
            self.output.finish(name)
        self.names = set()
