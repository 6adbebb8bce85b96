"""llm_calls_1d (schemas/009): the cascade from llm_calls_1h, the backfill of a data dir from before it, and the API
sources that read whole days from it giving exactly the numbers of the hourly rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from promptpulse.dashboards import queries as dq
from promptpulse.processor import analytics as an

pytest.importorskip("chdb")

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(minute=17, second=0, microsecond=0)
# 2,000 calls, one every 20 minutes over ~28 days, 3 prompts, latency 100..2099 ms, 1 in 10 failed
CALLS_SQL = """
INSERT INTO llm_calls (timestamp, trace_id_in, span_id_in, service, prompt_name, prompt_version, request_model,
                       provider, input_tokens, output_tokens, cost_usd, latency_in, status, error_category, user_id)
SELECT toDateTime64({now:DateTime64(6, 'UTC')}, 6, 'UTC') - toIntervalSecond((number + {skip:UInt32}) * 1200),
       hex(number), hex(number), 'svc', concat('p', toString(number % 3)), '1', 'gpt-4o', 'openai',
       100 + number % 7, 10 + number % 5, toDecimal64(0.000123456789, 12) * (1 + number % 4),
       toFloat32(100 + number),
       if(number % 10 = 0, 'error', 'ok'), if(number % 10 = 0, 'timeout', ''), concat('u', toString(number % 13))
FROM numbers({n:UInt32})
"""
TOTALS = ("SELECT sum(calls), sum(errors), sum(errors_timeout), sum(input_tokens), sum(cost_usd), uniqMerge(users), "
          "promptpulse_hist_quantiles(sumMap(latency_hist), [0.5, 0.95, 0.99]) FROM {t}")


@pytest.fixture()
def store(tmp_path) -> Iterator:
    from promptpulse.processor.store.embedded import EmbeddedStore

    s = EmbeddedStore(str(tmp_path / "data"))
    try:
        s.apply_schema()
        yield s
    finally:
        s.close()


def insert(store, n: int, skip: int = 0) -> None:
    store.command(CALLS_SQL, {"now": an.ts(NOW), "n": n, "skip": skip})


def test_daily_rollup_equals_hourly_and_raw(store) -> None:
    insert(store, 2000)
    daily, hourly = (store.query(TOTALS.format(t=t)).rows[0] for t in ("llm_calls_1d", "llm_calls_1h"))
    assert daily == hourly
    raw = store.query("SELECT count(), countIf(status = 'error'), sum(input_tokens), sum(cost_usd) "
                      "FROM llm_calls").rows[0]
    assert (daily[0], daily[1], daily[3], daily[4]) == raw
    assert raw[:3] == (2000, 200, sum(100 + i % 7 for i in range(2000)))
    assert daily[4] == sum(an.Decimal("0.000123456789") * (1 + i % 4) for i in range(2000))
    assert store.query("SELECT countIf(bucket != toStartOfDay(bucket)), uniqExact(bucket) FROM llm_calls_1d").rows[0] \
        == (0, store.query("SELECT uniqExact(toDate(timestamp)) FROM llm_calls").scalar())


def test_existing_data_dir_gets_its_history_copied_once(store) -> None:
    """A data dir from before 009: applying the schema creates llm_calls_1d from the hourly rows; applying again
    copies nothing twice; new calls then cascade."""
    store.command("DROP VIEW llm_calls_1d_mv")
    store.command("DROP TABLE llm_calls_1d")
    insert(store, 1500, skip=500)
    assert store.query("SELECT count() FROM system.tables WHERE name = 'llm_calls_1d' "
                       "AND database = currentDatabase()").scalar() == 0
    store.apply_schema()
    store.apply_schema()
    insert(store, 500)
    daily, hourly = (store.query(TOTALS.format(t=t)).rows[0] for t in ("llm_calls_1d", "llm_calls_1h"))
    assert daily == hourly and daily[0] == 2000


@pytest.mark.parametrize("days", [3, 7, 30])
def test_api_sources_read_whole_days_with_the_same_numbers(store, days: int) -> None:
    insert(store, 2000)
    start, end = NOW - dt.timedelta(days=days, minutes=41), NOW
    hourly = an.source({}, start, end, resolution="1h")
    stitched = an.source({}, start, end, resolution="1h", daily=True)
    assert "llm_calls_1d" in stitched.sql and "llm_calls_1d" not in hourly.sql
    for keys in ([], [("prompt_name", "prompt")]):
        assert (an.aggregate(store, stitched, keys, order="1" if keys else None)
                == an.aggregate(store, hourly, keys, order="1" if keys else None))
    # the whole days really come from the daily rollup: a row only there is seen by the stitched source alone
    store.command("INSERT INTO llm_calls_1d (bucket, service, calls) VALUES ({b:DateTime('UTC')}, 'svc', 1000)",
                  {"b": an.sec(an.floor(NOW - dt.timedelta(days=2), 86400))})
    n = [store.query(f"SELECT sum(calls) FROM {s.sql}", s.params).scalar() for s in (hourly, stitched)]
    # rollup ranges cover whole buckets: the start's hour and the end's hour entirely
    in_range = sum(1 for k in range(2000)
                   if an.floor(start, 3600) <= an.floor(NOW - dt.timedelta(minutes=20 * k), 3600) < end)
    assert n == [in_range, in_range + 1000]


def test_edge_hours_read_the_time_ordered_projection(store) -> None:
    """schemas/010: llm_calls_1h keeps a bucket-ordered projection; a range-only read of the edge hours uses it and
    gets exactly the rows of the table's own order."""
    insert(store, 2000)
    assert store.query("SELECT count() FROM system.projection_parts WHERE active AND database = currentDatabase() "
                       "AND table = 'llm_calls_1h' AND name = 'by_time'").scalar() > 0
    start, end = NOW - dt.timedelta(days=7, minutes=41), NOW
    stitched = an.source({}, start, end, resolution="1h", daily=True)
    edges = stitched.sql.split(" UNION ALL ")[0][1:]  # the llm_calls_1h branch
    sql = f"SELECT prompt_name, sum(calls), sum(cost_usd), {dq.P95} FROM ({edges}) GROUP BY prompt_name ORDER BY 1"
    plan = "\n".join(r[0] for r in store.query(f"EXPLAIN indexes = 1 {sql}", stitched.params).rows)
    assert "by_time" in plan
    with_projection = store.query(sql, stitched.params).rows
    assert with_projection == store.query(sql + " SETTINGS optimize_use_projections = 0", stitched.params).rows
    assert sum(r[1] for r in with_projection) == sum(
        1 for k in range(2000) if an.floor(start, 3600) <= an.floor(NOW - dt.timedelta(minutes=20 * k), 3600) < end
        and not an.ceil(an.floor(start, 3600), 86400) <= NOW - dt.timedelta(minutes=20 * k) < an.floor(end, 86400))
