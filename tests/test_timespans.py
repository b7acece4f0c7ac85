"""Durations and points in time for --since and --older-than."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from checkpointflow.errors import ValidationFailure
from checkpointflow.timespans import parse_duration, parse_since, parse_time

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 2D ", timedelta(days=2)),
        ("0s", timedelta()),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text, "--older-than") == expected


@pytest.mark.parametrize("text", ["", "2", "d", "2x", "-2d", "2d ago", "1.5h", "2026-01-01"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(ValidationFailure) as caught:
        parse_duration(text, "--older-than")
    assert caught.value.code == "ERR_USAGE" and "--older-than" in caught.value.message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2d", NOW - timedelta(days=2)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T10:30:00Z", datetime(2026, 11, 1, 10, 30, tzinfo=UTC)),
        ("2026-11-01T10:30:00+02:00", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_since(text, expected):
    assert parse_since(text, "--since", NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "", "11/01/2026"])
def test_bad_since(text):
    with pytest.raises(ValidationFailure) as caught:
        parse_since(text, "--since", NOW)
    assert "--since" in caught.value.message


def test_recorded_times():
    assert parse_time("2026-11-27T10:15:00.123Z") == datetime(
        2026, 11, 27, 10, 15, 0, 123000, tzinfo=UTC
    )
    assert parse_time(None) is None and parse_time("garbage") is None
