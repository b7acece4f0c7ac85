"""One function per command: plain arguments in, an envelope out.

The CLI calls exactly one of these; they find the state root, call the driver or the store,
and shape the answer. A refused command reports what it knows about the run it touched.
"""

from __future__ import annotations

import io
import json
import os
import sys
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkpointflow import driver, envelope, history, store
from checkpointflow.errors import EXIT_WAITING, CpfError, RuntimeFailure, ValidationFailure
from checkpointflow.progress import progress_for
from checkpointflow.state import state_to_json

if TYPE_CHECKING:
    from checkpointflow.answers import Queued

Envelope = dict[str, Any]
DEFAULT_MAX_INPUT_BYTES = 64 * 1024 * 1024
MAX_INPUT_DEPTH = driver.MAX_JSON_DEPTH


def _root() -> Path:
    return history.open_root()


def init(path: str, force: bool) -> Envelope:
    target = Path(path)
    if target.exists() and not force:
        raise ValidationFailure(
            "ERR_FILE_EXISTS", f"{path} already exists; pass --force to overwrite it."
        )
    from checkpointflow import editor

    template = editor.starter_workflow()
    with store.persisting(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(template)
    return envelope.envelope(
        "init", ok=True, status="completed", exit_code=0, result={"file": str(target)}
    )


def validate(path: str) -> Envelope:
    """Every problem at once; valid documents may still get warnings (see advice.py)."""
    from checkpointflow import advice
    from checkpointflow.history import load_workflow_file

    tree = load_workflow_file(_root(), path)[0]
    parsed, workflow = tree.document, tree.workflow
    run = {
        "workflow_id": workflow.id,
        "workflow_name": workflow.name,
        "workflow_description": workflow.description,
        "workflow_version": workflow.version,
    }
    return envelope.envelope(
        "validate",
        ok=True,
        status="completed",
        exit_code=0,
        run=run,
        result={"valid": True, "file": path, "steps": len(workflow.steps)},
        warnings=advice.warnings_for(parsed, path),
    )


def run(path: str, input_text: str | None, actor: str | None, quiet: bool) -> Envelope:
    who = actor_name(actor)
    inputs = read_json_input(input_text, "ERR_VALIDATION_INPUT", "--input")
    state, warnings = driver.start_run(_root(), path, inputs, who, progress_for(quiet))
    return envelope.for_run("run", state_to_json(state), warnings=warnings)


def resume(
    run_id: str,
    event_name: str,
    input_text: str | None,
    token: str | None,
    actor: str | None,
    quiet: bool,
    wait_id: str | None = None,
) -> Envelope:
    root = _root()
    who = actor_name(actor)
    payload = read_json_input(input_text, "ERR_VALIDATION_EVENT_INPUT", "--input")
    state, queued = driver.resume_run(
        root, run_id, event_name, payload, token, who, progress_for(quiet), wait_id
    )
    if queued is not None:
        return queued_envelope(state_to_json(state), queued)
    return envelope.for_run("resume", state_to_json(state))


def queued_envelope(run: dict[str, Any], queued: Queued) -> Envelope:
    """A resume whose answer waits in the run's inbox: accepted, not yet applied (exit
    40, like a run that waits), with where the answer is and how to follow it."""
    return envelope.envelope(
        "resume",
        ok=True,
        status=run["status"],
        exit_code=EXIT_WAITING,
        run=run,
        wait=envelope.wait_block(run) if run["status"] == "waiting" else None,
        waits=envelope.wait_entries(run) if run["status"] == "waiting" else None,
        result={
            "queued": True,
            "answer_id": queued.id,
            "wait_id": queued.wait_id,
            "queued_at": queued.at,
            "inbox_entry": f"inbox/{queued.entry}",
            "note": (
                f"Run {run['run_id']} is busy; the process advancing it applies this answer "
                "at its next step boundary. `cpf logs` shows it as event_received with "
                "`queued`, or as answer_stale if its wait was gone by then."
            ),
        },
    )


def retry(
    run_id: str,
    from_step: str | None,
    workflow_path: str | None,
    actor: str | None,
    quiet: bool,
) -> Envelope:
    root = _root()
    who = actor_name(actor)
    state = driver.retry_run(root, run_id, from_step, workflow_path, who, progress_for(quiet))
    return envelope.for_run("retry", state_to_json(state))


def actor_name(given: str | None) -> str:
    """Who is acting: --actor, else CPF_ACTOR, else the operating-system user."""
    name = given or os.environ.get("CPF_ACTOR")
    if not name:
        import getpass

        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "unknown"
    if len(name) > 200 or any(unicodedata.category(char)[0] == "C" for char in name):
        raise ValidationFailure(
            "ERR_INVALID_ACTOR",
            "The actor name must be at most 200 printable characters (no control "
            "characters); set --actor or CPF_ACTOR to a plain name.",
        )
    return name


def cancel(run_id: str, reason: str | None, actor: str | None) -> Envelope:
    root = _root()
    who = actor_name(actor)
    state = driver.cancel_run(root, run_id, reason, who, progress_for(True))
    run = state_to_json(state)
    return envelope.envelope(
        "cancel", ok=True, status="cancelled", exit_code=0, run=run, result={"reason": reason}
    )


def recover(run_id: str, quiet: bool) -> Envelope:
    root = _root()
    state, notes = driver.recover_run(root, run_id, progress_for(quiet))
    return envelope.for_run("recover", state_to_json(state), warnings=notes)


def tick(quiet: bool) -> Envelope:
    """Advance every run whose wait is past its deadline (for cron)."""
    from checkpointflow import catalog

    root = _root()
    advanced = []
    found, _ = catalog.summaries(root)
    for summary in found:
        deadline = summary.get("deadline")
        if summary.get("status") != "waiting" or not deadline or deadline > driver.now():
            continue
        folder = store.find_run(root, summary["run_id"])
        state, expired = driver.time_out_if_overdue(root, folder, progress_for(quiet))
        if expired:
            advanced.append(
                {"run_id": state.run_id, "status": state.status, "timed_out": list(expired)}
            )
    return envelope.envelope(
        "tick", ok=True, status="completed", exit_code=0, result={"advanced": advanced}
    )


def status(run_id: str) -> Envelope:
    root = _root()
    folder = store.find_run(root, run_id)
    state = driver.settle_if_overdue(root, folder, progress_for(True))
    warning = history.workflow_changed(state)
    warnings = [warning] if warning else []
    if state.status == "running" and not store.is_locked(folder):
        warnings.append(
            f"No process is advancing this run: the one running step {state.current_step_id} "
            f"stopped. Run `cpf recover --run-id {run_id}` to retry or fail that step."
        )
    return envelope.for_run("status", state_to_json(state), warnings=warnings, query=True)


def inspect(
    run_id: str,
    full: bool = False,
    at: int | None = None,
    since: int | None = None,
    limit: int | None = None,
) -> Envelope:
    """The run's state and history: compact by default, paged or as of an event on request."""
    from checkpointflow import inspection

    root = _root()
    folder = store.find_run(root, run_id)
    run, result = inspection.inspect_run(root, folder, full=full, at=at, since=since, limit=limit)
    return envelope.for_run("inspect", run, result=result, query=True)


def refusal(command: str, error: CpfError, run_id: str | None = None) -> Envelope:
    """The envelope of a refused command. When the command named a run, it says where
    that run stands (its status, waits and workflow), whatever else was wrong, so the
    caller can correct the command and try again; a run that does not exist is reported
    as ERR_RUN_NOT_FOUND, with the other problem of the request as a warning."""
    carried = getattr(error, "run", None)  # an interrupted run reports where it stopped
    if carried is not None:
        return envelope.for_error(command, error, carried)
    if run_id is None or error.code == "ERR_RUN_AMBIGUOUS":  # no one run to report on
        return envelope.for_error(command, error)
    try:
        root = _root()
        run = state_to_json(history.load_state(root, store.find_run(root, run_id)))
    except CpfError as missing:
        asked_wrongly = isinstance(error, ValidationFailure | RuntimeFailure)
        if missing.code == "ERR_RUN_NOT_FOUND" and asked_wrongly and error.code != missing.code:
            return envelope.for_error(command, missing, warnings=[error.message])
        return envelope.for_error(command, error)
    except (OSError, ValueError, KeyError, TypeError):
        return envelope.for_error(command, error)  # a damaged run: `cpf verify` says more
    return envelope.for_error(command, error, run)


def read_json_input(text: str | None, code: str, option: str) -> Any:
    """`--input`: inline JSON, `@file`, or `-`/`@-` for stdin. Absent means {}.

    Inputs are capped in size (CHECKPOINTFLOW_MAX_INPUT_BYTES) and in nesting depth, so
    that nothing later chokes on them.
    """
    if text is None:
        return {}
    source = option
    if text in ("-", "@-"):
        data, source = _read_limited(sys.stdin.buffer, "standard input", code), "standard input"
    elif text.startswith("@"):
        source = text[1:]
        data = _read_file(source, option, code)
    else:
        data = _read_limited(io.BytesIO(text.encode("utf-8", "surrogatepass")), option, code)
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValidationFailure(code, f"{source} is JSON nested too deeply.") from None
    except ValueError as error:
        hint = _file_hint(text) if source == option else ""
        raise ValidationFailure(code, f"{source} is not valid JSON: {error}.{hint}") from None
    if driver.nesting_depth(value) > MAX_INPUT_DEPTH:
        raise ValidationFailure(
            code, f"{source} is JSON nested deeper than {MAX_INPUT_DEPTH} levels."
        )
    return value


def _file_hint(text: str) -> str:
    """Inline text that names an existing file was meant to be read from it."""
    try:
        named = len(text) < 4096 and "\n" not in text and os.path.isfile(text)
    except (OSError, ValueError):
        named = False
    return f" Did you mean @{text}? (an @ reads JSON from a file)" if named else ""


def _read_file(source: str, option: str, code: str) -> str:
    try:
        with open(source, "rb") as handle:
            return _read_limited(handle, source, code)
    except FileNotFoundError:
        raise ValidationFailure(
            "ERR_FILE_NOT_FOUND",
            f"Input file {source} (from {option} @{source}) does not exist.",
        ) from None
    except IsADirectoryError:
        raise ValidationFailure("ERR_FILE_NOT_FOUND", f"Input file {source} is a folder.") from None
    except OSError as error:
        raise ValidationFailure(
            "ERR_FILE_NOT_FOUND", f"Input file {source} cannot be read: {error.strerror}."
        ) from None


def _read_limited(handle: Any, source: str, code: str) -> str:
    limit = int(os.environ.get("CHECKPOINTFLOW_MAX_INPUT_BYTES", DEFAULT_MAX_INPUT_BYTES))
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValidationFailure(
            code, f"{source} is larger than {limit} bytes (CHECKPOINTFLOW_MAX_INPUT_BYTES)."
        )
    try:
        return str(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValidationFailure(
            code, f"{source} is not UTF-8 (bad byte at offset {error.start})."
        ) from None
