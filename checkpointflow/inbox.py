"""A run's inbox: answers that arrived while another process held the run.

    <run folder>/inbox/<n>.json     one answer per file, n counting up in arrival order

Each entry is written once and never changed: it is published by a create-only step
(a hard link of a finished temporary file onto its final name, which fails if the name
is taken), so a reader sees either no entry or a whole one, and two writers can never
take the same number. The same operations (create if absent, list in order, delete) are
what an object store offers, so another store can provide them. Only the process holding
the run's lock removes entries, after the run's log records them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

import attrs

from checkpointflow import store
from checkpointflow.errors import PersistenceFailure

INBOX_SCHEMA = "checkpointflow-inbox/v1"
FOLDER = "inbox"
NAME = re.compile(r"([0-9]{12})\.json")


@attrs.frozen(slots=False)
class Entry:
    """One queued answer: its file name (its place in arrival order) and what it holds."""

    name: str
    answer: dict[str, Any]


class Inbox:
    """The inbox of one run folder."""

    def __init__(self, folder: store.RunFolder) -> None:
        self.path = folder.path / FOLDER

    def names(self) -> list[str]:
        """The entries waiting, in arrival order (cheap when there are none)."""
        try:
            found = os.listdir(self.path)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise _unreadable(self.path, error) from None
        return sorted(name for name in found if NAME.fullmatch(name))

    def entries(self, only: list[str] | None = None) -> list[Entry]:
        """The entries waiting (or `only` those of them), in arrival order; one removed
        meanwhile is left out."""
        found = []
        for name in self.names() if only is None else sorted(only):
            answer = self.read(name)
            if answer is not None:
                found.append(Entry(name, answer))
        return found

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            data = (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _unreadable(self.path / name, error) from None
        try:
            answer = json.loads(data)
        except (ValueError, RecursionError):
            answer = None
        if not isinstance(answer, dict):
            raise PersistenceFailure(
                "ERR_PERSISTENCE",
                f"{self.path / name} is not a queued answer (not a JSON object); move it "
                "out of the inbox folder.",
            )
        return answer

    def put(self, answer: dict[str, Any]) -> str:
        """Store an answer durably as the next entry; returns its file name."""
        data = store.dumps_pretty({"schema_version": INBOX_SCHEMA, **answer})
        with store.persisting(self.path):
            self.path.mkdir(exist_ok=True)
            temporary = self.path / f".{os.getpid()}.{os.urandom(4).hex()}.tmp"
            try:
                _write_durably(temporary, data)
                name = self._publish(temporary)
            finally:
                temporary.unlink(missing_ok=True)
            if store.durable():
                store.sync_folder(self.path)
        return name

    def _publish(self, temporary: Path) -> str:
        """Link the finished file under the next free number (create-only)."""
        names = self.names()
        number = int(names[-1][:12]) + 1 if names else 1
        while True:
            name = f"{number:012d}.json"
            try:
                os.link(temporary, self.path / name)
            except FileExistsError:
                number += 1
                continue
            return name

    def remove(self, name: str) -> None:
        """Drop an entry the run's log now holds."""
        with store.persisting(self.path / name):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
            if store.durable():
                store.sync_folder(self.path)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        if store.durable():
            os.fsync(handle.fileno())


def _unreadable(path: Path, error: OSError) -> PersistenceFailure:
    return PersistenceFailure("ERR_PERSISTENCE", f"Could not read {path}: {error.strerror}.")
