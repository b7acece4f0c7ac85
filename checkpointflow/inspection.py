"""`cpf inspect`: a run's state and history, compact by default, complete on request.

Every value above a few KB (outputs, results, inputs, event data, errors, waits) is
replaced by a note saying how big it was and where to read it (see compaction.py), so the
answer stays small however much a step printed. `--full` returns everything; `--events --since/--limit` pages through the log;
`--at SEQ` shows the state as it was right after event SEQ (by replay).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from checkpointflow import compaction, history, store, verdicts
from checkpointflow.errors import ValidationFailure
from checkpointflow.flow import placed
from checkpointflow.interpreter import advance
from checkpointflow.model import CliStep, Workflow
from checkpointflow.persistent import StepMap
from checkpointflow.state import (
    RUNNING,
    RunRecovered,
    RunState,
    StepFinished,
    StepRecord,
    event_from_record,
    left_records,
    state_to_json,
)

RECENT_EVENTS = 20


def inspect_run(
    root: Path,
    folder: store.RunFolder,
    *,
    full: bool = False,
    at: int | None = None,
    since: int | None = None,
    limit: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the run's state as JSON, the inspect result); both compact unless `full`."""
    records, _ = store.read_events(folder)
    if at is not None:
        state = state_at(root, folder, records, at)
        records = records[:at]
    else:
        state = history.load_state(root, folder)
    run = state_to_json(state)
    if since is not None or limit is not None:
        return run, _page(records, since or 0, limit)
    if full:
        return run, _full(root, folder, state, run, records)
    compact = compaction.run_state(run)
    return compact, _compact(root, folder, state, compact, records)


