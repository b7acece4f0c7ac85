"""Removing runs: one on request (`cpf delete`), or all old finished ones (`cpf gc`).

A run is removed only while its lock is held, so a run that another process is advancing
is never touched (ERR_LOCK_CONFLICT). The folder is first renamed aside in one step, so a
half-removed run can never be mistaken for a run.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from checkpointflow import catalog, history, store
from checkpointflow.errors import CpfError, RuntimeFailure
from checkpointflow.state import FINISHED

DEFAULT_GC_STATUSES = frozenset(FINISHED)


@attrs.frozen(slots=False)
class Outcome:
    """What gc did, or would do, with one run."""

    summary: dict[str, Any]
    removed: bool
    reason: str | None = None  # why a selected run was kept


def delete(root: Path, run_id: str, force: bool) -> dict[str, Any]:
    """Remove one run; a waiting or running one only with `force`. Returns its summary."""
    folder = store.find_run(root, run_id)
    with store.locked(folder):
        summary = _current_summary(root, folder, force)
        status = summary.get("status")
        if status not in FINISHED and not force:
            raise RuntimeFailure(
                "ERR_RUN_ACTIVE",
                f"Run {run_id} is {status}; deleting it would lose work in progress. "
                f"Pass --force to delete it anyway, or `cpf cancel --run-id {run_id}` first.",
            )
        _remove(folder)
    return summary


def _current_summary(root: Path, folder: store.RunFolder, force: bool) -> dict[str, Any]:
    """The run as it stands now (read under its lock); a damaged run needs `force`."""
    try:
        return history.summary_of(history.load_state(root, folder))
    except CpfError as error:
        if not force:
            raise RuntimeFailure(
                "ERR_RUN_ACTIVE",
                f"Run {folder.run_id} cannot be read ({error.message}); its status is unknown. "
                "Pass --force to delete it anyway.",
            ) from None
        return {"run_id": folder.run_id, "status": None}


def _remove(folder: store.RunFolder) -> None:
    aside = folder.path.with_name(f".deleting-{folder.run_id}-{os.urandom(4).hex()}")
    with store.persisting(folder.path):
        os.rename(folder.path, aside)
        shutil.rmtree(aside)


def collect(
    root: Path, statuses: frozenset[str], updated_before: datetime, dry_run: bool
) -> list[Outcome]:
    """Remove (or, with `dry_run`, list) the runs in `statuses` not updated since a time."""
    selection = catalog.RunFilter(statuses=statuses, updated_before=updated_before)
    found, _ = catalog.summaries(root)
    chosen = catalog.newest_first([summary for summary in found if selection.keeps(summary)])
    if dry_run:
        return [Outcome(summary, removed=False) for summary in chosen]
    return [_collect_one(root, summary, selection) for summary in chosen]


def _collect_one(root: Path, summary: dict[str, Any], selection: catalog.RunFilter) -> Outcome:
    """Remove one selected run, checking under its lock that it still qualifies."""
    folder = store.RunFolder(summary["run_id"], root / "runs" / summary["run_id"])
    try:
        with store.locked(folder):
            current = history.summary_of(history.load_state(root, folder))
            if not selection.keeps(current):
                return Outcome(current, False, f"it changed to {current['status']} meanwhile")
            _remove(folder)
            return Outcome(current, True)
    except CpfError as error:
        return Outcome(summary, False, error.message)
