"""Effects: plain data for work in the outside world, and the code that performs it.

The interpreter returns effects; the driver hands each to `perform` and feeds the outcome
back as an event. This is the only module that starts processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import attrs

from checkpointflow import interruptions
from checkpointflow.shell import value_variable
from checkpointflow.state import RunCommand, SendRequest, Text

GRACE_SECONDS = 2.0  # between SIGTERM and SIGKILL when a step's processes are stopped
STOP_CHECK_SECONDS = 0.1  # how often a running command looks whether it should stop
QUICK_SECONDS = 0.05  # a command done this fast is never announced to `recover`


@attrs.frozen(slots=False)
class CommandOutcome:
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    failure: str | None = None  # the process could not be started, and why
    failure_code: str | None = None
    stdout_bytes: int = 0


MASK = b"***"
STOPPED = "stopped before it started: its outcome was no longer needed"


def perform(
    effect: RunCommand,
    run_id: str,
    stdout_path: Path,
    stderr_path: Path,
    on_start: Callable[[int], object],
    stop: threading.Event | None = None,
) -> CommandOutcome:
    """Run the command to completion (or timeout) with its output streamed to files.

    `stop`, once set, means the outcome no longer matters (a fail-fast sibling failed, or
    `cpf` is shutting down): a backoff ends at once, no process is started, and a running
    one is stopped (SIGTERM to its group, SIGKILL after a grace period).

    The command runs in a process group of its own, so a timeout stops everything it
    started; `on_start` learns the group's id once the command has run for longer than
    QUICK_SECONDS (a quick command costs no file for `recover`, which finds the orphans of
    those by their environment instead). CPF_RUN_ID and CPF_STEP_ID
    tell the command which run and step it serves. `mask_outputs` then hides the values
    read through `${env.NAME}` in what it printed.
    """
    stop = stop or threading.Event()
    stdout_path.parent.mkdir(parents=True, exist_ok=True)
    if stop.wait(effect.delay_seconds):
        stderr_path.write_bytes(STOPPED.encode() + b"\n")
        return CommandOutcome(None, False, 0, STOPPED, "ERR_CANCELLED")
    missing = [name for name in effect.secrets if name not in os.environ]
    if missing:
        reason = f"environment variable {', '.join(missing)} is not set where the step runs"
        stderr_path.write_bytes(reason.encode() + b"\n")
        return CommandOutcome(None, False, 0, reason, "ERR_MISSING_ENV")
    environment = dict(os.environ)
    environment.update((name, fill(text)) for name, text in effect.env)
    environment.update({"CPF_RUN_ID": run_id, "CPF_STEP_ID": effect.step_id})
    environment.update({value_variable(i): v for i, v in enumerate(effect.values, 1)})
    cwd = fill(effect.cwd) if effect.cwd is not None else None
    started = time.monotonic()
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        problem = _masked(_unsendable(environment, effect, cwd), effect)
        if problem:
            stderr.write(problem.encode() + b"\n")
            return CommandOutcome(None, False, 0, problem)
        process = _start([*effect.shell, "-c", effect.script], stdout, stderr, cwd, environment)
        if not isinstance(process, subprocess.Popen):
            reason = _masked(_start_failure(process, effect, cwd), effect) or ""
            stderr.write(reason.encode() + b"\n")
            return CommandOutcome(None, False, _since(started), reason)
        try:
            if not _exits_within(process, QUICK_SECONDS):  # None: unknown, assume it runs long
                on_start(process.pid)
        except BaseException:
            stop_process(process)
            raise
        exit_code, timed_out = _wait(process, effect.timeout_seconds, stop)
        written = os.fstat(stdout.fileno()).st_size
    return CommandOutcome(exit_code, timed_out, _since(started), stdout_bytes=written)


def mask_outputs(effect: RunCommand, paths: list[Path]) -> None:
    """Replace the values read through `${env.NAME}` by `***` in a command's captured
    output, wherever it ended up (see `store.place_output`)."""
    secrets = [os.environ[name].encode() for name in effect.secrets if os.environ.get(name)]
    for path in paths:
        mask_file(path, secrets)


def _ended(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether the process ends within `seconds`: woken the moment it exits where the
    system offers a process descriptor (Linux), by Popen's own polling elsewhere."""
    known = _exits_within(process, seconds)
    if known is not None:
        return known
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def _start(
    argv: list[str], stdout: IO[bytes], stderr: IO[bytes], cwd: str | None, env: dict[str, str]
) -> subprocess.Popen[bytes] | OSError | ValueError:
    """Start a command in a process group of its own, or say why it could not start. A
    signal that arrives meanwhile waits until the process exists, which is then stopped."""
    process = None
    try:
        with interruptions.shielded():
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
    except (OSError, ValueError) as error:
        return error
    except interruptions.Interrupted:
        if process is not None:
            stop_process(process)
        raise
    return process


