"""Signals that stop `cpf`: Ctrl-C (SIGINT), SIGTERM and SIGHUP, all handled alike.

The first such signal raises `Interrupted` in the main thread, except inside a `shielded`
block (appending to the log, replacing a state file), where it waits until the block ends,
so a signal never tears a write. Signals after the first are ignored: the command is
already stopping its steps and recording what happened, and must be left to finish that.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A signal asked `cpf` to stop. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` on the way swallows it."""

    def __init__(self, number: int) -> None:
        self.signal_name = signal.Signals(number).name
        super().__init__(f"stopped by {self.signal_name}")


class _Signals:
    def __init__(self) -> None:
        self.depth = 0  # shielded blocks entered and not yet left
        self.pending: int | None = None  # a signal that arrived inside a shielded block
        self.raised = False  # the first signal has been raised (or is being held)

    def handle(self, number: int, frame: FrameType | None) -> None:
        if self.raised:
            return
        if self.depth:
            self.pending = self.pending or number
            return
        self.raised = True
        raise Interrupted(number)


_signals = _Signals()


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to `Interrupted` for the rest of the process."""
    for number in HANDLED:
        signal.signal(number, _signals.handle)


@contextmanager
def shielded() -> Iterator[None]:
    """A block no signal interrupts; a signal that arrives inside it is raised at its end."""
    _signals.depth += 1
    try:
        yield
    finally:
        _signals.depth -= 1
    if _signals.depth == 0 and _signals.pending is not None and not _signals.raised:
        number, _signals.pending = _signals.pending, None
        _signals.raised = True
        raise Interrupted(number)


def hold() -> None:
    """Ignore every later signal: the command has done its work and only reports now."""
    _signals.raised = True
