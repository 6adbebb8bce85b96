"""Tag rollups (schemas/021, issue 13 §1): llm_calls_tags_1m / _1h hold one row per (tag, series, bucket); a call
counts once under each of its distinct tags, untagged calls and judge calls in no row. A data dir from before 021
gets its tagged history on the first apply (the backfill), and the views keep the tables in step afterwards. The
numbers here are the seed's, computed in Python, and what raw llm_calls with has(tags, x) gives."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from analytics_seed import UTC, call, close, nearest_rank, row
from old_schema import apply_before

from promptpulse.instrumentation.semconv import EVALUATION_FEATURE
from promptpulse.processor.store import schema

pytest.importorskip("chdb")

TAGS = 21  # schemas/021_tag_rollups.sql
START = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
END = START + dt.timedelta(hours=1)


def _calls() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Before 021 (backfilled) and after it (through the views). Tags: 'web' on 8 app calls (one of them also 'beta',
    one with 'web' twice, one with an empty tag next to it), 'beta' on 3, 5 untagged calls, and a judge call tagged
    'web' that is never app traffic."""
    def at(i: int) -> dt.datetime:
        return START + dt.timedelta(minutes=3 * i + 1)

    before = [
        call(at(0), "support", "1", latency_ms=400, inp=100, out=20, cost="0.001", tags=("web", "beta"),
             error=("RateLimitError", "429", "rate_limit")),
        call(at(1), "support", "1", latency_ms=600, inp=200, out=40, cost="0.002", tags=("web",)),
        call(at(2), "support", "1", latency_ms=800, inp=300, out=60, cost="0.003", tags=("web", "web")),
        call(at(3), "support", "1", latency_ms=1000, inp=100, out=20, cost="0.001"),
        call(at(4), "support", "1", latency_ms=5000, inp=900, out=90, cost="0.25", tags=("web",),
             feature=EVALUATION_FEATURE),
        call(at(5), "search", "2", latency_ms=300, inp=50, out=10, cost="0.0005", tags=("beta",)),
        call(at(6), "search", "2", latency_ms=3000, inp=70, out=30, cost="0.004"),
    ]
    after = [
        call(at(7 + i), "support", "1", latency_ms=500 + 100 * i, inp=120 + i, out=30, cost="0.0015",
             tags=("web",) if i < 5 else (), error=("APITimeoutError", "", "timeout") if i == 2 else None)
        for i in range(8)
    ]
    after.append(call(at(15), "search", "2", latency_ms=700, inp=60, out=10, cost="0.0007", tags=("beta", "")))
    return before, after


BEFORE, AFTER = _calls()
APP = [c for c in (*BEFORE, *AFTER) if c["feature"] != EVALUATION_FEATURE]


def tagged(tag: str, calls: list[dict[str, Any]] = APP) -> list[dict[str, Any]]:
    return [c for c in calls if tag in c["tags"] and c["feature"] != EVALUATION_FEATURE]


def expected(calls: list[dict[str, Any]]) -> tuple:
    return (len(calls), sum(1 for c in calls if c["error"]), sum(c["inp"] + c["out"] for c in calls),
            sum((c["cost"] for c in calls), Decimal(0)))


