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
    return folder


def find_run(root: Path, run_id: str) -> RunFolder:
    """The folder of an existing run; an id that is not a valid id is never used as a path."""
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValidationFailure(
            "ERR_RUN_NOT_FOUND",
            f"No run with id {run_id[:200]!r}: run ids are letters, digits, '_' and '-'.",
        )
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
        _sync_folder(path.parent)
    return written


def _sync_folder(path: Path) -> None:
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


def write_state(folder: RunFolder, state: dict[str, Any]) -> int:
    """Replace state.json, written as it is encoded, so a big state (a long foreach's items
    and results) is never held a second time as text; returns its size in bytes."""
    with persisting(folder.state_file):
        return write_file_atomically(folder.state_file, _pretty_pieces(state))


_PRETTY = json.JSONEncoder(indent=2, sort_keys=True, ensure_ascii=False)
PIECE_BYTES = 1 << 16


def _pretty_pieces(data: Any) -> Iterator[bytes]:
    """`dumps_pretty(data)` in pieces of about 64 KiB."""
    batch: list[str] = []
    size = 0
    for chunk in _PRETTY.iterencode(data):
        batch.append(chunk)
        size += len(chunk)
        if size >= PIECE_BYTES:
            yield utf8("".join(batch))
            batch, size = [], 0
    batch.append("\n")
    yield utf8("".join(batch))


def write_summary(folder: RunFolder, summary: dict[str, Any]) -> None:
    """A small derived file for listings; rebuildable from state.json, so never fsync'd."""
    temporary = folder.path / f".summary.json.{os.getpid()}.tmp"
    with persisting(folder.path):
        temporary.write_bytes(utf8(json.dumps(summary, sort_keys=True, ensure_ascii=False) + "\n"))
        os.replace(temporary, folder.path / SUMMARY_FILE)


def read_state(folder: RunFolder) -> dict[str, Any] | None:
    """The last checkpoint, or None when the run never got one (it crashed at birth)."""
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


def read_events(folder: RunFolder, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete records from `offset` on, and the offset after the last complete line.

    A torn or unparsable line (a crash mid-write) is skipped, never fatal.
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
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and isinstance(record.get("seq"), int):
            records.append(record)
    return records, offset + end


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
