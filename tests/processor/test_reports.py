"""Reports (processor/reports.py) on a real embedded store: key metrics and their change, top prompts by cost, alerts
fired and the three recommendations agree with numbers computed from the seed; all three formats render; a webhook
receives the report; the scheduler runs it; `promptpulse report` prints it."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from analytics_seed import UTC, call, close, insert, summary

pytest.importorskip("chdb")

NOW = dt.datetime.now(UTC)
T0 = NOW.replace(hour=0, minute=0, second=0, microsecond=0)  # the daily report covers [T0 - 1d, T0)
CUR, PREV = T0 - dt.timedelta(days=1), T0 - dt.timedelta(days=2)


def _seed() -> list[dict[str, Any]]:
    calls = []
    for day, start in (("prev", PREV), ("cur", CUR)):
        def t(i: int, start: dt.datetime = start) -> dt.datetime:
            return start + dt.timedelta(minutes=7 * i + 3)

        for i in range(30):  # the costliest prompt, steady
            calls.append(call(t(i), "classify", "1", cost="0.050000", latency_ms=300 + i))
        for i in range(20):  # tokens per call grow 120 -> 180
            calls.append(call(t(i + 40), "summarize", "1", inp=100 if day == "prev" else 160, out=20, cost="0.002",
                              latency_ms=800 + i))
        n_v1 = 30 if day == "prev" else 10
        for i in range(n_v1):
            calls.append(call(t(i + 70), "support", "1.0", latency_ms=500 + i, cost="0.001",
                              error=("RateLimitError", "429", "") if day == "cur" and i == 0 else None))
        if day == "cur":  # v2 appears and is slower
            for i in range(30):
                calls.append(call(t(i + 110), "support", "2.0", latency_ms=900 + i, cost="0.001"))
    return calls


CALLS = _seed()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from promptpulse.processor.store.embedded import EmbeddedStore

    path = tmp_path_factory.mktemp("chdb-reports")
    s = EmbeddedStore(str(path))
    s.data_path = str(path)
    try:
        s.apply_schema()
        insert(s, CALLS)
        ev = [(CUR + dt.timedelta(hours=2), "error_rate", "critical", "firing", {}, 7.5, 5.0, "errors up"),
              (CUR + dt.timedelta(hours=3), "error_rate", "critical", "resolved", {}, 1.0, 5.0, "ok"),
              (CUR + dt.timedelta(hours=5), "error_rate", "critical", "firing", {}, 8.0, 5.0, "errors up again"),
              (CUR + dt.timedelta(hours=6), "latency_p95", "warning", "firing", {}, 2500, 2000, "slow"),
              (PREV + dt.timedelta(hours=6), "latency_p95", "warning", "firing", {}, 2500, 2000, "slow")]
        s.insert_rows("alert_events", ("timestamp", "rule", "severity", "state", "labels", "value", "threshold",
                                       "message"), ev)
        yield s
    finally:
        s.close()


def in_(c: dict[str, Any], a: dt.datetime, b: dt.datetime) -> bool:
    return a <= c["t"] < b


@pytest.fixture(scope="module")
def report(store: Any) -> dict[str, Any]:
    from promptpulse.processor.reports import build_report

    return build_report(store, "daily", now=NOW)


def test_key_metrics_and_change(report: dict[str, Any]) -> None:
    cur = summary([c for c in CALLS if in_(c, CUR, T0)])
    prev = summary([c for c in CALLS if in_(c, PREV, CUR)])
    m = report["metrics"]
    assert report["period"] == {"name": "daily", "start": CUR.isoformat(), "end": T0.isoformat(), "partial": False}
    assert m["requests"]["value"] == cur["requests"] == 90 and m["requests"]["previous"] == prev["requests"] == 80
    assert m["requests"]["change_pct"] == pytest.approx(12.5)
    assert m["total_cost_usd"]["value"] == pytest.approx(float(cur["total_cost_usd"]), abs=1e-9)
    assert m["total_cost_usd"]["previous"] == pytest.approx(float(prev["total_cost_usd"]), abs=1e-9)
    assert m["total_tokens"]["value"] == cur["total_tokens"]
    assert m["success_rate"]["value"] == pytest.approx(cur["success_rate"], abs=1e-4)
    assert close(m["p95_latency_ms"]["value"], cur["p95"]) and close(m["p95_latency_ms"]["previous"], prev["p95"])


def test_top_prompts_and_alerts(report: dict[str, Any]) -> None:
    top = report["top_prompts_by_cost"]
    assert [t["prompt"] for t in top] == ["classify", "summarize", "support"]
    total = sum((c["cost"] for c in CALLS if in_(c, CUR, T0)), Decimal(0))
    assert top[0]["total_cost_usd"] == pytest.approx(1.5)
    assert top[0]["share_pct"] == pytest.approx(round(float(Decimal("1.5") / total * 100), 2))
    assert top[0]["change_pct"] == 0.0
    assert report["alerts"]["fired"] == 3
    assert [(a["rule"], a["count"]) for a in report["alerts"]["by_rule"]] == [("error_rate", 2), ("latency_p95", 1)]


def test_recommendations(report: dict[str, Any]) -> None:
    recs = {r["kind"]: r for r in report["recommendations"]}
    assert set(recs) == {"costliest_prompt", "version_regression", "tokens_growth"}
    assert recs["costliest_prompt"]["prompt"] == "classify"
    reg = recs["version_regression"]
    assert (reg["prompt"], reg["version"], reg["baseline_version"]) == ("support", "2.0", "1.0")
    lat = next(r for r in reg["regressions"] if r["metric"] == "p95_latency_ms")
    assert lat["change_pct"] > 20
    # judged like /api/compare: significant, latency over successful calls (v1.0's one failure left out)
    assert lat["test"] == "exact bootstrap of the quantile difference" and lat["p_value"] < reg["alpha"] == 0.05
    ok_v1 = [c["latency_ms"] for c in CALLS if c["prompt"] == "support" and c["version"] == "1.0" and not c["error"]]
    assert close(lat["baseline"], sorted(ok_v1)[math.ceil(0.95 * len(ok_v1)) - 1])
    assert {r["metric"] for r in reg["regressions"]} == {"p95_latency_ms"}  # 1 error in 40: no success regression
    assert recs["tokens_growth"]["prompt"] == "summarize"
    assert recs["tokens_growth"]["change_pct"] == pytest.approx(50.0)
    assert recs["tokens_growth"]["avg_tokens"] == 180 and recs["tokens_growth"]["previous_avg_tokens"] == 120


def test_renders_all_formats(report: dict[str, Any]) -> None:
    from promptpulse.processor.reports import render

    md = render(report, "markdown")
    assert md.startswith("# PromptPulse daily report") and "| Requests | 90 | 80 | +12.5% |" in md
    assert "| classify | 30 | $1.50 |" in md and "'support' v2.0 regressed against v1.0" in md
    html = render(report, "html")
    assert "<td>Requests</td><td>90</td><td>80</td><td>+12.5%</td>" in html and "&#x27;summarize&#x27;" in html
    doc = json.loads(render(report, "json"))
    assert doc["metrics"]["requests"]["value"] == 90 and len(doc["recommendations"]) == 3
    with pytest.raises(ValueError):
        render(report, "pdf")


def test_weekly_and_monthly(store: Any) -> None:
    from promptpulse.processor.reports import build_report, period_bounds

    w = build_report(store, "weekly", now=NOW)
    assert w["metrics"]["requests"]["value"] == len(CALLS) and w["metrics"]["requests"]["previous"] == 0
    s, e, ps, pe = period_bounds("monthly", dt.datetime(2025, 1, 15, 9, tzinfo=UTC))
    assert (s, e, ps, pe) == (dt.datetime(2024, 12, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC),
                              dt.datetime(2024, 11, 1, tzinfo=UTC), dt.datetime(2024, 12, 1, tzinfo=UTC))
    assert build_report(store, "monthly", now=NOW)["period"]["name"] == "monthly"


class _Hook(BaseHTTPRequestHandler):
    got: ClassVar[list] = []

    def do_POST(self) -> None:
        self.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list]]:
    got: ClassVar[list] = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Hook,), {"got": got}))
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", got
    srv.shutdown()
    srv.server_close()


def test_send_webhook_and_schedule(store: Any, report: dict[str, Any], hook: tuple[str, list],
                                   tmp_path: Any) -> None:
    from promptpulse.processor import reports

    url, got = hook
    reports.send(report, "webhook", {"type": "webhook", "url": url})
    assert got[0]["type"] == "promptpulse.report" and got[0]["report"]["metrics"]["requests"]["value"] == 90
    assert got[0]["text"].startswith("# PromptPulse daily report")
    # channel from the [alerts.channels] table of the config
    name, ch = reports.channel_config("webhook", alerts_cfg={"channels": {"ops": {"type": "webhook", "url": url}}})
    assert name == "ops" and ch["url"] == url
    with pytest.raises(ValueError):
        reports.channel_config("email", alerts_cfg={"channels": {"ops": {"type": "webhook", "url": url}}})
    # the scheduler (fake clock just past 08:00) builds, writes and sends once
    cfg = {"schedule": "daily", "time": "08:00", "format": "html", "send": "webhook", "output_dir": str(tmp_path),
           "channels": {"team": {"type": "webhook", "url": url}}}
    clock = [NOW.replace(hour=7, minute=59, second=59)]
    sched = reports.ReportScheduler(lambda: store, cfg, clock=lambda: clock[0])
    assert sched.next == NOW.replace(hour=8, minute=0, second=0, microsecond=0)
    clock[0] = sched.next + dt.timedelta(seconds=1)
    sched.start()
    try:
        for _ in range(200):
            if sched.runs:
                break
            threading.Event().wait(0.05)
    finally:
        sched.stop()
    assert sched.runs == 1 and len(got) == 2
    (written,) = list(tmp_path.iterdir())
    assert written.name == f"promptpulse-daily-{CUR.date().isoformat()}.html"
    assert reports.next_run({"schedule": "weekly", "weekday": "monday", "time": "06:30"},
                            dt.datetime(2025, 1, 15, 12, tzinfo=UTC)) == dt.datetime(2025, 1, 20, 6, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        reports.check_config({"schedule": "hourly"})


def test_cli_report_from_the_data_dir(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from promptpulse.processor.cli import main

    path = store.data_path
    store.close()  # one chDB engine per process: hand the directory to the command
    assert main(["report", "--period", "daily", "--format", "json", "--data-dir", path]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metrics"]["requests"]["value"] == 90
    assert {r["kind"] for r in doc["recommendations"]} == {"costliest_prompt", "version_regression",
                                                          "tokens_growth"}
