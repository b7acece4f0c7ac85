"""Effects: plain data for work in the outside world, and the code that performs it.

The interpreter returns effects; the driver hands each to `perform` and feeds the outcome
back as an event. This is the only module that starts processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from checkpointflow.shell import value_variable
from checkpointflow.state import RunCommand, Text

GRACE_SECONDS = 2.0


@attrs.frozen
class CommandOutcome:
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    failure: str | None = None  # the process could not be started, and why
    failure_code: str | None = None


MASK = b"***"


def perform(
    effect: RunCommand,
    run_id: str,
    stdout_path: Path,
    stderr_path: Path,
    on_start: Callable[[int], object],
) -> CommandOutcome:
    """Run the command to completion (or timeout) with its output streamed to files.

    The command runs in a process group of its own, so a timeout stops everything it
    started; `on_start` learns the group's id while it runs. CPF_RUN_ID and CPF_STEP_ID
    tell the command which run and step it serves. Values read through `${env.NAME}` are
    replaced by `***` in the captured output.
    """
    if effect.delay_seconds > 0:
        time.sleep(effect.delay_seconds)
    stdout_path.parent.mkdir(parents=True, exist_ok=True)
    missing = [name for name in effect.secrets if name not in os.environ]
    if missing:
        reason = f"environment variable {', '.join(missing)} is not set where the step runs"
        stderr_path.write_bytes(reason.encode() + b"\n")
        stdout_path.write_bytes(b"")
        return CommandOutcome(None, False, 0, reason, "ERR_MISSING_ENV")
    environment = dict(os.environ)
    environment.update((name, fill(text)) for name, text in effect.env)
    environment.update({"CPF_RUN_ID": run_id, "CPF_STEP_ID": effect.step_id})
    environment.update({value_variable(i): v for i, v in enumerate(effect.values, 1)})
    cwd = fill(effect.cwd) if effect.cwd is not None else None
    started = time.monotonic()
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        problem = _masked(_unsendable(environment, effect.script, cwd, effect.step_id), effect)
        if problem:
            stderr.write(problem.encode() + b"\n")
            return CommandOutcome(None, False, 0, problem)
        try:
            process = subprocess.Popen(
                [*effect.shell, "-c", effect.script],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=cwd,
                env=environment,
                start_new_session=True,
            )
        except OSError as error:
            reason = _masked(_start_failure(error, effect, cwd), effect) or ""
            stderr.write(reason.encode() + b"\n")
            return CommandOutcome(None, False, _since(started), reason)
        on_start(process.pid)
        exit_code, timed_out = _wait(process, effect.timeout_seconds)
    secrets = [os.environ[name].encode() for name in effect.secrets if os.environ[name]]
    for path in (stdout_path, stderr_path):
        mask_file(path, secrets)
    return CommandOutcome(exit_code, timed_out, _since(started))


def _masked(text: str | None, effect: RunCommand) -> str | None:
    for name in effect.secrets:
        if text and os.environ.get(name):
            text = text.replace(os.environ[name], MASK.decode())
    return text


def fill(text: Text) -> str:
    """Text with each secret part replaced by its variable's value."""
    return "".join(part if isinstance(part, str) else os.environ[part.name] for part in text)


def mask_file(path: Path, secrets: list[bytes]) -> None:
    """Replace every occurrence of a secret in a file by `***`, streaming large files."""
    if not secrets or path.stat().st_size == 0:
        return
    overlap = max(map(len, secrets)) - 1
    temporary = path.with_name(path.name + ".masking")
    changed = False
    with open(path, "rb") as source, open(temporary, "wb") as target:
        carry = b""
        while chunk := source.read(1 << 20):
            data = carry + chunk
            for secret in secrets:
                if secret in data:
                    changed = True
                    data = data.replace(secret, MASK)
            keep = min(overlap, len(data))
            target.write(data[: len(data) - keep])
            carry = data[len(data) - keep :]
        target.write(carry)
    if changed:
        os.replace(temporary, path)
    else:
        temporary.unlink()


def _wait(process: subprocess.Popen[bytes], timeout: float | None) -> tuple[int | None, bool]:
    try:
        return process.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        _kill_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(process, signal.SIGKILL)
            process.wait()
        return None, True
    except BaseException:
        _kill_group(process, signal.SIGKILL)
        process.wait()
        raise


def stop_orphan(group: int, run_id: str) -> bool:
    """Kill a step's process group left behind by a dead `cpf`, if it is still there.

    The group is killed only when its leader's environment names this run, so a process
    id reused by something else is never touched. Returns whether a group was stopped.
    """
    try:
        with open(f"/proc/{group}/environ", "rb") as handle:
            environment = handle.read().split(b"\0")
    except OSError:
        return False
    if f"CPF_RUN_ID={run_id}".encode() not in environment:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
        return True
    return False


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _unsendable(
    environment: dict[str, str], script: str, cwd: str | None, step_id: str
) -> str | None:
    for name, value in environment.items():
        if "\0" in value or "\0" in name:
            return f"step '{step_id}': a value for {name} contains a NUL byte"
    if "\0" in script or (cwd and "\0" in cwd):
        return f"step '{step_id}': the command or cwd contains a NUL byte"
    return None


def _start_failure(error: OSError, effect: RunCommand, cwd: str | None) -> str:
    if cwd and not os.path.isdir(cwd):
        return f"step '{effect.step_id}': cwd {cwd!r} is not an existing folder"
    return f"step '{effect.step_id}': could not start {effect.shell[0]!r}: {error.strerror}"


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
