"""The envelope: the one JSON object every command prints on stdout.

The five keys schema_version, ok, command, status and exit_code are always present; the
others (run_id, workflow_id, workflow_name, workflow_description, workflow_version,
current_step_id, result, error, wait, waits, warnings) appear when they have a value, as in
the published envelope schema.

A waiting run is reported with each wait once: `wait` is the first pending wait in full
(the 1.0.4 wait object), `waits` a short entry per pending wait (which one, and the
command that answers it). A refusal carries the error and `waits`, not the full block.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from checkpointflow.errors import (
    EXIT_CANCELLED,
    EXIT_OK,
    EXIT_WAITING,
    CpfError,
    exit_code_for,
)

SCHEMA_VERSION = "checkpointflow-run/v1"
RESUME_INSTRUCTIONS = (
    "Ask the audience named in `audience` for the input described by `prompt`.",
    "Collect a JSON value that matches `input_schema`.",
    "Run `resume.command` with that JSON in the file it names (or pass it inline to --input).",
)


def envelope(
    command: str,
    *,
    ok: bool,
    status: str,
    exit_code: int,
    run: dict[str, Any] | None = None,
    result: Any = None,
    error: dict[str, Any] | None = None,
    wait: dict[str, Any] | None = None,
    waits: list[dict[str, Any]] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    run = run or {}
    optional = {
        "run_id": run.get("run_id"),
        "workflow_id": run.get("workflow_id"),
        "workflow_name": run.get("workflow_name"),
        "workflow_description": run.get("workflow_description"),
        "workflow_version": run.get("workflow_version"),
        "current_step_id": run.get("current_step_id"),
        "result": result,
        "error": error,  # before the waits: a refusal reads error first, then what to do
        "wait": wait,
        "waits": waits,
        "warnings": warnings or None,
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "ok": ok,
        "command": command,
        "status": status,
        "exit_code": exit_code,
        **{key: value for key, value in optional.items() if value is not None},
    }


def run_exit_code(status: str, error: dict[str, Any] | None) -> int:
    """The exit code that reports a run in this status (status, inspect and friends)."""
    if status == "waiting":
        return EXIT_WAITING
    if status == "cancelled":
        return EXIT_CANCELLED
    if status == "failed":
        return exit_code_for(error["code"] if error else "")
    return EXIT_OK


def for_run(
    command: str,
    run: dict[str, Any],
    *,
    result: Any = None,
    warnings: list[str] | None = None,
    query: bool = False,
) -> dict[str, Any]:
    """Report a run (a state as JSON): completed, waiting, failed, cancelled or running.

    A query (`status`, `inspect`) is ok whenever it found the run; its exit code is still
    the run's own.
    """
    status = run["status"]
    exit_code = run_exit_code(status, run.get("error"))
    return envelope(
        command,
        ok=query or status in ("completed", "waiting", "running"),
        status=status,
        exit_code=exit_code,
        run=run,
        result=run.get("result") if result is None else result,
        error=run.get("error") if status == "failed" else None,
        wait=wait_block(run) if status == "waiting" else None,
        waits=wait_entries(run) if status == "waiting" else None,
        warnings=warnings,
    )


def pending_waits(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pending wait of a run (several when branches or iterations wait at once)."""
    return list(run.get("waits") or ([run["wait"]] if run.get("wait") else []))


def wait_entries(run: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A short entry per pending wait: which wait, what it asks, and how to answer it."""
    return [_entry(run["run_id"], wait) for wait in pending_waits(run)] or None


def wait_block(run: dict[str, Any]) -> dict[str, Any] | None:
    """The first pending wait in full: everything needed to answer it."""
    wait = run.get("wait")
    return _block(run["run_id"], wait) if wait else None


def _entry(run_id: str, wait: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "wait_id": wait.get("wait_id") or wait["step_id"],
        "step_id": wait["step_id"],
        "event_name": wait["event_name"],
        "audience": wait["audience"],
    }
    for key in ("prompt", "deadline"):
        if wait.get(key) is not None:
            entry[key] = wait[key]
    if wait.get("token"):
        entry["wait_token"] = wait["token"]
    entry["resume"] = {"command": resume_command(run_id, wait["event_name"], wait.get("token"))}
    return entry


def _block(run_id: str, wait: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {
        "kind": "external_event",
        "wait_id": wait.get("wait_id") or wait["step_id"],
        "step_id": wait["step_id"],
        "audience": wait["audience"],
        "event_name": wait["event_name"],
    }
    for key in ("prompt", "summary"):
        if wait.get(key) is not None:
            block[key] = wait[key]
    block["input_schema"] = wait.get("input_schema")
    block["instructions"] = wait.get("instructions") or list(RESUME_INSTRUCTIONS)
    for key in ("risk_level", "audience_actors", "deadline"):
        if wait.get(key) is not None:
            block[key] = wait[key]
    token = wait.get("token")
    if token:
        block["wait_token"] = token
    block["resume"] = {"command": resume_command(run_id, wait["event_name"], token)}
    return block


def resume_command(run_id: str, event_name: str, token: str | None = None) -> str:
    token_option = f" --token {token}" if token else ""
    return (
        f"cpf resume --run-id {shlex.quote(run_id)} --event {shlex.quote(event_name)}"
        f"{token_option} --input @event.json"
    )


def for_error(
    command: str,
    error: CpfError,
    run: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Report a refused or failed command; `run` adds what is known about the run. A run
    that still waits is shown by its short `waits` entries: the error says what was wrong,
    the entries how to answer instead (an input that did not match a wait's schema gets
    that schema in the error's details)."""
    return envelope(
        command,
        ok=False,
        status=(run or {}).get("status") or "failed",
        exit_code=error.exit_code,
        run=run,
        error=error.to_json(),
        waits=wait_entries(run) if run and run.get("status") == "waiting" else None,
        warnings=warnings,
    )


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
