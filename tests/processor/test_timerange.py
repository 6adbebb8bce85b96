"""Times the API, reports and alerts accept (processor/timerange.py): ISO dates and datetimes, now / today /
yesterday, relative -7d / -24h; UTC day, week and month boundaries."""

from __future__ import annotations

import datetime as dt

import pytest

from promptpulse.processor import analytics as an
from promptpulse.processor.alerts.rules import parse_duration
from promptpulse.processor.timerange import (
    add_months,
    day_start,
    month_start,
    parse_date,
    parse_since,
    parse_time,
    week_start,
)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, 0, 30, 15, tzinfo=UTC)  # a Sunday, 00:30 UTC: 2026-02-28 16:30 in Los Angeles


@pytest.mark.parametrize(("text", "end", "want"), [
    ("now", False, NOW),
    ("NOW", True, NOW),
    ("-7d", False, NOW - dt.timedelta(days=7)),
    ("-24h", False, NOW - dt.timedelta(hours=24)),
    ("-30m", False, NOW - dt.timedelta(minutes=30)),
    ("-90s", False, NOW - dt.timedelta(seconds=90)),
    ("-2w", False, NOW - dt.timedelta(days=14)),
    ("now-7d", False, NOW - dt.timedelta(days=7)),
    ("+1h", False, NOW + dt.timedelta(hours=1)),
    ("today", False, dt.datetime(2026, 3, 1, tzinfo=UTC)),
    ("today", True, dt.datetime(2026, 3, 2, tzinfo=UTC)),
    ("yesterday", False, dt.datetime(2026, 2, 28, tzinfo=UTC)),
    ("yesterday", True, dt.datetime(2026, 3, 1, tzinfo=UTC)),
    ("2026-02-10", False, dt.datetime(2026, 2, 10, tzinfo=UTC)),
    ("2026-02-10", True, dt.datetime(2026, 2, 11, tzinfo=UTC)),
    ("2026-02-10T08:00:00Z", True, dt.datetime(2026, 2, 10, 8, tzinfo=UTC)),
    ("2026-02-10T08:00:00", False, dt.datetime(2026, 2, 10, 8, tzinfo=UTC)),
    ("2026-02-10T08:00:00-08:00", False, dt.datetime(2026, 2, 10, 16, tzinfo=UTC)),
])
def test_parse_time(text: str, end: bool, want: dt.datetime) -> None:
    assert parse_time(text, end=end, now=NOW) == want


@pytest.mark.parametrize("text", ["soon", "7d", "-7y", "-d", "now-", "2026-13-01", ""])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text, now=NOW)


def test_api_range_accepts_relative_times_and_says_what_it_accepts() -> None:
    assert an.time_range({"start": "-7d", "end": "now"}, 3600, now=NOW) == (NOW - dt.timedelta(days=7), NOW)
    assert an.time_range({"start": "yesterday", "end": "yesterday"}, 3600, now=NOW) == (
        dt.datetime(2026, 2, 28, tzinfo=UTC), dt.datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(an.BadRequest, match=r"bad start 'soon': expected an ISO date or datetime, now, today or a "
                                            r"relative time like -7d"):
        an.time_range({"start": "soon"}, 3600, now=NOW)


def test_boundaries_are_utc() -> None:
    la = dt.timezone(dt.timedelta(hours=-8))
    t = NOW.astimezone(la)  # 2026-02-28 16:30 -08:00, the same instant
    assert day_start(t) == dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert week_start(t) == dt.datetime(2026, 2, 23, tzinfo=UTC)  # Monday
    assert month_start(t) == dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert add_months(month_start(t), -1) == dt.datetime(2026, 2, 1, tzinfo=UTC)
    assert add_months(dt.datetime(2026, 12, 5, tzinfo=UTC), 1) == dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert add_months(dt.datetime(2026, 1, 5, tzinfo=UTC), -1) == dt.datetime(2025, 12, 1, tzinfo=UTC)
    assert parse_date("2026-02-10", now=NOW) == dt.datetime(2026, 2, 10, tzinfo=UTC)
    assert parse_date("today", now=NOW) == dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_date("-1d", now=NOW) == dt.datetime(2026, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize(("text", "want"), [
    ("90s", NOW - dt.timedelta(seconds=90)),  # a duration back from now
    ("4h", NOW - dt.timedelta(hours=4)),
    ("300", NOW - dt.timedelta(seconds=300)),
    ("-1d", NOW - dt.timedelta(days=1)),  # or any time parse_time reads
    ("2026-02-27", dt.datetime(2026, 2, 27, tzinfo=UTC)),
    ("yesterday", dt.datetime(2026, 2, 28, tzinfo=UTC)),
])
def test_parse_since_for_the_cli(text: str, want: dt.datetime) -> None:
    assert parse_since(text, parse_duration, now=NOW) == want


def test_parse_since_rejects() -> None:
    with pytest.raises(ValueError):
        parse_since("soon", parse_duration, now=NOW)
