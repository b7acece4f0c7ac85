"""Compact views for `cpf inspect`: nothing it prints is larger than a few KB.

A value above INLINE_LIMIT bytes (as JSON) is replaced by a note, `{"omitted_bytes": N,
"see": WHERE}`, naming the file or log record that holds it. Text the envelope defines
as text (an error message, a wait's prompt, a description) stays text: it is cut to the
limit and ends by saying how long it was and where the rest is.
"""

from __future__ import annotations

import json
from typing import Any

INLINE_LIMIT = 4096
CUT_TEXT = 1000  # characters of a long text that are kept
FULL = "cpf inspect --full"


def size_of(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def bounded(value: Any, where: str) -> Any:
    """The value itself when small, else a note saying how big it was and where it is."""
    size = size_of(value)
    if size <= INLINE_LIMIT:
        return value
    return {"omitted_bytes": size, "see": where}


def text(value: Any, where: str) -> Any:
    """Text cut to the limit (any other value is bounded like data)."""
    if not isinstance(value, str):
        return bounded(value, where)
    size = len(value.encode("utf-8", "surrogatepass"))
    if size <= INLINE_LIMIT:
        return value
    return f"{value[:CUT_TEXT]}… [{size} bytes; see {where}]"


def error(value: Any, where: str) -> Any:
    """An error keeps its shape (code, message, step_id, details); its parts are bounded."""
    if not isinstance(value, dict):
        return bounded(value, where)
    return {
        **{key: text(part, where) for key, part in value.items()},
        **({"details": bounded(value["details"], where)} if "details" in value else {}),
    }


def wait(value: Any, where: str) -> Any:
    """A pending wait: its text stays text, its lists of names stay lists, its schema is
    bounded like data."""
    if not isinstance(value, dict):
        return bounded(value, where)
    return {key: _wait_part(part, where) for key, part in value.items()}


def _wait_part(part: Any, where: str) -> Any:
    if isinstance(part, list) and all(isinstance(item, str) for item in part):
        return bounded([text(item, where) for item in part], where)
    return text(part, where)


def run_state(run: dict[str, Any]) -> dict[str, Any]:
    """A run's state (as JSON) with every value in it bounded."""
    compact = {key: text(value, FULL) for key, value in run.items()}
    compact.update(
        inputs=bounded(run["inputs"], FULL),
        result=bounded(run["result"], FULL),
        error=error(run["error"], FULL),
        steps={key: _step(step) for key, step in run["steps"].items()},
        wait=wait(run["wait"], FULL) if run["wait"] else None,
        waits=[wait(pending, FULL) for pending in run["waits"]],
        frames={path: _frame(frame) for path, frame in run["frames"].items()},
        in_flight=bounded(run["in_flight"], FULL),
    )
    return compact


def _step(step: dict[str, Any]) -> dict[str, Any]:
    return {
        **{key: bounded(value, FULL) for key, value in step.items()},
        "error": error(step["error"], FULL),
        "attempts": [
            {**attempt, "error": error(attempt["error"], FULL)} for attempt in step["attempts"]
        ],
    }


def _frame(frame: dict[str, Any]) -> dict[str, Any]:
    return {key: bounded(value, FULL) for key, value in frame.items()}


def record(entry: dict[str, Any]) -> dict[str, Any]:
    """A record of the event log, each part of its payload bounded."""
    where = f"events.jsonl seq {entry['seq']}"
    return {**entry, "payload": {key: bounded(v, where) for key, v in entry["payload"].items()}}
