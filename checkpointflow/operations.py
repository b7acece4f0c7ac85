"""Engine functions for operating runs: plain arguments in, an envelope out.

Like engine.py, one function per command; the work itself lives in catalog, logs,
discovery, graph, cleanup, verification and archive. Those (and the driver) are imported
where they are used, so `cpf list` over 10,000 runs pays only for what it reads.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from checkpointflow import envelope, history, store
from checkpointflow.errors import CpfError, RuntimeFailure, ValidationFailure
from checkpointflow.timespans import parse_duration, parse_since, utc_now

Envelope = dict[str, Any]
STATUSES = ("running", "waiting", "completed", "failed", "cancelled")


def _root() -> Path:
    return history.open_root()


def _done(command: str, result: Any, run: dict[str, Any] | None = None, **extra: Any) -> Envelope:
    return envelope.envelope(
        command, ok=True, status="completed", exit_code=0, run=run, result=result, **extra
    )


def parse_statuses(text: str | None, option: str = "--status") -> frozenset[str] | None:
    """`waiting,failed` as a set of run statuses; unknown names are refused."""
    if text is None:
        return None
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(names - set(STATUSES))
    if unknown or not names:
        raise ValidationFailure(
            "ERR_USAGE",
            f"{option} {text!r}: {', '.join(unknown) or 'nothing'} is not a run status; "
            f"use a comma list of {', '.join(STATUSES)}.",
        )
    return names


# --- list ----------------------------------------------------------------------------


def list_runs(
    statuses: str | None,
    workflow_id: str | None,
    since: str | None,
    older_than: str | None,
    limit: int | None,
) -> Envelope:
    from checkpointflow import catalog

    now = utc_now()
    selection = catalog.RunFilter(
        statuses=parse_statuses(statuses),
        workflow_id=workflow_id,
        updated_after=parse_since(since, "--since", now) if since is not None else None,
        updated_before=now - parse_duration(older_than, "--older-than")
        if older_than is not None
        else None,
    )
    found, unreadable = catalog.summaries(store.state_root())
    kept = catalog.newest_first([summary for summary in found if selection.keeps(summary)])
    runs = [catalog.listed(summary) for summary in kept[:limit]]
    warnings = [
        f"Run {bad.run_id} could not be read ({bad.reason}); `cpf verify --run-id {bad.run_id}` "
        "says more."
        for bad in unreadable
    ]
    result = {"runs": runs, "count": len(runs), "matched": len(kept)}
    return _done("list", result, warnings=warnings)


# --- logs ----------------------------------------------------------------------------


def logs(
    run_id: str,
    step_id: str | None,
    output: str | None,
    attempt: int | None,
    follow: bool,
    timeout: float,
    max_bytes: int,
) -> Envelope:
    from checkpointflow import logs as run_logs

    root = _root()
    folder = store.find_run(root, run_id)
    if output is not None or attempt is not None:
        request = run_logs.parse_output_spec(output or step_id or "", attempt)
        result = run_logs.step_output(folder, request, max_bytes)
        return envelope.for_run("logs", _run(root, folder), result=result, query=True)
    rows, warnings = _event_rows(root, folder, step_id, follow, timeout)
    result = {"events": rows, "count": len(rows)}
    run = _run(root, folder)
    return envelope.for_run("logs", run, result=result, warnings=warnings, query=True)


def _event_rows(
    root: Path, folder: store.RunFolder, step_id: str | None, follow: bool, timeout: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """The run's rows (of one step); with `follow`, also those logged until the run stops
    running, each shown on stderr as it comes, with the lines its running steps print."""
    from checkpointflow import logs as run_logs

    def wanted(row: dict[str, Any]) -> bool:
        return step_id is None or row["step_id"] == step_id

    def show(row: dict[str, Any]) -> None:
        if wanted(row):
            _to_stderr(run_logs.human_line(row))

    narrator = run_logs.narrator_for(root, folder)
    if not follow:
        records, _ = store.read_events(folder)
        rows = [row for record in records for row in narrator.rows(record)]
        return [row for row in rows if wanted(row)], []
    from checkpointflow.live_output import LiveOutput

    output = LiveOutput(lambda key, text: _to_stderr(f"{key} | {text}"), colour=False)
    rows, note = run_logs.follow(folder, narrator, timeout, show, output, step_id)
    return [row for row in rows if wanted(row)], [note] if note else []


def _run(root: Path, folder: store.RunFolder) -> dict[str, Any]:
    from checkpointflow.state import state_to_json

    return state_to_json(history.load_state(root, folder))


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# --- flows ---------------------------------------------------------------------------


def flows(flow_id: str | None) -> Envelope:
    from checkpointflow import discovery

    _root()
    if flow_id is not None:
        return _done("flows", discovery.detail(discovery.find(flow_id)))
    found = discovery.discover()
    result = {
        "flows": [flow.to_json() for flow in found],
        "count": len(found),
        "folders": [str(folder) for folder in discovery.flow_folders()],
    }
    return _done("flows", result)


# --- graph ---------------------------------------------------------------------------


def graph(path: str | None, flow_id: str | None, run_id: str | None, format: str) -> Envelope:
    """The workflow as diagram text; with a run, its steps coloured by their status."""
    from checkpointflow import diagrams, discovery, document
    from checkpointflow import graph as shapes

    root = _root()
    if run_id is not None and (path or flow_id):
        raise ValidationFailure(
            "ERR_USAGE", "--run-id draws the run's own workflow snapshot; drop -f and --flow."
        )
    statuses: dict[str, str] = {}
    run: dict[str, Any] | None = None
    if run_id is not None:
        folder = store.find_run(root, run_id)
        run = _run(root, folder)
        statuses = {step: record["status"] for step, record in run["steps"].items()}
        source = str(folder.workflow_file)
    elif flow_id is not None:
        source = str(discovery.find(flow_id).path)
    elif path is not None:
        source = path
    else:
        raise ValidationFailure(
            "ERR_USAGE", "Say which workflow to draw: -f FILE, --flow ID or --run-id ID."
        )
    parsed = document.parse_yaml(document.read_document(source), source)
    document.raise_problems(document.find_problems(parsed), source)
    text = diagrams.render(shapes.build(parsed, statuses), format)
    result = {"format": format, "source": source, "graph": text}
    return _done("graph", result, run=run)


# --- delete and gc -------------------------------------------------------------------


def delete(run_id: str, force: bool) -> Envelope:
    from checkpointflow import cleanup

    root = _root()
    summary = cleanup.delete(root, run_id, force)
    result = {"deleted": run_id, "status": summary.get("status"), "forced": force}
    return _done("delete", result, run=summary)


def gc(older_than: str, statuses: str | None, dry_run: bool) -> Envelope:
    from checkpointflow import catalog, cleanup

    root = _root()
    chosen = parse_statuses(statuses) or cleanup.DEFAULT_GC_STATUSES
    cutoff = utc_now() - parse_duration(older_than, "--older-than")
    outcomes = cleanup.collect(root, chosen, cutoff, dry_run)
    result = {
        "dry_run": dry_run,
        "statuses": sorted(chosen),
        "older_than": older_than,
        "updated_before": cutoff.isoformat(timespec="seconds").replace("+00:00", "Z"),
        ("would_delete" if dry_run else "deleted"): [
            catalog.listed(outcome.summary) for outcome in outcomes if outcome.removed or dry_run
        ],
        "kept": [
            {"run_id": outcome.summary["run_id"], "reason": outcome.reason}
            for outcome in outcomes
            if not outcome.removed and not dry_run
        ],
    }
    return _done("gc", result)


# --- verify --------------------------------------------------------------------------


def verify(run_id: str | None, every: bool) -> Envelope:
    from checkpointflow import catalog, verification

    root = _root()
    if (run_id is None) == (not every):
        raise ValidationFailure("ERR_USAGE", "Pass either --run-id ID or --all.")
    folders = list(catalog.run_folders(root)) if every else [store.find_run(root, run_id or "")]
    reports = [verification.verify(root, folder).to_json() for folder in folders]
    failed = [report for report in reports if not report["ok"]]
    if failed:
        count = sum(len(report["problems"]) for report in failed)
        first = failed[0]["problems"][0]
        raise RuntimeFailure(
            "ERR_VERIFY_FAILED",
            f"{count} problem(s) in {len(failed)} run(s); first: {first['file']} "
            f"{first['problem']} (fix: {first['fix']}).",
            details=failed,
        )
    return _done("verify", {"runs": reports, "checked": len(reports)})


# --- export and import ---------------------------------------------------------------


def export(run_id: str, out: str, force: bool) -> Envelope:
    from checkpointflow import archive, verification

    root = _root()
    folder = store.find_run(root, run_id)
    target = Path(out)
    if target.exists() and not force:
        raise ValidationFailure(
            "ERR_FILE_EXISTS", f"{out} already exists; pass --force to overwrite it."
        )
    with store.locked(folder):
        run = _run(root, folder)
        if run["status"] == "running":
            raise RuntimeFailure(
                "ERR_RUN_ACTIVE",
                f"Run {run_id} is running (step {run['current_step_id']}); export it once it "
                f"waits or ends, or settle it with `cpf recover --run-id {run_id}`.",
            )
        report = verification.verify(root, folder)
        files = archive.write_archive(folder, target)
    warnings = [f"{p.file}: {p.what}" for p in report.problems]
    result = {"archive": str(target), "files": files, "run_status": run["status"]}
    return _done("export", result, run=run, warnings=warnings)


def import_run(path: str) -> Envelope:
    from checkpointflow import archive, verification

    root = _root()
    tar, run_id, members = archive.read_members(Path(path))
    with tar:
        if (root / "runs" / run_id).exists():
            raise archive.run_exists(run_id, root)
        scratch = archive.scratch_folder(root, run_id)
        try:
            with store.persisting(scratch):
                archive.extract(tar, members, scratch)
            report = verification.verify(root, store.RunFolder(run_id, scratch))
            if report.problems:
                raise RuntimeFailure(
                    "ERR_VERIFY_FAILED",
                    f"{path}: run {run_id} does not verify; nothing was imported. First "
                    f"problem: {report.problems[0].what}.",
                    details=[report.to_json()],
                )
            folder = archive.move_into_runs(scratch, root, run_id)
        finally:
            archive.remove_quietly(scratch)
    run = _run(root, folder)
    result = {"run_id": run_id, "run_status": run["status"], "run_folder": str(folder.path)}
    return _done("import", result, run=run)


def complete_run_ids(prefix: str, described: int = 50) -> list[tuple[str, str]]:
    """`last` and the run ids starting with `prefix`, newest first, for shell completion,
    each with its workflow and status when there are few; never raises."""
    from checkpointflow import catalog

    root = store.state_root()
    try:
        ids = sorted(
            (f.run_id for f in catalog.run_folders(root) if f.run_id.startswith(prefix)),
            reverse=True,
        )
        last = [(catalog.LAST, "the run started last")] if catalog.LAST.startswith(prefix) else []
        return last + [
            (run_id, _about(root, run_id) if len(ids) <= described else "") for run_id in ids
        ]
    except (CpfError, OSError):
        return []


def _about(root: Path, run_id: str) -> str:
    """`release waiting`: a run's workflow and status, from its summary."""
    from checkpointflow import catalog

    try:
        summary = catalog.summary_of(root, store.RunFolder(run_id, root / "runs" / run_id))
    except (CpfError, OSError):
        return ""
    return f"{summary.get('workflow_id') or ''} {summary.get('status') or ''}".strip()


# --- reconcile -----------------------------------------------------------------------


def reconcile(run_id: str, keep: str | None, actor: str | None) -> Envelope:
    """Keep one history of a run folder two copies wrote, recording the other's."""
    from checkpointflow import driver, engine
    from checkpointflow import reconcile as joining
    from checkpointflow.state import state_to_json

    root = _root()
    who = engine.actor_name(actor)
    folder = store.find_run(root, run_id)
    with store.locked(folder):
        state, event = joining.reconcile(root, folder, keep, driver.now(), who)
    run = state_to_json(state)
    result: dict[str, Any] = {"reconciled": event is not None}
    if event is not None:
        result.update(
            kept=event.kept, seq=state.seq, other_events=len(event.events), files=list(event.files)
        )
    waiting = run["status"] == "waiting"
    return envelope.envelope(
        "reconcile",
        ok=True,
        status=run["status"],
        exit_code=0,
        run=run,
        result=result,
        wait=envelope.wait_block(run) if waiting else None,
        waits=envelope.wait_entries(run) if waiting else None,
    )
