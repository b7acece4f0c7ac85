"""The error family: every failure a user can meet, with its error code and exit code.

Each class owns an exit code (the guide's table); each instance carries the error code
that names the precise problem. The CLI turns any `CpfError` into an envelope in one place.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_VALIDATION = 10
EXIT_RUNTIME = 20
EXIT_STEP_FAILED = 30
EXIT_WAITING = 40
EXIT_CANCELLED = 50
EXIT_PERSISTENCE = 60
EXIT_LOCK_CONFLICT = 70
EXIT_UNSUPPORTED = 80
EXIT_INTERNAL = 90


class CpfError(Exception):
    """A failure that becomes an envelope with `error.code` and a process exit code."""

    exit_code = EXIT_INTERNAL

    def __init__(
        self,
        code: str,
        message: str,
        *,
        step_id: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.step_id = step_id
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "step_id": self.step_id,
            "details": self.details,
        }


class ValidationFailure(CpfError):
    """The workflow, the inputs, an event or the command line is not acceptable."""

    exit_code = EXIT_VALIDATION


class RuntimeFailure(CpfError):
    """The request is well formed but does not fit the run's current situation."""

    exit_code = EXIT_RUNTIME


class StepFailure(CpfError):
    """A step ran and failed; the run is now failed."""

    exit_code = EXIT_STEP_FAILED


class Interruption(CpfError):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) stopped the command; `run` is the state the
    interrupted run was left in, as JSON, when the command was advancing one."""

    exit_code = EXIT_STEP_FAILED

    def __init__(
        self, signal_name: str, message: str, run: dict[str, Any] | None, step_id: str | None
    ) -> None:
        super().__init__(
            "ERR_INTERRUPTED", message, step_id=step_id, details={"signal": signal_name}
        )
        self.run = run


class PersistenceFailure(CpfError):
    """The state root could not be read or written."""

    exit_code = EXIT_PERSISTENCE


class LockConflict(CpfError):
    """Another process is advancing the same run right now."""

    exit_code = EXIT_LOCK_CONFLICT

    def __init__(self, run_id: str) -> None:
        super().__init__(
            "ERR_LOCK_CONFLICT",
            f"Run {run_id} is being advanced by another process; try again when it finishes.",
        )


class InternalFailure(CpfError):
    """A bug: something the program did not expect. Never caused by user input."""

    exit_code = EXIT_INTERNAL


def exit_code_for(code: str) -> int:
    """The exit code a run's recorded error code maps to when the run is reported."""
    return _RUN_ERROR_EXIT_CODES.get(code, EXIT_STEP_FAILED)


_RUN_ERROR_EXIT_CODES = {
    "ERR_UNSUPPORTED_STEP": EXIT_UNSUPPORTED,
}
