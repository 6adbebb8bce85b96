"""Known calls for the console tests, relative to now so the page's presets (last hour, 24 h, 7 d) each see a known
subset; the expectations are computed here from the same list."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "processor"))

from analytics_seed import UTC, call, row

NOW = dt.datetime.now(UTC).replace(second=0, microsecond=0)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)


def seed() -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    # last hour: support 1.0 (40 calls, 2 failures) and summarize 1 (20 calls, no failure); tags: every 4th support
    # call 'web' and 'beta', the first 5 summarize calls 'web' (15 web, 10 beta, 45 untagged)
    for i in range(40):
        err = ("RateLimitError", "429", "rate_limit") if i in (5, 25) else None
        calls.append(call(NOW - dt.timedelta(minutes=50) + dt.timedelta(seconds=60 * i), "support", "1.0",
                          latency_ms=300 + 10 * i, inp=100, out=20, cost="0.001", error=err, feature="chat",
                          service="support-bot", tags=("web", "beta") if i % 4 == 0 else ()))
    for i in range(20):
        calls.append(call(NOW - dt.timedelta(minutes=40) + dt.timedelta(seconds=90 * i), "summarize", "1",
                          model="gpt-4o-mini", latency_ms=1200 + 20 * i, inp=1000, out=200, cost="0.004",
                          feature="docs", service="docs-bot", tags=("web",) if i < 5 else ()))
    # 1 h to 24 h ago: support 2.0, 100 calls, 20 failures (a bad version)
    for i in range(100):
        err = ("APITimeoutError", "", "timeout") if i % 5 == 0 else None
        calls.append(call(NOW - 2 * HOUR - dt.timedelta(minutes=10 * i), "support", "2.0", latency_ms=800 + i,
                          inp=150, out=30, cost="0.002", error=err, feature="chat", service="support-bot"))
    # 2 to 6 days ago: classify 1, 200 calls
    for i in range(200):
        calls.append(call(NOW - 2 * DAY - dt.timedelta(minutes=25 * i), "classify", "1", model="gpt-4o-mini",
                          latency_ms=150 + i % 50, inp=60, out=2, cost="0.0001", feature="triage",
                          service="support-bot"))
    return calls


CALLS = seed()
NO_USAGE = 5  # of the last hour's support calls (the first five) report no usage and no cost


def rows() -> list[list]:
    out = []
    for i, c in enumerate(CALLS):
        r = row(c)
        if i < NO_USAGE:
            for k in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "promptpulse.cost.usd"):
                r[11].pop(k)
        out.append(r)
    return out


def in_last(c: dict[str, Any], span: dt.timedelta, end: dt.datetime | None = None) -> bool:
    end = end or dt.datetime.now(UTC)
    return end - span <= c["t"] < end


def known(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = {id(c) for c in CALLS[:NO_USAGE]}
    return [c for c in calls if id(c) not in ids]


def totals(span: dt.timedelta) -> dict[str, Any]:
    sel = [c for c in CALLS if in_last(c, span)]
    errors = sum(1 for c in sel if c["error"])
    usage = known(sel)
    return {"requests": len(sel), "errors": errors, "success_rate": 100 * (len(sel) - errors) / len(sel),
            "input_tokens": sum(c["inp"] for c in usage), "output_tokens": sum(c["out"] for c in usage),
            "cost": sum((c["cost"] for c in usage), Decimal(0)), "calls_without_usage": len(sel) - len(usage)}
