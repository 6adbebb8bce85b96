"""Time values the API, reports and alerts accept, and UTC day/week/month boundaries (one place for both).

A time is an ISO date or datetime (UTC unless an offset is given), ``now``, ``today`` / ``yesterday`` (the start of
that UTC day), or relative to now: ``-7d``, ``-24h``, ``-30m``, ``-90s``, ``-2w`` (also ``now-7d``, ``+1h``).
Day, week (Monday to Monday) and month boundaries are UTC whatever the server's zone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

UTC = dt.timezone.utc
_RELATIVE = re.compile(r"(?:now)?\s*([+-])\s*(\d+)\s*(s|m|h|d|w)", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
HELP = "an ISO date or datetime (UTC unless an offset is given), now, today, yesterday, or relative like -7d, -24h"


def day_start(t: dt.datetime) -> dt.datetime:
    """00:00 UTC of the UTC day holding ``t``."""
    t = t.astimezone(UTC)
    return dt.datetime(t.year, t.month, t.day, tzinfo=UTC)


def week_start(t: dt.datetime) -> dt.datetime:
    """Monday 00:00 UTC of the ISO week holding ``t``."""
    d = day_start(t)
    return d - dt.timedelta(days=d.weekday())


def month_start(t: dt.datetime) -> dt.datetime:
    t = t.astimezone(UTC)
    return dt.datetime(t.year, t.month, 1, tzinfo=UTC)


def add_months(t: dt.datetime, n: int) -> dt.datetime:
    """The first of the month ``n`` months from the month of ``t`` (UTC)."""
    m = t.year * 12 + t.month - 1 + n
    return dt.datetime(m // 12, m % 12 + 1, 1, tzinfo=UTC)


def parse_time(s: str, *, end: bool = False, now: dt.datetime | None = None) -> dt.datetime:
    """A time as the module doc says; a date-only (or today / yesterday) ``end`` means the end of that day.
    Raises ValueError for anything else."""
    s = s.strip()
    low = s.lower()
    now = (now or dt.datetime.now(UTC)).astimezone(UTC)
    if low == "now":
        return now
    if low in ("today", "yesterday"):
        d = day_start(now) - dt.timedelta(days=low == "yesterday")
        return d + dt.timedelta(days=1) if end else d
    m = _RELATIVE.fullmatch(low)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return now + sign * dt.timedelta(seconds=int(m.group(2)) * _UNIT_S[m.group(3)])
    if _DATE.fullmatch(s):
        d = dt.datetime.fromisoformat(s).replace(tzinfo=UTC)
        return d + dt.timedelta(days=1) if end else d
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    d = dt.datetime.fromisoformat(s)
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def parse_date(s: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """00:00 UTC of a day given as YYYY-MM-DD, today, yesterday or a relative time (``-3d``); ValueError else."""
    return day_start(parse_time(s, now=now))


def parse_since(value: str, duration: Callable[[str], float], *, now: dt.datetime | None = None) -> dt.datetime:
    """A CLI ``--since``: a duration back from now (``"90s"``, ``"4h"``, read by the caller's ``duration`` parser,
    which raises ValueError) or any time ``parse_time`` reads. ValueError when it is neither."""
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        return now - dt.timedelta(seconds=duration(value))
    except ValueError:
        return parse_time(value, now=now)