def _exits_within(process: subprocess.Popen[bytes], seconds: float) -> bool | None:
    """Whether the process ends within `seconds`, learnt without polling where the system
    offers a process descriptor (Linux); None where it does not."""
    try:
        descriptor = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        return None
    try:
        poller = select.poll()
        poller.register(descriptor, select.POLLIN)
        return bool(poller.poll(seconds * 1000))
    finally:
        os.close(descriptor)


def _masked(text: str | None, effect: RunCommand | SendRequest) -> str | None:
    for name in effect.secrets:
        if text and os.environ.get(name):
            text = text.replace(os.environ[name], MASK.decode())
    return text


def fill(text: Text, json_string: bool = False) -> str:
    """Text with each secret part replaced by its variable's value (JSON-escaped inside
    a JSON string when `json_string`)."""
    return "".join(
        part if isinstance(part, str) else _secret_text(os.environ[part.name], json_string)
        for part in text
    )


def _secret_text(value: str, json_string: bool) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1] if json_string else value


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


def _wait(
    process: subprocess.Popen[bytes], timeout: float | None, stop: threading.Event
) -> tuple[int | None, bool]:
    """The exit code, or None and whether the timeout ended it; `stop` ends it too."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not stop.is_set():
            left = STOP_CHECK_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                stop_process(process)
                return None, True
            if _ended(process, min(left, STOP_CHECK_SECONDS)):
                return process.wait(), False
        stop_process(process)
        return process.returncode, False
    except BaseException:
        stop_process(process)
        raise


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's process group, then SIGKILL to whatever is left of it after
    a grace period. The leader is reaped only at the end, so until then its group id
    cannot be reused by an unrelated process."""
    if process.returncode is not None:
        return
    _kill_group(process, signal.SIGTERM)
    _exits_within(process, GRACE_SECONDS)
    _kill_group(process, signal.SIGKILL)
    process.wait()


def find_orphan_groups(run_id: str, step_id: str) -> set[int]:
    """Process groups of processes still running for one step of a run, found by the
    CPF_RUN_ID and CPF_STEP_ID every step's process carries (Linux /proc; elsewhere none)."""
    wanted = {f"CPF_RUN_ID={run_id}".encode(), f"CPF_STEP_ID={step_id}".encode()}
    groups: set[int] = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return groups
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environment = set(handle.read().split(b"\0"))
            if wanted <= environment:
                groups.add(os.getpgid(int(entry)))
        except OSError:
            continue
    return groups


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


def _unsendable(environment: dict[str, str], effect: RunCommand, cwd: str | None) -> str | None:
    """Why the operating system would refuse to start this command (a NUL byte), if so."""
    for name, value in environment.items():
        if "\0" in value or "\0" in name:
            return f"step '{effect.step_id}': a value for {name} contains a NUL byte"
    texts = (effect.script, cwd or "", *effect.shell)
    if any("\0" in text for text in texts):
        return f"step '{effect.step_id}': the command, shell or cwd contains a NUL byte"
    return None


def _start_failure(error: OSError | ValueError, effect: RunCommand, cwd: str | None) -> str:
    if cwd and not os.path.isdir(cwd):
        return f"step '{effect.step_id}': cwd {cwd!r} is not an existing folder"
    reason = error.strerror if isinstance(error, OSError) else str(error)
    return f"step '{effect.step_id}': could not start {effect.shell[0]!r}: {reason}"


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


