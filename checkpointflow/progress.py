"""Human progress on stderr: what started, what finished, how long it took, and (live
output) the lines running steps print.

stdout belongs to the envelope. Progress is silenced by `--quiet` or `LLM=true`, and is
coloured only when stderr is a terminal and NO_COLOR is unset. Live output is on when
stderr is a terminal, or when asked for (`--live`, CPF_LIVE=1); `--no-live` or CPF_LIVE=0
turn it off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TextIO

from checkpointflow.state import (
    COMPLETED,
    WAITING,
    ResponseReceived,
    RunCommand,
    RunState,
    SendRequest,
    StepFinished,
)

if TYPE_CHECKING:
    from checkpointflow.live_output import LiveOutput, Watched

_GREEN, _RED, _YELLOW, _DIM, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[2m", "\033[0m"
_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_live_choice: list[bool] = []  # --live / --no-live, as the command line chose


class Progress:
    def __init__(self, enabled: bool, color: bool, stream: TextIO, live: bool = False) -> None:
        self.enabled = enabled
        self.color = color
        self.stream = stream
        self.lock = threading.Lock()  # steps of parallel branches report from worker threads
        self.live: LiveOutput | None = None
        if enabled and live:
            from checkpointflow.live_output import LiveOutput

            self.live = LiveOutput(self.output_line, color)

    def output_line(self, key: str, text: str) -> None:
        """One line a step printed, whole, after its step key."""
        label = f"{_DIM}{key} |{_RESET}" if self.color else f"{key} |"
        with self.lock, contextlib.suppress(OSError):
            self.stream.write(f"{label} {text}\n" if text else f"{label}\n")
            self.stream.flush()

    def live_output(
        self, effect: RunCommand, paths: tuple[Watched, Watched]
    ) -> AbstractContextManager[None]:
        """While the context lasts, what the command writes to `paths` is shown live."""
        if self.live is None:
            return contextlib.nullcontext()
        secrets = tuple(os.environ.get(name, "") for name in effect.secrets)
        attempt = f"{effect.step_id}#{effect.attempt}"
        return self.live.following(attempt, effect.step_id, paths, secrets)

    def _say(self, text: str, color: str = "") -> None:
        if not self.enabled:
            return
        if self.color and color:
            text = f"{color}{text}{_RESET}"
        with self.lock, contextlib.suppress(OSError):  # a terminal that hung up
            self.stream.write(f"cpf: {text}\n")
            self.stream.flush()

    def notes(self, texts: list[str]) -> None:
        for text in texts:
            self._say(text, _YELLOW)

    def step_started(self, effect: RunCommand | SendRequest) -> None:
        again = f" (#{effect.attempt})" if effect.attempt > 1 else ""
        wait = f" after {effect.delay_seconds:g}s backoff" if effect.delay_seconds else ""
        self._say(f"step {effect.step_id} started{again}{wait}", _DIM)

    def step_finished(self, event: StepFinished) -> None:
        took = f"in {event.duration_ms} ms"
        if event.failure_code == "ERR_CANCELLED":
            self._say(f"step {event.step_id} stopped: its outcome was no longer needed", _DIM)
        elif event.failure:
            self._say(f"step {event.step_id} could not start: {event.failure}", _RED)
        elif event.timed_out:
            self._say(f"step {event.step_id} timed out {took}", _RED)
        else:
            self._say(f"step {event.step_id} exited {event.exit_code} {took}", _GREEN)

    def response_received(self, event: ResponseReceived) -> None:
        took = f"in {event.duration_ms} ms"
        if event.failure:
            self._say(f"step {event.step_id} got no response: {event.failure}", _RED)
        else:
            self._say(f"step {event.step_id} answered HTTP {event.status} {took}", _GREEN)

    def run_settled(self, state: RunState) -> None:
        if state.status == WAITING and state.waits:
            for wait in state.waits:
                self._say(
                    f"run {state.run_id} waiting for event '{wait['event_name']}' "
                    f"at step {wait['step_id']}",
                    _YELLOW,
                )
        elif state.status == COMPLETED:
            self._say(f"run {state.run_id} completed", _GREEN)
        else:
            self._say(f"run {state.run_id} {state.status}", _RED)


def progress_for(quiet: bool, stream: TextIO = sys.stderr) -> Progress:
    silenced = quiet or os.environ.get("LLM", "").strip().lower() in _YES
    terminal = stream.isatty()
    color = terminal and "NO_COLOR" not in os.environ
    return Progress(not silenced, color, stream, live=_live_wanted(terminal))


def choose_live(live: bool) -> None:
    """The command line's --live (True) or --no-live (False); it outranks CPF_LIVE."""
    _live_choice[:] = [live]


def _live_wanted(terminal: bool) -> bool:
    """--live/--no-live, else CPF_LIVE, else whether stderr is a terminal."""
    if _live_choice:
        return _live_choice[0]
    setting = os.environ.get("CPF_LIVE", "").strip().lower()
    return True if setting in _YES else False if setting in _NO else terminal
