"""Event times as text and as milliseconds, with plain arithmetic (no clock, no datetime).

Times in events are UTC ISO 8601 with milliseconds, `2026-11-27T10:15:00.123Z`. The pure
interpreter compares and offsets them (wait deadlines) through these two functions.
"""

from __future__ import annotations

import re

_PATTERN = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z")
_DAY_MS = 86_400_000


def to_millis(text: str) -> int:
    """Milliseconds since 1970-01-01T00:00:00Z."""
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"not a UTC timestamp like 2026-11-27T10:15:00.123Z: {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    millis = int((match.group(7) or "0").ljust(3, "0")[:3])
    clock = ((hour * 60 + minute) * 60 + second) * 1000 + millis
    return _days_from_civil(year, month, day) * _DAY_MS + clock


def from_millis(value: int) -> str:
    """The timestamp text for milliseconds since the epoch."""
    days, clock = divmod(value, _DAY_MS)
    year, month, day = _civil_from_days(days)
    seconds, millis = divmod(clock, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + (3 if month_index < 10 else -9)
    year = year_of_era + era * 400 + (month <= 2)
    return year, month, day