def _full(
    root: Path,
    folder: store.RunFolder,
    state: RunState,
    run: dict[str, Any],
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    """Everything, with large values inlined and the whole log."""
    return {
        "run_folder": str(folder.path),
        "inputs": state.inputs,
        "step_outputs": {
            step_id: record.outputs
            for step_id, record in state.steps.items()
            if record.outputs is not None
        },
        "step_results": step_results(root, folder, records),
        "events": [_delivered(record) for record in records if _is_delivery(record)],
        "state": run,
        "history": records,
        "history_size": len(records),
    }


def _compact(
    root: Path,
    folder: store.RunFolder,
    state: RunState,
    compact: dict[str, Any],
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    """The same answer with every value above a few KB replaced by a note saying where it
    is, and only the latest records of the log."""
    bounded = compaction.bounded
    return {
        "run_folder": str(folder.path),
        "inputs": bounded(state.inputs, "state.json inputs"),
        "step_outputs": {
            step_id: bounded(record.outputs, _outputs_file(folder, record))
            for step_id, record in state.steps.items()
            if record.outputs is not None
        },
        "step_results": [_compact_row(row) for row in step_results(root, folder, records)],
        "events": [
            _compact_delivery(_delivered(record), record["seq"])
            for record in records
            if _is_delivery(record)
        ],
        "state": compact,
        "history": [compaction.record(record) for record in records[-RECENT_EVENTS:]],
        "history_size": len(records),
    }


def _is_delivery(record: dict[str, Any]) -> bool:
    return bool(record["type"] == "event_received")


def _delivered(record: dict[str, Any]) -> dict[str, Any]:
    """An event `resume` delivered, with who delivered it."""
    return {
        "event_name": record["payload"]["event_name"],
        "event_data": record["payload"]["input"],
        "actor": record["payload"].get("actor"),
        "created_at": record["at"],
    }


def _compact_delivery(row: dict[str, Any], seq: int) -> dict[str, Any]:
    where = f"events.jsonl seq {seq}"
    return {key: compaction.text(value, where) for key, value in row.items()} | {
        "event_data": compaction.bounded(row["event_data"], where)
    }


def _compact_row(row: dict[str, Any]) -> dict[str, Any]:
    where = row["stdout_path"] or compaction.FULL
    return {key: compaction.text(value, compaction.FULL) for key, value in row.items()} | {
        "outputs": compaction.bounded(row["outputs"], where)
    }


def state_at(
    root: Path, folder: store.RunFolder, records: list[dict[str, Any]], seq: int
) -> RunState:
    if not 1 <= seq <= len(records):
        raise ValidationFailure(
            "ERR_VALIDATION_INPUT",
            f"--at {seq} is outside the run's log, which has events 1 to {len(records)}.",
        )
    return history.fold(root, folder, (event_from_record(r) for r in records[:seq]))


def _page(records: list[dict[str, Any]], since: int, limit: int | None) -> dict[str, Any]:
    later = [record for record in records if record["seq"] > since]
    page = later[:limit] if limit is not None else later
    following = page[-1]["seq"] if page and len(page) < len(later) else None
    return {"events": page, "next_since": following, "history_size": len(records)}


def _outputs_file(folder: store.RunFolder, record: StepRecord) -> str:
    stdout = record.attempts[-1].stdout if record.attempts else None
    return str(folder.path / stdout) if stdout else "cpf inspect --full"


def step_results(
    root: Path, folder: store.RunFolder, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per command attempt and per settled step, in the order the log has them."""
    rows: list[dict[str, Any]] = []
    state: RunState | None = None
    workflows: dict[str | None, Workflow] = {}
    for record in records:
        before: StepMap[str, StepRecord] = state.steps if state else StepMap()
        event = event_from_record(record)
        sha = _sha_for(event, state)
        if sha not in workflows:
            workflows[sha] = history.snapshot_workflow(root, folder, sha)
        workflow = workflows[sha]
        state, _ = advance(workflow, state, event)
        if isinstance(event, StepFinished | RunRecovered):
            rows.append(_attempt_row(folder, workflow, state, event))
        for step_id, step in [*left_records(state), *state.steps.changed_since(before)]:
            previous = before.get(step_id)
            settled = (
                step.status not in (RUNNING, "completed", "failed")
                or _kind(workflow, step_id) != "cli"
            )
            changed = previous is None or (previous.visits, previous.status) != (
                step.visits,
                step.status,
            )
            if changed and settled and step.status != RUNNING:
                rows.append(_status_row(_kind(workflow, step_id), step_id, step, record["at"]))
    return rows


def _kind(workflow: Workflow, step_id: str) -> str:
    """A step's kind; a step a retry's edited workflow removed reads as `removed`."""
    step = workflow.step_at(step_id)
    return step.kind if step is not None else "removed"


def _sha_for(event: Any, state: RunState | None) -> str | None:
    """The hash of the workflow an event applies to (retries may bring a new one)."""
    sha = getattr(event, "workflow_sha256", None)
    return sha if sha else (state.workflow_sha256 if state else None)


def _attempt_row(
    folder: store.RunFolder, workflow: Workflow, state: RunState, event: StepFinished | RunRecovered
) -> dict[str, Any]:
    """The outcome of one attempt. One whose record is gone (its iteration completed at
    once and left the state) or was replaced (a loop onto itself) is judged again."""
    step = state.steps.get(event.step_id)
    attempt = next((a for a in step.attempts if a.attempt == event.attempt), None) if step else None
    error = (attempt.error if attempt else _judged(workflow, event)) or {}
    output = event.output if isinstance(event, StepFinished) else None
    return {
        "step_id": event.step_id,
        "step_kind": "cli",
        "status": "failed" if error else "completed",
        "attempt": event.attempt,
        "exit_code": event.exit_code if isinstance(event, StepFinished) else None,
        "error_code": error.get("code"),
        "error_message": error.get("message"),
        "outputs": None if error else output,
        "stdout_path": _path(folder, event.stdout),
        "stderr_path": _path(folder, event.stderr),
        "duration_ms": event.duration_ms if isinstance(event, StepFinished) else None,
        "created_at": event.at,
    }


def _judged(workflow: Workflow, event: StepFinished | RunRecovered) -> Any:
    """The error of an attempt whose record the state no longer holds (None: success)."""
    step = workflow.step_at(event.step_id)
    if isinstance(event, StepFinished) and isinstance(step, CliStep):
        return verdicts.command_error(placed(step, event.step_id), event)
    return None


def _path(folder: store.RunFolder, relative: str | None) -> str | None:
    return str(folder.path / relative) if relative else None


def _status_row(kind: str, step_id: str, step: StepRecord, at: str) -> dict[str, Any]:
    error = step.error or {}
    return {
        "step_id": step_id,
        "step_kind": kind,
        "status": step.status,
        "attempt": None,
        "exit_code": None,
        "error_code": error.get("code"),
        "error_message": error.get("message"),
        "outputs": step.outputs,
        "stdout_path": None,
        "stderr_path": None,
        "duration_ms": None,
        "created_at": at,
    }
