"""Every dashboard panel and variable query, with Grafana macros expanded as the plugin does, on chDB over the
project's schema, against seeded spans with known numbers (otel_traces -> llm_calls -> rollups, through the MVs).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from dash_helpers import UTC, Call, close, dumps, group, minute, nearest_rank, otel_row, score_row

from promptpulse.dashboards import build, definitions, grafana, macros, queries

pytest.importorskip("chdb")

T0 = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # recent: the tables have TTLs
H1 = T0 - dt.timedelta(hours=1)
ALL_VARS = {v: macros.ALL for v in ("service", "environment", "prompt", "version", "model", "provider", "feature",
                                    "tag", "score_name")}
ALL_VARS |= {"compare_by": "prompt", "slo_target": "99.9", "daily_budget": "100", "trace_id": "",
             "trace_url": definitions.DEFAULT_TRACE_URL}
SCORE_COLUMNS_EVAL = ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source", "rule",
                      "metric", "guardrail")
# what All stands for where a query uses a variable without $__conditionalAll (the repeated panel)
ALL_VALUES = {"prompt": ["classify", "rerank", "summarize", "support_reply"]}


def _dataset() -> tuple[list[Call], list[tuple]]:
    calls: list[Call] = []
    # A: 100 calls, 3 errors (503, 429, timeout), p95 1200 ms, 250 tokens, $0.015
    a_err = {10: ("InternalServerError", 503), 20: ("RateLimitError", 429), 30: ("APITimeoutError", 0)}
    for i in range(100):
        err, code = a_err.get(i, ("", 0))
        calls.append(Call(H1 + dt.timedelta(seconds=30 * i), "checkout", "summarize", "1.0", "gpt-4o", "openai",
                          10.0 * (i + 1) + 250, input_tokens=200, output_tokens=50, cost=0.015, error=err, http=code,
                          retries=1 if i % 10 == 0 else 0))
    # B: 50 calls, 3 errors (400, 400, 401), 300 tokens, $0.020
    b_err = {5: ("BadRequestError", 400), 15: ("BadRequestError", 400), 25: ("AuthenticationError", 401)}
    for i in range(50):
        err, code = b_err.get(i, ("", 0))
        calls.append(Call(H1 + dt.timedelta(seconds=60 * i), "checkout", "classify", "1.0",
                          "claude-sonnet-4-5", "anthropic", 20.0 * (i + 1) + 850, input_tokens=240, output_tokens=60,
                          cost=0.020, error=err, http=code))
    # C: 200 streamed calls, 4 system errors, 200 tokens, $0.012, 10 users
    for i in range(200):
        calls.append(Call(H1 + dt.timedelta(seconds=15 * i), "checkout", "support_reply", "2.1.0", "gpt-4o-mini",
                          "openai", 5.0 * (i + 1), input_tokens=150, output_tokens=50, cost=0.012,
                          error="ConnectionResetError" if i in (50, 100, 150, 199) else "", ttft_ms=100.0 + i,
                          user=f"u{i % 10}"))
    # another service and environment: slow (p99 > 5 s)
    for i in range(10):
        calls.append(Call(H1 + dt.timedelta(minutes=30 + i), "search", "rerank", "1", "gpt-4o", "openai", 6000.0,
                          env="staging", input_tokens=100, output_tokens=0, cost=0.001))
    # the hour before the range: support_reply v2.0.0, all ok (the trend's "previous" and the version comparison)
    for i in range(180):
        calls.append(Call(H1 - dt.timedelta(hours=1) + dt.timedelta(seconds=20 * i), "checkout", "support_reply",
                          "2.0.0", "gpt-4o-mini", "openai", 500.0, input_tokens=150, output_tokens=50, cost=0.012))
    c_calls = [c for c in calls if c.prompt == "support_reply" and c.version == "2.1.0"]
    a_calls = [c for c in calls if c.prompt == "summarize"]
    scores = [score_row(c, "quality", 0.5 + 0.025 * i) for i, c in enumerate(c_calls[:20])]
    scores += [score_row(c, "quality", 0.9) for c in a_calls[:10]]
    scores += [score_row(c, "user_feedback", 0.0 if i % 5 == 0 else 1.0) for i, c in enumerate(c_calls[:10])]
    return calls, scores


CALLS, SCORES = _dataset()
IN_RANGE = [c for c in CALLS if H1 <= c.ts < T0]
ALERT_EVENTS = [
    (H1 + dt.timedelta(minutes=10), "error_rate", "critical", "firing", {"service": "checkout"}, 7.5, 5.0, "high"),
    (H1 + dt.timedelta(minutes=20), "error_rate", "critical", "resolved", {"service": "checkout"}, 1.0, 5.0, "ok"),
    (H1 + dt.timedelta(minutes=40), "latency_p99", "critical", "firing", {"service": "search"}, 6000, 5000, "slow"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions

    s = EmbeddedStore(str(tmp_path_factory.mktemp("dash")), schema_options=SchemaOptions(database="pp_dash"))
    try:
        s.apply_schema()
        s.insert_otel_traces([otel_row(c) for c in CALLS])
        s.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment",
                                     "source"), SCORES)
        s.insert_rows("alert_events", ("timestamp", "rule", "severity", "state", "labels", "value", "threshold",
                                       "message"), ALERT_EVENTS)
        yield s
    finally:
        s.close()


def run(store, sql: str, rng: dt.timedelta = dt.timedelta(hours=1), interval_s: int = 60, tz: str = "",
        adhoc: tuple = (), **variables) -> list[dict]:
    """The panel's rows; ``tz`` runs it as on a ClickHouse server in that time zone; ``adhoc``: ad-hoc filters."""
    expanded = macros.expand(sql, time_from=T0 - rng, time_to=T0, interval_s=interval_s,
                             variables=ALL_VARS | variables, all_values=ALL_VALUES, adhoc=adhoc)
    if tz:
        expanded += f"\nSETTINGS session_timezone = '{tz}'"
    return store.query(expanded).dicts()


P = definitions.all_panels()


def panel(store, key: str, **kw) -> list[dict]:
    return run(store, P[key].sql, **kw)


