"""The store: one plain folder per run under the state root. Nothing else knows the layout.

    <root>/runs/<run_id>/
        state.json     checkpoint of the run, replaced atomically
        events.jsonl   append-only log, one JSON object per line
        workflow.yaml  byte copy of the workflow document the run started from
        steps/<step_id>/<attempt>.stdout|.stderr
        lock           target of flock, held by the one process advancing the run

Every write that can fail becomes `ERR_PERSISTENCE` (exit 60) with the path and the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from checkpointflow import divergence
from checkpointflow.errors import LockConflict, PersistenceFailure, ValidationFailure

EVENT_SCHEMA = "checkpointflow-event/v1"
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
STATE_FILE = "state.json"
EVENTS_FILE = "events.jsonl"
WORKFLOW_FILE = "workflow.yaml"
SUMMARY_FILE = "summary.json"


def state_root() -> Path:
    """`CHECKPOINTFLOW_BASE_DIR`, or `~/.checkpointflow`."""
    configured = os.environ.get("CHECKPOINTFLOW_BASE_DIR")
    return Path(configured) if configured else Path.home() / ".checkpointflow"


def durable() -> bool:
    """fsync every write unless `CHECKPOINTFLOW_FSYNC=0` trades durability for speed."""
    return os.environ.get("CHECKPOINTFLOW_FSYNC", "1") != "0"


def new_run_id(now: datetime) -> str:
    """Sorts by start time, is safe as a file name, and cannot collide in practice."""
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{os.urandom(5).hex()}"


@attrs.frozen(slots=False)
class RunFolder:
    run_id: str
    path: Path

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def events_file(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def workflow_file(self) -> Path:
        return self.path / WORKFLOW_FILE

    def process_file(self, step_id: str, attempt: int) -> Path:
        """Holds the process group id of an attempt while it runs."""
        return self.path / "steps" / step_folder(step_id) / f"{attempt}.pid"

    def output_files(self, step_id: str, attempt: int) -> tuple[str, str]:
        """Paths, relative to the run folder, of one attempt's captured stdout and stderr."""
        folder = step_folder(step_id)
        return f"steps/{folder}/{attempt}.stdout", f"steps/{folder}/{attempt}.stderr"

    def scratch_files(self, step_id: str, attempt: int) -> tuple[Path, Path]:
        """Where an attempt's stdout and stderr are written first: beside the step folders,
        so that a quick command printing nothing costs no folder (see `place_output`)."""
        name = f".{step_folder(step_id)}.{attempt}"
        return self.path / "steps" / f"{name}.stdout", self.path / "steps" / f"{name}.stderr"


MAX_FOLDER_NAME = 200  # bytes; file systems allow 255


def step_folder(key: str) -> str:
    """The folder under steps/ for a step key: the key itself, or, for a key too long to
    be a file name (deep nesting of long ids), its start and a digest of the whole."""
    if len(key.encode()) <= MAX_FOLDER_NAME:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key.encode()[:120].decode(errors='ignore')}~{digest}"


def _runs_dir(root: Path) -> Path:
    return root / "runs"


def create_run(root: Path, run_id: str, workflow_bytes: bytes) -> RunFolder:
    """Make the folder of a new run and put the workflow snapshot in it."""
    folder = RunFolder(run_id, _runs_dir(root) / run_id)
    with persisting(folder.path):
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(20, "the state root is not a folder", str(root))
        _runs_dir(root).mkdir(parents=True, exist_ok=True)
        folder.path.mkdir()
        write_file_atomically(folder.workflow_file, workflow_bytes)
        (folder.path / ".gitattributes").write_bytes(GIT_ATTRIBUTES)
    return folder


# A run folder committed to git: a merge of two copies that each moved on keeps both logs
# (even with -X ours or -X theirs), so `cpf` finds the two histories instead of silently
# reading one of them; `cpf reconcile` then keeps one and records the other.
GIT_ATTRIBUTES = b"events.jsonl merge=union\n"


def require_id_shape(run_id: str) -> None:
    """Refuse text that is not shaped like a run id, so it is never used as a path."""
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValidationFailure(
            "ERR_RUN_NOT_FOUND",
            f"No run with id {run_id[:200]!r}: run ids are letters, digits, '_' and '-'.",
        )


