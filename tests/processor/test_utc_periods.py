"""Reports for any period (--date, --from/--to, today so far) and UTC day boundaries everywhere, on a real embedded
store whose session time zone is America/Los_Angeles: calls minutes either side of UTC midnight (and of LA
midnight) land in the UTC day they belong to, in reports, the API's report and the daily_budget alert."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from analytics_seed import UTC, call, insert

pytest.importorskip("chdb")

ZONE = "America/Los_Angeles"  # UTC-8 in winter, UTC-7 in summer: either way its midnight is not UTC's
D = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=3)


def _at(days: int, hh: int, mm: int) -> dt.datetime:
    return D + dt.timedelta(days=days, hours=hh, minutes=mm)


# (time, cost): the cost doubles, so every sum names exactly the calls it holds
SEED = [(_at(-1, 9, 0), "64"), (_at(-1, 23, 50), "1"), (_at(0, 0, 10), "2"), (_at(0, 7, 59), "4"),
        (_at(0, 8, 1), "8"), (_at(0, 10, 30), "16"), (_at(1, 0, 5), "32")]
CALLS = [call(t, "support", "1", cost=c) for t, c in SEED]


def want(a: dt.datetime, b: dt.datetime) -> tuple[int, float]:
    inside = [c for c in CALLS if a <= c["t"] < b]
    return len(inside), float(sum((c["cost"] for c in inside), Decimal(0)))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from promptpulse.processor.store.embedded import EmbeddedStore
    path = tmp_path_factory.mktemp("chdb-utc")
    s = EmbeddedStore(str(path), settings={"session_timezone": ZONE})
    s.data_path = str(path)
    try:
        assert s.query("SELECT timezone()").scalar() == ZONE
        s.apply_schema()
        insert(s, CALLS)
        yield s
    finally:
        s.close()


def got(doc: dict[str, Any]) -> tuple[tuple[int, float], tuple[int, float]]:
    m = doc["metrics"]
    return ((m["requests"]["value"], pytest.approx(m["total_cost_usd"]["value"] or 0.0, abs=1e-9)),
            (m["requests"]["previous"], pytest.approx(m["total_cost_usd"]["previous"] or 0.0, abs=1e-9)))


def test_date_is_the_utc_day(store: Any) -> None:
    from promptpulse.processor.reports import build_report

    doc = build_report(store, "daily", date=D.date().isoformat())
    assert doc["period"] == {"name": "daily", "start": D.isoformat(), "end": _at(1, 0, 0).isoformat(),
                             "partial": False}
    assert doc["previous_period"] == {"start": _at(-1, 0, 0).isoformat(), "end": D.isoformat()}
    assert want(D, _at(1, 0, 0)) == (4, 30.0) and want(_at(-1, 0, 0), D) == (2, 65.0)
    assert got(doc) == ((4, 30.0), (2, 65.0))
    # the same day named relatively
    assert got(build_report(store, "daily", date="-3d")) == ((4, 30.0), (2, 65.0))


def test_today_so_far_compares_with_the_same_hours_of_yesterday(store: Any) -> None:
    from promptpulse.processor.reports import build_report, render

    now = _at(0, 10, 0)
    doc = build_report(store, "daily", date="today", now=now)
    assert doc["period"] == {"name": "daily", "start": D.isoformat(), "end": now.isoformat(), "partial": True}
    assert doc["previous_period"] == {"start": _at(-1, 0, 0).isoformat(), "end": _at(-1, 10, 0).isoformat()}
    assert got(doc) == ((3, 14.0), (1, 64.0))
    day = D.date().isoformat()
    assert render(doc, "markdown").startswith(f"# PromptPulse daily report: {day} 00:00 to {day} 10:00 UTC (so far)")


def test_week_and_month_holding_a_date(store: Any) -> None:
    from promptpulse.processor.reports import build_report
    from promptpulse.processor.timerange import add_months, month_start, week_start

    now = dt.datetime.now(UTC)
    for period, t0, t1, p0 in (
            ("weekly", week_start(D), week_start(D) + dt.timedelta(days=7), week_start(D) - dt.timedelta(days=7)),
            ("monthly", month_start(D), add_months(D, 1), add_months(D, -1))):
        doc = build_report(store, period, date=D.date().isoformat(), now=now)
        end = min(t1, now)
        assert doc["period"] == {"name": period, "start": t0.isoformat(), "end": end.isoformat(),
                                 "partial": t1 > now}, period
        pend = min(p0 + (now - t0), t0) if t1 > now else t0
        assert doc["previous_period"]["end"] == pend.isoformat()
        assert got(doc) == (want(t0, end), want(p0, pend)), period
        assert dt.datetime.fromisoformat(doc["period"]["start"]).weekday() == 0 or period == "monthly"


def test_any_range_from_to(store: Any) -> None:
    from promptpulse.processor.analytics import BadRequest
    from promptpulse.processor.reports import build_report, render

    day = D.date().isoformat()
    doc = build_report(store, "daily", start=f"{day}T07:30:00Z", end=f"{day}T09:00:00Z")  # mid-hour: the calls
    assert doc["title"] == "PromptPulse report" and doc["period"]["name"] == "custom"
    assert got(doc) == ((2, 12.0), (0, 0.0))
    assert doc["previous_period"] == {"start": _at(0, 6, 0).isoformat(), "end": _at(0, 7, 30).isoformat()}
    assert f"{day} 07:30 to {day} 09:00 UTC" in render(doc, "markdown")
    # relative to now; dates: whole UTC days, the end inclusive of its day
    assert got(build_report(store, "daily", start="-1h", now=_at(0, 10, 31))) == ((1, 16.0), (0, 0.0))
    assert got(build_report(store, "daily", start=day, end=day)) == ((4, 30.0), (2, 65.0))
    for kw, msg in (({"start": "soon"}, "bad start 'soon'"), ({"end": "now"}, "needs its start"),
                    ({"date": day, "start": day}, "not both"), ({"date": "someday"}, "bad date 'someday'"),
                    ({"date": "+3d"}, "has not started yet"), ({"start": day, "end": "-30d"}, "must be before")):
        with pytest.raises(BadRequest, match=msg):
            build_report(store, "daily", **kw)


def test_daily_budget_alert_counts_from_utc_midnight(store: Any) -> None:
    from promptpulse.processor.alerts.evaluator import AlertEvaluator
    from promptpulse.processor.alerts.rules import load_alerts

    cfg = load_alerts({"rules": [{"name": "budget", "rule": "daily_budget", "daily_budget_usd": 0.5}]})
    ev = AlertEvaluator.from_config(store, cfg)
    # just after UTC midnight only the 00:10 call counts (read as Los Angeles time it would be 08:30: 2 + 4 + 8)
    for now, spend in ((_at(0, 0, 30), 2.0), (_at(0, 9, 0), 14.0), (_at(-1, 23, 55), 65.0)):
        (t,) = ev.evaluate_once(now, dry_run=True)
        assert (t.rule, t.value) == ("budget", pytest.approx(spend)), now


def test_api_days_and_weeks_are_utc(store: Any) -> None:
    from promptpulse.processor import analytics as an
    from promptpulse.processor.timerange import week_start

    rng = {"start": _at(-1, 0, 0).isoformat(), "end": _at(2, 0, 0).isoformat()}
    days = {c["cohort"][:10]: (c["requests"], c["total_cost_usd"]) for c in an.cohorts(store, {"by": "day", **rng})
            ["cohorts"]}
    want_days = {(D + dt.timedelta(days=k)).date().isoformat(): want(D + dt.timedelta(days=k),
                                                                        D + dt.timedelta(days=k + 1))
                 for k in (-1, 0, 1)}
    assert days == {k: (n, pytest.approx(c)) for k, (n, c) in want_days.items()}
    assert days[D.date().isoformat()] == (4, pytest.approx(30.0))
    weeks = {c["cohort"][:10]: c["requests"] for c in an.cohorts(store, {"by": "week", **rng})["cohorts"]}
    mondays = {week_start(c["t"]).date().isoformat() for c in CALLS if _at(-1, 0, 0) <= c["t"] < _at(2, 0, 0)}
    assert weeks == {m: sum(1 for c in CALLS if week_start(c["t"]).date().isoformat() == m
                            and _at(-1, 0, 0) <= c["t"] < _at(2, 0, 0)) for m in mondays}
    ts = an.timeseries(store, {"metric": "requests", "interval": "1d", **rng})
    points = {p["t"][:10]: p["v"] for p in ts["series"][0]["points"]}
    assert points == {k: n for k, (n, _) in want_days.items()}


def test_cli_date_and_range_through_the_api_and_the_data_dir(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from promptpulse.processor import api_server
    from promptpulse.processor.cli import main

    day = D.date().isoformat()
    svc = SimpleNamespace(get_store=lambda: store, ingest=SimpleNamespace(authorized=lambda h: True))
    srv = api_server.make_server("127.0.0.1", 0, svc)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        api = f"http://127.0.0.1:{srv.server_address[1]}"
        assert main(["report", "--api", api, "--date", day, "--format", "json"]) == 0
        assert got(json.loads(capsys.readouterr().out)) == ((4, 30.0), (2, 65.0))
        assert main(["report", "--api", api, "--from", f"{day}T07:30:00Z", "--to", f"{day}T09:00:00Z",
                     "--format", "json"]) == 0
        assert got(json.loads(capsys.readouterr().out)) == ((2, 12.0), (0, 0.0))
        with pytest.raises(SystemExit, match="bad date 'someday'"):
            main(["report", "--api", api, "--date", "someday"])
    finally:
        srv.shutdown()
        srv.server_close()
    with pytest.raises(SystemExit, match="--to needs --from"):
        main(["report", "--to", "now"])
    path = store.data_path
    store.close()  # one chDB engine per process: hand the directory to the command
    assert main(["report", "--data-dir", path, "--period", "weekly", "--date", day, "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("# PromptPulse weekly report: ")