def one(store, key: str, **kw) -> dict:
    rows = panel(store, key, **kw)
    assert len(rows) == 1, rows
    return rows[0]


def success_pct(calls) -> float:
    return 100 * (1 - sum(c.failed for c in calls) / len(calls))


# --- generated files ------------------------------------------------------------------------------------------
def test_checked_in_files_are_fresh() -> None:
    assert build.stale() == [], "run: python -m promptpulse.dashboards.build"


def test_export_writes_everything(tmp_path: Path) -> None:
    paths = build.export(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    assert {d.filename for d in definitions.DASHBOARDS} <= names
    assert "alerts/grafana-alert-rules.yaml" in names and "alerts/error_rate.sql" in names
    assert build.stale(tmp_path) == []


def test_export_sets_the_trace_url(tmp_path: Path) -> None:
    build.export(tmp_path, trace_url="https://tempo.example.com/trace/")
    doc = json.loads((tmp_path / "promptpulse-performance.json").read_text())
    trace_url = next(v for v in doc["templating"]["list"] if v["name"] == "trace_url")
    assert trace_url["query"] == trace_url["current"]["value"] == "https://tempo.example.com/trace/"
    assert build.stale(tmp_path) == ["promptpulse-performance.json", "promptpulse-quality.json"]


def test_dashboard_json_model() -> None:
    assert len(definitions.DASHBOARDS) == 6
    for dash in definitions.DASHBOARDS:
        doc = json.loads((build.PACKAGE_DIR / dash.filename).read_text())
        assert doc["refresh"] == "30s"
        assert [r["from"] for r in doc["timepicker"]["quick_ranges"]] == ["now-1h", "now-24h", "now-7d", "now-30d"]
        names = [v["name"] for v in doc["templating"]["list"]]
        assert names[:7] == ["datasource", "service", "environment", "prompt", "version", "model", "provider"]
        ds = doc["templating"]["list"][0]
        assert ds["type"] == "datasource" and ds["query"] == grafana.PLUGIN_ID
        prompt = doc["templating"]["list"][3]
        assert prompt["multi"] and prompt["includeAll"] and prompt["type"] == "query"
        text = json.dumps(doc)
        panels = [q for p in doc["panels"] for q in (p.get("panels", []) if p["type"] == "row" else [p])]
        assert len(panels) == len(dash.panels)
        uids = {p["datasource"]["uid"] for p in panels} | {t["datasource"]["uid"] for p in panels
                                                           for t in p["targets"]}
        uids |= {a["datasource"]["uid"] for a in doc["annotations"]["list"] if not a.get("builtIn")}
        assert uids == {"${datasource}"}, "no hard-coded data source uids"
        for p in panels:
            assert p["targets"][0]["rawSql"] and p["datasource"]["type"] == grafana.PLUGIN_ID
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert "llm_calls_1h" in text or dash.uid == "promptpulse-quality"
    # no panel query typed twice: equal SQL means the same Panel object
    seen: dict[str, str] = {}
    for key, p in P.items():
        assert seen.setdefault(p.sql, key) == key, f"{key} repeats the SQL of {seen[p.sql]}"
    # rollups for aggregates, raw llm_calls only in panels flagged as drill-down
    for key, p in P.items():
        reads_raw = "FROM llm_calls WHERE" in p.sql or "FROM llm_calls\n" in p.sql
        assert reads_raw == p.raw, key


def test_success_thresholds_follow_the_seed() -> None:
    doc = json.loads((build.PACKAGE_DIR / "promptpulse-overview.json").read_text())
    stat = next(p for p in doc["panels"] if p["title"] == "Success rate")
    steps = stat["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps] == [("red", None), ("yellow", 90), ("green", 95)]


def test_every_panel_runs_on_both_resolutions(store) -> None:
    for _key, p in P.items():
        for rng in (dt.timedelta(hours=1), dt.timedelta(days=7), dt.timedelta(days=30)):
            run(store, p.sql, rng=rng, interval_s=3600 if rng.days else 60)


def test_every_panel_runs_with_a_tag_and_the_untagged_seed_gives_nothing(store) -> None:
    """With a tag chosen every panel still runs (the tag branches of rollup(), the raw has(tags, ...)); the seed
    carries no tags, so the call panels see no call (the untagged and daily branches are off) while the quality
    panels, which tags cannot narrow, keep their numbers."""
    for _key, p in P.items():
        for rng in (dt.timedelta(hours=1), dt.timedelta(days=7), dt.timedelta(days=30)):
            run(store, p.sql, rng=rng, interval_s=3600 if rng.days else 60, tag="web")
    for rng in (dt.timedelta(hours=1), dt.timedelta(days=30)):
        assert one(store, "requests", rng=rng, tag="web")["Requests"] == 0
        assert one(store, "requests", rng=rng)["Requests"] == 360 + 180 * (rng.days > 0)
    assert panel(store, "slowest_calls", tag="web") == []
    assert one(store, "quality_stats", tag="web") == one(store, "quality_stats") and one(
        store, "quality_stats")["Scores"] == 40


NUMERIC = ("Int", "UInt", "Float", "Decimal", "Nullable(Int", "Nullable(UInt", "Nullable(Float", "Nullable(Decimal")


def _units(doc_panel: dict) -> tuple[str, dict[str, str]]:
    by_name = {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
               for o in doc_panel["fieldConfig"]["overrides"]}
    return doc_panel["fieldConfig"]["defaults"].get("unit", ""), {n: v["unit"] for n, v in by_name.items()
                                                                  if "unit" in v}


def test_every_stat_and_table_column_has_a_unit(store) -> None:
    """Each numeric column a stat or table shows has a unit (ms, currencyUSD, percent, reqpm, tokens, short...)."""
    missing = []
    for dash in definitions.DASHBOARDS:
        rendered = {p["title"]: p for p in grafana.render_panels(dash)
                    for p in ([p, *p.get("panels", [])]) if p["type"] != "row"}
        for p in dash.panels:
            if p.type not in ("stat", "table"):
                continue
            sql = macros.expand(p.sql, time_from=T0 - dt.timedelta(hours=1), time_to=T0, interval_s=60,
                                variables=ALL_VARS)
            columns = store.query(f"DESCRIBE TABLE ({sql})").rows
            default, named = _units(rendered[p.title])
            missing += [f"{p.key}.{name}" for name, typ, *_ in columns
                        if typ.startswith(NUMERIC) and not named.get(name, default)]
    assert missing == [], missing


# --- overview ---------------------------------------------------------------------------------------------------
def test_traffic(store) -> None:
    assert one(store, "requests")["Requests"] == 360
    assert one(store, "rpm")["RPM"] == pytest.approx(6.0)
    per_minute = group(IN_RANGE, lambda c: minute(c.ts))
    assert one(store, "peak_rpm")["Peak RPM"] == max(len(v) for v in per_minute.values()) == 8
    trend = one(store, "trend")
    assert (trend["current"], trend["previous"], trend["Trend"]) == (360, 180, "increasing")
    assert trend["Change %"] == pytest.approx(100.0)


def test_success_errors_tokens_cost(store) -> None:
    assert one(store, "success_rate")["Success rate"] == pytest.approx(100 * (1 - 10 / 360))
    assert one(store, "error_rate")["Error rate"] == pytest.approx(100 * 10 / 360)
    tokens = one(store, "tokens")
    assert (tokens["Input"], tokens["Output"], tokens["Total"]) == (63000, 18000, 81000)
    assert tokens["Avg per request"] == pytest.approx(225)
    cost = one(store, "cost_stats")
    assert cost["Total cost"] == pytest.approx(4.91)
    assert cost["Cost per request"] == pytest.approx(4.91 / 360)
    assert cost["Projected monthly"] == pytest.approx(4.91 / 3600 * 30 * 86400)


def test_latency_percentiles(store) -> None:
    lat = [c.latency_ms for c in IN_RANGE]
    row = one(store, "latency_stats")
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        assert close(row[name], nearest_rank(lat, q)), (name, row[name], nearest_rank(lat, q))
    ts = panel(store, "latency_ts")
    by_minute = group(IN_RANGE, lambda c: minute(c.ts))
    assert len(ts) == len(by_minute) == 50
    for r in ts:
        vals = [c.latency_ms for c in by_minute[r["time"].replace(tzinfo=UTC)]]
        assert close(r["p95"], nearest_rank(vals, 0.95))
    ttft = panel(store, "ttft_ts")
    assert len(ttft) == 50
    first = next(r for r in ttft if r["time"].replace(tzinfo=UTC) == H1)
    assert first["ttft mean"] == pytest.approx(101.5)  # C calls 0..3: ttft 100..103


def test_time_series_by_group(store) -> None:
    per_prompt: dict[str, float] = {}
    for r in panel(store, "rpm_by_prompt"):
        per_prompt[r["series"]] = per_prompt.get(r["series"], 0) + r["rpm"]
    assert per_prompt == {"summarize": 100, "classify": 50, "support_reply": 200, "rerank": 10}
    per_model: dict[str, float] = {}
    for r in panel(store, "rpm_by_model"):
        per_model[r["series"]] = per_model.get(r["series"], 0) + r["rpm"]
    assert per_model == {"gpt-4o": 110, "claude-sonnet-4-5": 50, "gpt-4o-mini": 200}
    # 5-minute panel interval: steps of 300 s
    rows = panel(store, "rpm_by_prompt", interval_s=300)
    assert {r["time"].minute % 5 for r in rows} == {0} and len({r["time"] for r in rows}) == 10


def test_success_and_error_over_time(store) -> None:
    by_minute = group(IN_RANGE, lambda c: minute(c.ts))
    for r in panel(store, "success_ts"):
        assert r["success rate"] == pytest.approx(success_pct(by_minute[r["time"].replace(tzinfo=UTC)]))
    for r in panel(store, "error_rate_ts"):
        assert r["error rate"] == pytest.approx(100 - success_pct(by_minute[r["time"].replace(tzinfo=UTC)]))
    totals = {c: 0 for c in queries.ERROR_CATEGORIES}
    for r in panel(store, "errors_by_category"):
        for c in totals:
            totals[c] += r[c]
    assert totals == {"timeout": 1, "rate_limit": 1, "model_error": 1, "validation": 2, "auth": 1, "system": 4}


def test_top_issues(store) -> None:
    rows = {r["prompt"]: r for r in panel(store, "top_issues")}
    assert set(rows) == {"classify", "rerank"}
    assert rows["classify"]["issues"] == "success rate warning"
    assert rows["classify"]["top error"] == "validation"
    assert rows["rerank"]["issues"] == "p95 over 2 s, p99 over 5 s"


def test_filters_apply(store) -> None:
    assert one(store, "requests", service=["checkout"], model=["gpt-4o"])["Requests"] == 100
    assert one(store, "requests", environment=["staging"])["Requests"] == 10
    assert one(store, "requests", prompt=["summarize", "classify"])["Requests"] == 150
    assert one(store, "requests", provider=["anthropic"], version=["1.0"])["Requests"] == 50
    assert one(store, "requests", prompt=["nope"])["Requests"] == 0


def test_variable_queries(store) -> None:
    variables = {v.name: v for d in definitions.DASHBOARDS for v in d.variables}
    values = lambda name, **kw: [next(iter(r.values())) for r in run(store, variables[name].query, **kw)]  # noqa: E731
    assert values("service") == ["checkout", "search"]
    assert values("environment", service=["search"]) == ["staging"]
    assert values("prompt", service=["checkout"]) == ["classify", "summarize", "support_reply"]
    assert values("version", prompt=["support_reply"], rng=dt.timedelta(hours=3)) == ["2.0.0", "2.1.0"]
    assert values("model", prompt=["classify"]) == ["claude-sonnet-4-5"]
    assert values("provider") == ["anthropic", "openai"]
    assert values("score_name") == ["quality", "user_feedback"]


def test_resolution_follows_the_range(store) -> None:
    """A row only in llm_calls_1h is seen by ranges over 48 h and not by shorter ones."""
    store.command("INSERT INTO llm_calls_1h (bucket, service, calls) VALUES ({b:DateTime}, 'marker', 1000)",
                  {"b": (T0 - dt.timedelta(hours=1)).replace(tzinfo=None)})
    try:
        assert one(store, "requests", service=["marker"])["Requests"] == 0
        assert one(store, "requests", service=["marker"], rng=dt.timedelta(hours=48))["Requests"] == 0
        assert one(store, "requests", service=["marker"], rng=dt.timedelta(hours=49))["Requests"] == 1000
        assert one(store, "requests", service=["marker"], rng=dt.timedelta(days=30))["Requests"] == 1000
    finally:
        for table in ("llm_calls_1h", "llm_calls_1d"):  # the hourly row cascaded into the daily rollup
            store.command(f"ALTER TABLE {table} DELETE WHERE service = 'marker' SETTINGS mutations_sync = 2")
    # the same data through either table
    for rng in (dt.timedelta(hours=3), dt.timedelta(days=3)):
        assert one(store, "requests", rng=rng)["Requests"] == 540
        assert one(store, "cost_stats", rng=rng)["Total cost"] == pytest.approx(4.91 + 180 * 0.012)


def test_long_ranges_read_whole_days_from_the_daily_rollup(store) -> None:
    """Over 48 h, whole UTC days come from llm_calls_1d and only the edge hours from llm_calls_1h — for totals and
    day-step time series; hour-step time series keep reading llm_calls_1h."""
    day = dt.datetime.combine((T0 - dt.timedelta(days=5)).date(), dt.time(13), UTC)  # inside every range below
    store.command("INSERT INTO llm_calls_1h (bucket, service, calls) VALUES ({b:DateTime}, 'm1h', 1000)",
                  {"b": day.replace(tzinfo=None)})  # cascades into llm_calls_1d
    store.command("INSERT INTO llm_calls_1d (bucket, service, calls) VALUES ({b:DateTime}, 'm1d', 7)",
                  {"b": day.replace(hour=0, tzinfo=None)})  # in the daily rollup only
    try:
        assert store.query("SELECT sum(calls) FROM llm_calls_1d WHERE service = 'm1h'").scalar() == 1000
        for rng in (dt.timedelta(days=7), dt.timedelta(days=30)):
            assert one(store, "requests", service=["m1h"], rng=rng)["Requests"] == 1000  # once, not twice
            assert one(store, "requests", service=["m1d"], rng=rng)["Requests"] == 7  # read from llm_calls_1d
        hourly = panel(store, "rpm_by_prompt", service=["m1h", "m1d"], rng=dt.timedelta(days=7), interval_s=3600)
        assert [(r["time"].replace(tzinfo=UTC), round(r["rpm"] * 60, 6)) for r in hourly] == [(day, 1000)]
        daily = panel(store, "rpm_by_prompt", service=["m1h", "m1d"], rng=dt.timedelta(days=7), interval_s=86400)
        assert [(r["time"].replace(tzinfo=UTC), round(r["rpm"] * 1440, 6)) for r in daily] == [(day.replace(hour=0),
                                                                                              1007)]
        store.command("ALTER TABLE llm_calls_1d DELETE WHERE service = 'm1d' SETTINGS mutations_sync = 2")
        # every panel gives the same numbers whether whole days come from llm_calls_1d or (all) from llm_calls_1h
        for key in ("requests", "latency_stats", "tokens", "cost_stats", "latency_table", "top_issues"):
            for rng in (dt.timedelta(days=3), dt.timedelta(days=30)):
                hours_only = (P[key].sql.replace("NOT (1 AND ", "NOT (0 AND ")
                              .replace(f"> {queries.SWITCH_S} AND 1 AND ", f"> {queries.SWITCH_S} AND 0 AND "))
                assert hours_only != P[key].sql
                assert dumps(panel(store, key, rng=rng)) == dumps(run(store, hours_only, rng=rng)), key  # NaN-safe
    finally:
        for table in ("llm_calls_1h", "llm_calls_1d"):
            store.command(f"ALTER TABLE {table} DELETE WHERE service IN ('m1h', 'm1d') SETTINGS mutations_sync = 2")


# --- performance ---------------------------------------------------------------------------------------------------
def test_latency_tables(store) -> None:
    rows = {(r["prompt"], r["version"]): r for r in panel(store, "latency_table")}
    assert close(rows[("summarize", "1.0")]["p95 ms"], 1200)
    assert close(rows[("classify", "1.0")]["p95 ms"], 1810)
    assert close(rows[("support_reply", "2.1.0")]["p95 ms"], 950)
    assert rows[("summarize", "1.0")]["mean ms"] == pytest.approx(sum(10 * (i + 1) + 250 for i in range(100)) / 100)
    assert close(rows[("support_reply", "2.1.0")]["ttft p95 ms"], nearest_rank([100 + i for i in range(200)], 0.95))
    br = {r["model"]: r for r in panel(store, "latency_breakdown")}
    assert br["gpt-4o-mini"]["first token ms (queue + prefill)"] == pytest.approx(199.5)
    assert br["gpt-4o-mini"]["generation ms"] == pytest.approx(sum(5 * (i + 1) - 100 - i for i in range(200)) / 200)
    assert br["gpt-4o"]["requests"] == 110 and br["gpt-4o"]["retried %"] == pytest.approx(100 * 10 / 110)
    slow = panel(store, "slowest_calls")
    assert len(slow) == 20 and slow[0]["latency_ms"] == 6000 and slow[0]["prompt"] == "rerank"


def test_trace_calls_repeat_and_adhoc_filters(store) -> None:
    c = next(c for c in IN_RANGE if c.prompt == "classify" and c.error)
    rows = panel(store, "trace_calls", trace_id=c.ids[0].upper() + " ")  # pasted with capitals and a blank
    assert [(r["trace_id"], r["span_id"], r["prompt"], r["status"], r["latency_ms"]) for r in rows] == [
        (c.ids[0], c.ids[1], "classify", "error", c.latency_ms)]
    assert panel(store, "trace_calls", trace_id="") == []
    # the repeated panel: one prompt per copy (Grafana sets the scoped variable to one value)
    for prompt in ("summarize", "rerank"):
        lat = [x.latency_ms for x in IN_RANGE if x.prompt == prompt]
        rows = panel(store, "latency_per_prompt_ts", prompt=[prompt], interval_s=3600)
        assert len(rows) == 1 and close(rows[0]["p99"], nearest_rank(lat, 0.99))
    # ad-hoc filters on the raw drill-down: the plugin's additional_table_filters setting
    u3 = [x for x in IN_RANGE if x.user == "u3"]
    rows = panel(store, "slowest_calls", adhoc=(("user_id", "=", "u3"),))
    assert len(rows) == len(u3) == 20 and {r["prompt"] for r in rows} == {"support_reply"}
    assert max(r["latency_ms"] for r in rows) == max(x.latency_ms for x in u3)
    assert len(panel(store, "slowest_calls", adhoc=(("user_id", "=", "u9"), ("status", "=", "error")))) == 1  # i=199


def test_annotations(store) -> None:
    alerts_a, versions_a, changes_a = definitions.ANNOTATIONS
    rows = run(store, alerts_a.sql)
    assert [(r["time"].replace(tzinfo=UTC), r["tags"]) for r in rows] == [
        (H1 + dt.timedelta(minutes=10), "error_rate,critical,firing"),
        (H1 + dt.timedelta(minutes=20), "error_rate,critical,resolved"),
        (H1 + dt.timedelta(minutes=40), "latency_p99,critical,firing")]
    assert rows[0]["text"] == "error_rate firing (critical): high"
    # first call of each version in the range; support_reply 2.0.0 started the hour before
    firsts = {r["text"]: r["time"].replace(tzinfo=UTC) for r in run(store, versions_a.sql)}
    assert firsts == {"summarize v1.0: first call (checkout)": H1, "classify v1.0: first call (checkout)": H1,
                      "support_reply v2.1.0: first call (checkout)": H1,
                      "rerank v1: first call (search)": H1 + dt.timedelta(minutes=30)}
    assert {r["text"] for r in run(store, versions_a.sql, rng=dt.timedelta(hours=3))} >= {
        "support_reply v2.0.0: first call (checkout)"}
    assert run(store, versions_a.sql, prompt=["classify"])[0]["tags"] == "rollout,classify"
    # a version whose prompt text changed: its second fingerprint, 40 days back (out of every other test's range)
    at = T0 - dt.timedelta(days=40)
    for i, (minutes, fp) in enumerate(((0, "aaaa1111bbbb2222"), (5, "aaaa1111bbbb2222"), (20, "cccc3333dddd4444"))):
        store.command("INSERT INTO llm_calls (timestamp, trace_id_in, span_id_in, service, prompt_name, "
                      "prompt_version, prompt_fingerprint, latency_in, status) VALUES "
                      "({t:DateTime64(3)}, {tr:String}, {sp:String}, 'fp', 'greet', '3', {fp:String}, 100, 'ok')",
                      {"t": (at + dt.timedelta(minutes=minutes)).replace(tzinfo=None), "tr": f"{i + 1:032x}",
                       "sp": f"{i + 1:016x}", "fp": fp})
    changes = macros.expand(changes_a.sql, time_from=at - dt.timedelta(hours=1), time_to=at + dt.timedelta(hours=1),
                            variables=ALL_VARS)
    rows = store.query(changes).dicts()
    assert [(r["time"].replace(tzinfo=UTC), r["text"]) for r in rows] == [
        (at + dt.timedelta(minutes=20), "greet v3: prompt changed (fingerprint cccc3333dddd)")]


def test_drill_down_links_carry_the_variables() -> None:
    doc = json.loads((build.PACKAGE_DIR / "promptpulse-overview.json").read_text())
    panels = {p["title"]: p for p in doc["panels"]}
    top = panels["Top issues"]["fieldConfig"]["overrides"]
    links = next(o for o in top if o["matcher"]["options"] == "prompt")["properties"]
    url = next(p for p in links if p["id"] == "links")["value"][0]["url"]
    assert url.startswith("/d/promptpulse-performance?${__url_time_range}&${datasource:queryparam}")
    assert "var-prompt=${__data.fields.prompt:percentencode}" in url and "var-version=" in url
    perf = json.loads((build.PACKAGE_DIR / "promptpulse-performance.json").read_text())
    flat = [q for p in perf["panels"] for q in (p.get("panels", []) if p["type"] == "row" else [p])]
    slowest = next(p for p in flat if p["title"] == "Slowest calls (drill-down)")
    trace = next(o for o in slowest["fieldConfig"]["overrides"] if o["matcher"]["options"] == "trace_id")
    urls = [lk["url"] for lk in next(p for p in trace["properties"] if p["id"] == "links")["value"]]
    assert urls[1] == "${trace_url}${__value.raw}" and "var-trace_id=${__value.raw}" in urls[0]
    assert all(p.get("interval") == "$interval" for p in flat if p["type"] == "timeseries")
    assert [p["type"] for p in perf["panels"] if p["type"] == "row"] == ["row"] * 5
    repeated = [p for p in flat if p.get("repeat")]
    assert [(p["title"], p["repeat"]) for p in repeated] == [("Latency: $prompt", "prompt")]


# --- cost --------------------------------------------------------------------------------------------------------
def test_cost_panels(store) -> None:
    for col, expected in (("prompt_name", {"summarize": 1.5, "classify": 1.0, "support_reply": 2.4, "rerank": 0.01}),
                          ("provider", {"openai": 3.91, "anthropic": 1.0}),
                          ("model", {"gpt-4o": 1.51, "claude-sonnet-4-5": 1.0, "gpt-4o-mini": 2.4})):
        sums: dict[str, float] = {}
        for r in panel(store, f"cost_by_{col}"):
            sums[r["series"]] = sums.get(r["series"], 0) + r["cost"]
        assert sums == pytest.approx(expected)
    pie = {r["prompt"]: r["cost"] for r in panel(store, "cost_pie")}
    assert pie == pytest.approx({"summarize": 1.5, "classify": 1.0, "support_reply": 2.4, "rerank": 0.01})
    cpr = [r for r in panel(store, "cost_per_request_ts") if r["series"] == "classify"]
    assert all(r["cost per request"] == pytest.approx(0.02) for r in cpr)
    table = {(r["prompt"], r["model"]): r for r in panel(store, "cost_table")}
    assert table[("support_reply", "gpt-4o-mini")]["share %"] == pytest.approx(100 * 2.4 / 4.91)
    assert sum(r["share %"] for r in table.values()) == pytest.approx(100)
    daily = panel(store, "daily_spend")
    assert sum(r["spend"] for r in daily) == pytest.approx(4.91) and {r["budget"] for r in daily} == {100.0}


def test_budget_and_projection(store) -> None:
    day = T0.replace(hour=0)
    spent = sum(c.cost for c in CALLS if day <= c.ts < T0)
    row = one(store, "budget_today", daily_budget="5")
    assert row["Spent today"] == pytest.approx(spent) and row["Budget"] == 5
    assert row["Used %"] == pytest.approx(100 * spent / 5)
    month = T0.replace(day=1, hour=0)
    mtd = sum(c.cost for c in CALLS if month <= c.ts < T0)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    proj = one(store, "month_projection")
    assert proj["Month to date"] == pytest.approx(mtd)
    assert proj["Projected month"] == pytest.approx(mtd / max((T0 - month).total_seconds(), 1)
                                                    * (next_month - month).total_seconds())


def test_day_and_month_boundaries_are_utc(store) -> None:
    """On a server whose zone puts local midnight one hour before the range end, "today" and the month still start
    at 00:00 UTC (issue 12 §4)."""
    offset = (1 - T0.hour) % 24
    offset = offset - 24 if offset > 14 else offset  # UTC offset in [-12, 14] with local midnight at T0 - 1 h
    tz = f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-5 is UTC+5
    day = T0.replace(hour=0)
    spent = sum(c.cost for c in CALLS if day <= c.ts < T0)
    assert one(store, "budget_today", daily_budget="5", tz=tz)["Spent today"] == pytest.approx(spent)
    month = T0.replace(day=1, hour=0)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    mtd = sum(c.cost for c in CALLS if month <= c.ts < T0)
    proj = one(store, "month_projection", tz=tz)
    assert proj["Projected month"] == pytest.approx(mtd / max((T0 - month).total_seconds(), 1)
                                                    * (next_month - month).total_seconds())
    assert proj["Monthly budget"] == pytest.approx(100 * (next_month - month).days)
    daily = panel(store, "daily_spend", tz=tz, rng=dt.timedelta(hours=3))
    assert {r["time"].replace(tzinfo=UTC) for r in daily} <= {day, day - dt.timedelta(days=1)}


# --- quality -------------------------------------------------------------------------------------------------------
def test_quality_panels(store) -> None:
    values = [s[4] for s in SCORES]
    stats = one(store, "quality_stats")
    assert stats["Scores"] == 40 and stats["Scored calls"] == 30
    assert stats["Average score"] == pytest.approx(sum(values) / 40)
    assert one(store, "quality_stats", score_name=["user_feedback"])["Average score"] == pytest.approx(0.8)
    assert one(store, "quality_stats", prompt=["summarize"])["Average score"] == pytest.approx(0.9)
    feedback = {r["name"]: r for r in panel(store, "feedback_rates")}
    assert feedback["user_feedback"]["positive %"] == pytest.approx(80)
    assert feedback["quality"]["scored calls"] == 30 and feedback["quality"]["calls"] == 360
    assert feedback["quality"]["scored % of calls"] == pytest.approx(100 * 30 / 360)
    dist = {r["score"]: r["scores"] for r in panel(store, "quality_distribution")}
    assert sum(dist.values()) == 40 and dist["0"] == 2 and dist["1"] == 8
    ts = panel(store, "quality_ts")
    assert {r["series"] for r in ts} == {"quality", "user_feedback"}
    by_version = {(r["prompt"], r["name"]): r for r in panel(store, "quality_by_version")}
    assert by_version[("support_reply", "quality")]["average"] == pytest.approx(0.5 + 0.025 * 9.5)
    assert by_version[("support_reply", "quality")]["min"] == 0.5
    assert by_version[("support_reply", "user_feedback")]["positive %"] == pytest.approx(80)
    assert by_version[("summarize", "quality")]["count"] == 10
    for table in ("llm_scores_1m", "llm_scores_1h"):  # both score rollups hold every score, exactly
        got = store.query(f"SELECT sum(scores), sum(value_sum), sum(positives), sum(unattributed) FROM {table}").rows
        assert got[0][0] == 40 and got[0][1] == pytest.approx(sum(values)) and got[0][3] == 0
        assert got[0][2] == sum(v >= 0.5 for v in values)
    assert dist == {"0": 2, "0.5": 4, "0.6": 4, "0.7": 4, "0.8": 4, "0.9": 14, "1": 8}
    lowest = panel(store, "lowest_scores")
    assert len(lowest) == 20 and lowest[0]["value"] == 0 and lowest[0]["prompt"] == "support_reply"


# --- comparison ------------------------------------------------------------------------------------------------------
def _pooled_z(s1: int, n1: int, s2: int, n2: int) -> float:
    p = (s1 + s2) / (n1 + n2)
    return (s1 / n1 - s2 / n2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))


def test_comparison_winner_row(store) -> None:
    """Success rate first; latency over successful calls; no crown without a significant success-rate test."""
    rows = {r["metric"]: r for r in panel(store, "compare_table")}
    assert list(rows) == ["Prompt", "Requests", "Success Rate", "p95 Latency", "Avg Tokens", "Cost/Request",
                          "Successful calls", "Winner"]
    assert [rows["Prompt"][k] for k in "123"] == ["support_reply", "summarize", "classify"]
    assert [rows["Success Rate"][k] for k in "123"] == ["98%", "97%", "94%"]
    # 196/200 vs 97/100: z = 0.53, far below 2.394 (three items: alpha 0.05 / 3 pairs)
    assert [rows["Winner"][k] for k in "123"] == ["no clear winner on success rate: see /api/compare", "", ""]
    assert [rows["Avg Tokens"][k] for k in "123"] == ["200", "250", "300"]
    ranked = panel(store, "compare_ranked")
    assert [r["series"] for r in ranked] == ["support_reply", "summarize", "classify"]
    assert ranked[0]["z_vs_next"] == pytest.approx(_pooled_z(196, 200, 97, 100)) and ranked[0]["z_crit"] == 2.394
    assert [r["significant"] for r in ranked] == [0, 0, 0]
    ok = sorted(c.latency_ms for c in IN_RANGE if c.prompt == "classify" and not c.error)
    assert len(ok) == 47 and ranked[2]["successes"] == 47
    assert ranked[2]["p95_ms"] == pytest.approx(ok[int(0.95 * len(ok))], abs=0.05)  # quantileExact: element ⌊q·n⌋
    assert ranked[2]["cost_per_request"] == pytest.approx(0.02)


def test_comparison_by_version(store) -> None:
    ranked = panel(store, "compare_ranked", rng=dt.timedelta(days=3), prompt=["support_reply"], compare_by="version")
    assert [(r["series"], r["requests"], r["successes"], r["place"]) for r in ranked] == [
        ("support_reply v2.0.0", 180, 180, 1), ("support_reply v2.1.0", 200, 196, 2)]
    # 100 % vs 98 %: z = 1.907 < 1.96 (two items: one pair): not significant, so no winner
    assert ranked[0]["z_vs_next"] == pytest.approx(_pooled_z(180, 180, 196, 200)) == pytest.approx(1.907, abs=1e-3)
    assert ranked[0]["z_crit"] == 1.96 and ranked[0]["significant"] == 0
    series = {r["series"] for r in panel(store, "compare_p95_ts", prompt=["summarize", "classify"])}
    assert series == {"summarize", "classify"}
    by_series = group(IN_RANGE, lambda c: (c.prompt, minute(c.ts)))
    for r in panel(store, "compare_success_ts"):
        assert r["success"] == pytest.approx(success_pct(by_series[(r["series"], r["time"].replace(tzinfo=UTC))]))
    for r in panel(store, "compare_cost_per_request_ts"):
        cs = by_series[(r["series"], r["time"].replace(tzinfo=UTC))]
        assert r["cost_per_request"] == pytest.approx(sum(c.cost for c in cs) / len(cs))


# --- SLA & alerts ----------------------------------------------------------------------------------------------------
def test_sla_panels(store) -> None:
    sla = one(store, "sla_stats")
    assert sla["Availability"] == sla["Success"] == pytest.approx(100 * (1 - 10 / 360))
    assert close(sla["p95"], nearest_rank([c.latency_ms for c in IN_RANGE], 0.95))
    budget = one(store, "error_budget")
    assert budget["Failed calls"] == 10 and budget["Allowed failures"] == pytest.approx(0.36)
    assert budget["Budget remaining %"] == pytest.approx(100 * (1 - 10 / 0.36))
    by_minute = group(IN_RANGE, lambda c: minute(c.ts))
    down = sum(1 for v in by_minute.values() if success_pct(v) < 90)
    dt_row = one(store, "downtime")
    assert dt_row["Downtime minutes"] == down > 0
    assert dt_row["Allowed minutes"] == pytest.approx(0.06)
    burn = {r["window"]: r for r in panel(store, "burn_rate")}
    assert list(burn) == ["5m", "30m", "60m", "360m"]
    assert math.isnan(burn["5m"]["error ratio"])  # no calls in the last 5 minutes
    last30 = [c for c in IN_RANGE if c.ts >= T0 - dt.timedelta(minutes=30)]
    ratio = sum(c.failed for c in last30) / len(last30)
    assert burn["30m"]["burn rate"] == pytest.approx(ratio / 0.001) and burn["30m"]["status"] == "burning"
    assert burn["60m"]["error ratio"] == pytest.approx(10 / 360)
    assert burn["360m"]["error ratio"] == pytest.approx(10 / 540)
    ts = panel(store, "burn_rate_ts")
    for r in ts:
        v = by_minute[r["time"].replace(tzinfo=UTC)]
        assert r["burn rate"] == pytest.approx(sum(c.failed for c in v) / len(v) / 0.001)
    daily = panel(store, "sla_daily")
    assert sum(r["requests"] for r in daily) == 360 and not any(r["meeting"] for r in daily)
    history = panel(store, "alert_history")
    assert [r["rule"] for r in history] == ["latency_p99", "error_rate", "error_rate"]
    assert history[0]["state"] == "firing" and history[0]["threshold"] == 5000
    assert {r["rule"]: r["fired"] for r in panel(store, "alert_counts")} == {"error_rate": 1, "latency_p99": 1}


def test_every_panel_has_numbers_checked() -> None:
    """Each panel key is asserted on by name somewhere in this module."""
    source = Path(__file__).read_text()
    unchecked = [k for k in P if f'"{k}"' not in source and not k.startswith("cost_by_")]
    assert unchecked == []


def test_console_panels(store) -> None:
    """The panels the web console adds: the prompt breakdown, failed calls, tokens over time, alerts firing now."""
    rows = {(r["prompt"], r["version"]): r for r in panel(store, "prompt_breakdown")}
    assert next(iter(rows)) == ("support_reply", "2.1.0")  # busiest first
    assert {k: r["requests"] for k, r in rows.items()} == {("support_reply", "2.1.0"): 200, ("summarize", "1.0"): 100,
                                                           ("classify", "1.0"): 50, ("rerank", "1"): 10}
    assert rows[("summarize", "1.0")]["success %"] == pytest.approx(97)
    assert rows[("classify", "1.0")]["success %"] == pytest.approx(94)
    assert close(rows[("summarize", "1.0")]["p95 ms"], 1200)
    assert rows[("classify", "1.0")]["avg tokens"] == pytest.approx(300)
    assert rows[("summarize", "1.0")]["cost"] == pytest.approx(1.5)
    assert rows[("summarize", "1.0")]["cost per request"] == pytest.approx(0.015)
    assert rows[("rerank", "1")]["calls without usage"] == 0
    failed = panel(store, "failed_calls")
    assert len(failed) == 10 and {r["error_type"] for r in failed} == {
        "InternalServerError", "RateLimitError", "APITimeoutError", "BadRequestError", "AuthenticationError",
        "ConnectionResetError"}
    assert [r["timestamp"] for r in failed] == sorted((r["timestamp"] for r in failed), reverse=True)
    assert len(panel(store, "failed_calls", prompt=["classify"])) == 3
    tokens = panel(store, "tokens_ts")
    assert sum(r["input"] for r in tokens) == 63000 and sum(r["output"] for r in tokens) == 18000
    assert sum(r["calls without usage"] for r in tokens) == 0
    firing = panel(store, "alerts_firing")
    assert [(r["rule"], r["labels"]) for r in firing] == [("latency_p99", {"service": "search"})]
    assert firing[0]["value"] == 6000 and firing[0]["threshold"] == 5000
    # error_rate fired and resolved: before its resolution it was firing
    sql = macros.expand(P["alerts_firing"].sql, time_from=H1, time_to=H1 + dt.timedelta(minutes=15), variables=ALL_VARS)
    assert [r["rule"] for r in store.query(sql).dicts()] == ["error_rate"]


# --- guardrails and evaluation cost (schemas/014) -----------------------------------------------------------------
def test_guardrail_and_evaluation_cost_panels(store) -> None:
    """Guardrail checks on 40 calls 50 days back (out of every other test's range): pii on all 40 (4 fail), format
    on 20 (5 fail), a plain score that is no guardrail; 3 judge calls (2 priced at $0.01, 1 unpriced)."""
    from promptpulse.instrumentation.semconv import EVALUATION_FEATURE

    day = dt.datetime.combine((T0 - dt.timedelta(days=50)).date(), dt.time(12), UTC)
    app = [Call(day + dt.timedelta(seconds=30 * i), "guarded", "support", "3", "gpt-4o", "openai", 100.0)
           for i in range(40)]
    judges = [Call(day + dt.timedelta(minutes=30 + i), "guarded", "judge", "1", "gpt-4o-mini" if i < 2 else
                   "judge-unpriced-model", "openai", 200.0, cost=0.01) for i in range(3)]
    rows = [otel_row(c) for c in (*app, *judges)]
    for row in rows[40:]:
        row[11]["promptpulse.feature"] = EVALUATION_FEATURE
    del rows[42][11]["promptpulse.cost.usd"]
    store.insert_otel_traces(rows)
    guard = [(*score_row(c, "reply-pii", 0.0 if i % 10 == 0 else 1.0)[:7], "evaluation", "reply-pii", "pii", "pii")
             for i, c in enumerate(app)]
    guard += [(*score_row(c, "reply-json", 0.0 if i % 4 == 0 else 1.0)[:7], "evaluation", "reply-json",
               "valid_json", "format") for i, c in enumerate(app[:20])]
    guard += [(*score_row(c, "quality", 0.1)[:7], "evaluation", "quality", "relevance", "") for c in app[:10]]
    store.insert_rows("llm_scores", (*SCORE_COLUMNS_EVAL,), guard)
    store.insert_rows("llm_eval_errors", ("timestamp", "trace_id", "span_id", "rule", "metric", "error",
                                          "judge_model", "judge_cost_usd", "source"),
                      [[day, a.ids[0], a.ids[1], "judge", "relevance", "bad answer", "gpt-4o-mini", c, "evaluation"]
                       for a, c in zip(app, (0.0015, 0.002, None), strict=False)])

    def day_panel(key: str, **variables) -> list[dict]:
        start = day.replace(hour=0)
        sql = macros.expand(P[key].sql, time_from=start, time_to=start + dt.timedelta(days=1), interval_s=60,
                            variables=ALL_VARS | variables)
        return store.query(sql).dicts()

    rate = day_panel("guardrail_rate")
    assert rate == [{"Failure rate": pytest.approx(100 * 9 / 60), "Failures": 9, "Checks": 60}]
    assert day_panel("guardrail_rate", score_name=["reply-json"])[0]["Failure rate"] == pytest.approx(25.0)
    assert day_panel("guardrail_rate", provider=["openai"]) == rate
    assert day_panel("guardrail_rate", provider=["anthropic"])[0]["Checks"] == 0
    assert day_panel("guardrail_rate", version=["3"], model=["gpt-4o"])[0]["Checks"] == 60
    empty = day_panel("guardrail_rate", prompt=["other"])[0]
    assert empty["Checks"] == 0 and math.isnan(empty["Failure rate"])  # no checks: unknown, never 0 %
    by_type = [(r["type"], r["rule"], r["failed"], r["checked"], r["failure %"])
               for r in day_panel("guardrail_by_type")]
    assert by_type == [("format", "reply-json", 5, 20, pytest.approx(25.0)), ("pii", "reply-pii", 4, 40,
                                                                               pytest.approx(10.0))]
    series = {(r["time"].replace(tzinfo=UTC), r["series"]): r["failure rate"] for r in day_panel("guardrail_rate_ts")}
    assert series == {(day, "format"): pytest.approx(25.0), (day, "pii"): pytest.approx(10.0)}
    cost = day_panel("evaluation_cost", service=["guarded"])
    assert cost == [{"Evaluation cost": pytest.approx(0.02), "Judge calls": 3, "Calls without cost": 1,
                     "Judge cost on results": pytest.approx(0.0035)}]
    # the results' judge cost follows the scored call: support v3 on gpt-4o, not another prompt or model
    assert day_panel("evaluation_cost", prompt=["support"], version=["3"], model=["gpt-4o"])[0][
        "Judge cost on results"] == pytest.approx(0.0035)
    assert math.isnan(day_panel("evaluation_cost", prompt=["other"])[0]["Judge cost on results"])
    assert math.isnan(day_panel("evaluation_cost", feature=["chat"])[0]["Judge cost on results"])
    assert day_panel("evaluation_cost", model=["judge-unpriced-model"])[0]["Calls without cost"] == 1
    assert math.isnan(day_panel("evaluation_cost", model=["judge-unpriced-model"])[0]["Evaluation cost"])