# --- HTTP ---------------------------------------------------------------------------------

DEFAULT_HTTP_TIMEOUT = 300.0


@attrs.frozen(slots=False)
class ResponseOutcome:
    status: int | None
    headers: dict[str, str]
    duration_ms: int
    failure: str | None = None  # no response, and why
    failure_code: str | None = None


def send(
    effect: SendRequest, body_path: Path, stop: threading.Event | None = None
) -> ResponseOutcome:
    """Send the request with the standard library; the response body streams to a file.
    `stop` ends a backoff at once and then sends nothing (see `perform`)."""
    body_path.parent.mkdir(parents=True, exist_ok=True)
    body_path.write_bytes(b"")
    if stop is not None and stop.wait(effect.delay_seconds):
        return ResponseOutcome(None, {}, 0, STOPPED, "ERR_CANCELLED")
    missing = [name for name in effect.secrets if name not in os.environ]
    if missing:
        reason = f"environment variable {', '.join(missing)} is not set where the step runs"
        return ResponseOutcome(None, {}, 0, reason, "ERR_MISSING_ENV")
    started = time.monotonic()
    try:
        request = _request(effect)
    except ValueError as error:
        return ResponseOutcome(None, {}, 0, _masked(str(error), effect), "ERR_HTTP_CONNECTION")
    status, headers, failure, code = _exchange(request, effect, body_path)
    secrets = [os.environ[name].encode() for name in effect.secrets if os.environ[name]]
    mask_file(body_path, secrets)
    headers = {name: _masked(value, effect) or "" for name, value in headers.items()}
    return ResponseOutcome(status, headers, _since(started), _masked(failure, effect), code)


def _request(effect: SendRequest) -> Any:
    from urllib.parse import urlencode, urlsplit
    from urllib.request import Request

    url = fill(effect.url).strip()
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"url {url!r} is not an http:// or https:// URL")
    if not url.isascii() or any(char <= " " or char == "\x7f" for char in url):
        raise ValueError(
            f"url {url!r} contains a space, a control or a non-ASCII character; "
            "percent-encode it (an international host name in its xn-- form)"
        )
    query = urlencode([(name, fill(value)) for name, value in effect.query])
    if query:
        url += ("&" if "?" in url else "?") + query
    headers = {name: fill(value) for name, value in effect.headers}
    for name, value in headers.items():
        if any(char in value for char in "\r\n\0"):
            raise ValueError(f"header {name} contains a line break or NUL")
    data = None
    if effect.body is not None:
        data = fill(effect.body, json_string=True).encode()
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    return Request(url, data=data, headers=headers, method=effect.method)


def _exchange(
    request: Any, effect: SendRequest, body_path: Path
) -> tuple[int | None, dict[str, str], str | None, str | None]:
    """Status, headers, and a failure with its code when no response came back."""
    import http.client
    import urllib.error

    from checkpointflow import addresses, connections

    timeout = effect.timeout_seconds or DEFAULT_HTTP_TIMEOUT
    try:
        policy = connections.policy_for(effect.address_check, request.full_url)
        with connections.opener(policy).open(request, timeout=timeout) as response:
            _stream(response, body_path)
            return response.status, _header_map(response.headers), None, None
    except urllib.error.HTTPError as response:
        _stream(response, body_path)
        return response.code, _header_map(response.headers), None, None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError) or isinstance(error, TimeoutError):
            return None, {}, f"no response within {timeout:g}s", "ERR_TIMEOUT"
        if isinstance(reason, connections.ForbiddenAddress):
            return None, {}, str(reason), addresses.FORBIDDEN_CODE
        return (
            None,
            {},
            f"{effect.method} {request.full_url} failed: {reason}",
            "ERR_HTTP_CONNECTION",
        )


def _header_map(message: Any) -> dict[str, str]:
    """Response headers by lower-case name (HTTP names ignore case); the values of a
    repeated header are joined with ", "."""
    headers: dict[str, str] = {}
    for name, value in message.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _stream(response: Any, body_path: Path) -> None:
    with open(body_path, "wb") as target:
        while chunk := response.read(1 << 16):
            target.write(chunk)
