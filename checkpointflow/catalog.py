"""The runs in a state root, read from their small summary.json files.

Listing 10,000 runs must take well under a second, so a listing reads each run's summary
(a few hundred bytes) and never its state or log. A summary that is missing or damaged is
rebuilt from the run's state, and written back only when no other process holds the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from checkpointflow import history, store
from checkpointflow.errors import CpfError, PersistenceFailure, ValidationFailure
from checkpointflow.timespans import parse_time

Summary = dict[str, Any]
LISTED_FIELDS = (
    "run_id",
    "workflow_id",
    "workflow_version",
    "status",
    "current_step_id",
    "created_at",
    "updated_at",
)
WAIT_FIELDS = ("event_name", "audience")


@attrs.frozen(slots=False)
class RunFilter:
    """Which runs a listing keeps; None means "any"."""

    statuses: frozenset[str] | None = None
    workflow_id: str | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None

    def keeps(self, summary: Summary) -> bool:
        if self.statuses is not None and summary.get("status") not in self.statuses:
            return False
        if self.workflow_id is not None and summary.get("workflow_id") != self.workflow_id:
            return False
        if self.updated_after is None and self.updated_before is None:
            return True
        updated = parse_time(summary.get("updated_at"))
        if updated is None:
            return False
        if self.updated_after is not None and updated < self.updated_after:
            return False
        return self.updated_before is None or updated < self.updated_before


@attrs.frozen(slots=False)
class Unreadable:
    """A run folder whose summary could not be read or rebuilt, and why."""

    run_id: str
    reason: str


def run_folders(root: Path) -> Iterator[store.RunFolder]:
    """Every run folder under `runs/`; folders of other tools (no log, no state) are skipped."""
    for entry in _entries(root):
        folder = store.RunFolder(entry.name, Path(entry.path))
        if _is_run(folder):
            yield folder


def _entries(root: Path) -> list[os.DirEntry[str]]:
    """The folders under `runs/` whose names are run ids."""
    try:
        entries = list(os.scandir(root / "runs"))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise PersistenceFailure(
            "ERR_PERSISTENCE",
            f"Could not read {root / 'runs'}: {error.strerror}. Check CHECKPOINTFLOW_BASE_DIR.",
        ) from None
    return [e for e in entries if store.RUN_ID_PATTERN.fullmatch(e.name) and e.is_dir()]


def _is_run(folder: store.RunFolder) -> bool:
    return folder.events_file.is_file() or folder.state_file.is_file()


def summaries(root: Path) -> tuple[list[Summary], list[Unreadable]]:
    """The summary of every run, and the runs whose summary could not be had.

    The hot path is one open and one small JSON parse per run; only a run without a good
    summary.json costs more (it is rebuilt from its state).
    """
    found: list[Summary] = []
    unreadable: list[Unreadable] = []
    for entry in _entries(root):
        summary = _saved_summary(entry.path, entry.name)
        if summary is not None:
            found.append(summary)
            continue
        folder = store.RunFolder(entry.name, Path(entry.path))
        if not _is_run(folder):
            continue  # another tool's folder: leave it alone
        try:
            found.append(rebuild_summary(root, folder))
        except CpfError as error:
            unreadable.append(Unreadable(folder.run_id, error.message))
    return found, unreadable


def summary_of(root: Path, folder: store.RunFolder) -> Summary:
    """summary.json as written at the last checkpoint, or rebuilt from the run's state."""
    summary = _saved_summary(str(folder.path), folder.run_id)
    return summary if summary is not None else rebuild_summary(root, folder)


def _saved_summary(path: str, run_id: str) -> Summary | None:
    try:
        with open(os.path.join(path, store.SUMMARY_FILE), "rb") as handle:
            summary = json.loads(handle.read())
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(summary, dict) and summary.get("run_id") == run_id:
        return summary
    return None


def rebuild_summary(root: Path, folder: store.RunFolder) -> Summary:
    """The summary from the run's state; saved only if nobody is advancing the run."""

    summary = history.summary_of(history.load_state(root, folder))
    try:
        with store.locked(folder):
            store.write_summary(folder, summary)
    except CpfError:
        pass  # another process holds the run, or the folder is read-only: use it as is
    return summary


def newest_first(found: list[Summary]) -> list[Summary]:
    """By start time, newest first; run ids sort by start time too, so they break ties."""
    return sorted(
        found,
        key=lambda summary: (str(summary.get("created_at") or ""), summary["run_id"]),
        reverse=True,
    )


def listed(summary: Summary) -> Summary:
    """The fields `cpf list` shows for one run; the wait fields only for waiting runs."""
    row = {name: summary.get(name) for name in LISTED_FIELDS}
    if summary.get("status") == "waiting":
        row.update({name: summary.get(name) for name in WAIT_FIELDS})
    return row


LAST = "last"
MAX_CANDIDATES = 20


def resolve_run_id(root: Path, text: str, workflow_id: str | None = None) -> str:
    """The full id `--run-id` means: `last` (the run started last), a whole id, or the
    start of exactly one id, as git takes short ids. `workflow_id` keeps only that
    workflow's runs. Text that is not id-shaped is refused before it touches the disk."""
    store.require_id_shape(text)
    if workflow_id is None and text != LAST and _is_run(_folder(root, text)):
        return text  # a whole id: no need to look at the others
    names = sorted((entry.name for entry in _entries(root)), reverse=True)  # newest first
    runs = (
        name
        for name in names
        if (text == LAST or name.startswith(text))
        and _is_run(_folder(root, name))
        and (workflow_id is None or _workflow_of(root, name) == workflow_id)
    )
    if text == LAST:
        newest = next(runs, None)
        if newest is None:
            raise _no_run(root, text, workflow_id)
        return newest
    matching = list(runs)
    if text in matching:
        return text
    if not matching:
        raise _no_run(root, text, workflow_id)
    if len(matching) > 1:
        raise _ambiguous(text, matching)
    return matching[0]


def _folder(root: Path, run_id: str) -> store.RunFolder:
    return store.RunFolder(run_id, root / "runs" / run_id)


def _workflow_of(root: Path, run_id: str) -> Any:
    folder = _folder(root, run_id)
    summary = _saved_summary(str(folder.path), run_id)
    if summary is None:
        try:
            summary = rebuild_summary(root, folder)
        except CpfError:
            return None
    return summary.get("workflow_id")


def _no_run(root: Path, text: str, workflow_id: str | None) -> ValidationFailure:
    what = "no runs" if text == LAST else f"no run whose id starts with {text!r}"
    of = f" of workflow {workflow_id!r}" if workflow_id is not None else ""
    return ValidationFailure(
        "ERR_RUN_NOT_FOUND",
        f"There are {what}{of} under {root / 'runs'}. "
        "`cpf list` shows the runs there; check CHECKPOINTFLOW_BASE_DIR.",
    )


def _ambiguous(text: str, matching: list[str]) -> ValidationFailure:
    shown = matching[:MAX_CANDIDATES]
    more = f" and {len(matching) - len(shown)} more" if len(matching) > len(shown) else ""
    return ValidationFailure(
        "ERR_RUN_AMBIGUOUS",
        f"{text!r} is the start of {len(matching)} run ids ({', '.join(shown[:3])}"
        f"{', ...' if len(shown) > 3 else ''}{more}); give more of the id.",
        details={"candidates": shown},
    )
