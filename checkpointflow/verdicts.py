"""Whether an attempt succeeded, and if not, the error the run records for it."""

from __future__ import annotations

from typing import Any

from checkpointflow import json_schema
from checkpointflow.model import ApiStep, CliStep
from checkpointflow.state import ResponseReceived, StepFinished


def error(code: str, message: str, step_id: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "step_id": step_id, "details": details}


def command_error(step: CliStep, event: StepFinished) -> dict[str, Any] | None:
    """None when the command succeeded; otherwise its error."""
    details = {
        "attempt": event.attempt,
        "exit_code": event.exit_code,
        "stdout": event.stdout,
        "stderr": event.stderr,
        "stderr_tail": event.stderr_tail,
    }
    if event.failure is not None:
        message = f"Step '{step.id}' could not start: {event.failure}"
        return error(event.failure_code or "ERR_STEP_FAILED", message, step.id, details)
    if event.timed_out:
        message = (
            f"Step '{step.id}' timed out after {step.timeout_seconds or 0:g}s; "
            "its process group was stopped"
        )
        return error("ERR_TIMEOUT", message, step.id, details)
    if event.exit_code not in step.success_exit_codes:
        message = f"Step '{step.id}' exited with code {event.exit_code}"
        return error("ERR_STEP_FAILED", message, step.id, details)
    if step.outputs_schema is None:
        return None
    if event.output_problem is not None:
        message = f"Step '{step.id}' declares outputs but its stdout {event.output_problem}"
        return error("ERR_STEP_OUTPUT_INVALID", message, step.id, details)
    problem = json_schema.problem(step.outputs_schema, event.output, "outputs")
    if problem is not None:
        message = f"Step '{step.id}' stdout does not match its outputs schema: {problem}"
        return error("ERR_STEP_OUTPUT_INVALID", message, step.id, details)
    return None


def response_error(step: ApiStep, event: ResponseReceived) -> dict[str, Any] | None:
    """None when the response is a success; otherwise its error."""
    details = {"attempt": event.attempt, "status": event.status, "body_file": event.body_file}
    if event.failure is not None:
        code = event.failure_code or "ERR_HTTP_CONNECTION"
        return error(code, f"Step '{step.id}': {event.failure}", step.id, details)
    if event.status not in step.success_status_codes:
        codes = ", ".join(map(str, sorted(step.success_status_codes)))
        message = (
            f"Step '{step.id}': {step.method} answered HTTP {event.status}, "
            f"not one of the success codes ({codes})"
        )
        return error("ERR_HTTP_STATUS", message, step.id, details)
    if step.outputs_schema is None:
        return None
    if not event.body_is_json:
        why = "is not JSON" if event.body is not None else "is too large to read"
        message = f"Step '{step.id}' declares outputs but the response body {why}"
        return error("ERR_STEP_OUTPUT_INVALID", message, step.id, details)
    problem = json_schema.problem(step.outputs_schema, event.body, "body")
    if problem is not None:
        message = f"Step '{step.id}' response body does not match its outputs schema: {problem}"
        return error("ERR_STEP_OUTPUT_INVALID", message, step.id, details)
    return None


def response_outputs(event: ResponseReceived) -> Any:
    """What `steps.<id>.outputs` holds after a successful response, as in checkpointflow
    1.x: a JSON object body as it is; any other JSON value, or text, under `body`; an
    empty object for an empty body (or one too large to read, kept only in its file)."""
    body = event.body
    if event.body_is_json:
        return body if isinstance(body, dict) else {"body": body}
    if isinstance(body, str) and body.strip():
        return {"body": body}
    return {}


def response_summary(event: ResponseReceived) -> dict[str, Any] | None:
    """What `steps.<id>.response` holds: the status and headers, when a response came."""
    if event.status is None:
        return None
    return {"status": event.status, "headers": event.headers}
