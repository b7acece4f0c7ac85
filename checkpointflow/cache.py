"""A disposable on-disk cache of derived data (parsed documents, compiled schema checks).

It lives in `<state root>/cache/`; deleting it is always safe. A cache that cannot be read
or written is simply not used.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class DiskCache:
    def __init__(self, folder: Path, suffix: str) -> None:
        self.folder = folder
        self.suffix = suffix

    def load(self, key: str) -> str | None:
        try:
            return (self.folder / f"{key}{self.suffix}").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def save(self, key: str, text: str) -> None:
        path = self.folder / f"{key}{self.suffix}"
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, path)