def find_run(root: Path, run_id: str) -> RunFolder:
    """The folder of an existing run; an id that is not a valid id is never used as a path."""
    require_id_shape(run_id)
    folder = RunFolder(run_id, _runs_dir(root) / run_id)
    if not (folder.events_file.is_file() or folder.state_file.is_file()):
        raise ValidationFailure(
            "ERR_RUN_NOT_FOUND",
            f"No run with id {run_id!r} under {_runs_dir(root)}. "
            "Check the id and CHECKPOINTFLOW_BASE_DIR.",
        )
    return folder


@contextlib.contextmanager
def persisting(path: Path) -> Iterator[None]:
    """Turn any OS error while touching `path` into ERR_PERSISTENCE."""
    try:
        yield
    except OSError as error:
        where = error.filename or path
        reason = error.strerror or str(error)
        raise PersistenceFailure(
            "ERR_PERSISTENCE",
            f"Could not write {where}: {reason}. "
            "Check that the state root (CHECKPOINTFLOW_BASE_DIR) is a writable folder with space.",
        ) from None


@contextlib.contextmanager
def locked(folder: RunFolder) -> Iterator[None]:
    """Hold the run's lock for the block; a second writer gets ERR_LOCK_CONFLICT at once."""
    with persisting(folder.path):
        descriptor = os.open(folder.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockConflict(folder.run_id) from None
        yield
    finally:
        os.close(descriptor)


def note_process_group(path: Path, group: int) -> None:
    """Remember a running step's process group for `recover`; best effort, no fsync (a
    full disk must not stop a step that has already started)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:
        return
    try:
        os.write(descriptor, f"{group}\n".encode())
    except OSError:
        pass
    finally:
        os.close(descriptor)


def settle_output(folder: RunFolder, step_id: str, attempt: int) -> None:
    """A command that runs long writes its output in its place (steps/<key>/<n>.stdout),
    where it can be watched and where a crash leaves it; best effort, like the note of
    its process group."""
    with contextlib.suppress(OSError):
        (folder.path / "steps" / step_folder(step_id)).mkdir(exist_ok=True)
        for scratch, relative in zip(
            folder.scratch_files(step_id, attempt),
            folder.output_files(step_id, attempt),
            strict=True,
        ):
            os.replace(scratch, folder.path / relative)


def place_output(folder: RunFolder, step_id: str, attempt: int) -> tuple[str | None, str | None]:
    """Where an attempt's output stays, once the attempt is over: a stream that printed
    something ends at steps/<key>/<n>.stdout|.stderr (the paths returned, relative to the
    run folder); an empty one keeps no file (None), and an empty step folder goes too."""
    kept = []
    for scratch, relative in zip(
        folder.scratch_files(step_id, attempt), folder.output_files(step_id, attempt), strict=True
    ):
        kept.append(relative if _kept(scratch, folder.path / relative) else None)
    with contextlib.suppress(OSError):  # not there, or holds other attempts' files
        os.rmdir(folder.path / "steps" / step_folder(step_id))
    return kept[0], kept[1]


def _kept(scratch: Path, final: Path) -> bool:
    """Whether one stream printed something; it is then at `final`, else no file is left."""
    for path in (scratch, final):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if size == 0:
            path.unlink()
        else:
            if path is scratch:
                final.parent.mkdir(exist_ok=True)
                os.replace(scratch, final)
            return True
    return False


def is_locked(folder: RunFolder) -> bool:
    """Whether some process holds the run's lock right now (it is being advanced)."""
    try:
        descriptor = os.open(folder.path / "lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def write_file_atomically(path: Path, data: bytes | Iterable[bytes]) -> int:
    """Write a temp file beside `path`, flush, fsync, rename over, fsync the folder; `data`
    may come in pieces, written as they come. Returns the size written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with open(temporary, "wb") as handle:
            for piece in [data] if isinstance(data, bytes) else data:
                if path.name == STATE_FILE and not written:
                    _crash_point("state", handle, piece)
                written += handle.write(piece)
            handle.flush()
            if durable():
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    if durable():
        sync_folder(path.parent)
    return written


def sync_folder(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def dumps_pretty(data: Any) -> bytes:
    """Two-space indent, sorted keys, trailing newline: easy for cat, jq and git diff."""
    return utf8(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def utf8(text: str) -> bytes:
    """UTF-8 for JSON text; a lone surrogate (valid in JSON strings) stays a \\u escape."""
    return text.encode("utf-8", "backslashreplace")


CHECKSUM_LINE = b'\n  "checksum": "'  # a top-level key: deeper keys are indented more
BLANK_CHECKSUM = "0" * 64


def write_state(folder: RunFolder, state: dict[str, Any]) -> int:
    """Replace state.json, sealed with its own checksum; returns its size in bytes."""
    data = sealed(dumps_pretty({**state, "checksum": BLANK_CHECKSUM}))
    with persisting(folder.state_file):
        return write_file_atomically(folder.state_file, data)


def sealed(data: bytes) -> bytes:
    """The state file with its blank checksum filled in: the sha256 of the file as it is
    with the checksum blank. A file mixed from two versions (a merge) or edited by hand
    no longer matches it."""
    start = data.index(CHECKSUM_LINE) + len(CHECKSUM_LINE)
    digest = hashlib.sha256(data).hexdigest().encode()
    return data[:start] + digest + data[start + 64 :]


def seal_is_broken(data: bytes) -> bool:
    """Whether a state file carries a checksum that its content does not match (files
    written before checksums existed carry none)."""
    found = data.find(CHECKSUM_LINE)
    if found < 0:
        return False
    start = found + len(CHECKSUM_LINE)
    blank = data[:start] + BLANK_CHECKSUM.encode() + data[start + 64 :]
    return hashlib.sha256(blank).hexdigest().encode() != data[start : start + 64]


def write_summary(folder: RunFolder, summary: dict[str, Any]) -> None:
    """A small derived file for listings; rebuildable from state.json, so never fsync'd."""
    temporary = folder.path / f".summary.json.{os.getpid()}.tmp"
    with persisting(folder.path):
        temporary.write_bytes(utf8(json.dumps(summary, sort_keys=True, ensure_ascii=False) + "\n"))
        os.replace(temporary, folder.path / SUMMARY_FILE)


def read_state(folder: RunFolder, sealed_only: bool = True) -> dict[str, Any] | None:
    """The last checkpoint, or None when the run never got one (it crashed at birth).

    A checkpoint whose checksum does not match is refused like one that is not JSON
    (unless `sealed_only` is False: `verify` reads on to say more).
    """
    try:
        data = folder.state_file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise PersistenceFailure(
            "ERR_PERSISTENCE", f"Could not read {folder.state_file}: {error.strerror}."
        ) from None
    try:
        state = json.loads(data)
    except (ValueError, RecursionError):
        raise PersistenceFailure(
            "ERR_PERSISTENCE",
            f"{folder.state_file} is not valid JSON; `cpf` can rebuild it from events.jsonl "
            "if you move the damaged file aside.",
        ) from None
    if not isinstance(state, dict):
        raise PersistenceFailure("ERR_PERSISTENCE", f"{folder.state_file} is not a JSON object.")
    if sealed_only and seal_is_broken(data):
        raise PersistenceFailure(
            "ERR_PERSISTENCE",
            f"{folder.state_file} does not match its checksum (it was edited, or merged from "
            "two versions); `cpf` rebuilds the state from events.jsonl.",
        )
    state.pop("checksum", None)
    return state


class EventLog:
    """The run's append-only log, open for the length of one command."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        with persisting(folder.events_file):
            self.handle: BinaryIO = open(folder.events_file, "ab")  # noqa: SIM115
            self.offset = self.handle.seek(0, os.SEEK_END)
            self._heal_torn_tail()

    def _heal_torn_tail(self) -> None:
        """Drop a partial last line left by a crash mid-append.

        A torn record was never acknowledged (its fsync never returned), so it never
        happened; cutting it keeps every line of the log a whole JSON record.
        """
        if self.offset == 0:
            return
        with open(self.folder.events_file, "rb") as reader:
            reader.seek(max(0, self.offset - 65536))
            tail = reader.read()
        if tail.endswith(b"\n"):
            return
        end = tail.rfind(b"\n")
        if end < 0 and self.offset > len(tail):
            end = _last_newline(self.folder.events_file)
        else:
            end = self.offset - len(tail) + end
        self.handle.truncate(end + 1)
        self.handle.flush()
        if durable():
            os.fdatasync(self.handle.fileno())
        self.offset = end + 1

    def append(self, record: dict[str, Any]) -> int:
        """Append one record durably; returns the log's size after it."""
        line = utf8(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        with persisting(self.folder.events_file):
            _crash_point("append", self.handle, line)
            self.handle.write(line)
            self.handle.flush()
            if durable():
                os.fdatasync(self.handle.fileno())
        self.offset += len(line)
        return self.offset

    def close(self) -> None:
        """Every append flushed already; a failure here (a full disk after a failed append)
        only concerns bytes that were never acknowledged."""
        with contextlib.suppress(OSError):
            self.handle.close()


def _last_newline(path: Path) -> int:
    """Offset of the last newline in a file (-1 when there is none), reading backwards."""
    with open(path, "rb") as reader:
        position = reader.seek(0, os.SEEK_END)
        while position > 0:
            start = max(0, position - 65536)
            reader.seek(start)
            found = reader.read(position - start).rfind(b"\n")
            if found >= 0:
                return start + found
            position = start
    return -1


_crash_counts = {"append": 0, "state": 0}


def _crash_point(kind: str, handle: BinaryIO, data: bytes) -> None:
    """Testing hook for crash consistency: CHECKPOINTFLOW_TEST_CRASH=append:7 (or state:3)
    makes this process write half of its 7th log record (3rd state file) and die at once
    with SIGKILL, leaving exactly the torn write a power cut or kill could leave."""
    spec = os.environ.get("CHECKPOINTFLOW_TEST_CRASH")
    if not spec:
        return
    _crash_counts[kind] += 1
    if spec == f"{kind}:{_crash_counts[kind]}":
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def read_events(
    folder: RunFolder, offset: int = 0, first_seq: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Complete records from `offset` on, and the offset after the last complete line.

    A torn last line (a crash mid-write, or a write still going on) is left for later,
    never fatal. Every whole line must be a record, each `seq` the one after the record
    before it, the first `first_seq` (1 when reading from the start): anything else is a
    damaged or diverged run (see divergence.py), reported as ERR_RUN_DAMAGED or
    ERR_RUN_DIVERGED.
    """
    try:
        with open(folder.events_file, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    except OSError as error:
        raise PersistenceFailure(
            "ERR_PERSISTENCE", f"Could not read {folder.events_file}: {error.strerror}."
        ) from None
    records: list[dict[str, Any]] = []
    end = data.rfind(b"\n") + 1
    expected = 1 if first_seq is None and offset == 0 else first_seq
    position = offset
    for line in data[:end].splitlines(keepends=True):
        record = _parsed_record(line)
        if record is None:
            raise divergence.bad_line(folder.run_id, line, position)
        if expected is not None and record["seq"] != expected:
            raise divergence.out_of_order(folder.run_id, expected, record["seq"], position)
        expected = record["seq"] + 1
        records.append(record)
        position += len(line)
    return records, offset + end


def _parsed_record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(record, dict) and isinstance(record.get("seq"), int):
        return record
    return None


def record_ending_at(folder: RunFolder, offset: int) -> dict[str, Any] | None:
    """The record of events.jsonl whose line ends at byte `offset`; None when no whole
    record ends there (the log is shorter, or the offset falls inside a line)."""
    if offset <= 0:
        return None
    try:
        with open(folder.events_file, "rb") as handle:
            if handle.seek(0, os.SEEK_END) < offset:
                return None
            start = _line_start(handle, offset)
            handle.seek(start)
            line = handle.read(offset - start)
    except OSError:
        return None
    return _parsed_record(line) if line.endswith(b"\n") else None


def _line_start(handle: BinaryIO, end: int) -> int:
    """Where the line that ends at `end` (its newline at end - 1) begins."""
    position = end - 1
    while position > 0:
        start = max(0, position - 65536)
        handle.seek(start)
        found = handle.read(position - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        position = start
    return 0


def read_output_file(folder: RunFolder, relative: str, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of a captured output file, and whether it was longer."""
    with open(folder.path / relative, "rb") as handle:
        data = handle.read(limit + 1)
    return data[:limit], len(data) > limit


def read_output_tail(folder: RunFolder, relative: str, limit: int) -> str:
    """The last `limit` bytes of a captured output file as text, for error messages."""
    try:
        with open(folder.path / relative, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