TOTALS = ("sum(calls), sum(errors), sum(input_tokens) + sum(output_tokens), sum(cost_usd)")
RAW_TOTALS = ("count(), countIf(status = 'error'), sum(input_tokens) + sum(output_tokens), sum(cost_usd)")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A data dir with today's schema up to 020 and BEFORE in it; then 021 applied (twice: the second is a no-op)
    and AFTER written through the views. Also returns what the tag tables held right after the first apply."""
    from promptpulse.processor.store.embedded import EmbeddedStore

    s = EmbeddedStore(str(tmp_path_factory.mktemp("tags")))
    try:
        apply_before(s, TAGS)
        s.insert_otel_traces([row(c) for c in BEFORE], dedup_token=uuid.uuid4().hex)
        s.apply_schema()
        seen = {t: {tag: s.query(f"SELECT {TOTALS} FROM llm_calls_tags_{t} WHERE tag = {{t:String}}",
                                 {"t": tag}).rows[0] for tag in ("web", "beta")} for t in ("1m", "1h")}
        s.apply_schema()
        s.insert_otel_traces([row(c) for c in AFTER], dedup_token=uuid.uuid4().hex)
        # two quality scores: on a 'web' call and on an untagged one
        s.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source"),
                      [(c["t"] + dt.timedelta(seconds=5), c["trace_id"], c["span_id"], "quality", v, "", "", "test")
                       for c, v in ((AFTER[0], 0.9), (AFTER[6], 0.3))])
        # a failed guardrail check on an untagged call
        c = AFTER[7]
        s.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source",
                                     "rule", "guardrail"),
                      [(c["t"] + dt.timedelta(seconds=5), c["trace_id"], c["span_id"], "no_pii", 0.0, "", "", "test",
                        "no_pii", "pii")])
        yield s, seen
    finally:
        s.close()


def test_the_seed(seeded) -> None:
    s, _ = seeded
    assert s.query("SELECT count(), countIf(feature = {f:String}) FROM llm_calls",
                   {"f": EVALUATION_FEATURE}).rows == [(len(BEFORE) + len(AFTER), 1)]
    assert [len(tagged("web")), len(tagged("beta")), len(APP)] == [8, 3, 15]
    assert s.query("SELECT version FROM schema_migrations WHERE version = 21").rows == [(21,)]


def test_backfill_gives_calls_from_before_021_their_tags(seeded) -> None:
    _, seen = seeded
    for table in ("1m", "1h"):
        assert seen[table] == {"web": (3, 1, 120 + 240 + 360, Decimal("0.006")),
                               "beta": (2, 1, 120 + 60, Decimal("0.0015"))}, table
        assert seen[table]["web"] == expected(tagged("web", BEFORE))


@pytest.mark.parametrize("table", ["1m", "1h"])
def test_tag_tables_equal_raw_calls_with_the_tag(seeded, table: str) -> None:
    s, _ = seeded
    assert s.query(f"SELECT DISTINCT tag FROM llm_calls_tags_{table} ORDER BY tag").rows == [("beta",), ("web",)]
    for tag in ("web", "beta"):
        rollup = s.query(f"SELECT {TOTALS}, promptpulse_hist_quantile(sumMap(latency_hist), 0.95) "
                         f"FROM llm_calls_tags_{table} WHERE tag = {{t:String}}", {"t": tag}).rows[0]
        raw = s.query(f"SELECT {RAW_TOTALS}, quantileExact(0.95)(latency_ms) FROM llm_calls "
                      "WHERE has(tags, {t:String}) AND feature != {f:String}",
                      {"t": tag, "f": EVALUATION_FEATURE}).rows[0]
        assert rollup[:4] == raw[:4] == expected(tagged(tag)), tag
        p95 = nearest_rank([c["latency_ms"] for c in tagged(tag)], 0.95)
        assert raw[4] == p95 and close(rollup[4], p95, rel=0.01), (tag, rollup[4], p95)
    # web: 8 calls (the 'web', 'web' call once), 2 errors; the judge's 0.25 is never in it
    assert expected(tagged("web"))[:2] == (8, 2)
    assert expected(tagged("web"))[3] == Decimal("0.0135")


def test_a_call_with_two_tags_counts_once_under_each(seeded) -> None:
    s, _ = seeded
    rows = s.query("SELECT tag, sum(calls) FROM llm_calls_tags_1m WHERE bucket = {b:DateTime('UTC')} "
                   "GROUP BY tag ORDER BY tag", {"b": BEFORE[0]["t"]}).rows
    assert rows == [("beta", 1), ("web", 1)]
    # the tables' rows are per tag: adding tags up counts that call twice (why the filter is single-valued)
    assert s.query("SELECT sum(calls) FROM llm_calls_tags_1h").scalar() == 8 + 3
    assert s.query("SELECT sum(calls) FROM llm_calls_1h").scalar() == 15


def test_the_hourly_cascade_adds_exactly(seeded) -> None:
    """The hourly cascade adds exactly: for tag 'web', minutes and hours give the same sums, maps and uniq."""
    s, _ = seeded
    cols = ("sum(calls), sum(latency_ms_sum), sumMap(latency_hist), sum(ttft_count), sum(calls_without_usage), "
            "sum(calls_without_cost), sum(retries), uniqMerge(users)")
    by_minute = s.query(f"SELECT {cols} FROM llm_calls_tags_1m WHERE tag = 'web'").rows
    by_hour = s.query(f"SELECT {cols} FROM llm_calls_tags_1h WHERE tag = 'web'").rows
    assert by_minute == by_hour
    assert by_hour[0][1] == sum(c["latency_ms"] for c in tagged("web"))


@pytest.mark.parametrize("table", ["1m", "1h"])
def test_tag_tables_have_the_untagged_columns_in_order_plus_tag(seeded, table: str) -> None:
    """Readers UNION ALL `SELECT *` of llm_calls_1m / _1h with `SELECT * EXCEPT tag` of the tag tables: positionally
    the same columns and types (llm_calls_1m's order comes from 004 plus 013's ALTERs)."""
    s, _ = seeded

    def columns(name: str) -> list[tuple]:
        return s.query("SELECT name, type FROM system.columns WHERE database = 'promptpulse' AND table = {t:String} "
                       "ORDER BY position", {"t": name}).rows

    untagged, tags = columns(f"llm_calls_{table}"), columns(f"llm_calls_tags_{table}")
    assert len(untagged) == 37
    assert [c for c in tags if c[0] != "tag"] == untagged
    assert tags[1] == ("tag", "LowCardinality(String)")
    both = s.query(f"DESCRIBE (SELECT * FROM llm_calls_{table} UNION ALL SELECT * EXCEPT tag "
                   f"FROM llm_calls_tags_{table})").rows
    assert [r[:2] for r in both] == untagged


def test_views_and_backfills_write_every_column() -> None:
    """Every column of the tag tables is written by both views and both backfills (an unwritten column would stay
    0)."""
    import re

    sql = next(m for m in schema.migrations() if m.version == TAGS).sql
    tables = re.findall(r"CREATE TABLE IF NOT EXISTS \$\{DB\}\.(\w+)\$\{LOCAL\} \$\{ON_CLUSTER\}\n\((.*?)\n\)", sql,
                        re.S)
    assert [t for t, _ in tables] == ["llm_calls_tags_1m", "llm_calls_tags_1h"]
    columns = [line.split()[0] for line in tables[0][1].strip().splitlines()]
    assert columns == [line.split()[0] for line in tables[1][1].strip().splitlines()]
    selects = re.findall(r"\bAS( SELECT|\nSELECT)\n(.*?);", sql, re.S)
    assert len(selects) == 4
    for _, body in selects:
        for column in columns:
            assert re.search(rf"\b(AS {column}|{column})[,\n]", body), column
        assert "ARRAY JOIN arrayFilter(t -> t != '', arrayDistinct(tags)) AS tag" in body or "AS m" in body
        assert "WHERE feature != ${EVALUATION_FEATURE}" in body or "AS m" in body


def test_cluster_rendering_of_021() -> None:
    """On a cluster: shard-local replicated tables (backfilled from each shard's own calls), a Distributed table for
    each, and views reading and writing the local tables."""
    opts = schema.SchemaOptions(database="obs", cluster="main")
    statements = dict((m.version, sts) for m, sts in schema.render_all(opts))[TAGS]
    assert len(statements) == 6
    t1m, d1m, t1h, d1h, mv1m, mv1h = statements
    for table, dist, res in ((t1m, d1m, "1m"), (t1h, d1h, "1h")):
        assert table.startswith(f"CREATE TABLE IF NOT EXISTS `obs`.llm_calls_tags_{res}_local ON CLUSTER `main`\n(")
        assert ("ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
                "'{replica}')") in table
        assert "FROM `obs`.llm_calls_local\nARRAY JOIN" in table
        assert "WHERE feature != 'promptpulse.evaluation'" in table
        assert "replicated_deduplication_window = 1000" in table
        assert dist == (f"CREATE TABLE IF NOT EXISTS `obs`.llm_calls_tags_{res} ON CLUSTER `main` AS "
                        f"`obs`.llm_calls_tags_{res}_local\nENGINE = Distributed('main', 'obs', "
                        f"'llm_calls_tags_{res}_local', rand())")
    assert "toIntervalDay(35)" in t1m and "toIntervalDay(800)" in t1h
    assert mv1m.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS `obs`.llm_calls_tags_1m_mv ON CLUSTER `main` "
                           "TO `obs`.llm_calls_tags_1m_local AS")
    assert "FROM `obs`.llm_calls_local\nARRAY JOIN" in mv1m
    assert mv1h.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS `obs`.llm_calls_tags_1h_mv ON CLUSTER `main` "
                           "TO `obs`.llm_calls_tags_1h_local AS")
    assert "FROM `obs`.llm_calls_tags_1m_local AS m" in mv1h
    single = dict((m.version, sts) for m, sts in schema.render_all(schema.SchemaOptions(database="obs")))[TAGS]
    assert len(single) == 4 and not any("Distributed" in st or "_local" in st for st in single)


# --- panels (dashboards/queries.py rollup(): the same SQL for Grafana and the console) ----------------------------
WEB = tagged("web")
# Long ranges end a day after the seed's day, so that day is a whole day inside them (untagged: read from llm_calls_1d)
END_LONG = dt.datetime.combine(START.date(), dt.time(0), UTC) + dt.timedelta(days=2)


def _end(rng: dt.timedelta) -> dt.datetime:
    return END if rng <= dt.timedelta(days=2) else END_LONG


def grafana(s: Any, key: str, rng: dt.timedelta, tag: str | None) -> list[dict[str, Any]]:
    """The panel as Grafana runs it (macros.expand: the plugin's $__conditionalAll, then the variables)."""
    from promptpulse.dashboards import definitions, macros, queries

    variables: dict[str, Any] = {v: macros.ALL for v in (*queries.VARIABLES, "score_name")}
    if tag is not None:
        variables["tag"] = tag  # single-valued: a plain string, as Grafana holds it
    sql = macros.expand(definitions.all_panels()[key].sql, time_from=_end(rng) - rng, time_to=_end(rng),
                        interval_s=60 if rng <= dt.timedelta(days=2) else 3600, variables=variables)
    return s.query(sql).dicts()


def console(s: Any, key: str, rng: dt.timedelta, tag: str | None) -> list[dict[str, Any]]:
    from promptpulse.processor.console import panels

    p = panels.PanelParams(_end(rng) - rng, _end(rng), {"tag": [tag]} if tag else {})
    out = panels.run(s, key, p)
    return [dict(zip(out["columns"], r, strict=True)) for r in out["rows"]]


RANGES = [dt.timedelta(hours=1), dt.timedelta(days=7)]  # the minute tables; the hourly ones (and, untagged, days)


@pytest.mark.parametrize("runner", [grafana, console])
@pytest.mark.parametrize("rng", RANGES, ids=["1h", "7d"])
def test_a_tagged_panel_equals_raw_calls_with_the_tag(seeded, runner, rng: dt.timedelta) -> None:
    s, _ = seeded
    (requests,) = runner(s, "requests", rng, "web")
    assert requests["Requests"] == len(WEB) == 8
    (errors,) = runner(s, "error_rate", rng, "web")
    assert errors["Error rate"] == pytest.approx(100 * 2 / 8)
    (tokens,) = runner(s, "tokens", rng, "web")
    assert (tokens["Input"], tokens["Output"], tokens["Total"]) == (1210, 270, 1480) == (
        sum(c["inp"] for c in WEB), sum(c["out"] for c in WEB), sum(c["inp"] + c["out"] for c in WEB))
    (cost,) = runner(s, "cost_stats", rng, "web")
    assert cost["Total cost"] == pytest.approx(0.0135) and cost["Cost per request"] == pytest.approx(0.0135 / 8)
    (latency,) = runner(s, "latency_stats", rng, "web")
    assert nearest_rank([c["latency_ms"] for c in WEB], 0.95) == 900 and close(latency["p95"], 900, rel=0.01)
    raw = s.query("SELECT count(), sum(input_tokens), sum(output_tokens), sum(cost_usd) FROM llm_calls "
                  "WHERE has(tags, 'web') AND feature != {f:String}", {"f": EVALUATION_FEATURE}).rows
    assert raw == [(8, 1210, 270, Decimal("0.0135"))]
    (beta,) = runner(s, "requests", rng, "beta")
    assert beta["Requests"] == 3  # the call tagged web and beta counts under both
    (none,) = runner(s, "requests", rng, "nope")
    assert none["Requests"] == 0


@pytest.mark.parametrize("runner", [grafana, console])
@pytest.mark.parametrize("rng", RANGES, ids=["1h", "7d"])
def test_all_tags_reads_every_call_as_before(seeded, runner, rng: dt.timedelta) -> None:
    s, _ = seeded
    assert runner(s, "requests", rng, None)[0]["Requests"] == len(APP) == 15
    assert runner(s, "error_rate", rng, None)[0]["Error rate"] == pytest.approx(100 * 2 / 15)
    assert runner(s, "cost_stats", rng, None)[0]["Total cost"] == pytest.approx(
        float(sum((c["cost"] for c in APP), Decimal(0))))
    assert runner(s, "tokens", rng, None)[0]["Total"] == sum(c["inp"] + c["out"] for c in APP)


@pytest.mark.parametrize("runner", [grafana, console])
def test_minute_panels_and_drill_downs_follow_the_tag(seeded, runner) -> None:
    s, _ = seeded
    rng = dt.timedelta(hours=1)
    assert runner(s, "peak_rpm", rng, "web")[0]["Peak RPM"] == 1  # minute_only: the tagged minutes
    slowest = runner(s, "slowest_calls", rng, "web")
    assert sorted(r["latency_ms"] for r in slowest) == sorted(c["latency_ms"] for c in WEB)
    assert len(runner(s, "slowest_calls", rng, None)) == 15


def test_quality_panels_are_not_narrowed_by_tag(seeded) -> None:
    """Scores keep no tags: a tag leaves the quality numbers (and the calls they are set against) as they are."""
    s, _ = seeded
    from promptpulse.dashboards import definitions

    for key in ("quality_stats", "feedback_rates", "guardrail_rate", "lowest_scores"):
        one_tag, every = (repr(grafana(s, key, dt.timedelta(hours=1), t)) for t in ("web", None))  # repr: nan
        assert one_tag == every and "'Checks': 0" not in every, key
        assert definitions.NOT_BY_TAG in definitions.all_panels()[key].description
    feedback = grafana(s, "feedback_rates", dt.timedelta(hours=1), "web")
    assert [(r["name"], r["count"], r["calls"]) for r in feedback] == [("no_pii", 1, 15), ("quality", 2, 15)]
    (guardrails,) = grafana(s, "guardrail_rate", dt.timedelta(hours=1), "web")
    assert (guardrails["Failures"], guardrails["Checks"]) == (1, 1)


def test_the_tag_variable_offers_the_tags_and_the_console_takes_one(seeded) -> None:
    from promptpulse.dashboards import definitions, macros
    from promptpulse.processor.console import panels

    s, _ = seeded
    tag = next(v for v in definitions.FILTER_VARIABLES if v.name == "tag")
    assert (tag.multi, tag.include_all) == (False, True) and "counted twice" in tag.description
    sql = macros.expand(tag.query, time_from=START, time_to=END, variables={"service": macros.ALL,
                                                                            "environment": macros.ALL})
    assert s.query(sql).rows == [("beta",), ("web",)]
    assert panels.options(s, panels.PanelParams(START, END))["tag"] == ["beta", "web"]
    assert panels.options(s, panels.PanelParams(START, END, {"service": ["nope"]}))["tag"] == []
    with pytest.raises(panels.PanelError, match="one value"):
        panels.PanelParams(START, END, {"tag": ["web", "beta"]})
