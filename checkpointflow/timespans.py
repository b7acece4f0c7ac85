"""Time filters of `cpf list` and `cpf gc`: durations like `2d` and points like `2026-11-27`.

Times without a zone are UTC, like every time `cpf` records.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from checkpointflow.errors import ValidationFailure

_DURATION = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_DURATION_HELP = "a number and a unit: 30s, 15m, 12h, 2d or 1w (combinations like 1d12h work)"


def parse_duration(text: str, option: str) -> timedelta:
    """`2d`, `12h`, `30m`, `45s`, `1w`, or a combination such as `1d12h`."""
    spec = text.strip().lower()
    if not spec or _DURATION.sub("", spec).strip():
        raise ValidationFailure(
            "ERR_USAGE", f"{option} {text!r} is not a duration; use {_DURATION_HELP}."
        )
    total = timedelta()
    for amount, unit in _DURATION.findall(spec):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total


def parse_since(text: str, option: str, now: datetime) -> datetime:
    """A duration back from `now`, or an ISO 8601 date or date and time."""
    if _DURATION.match(text.strip().lower()):
        return now - parse_duration(text, option)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailure(
            "ERR_USAGE",
            f"{option} {text!r} is neither a duration ({_DURATION_HELP}) nor an ISO date or "
            "time such as 2026-11-27 or 2026-11-27T10:15:00Z.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_time(text: Any) -> datetime | None:
    """A time recorded by `cpf` (`2026-11-27T10:15:00.123Z`); None when unreadable."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
