"""Live output: the lines running steps print, shown on stderr as they come.

A step's command writes straight into its output files (steps/<key>/<n>.stdout|.stderr).
Live output reads those files from the side while the command runs, so what is stored is
never touched and a step runs no slower; with live output off, none of this runs. Each
complete line is shown whole, prefixed by the step key (`build | compiling...`), so the
lines of parallel branches never mix mid-line. `cpf logs --follow` uses the same reader.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

POLL_SECONDS = 0.1
MAX_LINE_BYTES = 8192  # a longer line is shown in pieces
MAX_BEHIND_BYTES = 1 << 20  # a step printing faster than it can be shown: skip ahead
MASK = "***"
SHORTEST_MASKED_LINE = 4  # the lines of a multi-line secret are masked from this length
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.?)")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # the escapes kept on a terminal: colours only
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")

Show = Callable[[str, str], None]  # (step key, one line of its output)


def printable(text: str, colour: bool) -> str:
    """A line as a terminal would leave it: what follows the last carriage return, without
    control characters and escape sequences (colours kept where colour is shown)."""
    text = text.rstrip("\r").rpartition("\r")[2]
    kept = _ESCAPE.sub(
        lambda found: found[0] if colour and _COLOUR.fullmatch(found[0]) else "", text
    )
    return _CONTROL.sub("", kept)


Watched = Path | tuple[Path, ...]  # an output file, or where it is first and then moves to


class FileTail:
    """One output file being followed: where reading stopped, and its unfinished line."""

    def __init__(self, path: Path, *moved_to: Path) -> None:
        self.paths = (path, *moved_to)  # where the file is first, then where it may move
        self.handle: BinaryIO | None = None
        self.partial = b""
        self.skipped = 0  # bytes passed over because the step printed too fast

    def lines(self, final: bool) -> list[bytes]:
        """The complete lines written since the last call (all that is left when `final`)."""
        data = self.partial + self._read()
        *complete, self.partial = data.split(b"\n")
        lines = [piece for line in complete for piece in _pieces(line)]
        while len(self.partial) > MAX_LINE_BYTES:
            lines.append(self.partial[:MAX_LINE_BYTES])
            self.partial = self.partial[MAX_LINE_BYTES:]
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        return lines

    def _read(self) -> bytes:
        if self.handle is None:
            self.handle = _opened(self.paths)
            if self.handle is None:
                return b""  # not created yet
        size = os.fstat(self.handle.fileno()).st_size
        position = self.handle.tell()
        if size < position:  # started afresh
            position = self.handle.seek(0)
        if size - position > MAX_BEHIND_BYTES:
            self.skipped += size - MAX_BEHIND_BYTES - position
            self.handle.seek(size - MAX_BEHIND_BYTES)
            self.partial = b""
        return self.handle.read(size - self.handle.tell())

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _opened(paths: tuple[Path, ...]) -> BinaryIO | None:
    """The first of `paths` that can be opened (an open file stays readable when moved)."""
    for path in paths:
        try:
            return open(path, "rb")
        except OSError:
            continue
    return None


def _pieces(line: bytes) -> list[bytes]:
    """A line as shown: whole, or in pieces of MAX_LINE_BYTES when longer."""
    if len(line) <= MAX_LINE_BYTES:
        return [line]
    return [line[start : start + MAX_LINE_BYTES] for start in range(0, len(line), MAX_LINE_BYTES)]


class Followed:
    """One running step attempt: its files, and the secrets to mask in what it prints."""

    def __init__(self, key: str, paths: tuple[Watched, ...], secrets: tuple[str, ...]) -> None:
        self.key = key
        self.tails = [
            FileTail(*path) if isinstance(path, tuple) else FileTail(path) for path in paths
        ]
        parts = {line for s in secrets for line in s.splitlines()}
        wholes = {s for s in secrets if s}
        kept = wholes | {line for line in parts if len(line) >= SHORTEST_MASKED_LINE}
        self.secrets = sorted(kept, key=len, reverse=True)

    def lines(self, final: bool) -> list[str]:
        texts = []
        for tail in self.tails:
            before = tail.skipped
            texts += [line.decode("utf-8", errors="replace") for line in tail.lines(final)]
            if tail.skipped > before:
                texts.append(f"[{tail.skipped - before} bytes not shown; see `cpf logs --output`]")
        return [self._masked(text) for text in texts]

    def _masked(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


class LiveOutput:
    """Shows the output of every followed step attempt, line by line, through `show`."""

    def __init__(self, show: Show, colour: bool) -> None:
        self.show = show
        self.colour = colour
        self.followed: dict[str, Followed] = {}
        self.reading = threading.Lock()  # one reader of the files at a time
        self.poller: threading.Thread | None = None  # reads in the background while needed

    @contextmanager
    def following(
        self, attempt: str, key: str, paths: tuple[Watched, ...], secrets: tuple[str, ...]
    ) -> Iterator[None]:
        """Follow a step attempt's files while it runs (read in the background), and show
        the rest of its output when it ends."""
        self.follow(attempt, key, paths, secrets)
        self._start_polling()
        try:
            yield
        finally:
            self.finish(attempt)

    def follow(
        self, attempt: str, key: str, paths: tuple[Watched, ...], secrets: tuple[str, ...]
    ) -> None:
        """Start following one attempt (named `attempt`, e.g. build#2) of step `key`."""
        with self.reading:
            self.followed[attempt] = Followed(key, paths, secrets)

    def finish(self, attempt: str) -> None:
        """Show what is left of an attempt's output and stop following it."""
        with self.reading:
            followed = self.followed.pop(attempt, None)
            if followed is not None:
                self._show(followed, final=True)
                for tail in followed.tails:
                    tail.close()

    def poll(self) -> None:
        """Show the lines every followed attempt printed since the last look."""
        with self.reading:
            for followed in list(self.followed.values()):
                self._show(followed, final=False)

    def _show(self, followed: Followed, final: bool) -> None:
        try:
            lines = followed.lines(final)
        except OSError:  # an unreadable file only costs its live lines, never the step
            return
        for line in lines:
            self.show(followed.key, printable(line, self.colour))

    def _start_polling(self) -> None:
        with self.reading:
            if self.poller is None:
                self.poller = threading.Thread(target=self._poll_while_followed, daemon=True)
                self.poller.start()

    def _poll_while_followed(self) -> None:
        """Look every POLL_SECONDS; end when nothing is followed any more (the next step
        followed starts another), so an idle command keeps no thread."""
        while True:
            time.sleep(POLL_SECONDS)
            with self.reading:
                if not self.followed:
                    self.poller = None
                    return
            self.poll()
