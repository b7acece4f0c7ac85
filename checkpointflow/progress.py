"""Human progress on stderr: what started, what finished, how long it took.

stdout belongs to the envelope. Progress is silenced by `--quiet` or `LLM=true`, and is
coloured only when stderr is a terminal and NO_COLOR is unset.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import TextIO

from checkpointflow.state import (
    COMPLETED,
    WAITING,
    ResponseReceived,
    RunCommand,
    RunState,
    SendRequest,
    StepFinished,
)

_GREEN, _RED, _YELLOW, _DIM, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[2m", "\033[0m"


class Progress:
    def __init__(self, enabled: bool, color: bool, stream: TextIO) -> None:
        self.enabled = enabled
        self.color = color
        self.stream = stream
        self.lock = threading.Lock()  # steps of parallel branches report from worker threads

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
    silenced = quiet or os.environ.get("LLM", "").strip().lower() in ("1", "true", "yes")
    color = stream.isatty() and "NO_COLOR" not in os.environ
    return Progress(not silenced, color, stream)
