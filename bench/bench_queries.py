"""Dashboard queries from the rollups vs from raw llm_calls rows, and storage per call, at 1M and 10M calls.

    .venv/bin/python bench/bench_queries.py [--calls 1000000 10000000] [--runs 7] [--generator nested independent]

For each size: a fresh embedded store with the full schema; synthetic calls over the last 30 days (180 series:
30 prompts x 6 models, 3 services, each prompt's version changing every 10 days, staggered; ~3% errors, 40%
streamed) are generated *in SQL* — ``INSERT INTO llm_calls SELECT ... FROM numbers(a, 1000000)`` per million —
so the rollup materialized views (llm_calls -> llm_calls_1m -> llm_calls_1h -> llm_calls_1d) fill exactly as they
do on ingest. ``--generator`` picks how calls are drawn (NESTED, the default, or INDEPENDENT, the first generator).
Then OPTIMIZE ... FINAL (the state background merges converge to); each query runs once to warm up, then --runs
rounds time every query in turn (median, ms).
Storage: system.parts / system.parts_columns of llm_calls (compressed bytes per call, per column).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from promptpulse.dashboards import macros
from promptpulse.dashboards import queries as dq
from promptpulse.processor.store.embedded import EmbeddedStore

CHUNK = 1_000_000

# One row per call; n is the call number. Distributions: lognormal latency around 300 ms .. 3.2 s by prompt, token
# counts lognormal, cost from the tokens at per-model prices in Decimal, exactly as llm_calls_mv computes it (until
# this round in Float64, whose truncation to 12 decimals left ...999999 tails real costs do not have). Columns as
# llm_calls_mv writes them (schemas/003): ids as bytes, latency/TTFT as the bits of promptpulse_f32_round's Float32;
# `latency` is a helper.
GENERATE_SELECT = """
SELECT * EXCEPT latency FROM (SELECT
    toDateTime64(now64(6) - toIntervalMicrosecond(d), 6, 'UTC') AS timestamp,
    lower(hex(sipHash128(n))) AS trace_id_in,  -- ids as an SDK sends them (stored as bytes)
    lower(hex(reinterpretAsFixedString(sipHash64(n, 1)))) AS span_id_in,
    concat('app-', toString(p % 3)) AS service,
    'prod' AS environment,
    'chat' AS operation,
    if(m < 3, 'openai', 'anthropic') AS provider,
    ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'claude-sonnet-4', 'claude-haiku-4', 'claude-opus-4'][m + 1] AS request_model,
    concat(request_model, '-2025-01-01') AS response_model,
    concat('prompt_', toString(p)) AS prompt_name,
    toString(v) AS prompt_version,
    lower(hex(sipHash64(p, v))) AS prompt_fingerprint,
    toUInt64(exp(4 + 3 * (rand32(2) / 4294967296.))) AS input_tokens,
    toUInt64(exp(2 + 4 * (rand32(3) / 4294967296.))) AS output_tokens,
    if(rand32(4) % 10 < 3, intDiv(input_tokens, 2), 0) AS cache_read_tokens,
    toUInt64(0) AS cache_creation_tokens,
    if(m = 2, intDiv(output_tokens, 3), 0) AS reasoning_tokens,
    toDecimal64(toDecimal128(toDecimal128([2.5, 0.15, 2, 3, 0.8, 15][m + 1], 9) * input_tokens
                             + toDecimal128([10, 0.6, 8, 15, 4, 75][m + 1], 9) * output_tokens, 18) / 1000000, 12)
        AS cost_usd,
    'span' AS cost_source,
    exp(log(300 + 100 * p) + 0.9 * sqrt(-2 * log((rand32(5) + 1) / 4294967297.))
        * cos(2 * pi() * rand32(6) / 4294967296.)) AS latency,
    promptpulse_f32_round(toFloat32(latency)) AS latency_in,
    if(rand32(7) % 10 < 4, promptpulse_f32_round(toFloat32(latency * (0.1 + 0.3 * rand32(8) / 4294967296.))), NULL)
        AS ttft_in,
    ttft_in IS NOT NULL AS is_stream,
    if(e, 'error', 'ok') AS status,
    if(e, ['RateLimitError', 'APITimeoutError', 'InternalServerError', 'BadRequestError'][rand32(9) % 4 + 1], '')
        AS error_type,
    multiIf(NOT e, '', error_type = 'RateLimitError', 'rate_limit', error_type = 'APITimeoutError', 'timeout',
            error_type = 'InternalServerError', 'model_error', 'validation') AS error_category,
    multiIf(NOT e, 200, error_type = 'RateLimitError', 429, error_type = 'APITimeoutError', 0,
            error_type = 'InternalServerError', 500, 400) AS http_status,
    if(e, [], ['stop']) AS finish_reasons,
    concat('user-', toString(uid)) AS user_id,
    concat('sess-', toString(sid)) AS session_id,
    concat('conv-', toString(cid)) AS conversation_id,
    ['support', 'search', 'summarise'][p % 3 + 1] AS feature,
    if(p % 2 = 0, ['beta', 'eu'], []) AS tags,
    toUInt16(0) AS retry_count,
    if(m < 3, 'api.openai.com', 'api.anthropic.com') AS server_address
FROM
(
{calls}
))
"""



def generate(store: EmbeddedStore, calls_sql: str) -> None:
    """Insert the calls of ``calls_sql`` (INDEPENDENT / NESTED, formatted) into llm_calls, naming the columns: the
    ids, latency and TTFT go to EPHEMERAL inputs (schemas/003), which a positional INSERT would skip."""
    select = GENERATE_SELECT.format(calls=calls_sql)
    names = [r[0] for r in store.query(f"DESCRIBE TABLE ({select})").rows]
    store.command(f"INSERT INTO llm_calls ({', '.join(names)}) {select}")


# Which call is made when, by whom: n (the call's id), p (prompt), m (model), d (µs before now), v (version),
# e (failed), uid / sid / cid (user, session, conversation numbers).
# "independent" (the first generator): every call draws prompt, model, time, user (of 5k), session (of 20k) and
# conversation (of 50k) independently at random, so one conversation's calls are scattered over 30 days, prompts
# and users.
INDEPENDENT = """
    SELECT number AS n, n % 30 AS p, intDiv(n, 30) % 6 AS m, rand64(1) % (30 * 86400000000) AS d,
           1 + (intDiv(d, 864000000000) + p) % 3 AS v, rand32(14) % 100 < 3 AS e,
           rand32(10) % 5000 AS uid, rand32(11) % 20000 AS sid, rand32(12) % 50000 AS cid
    FROM numbers({start}, {count})
"""
# "nested" (default): how chat traffic is shaped — a user (of 5k) opens sessions at random times over the 30 days; a
# session holds 1-3 conversations started 5-10 min apart; a conversation is 1-12 calls (mean 6.5), one turn every
# 60-100 s, all with the conversation's prompt and model (drawn uniformly from the same 180 series). Sessions and
# conversations therefore grow with traffic (10M calls: ~770k sessions, ~1.5M conversations) instead of being a
# fixed pool. Per-call draws (latency, tokens, errors, ...) are the same as in "independent".
NESTED = """
    SELECT cid * 16 + t AS n, p, m, d, 1 + (intDiv(d, 864000000000) + p) % 3 AS v, rand32(14) % 100 < 3 AS e,
           uid, sid, cid
    FROM
    (
        SELECT {start} + number AS sid, sipHash64(sid, 20) % 5000 AS uid,
               sipHash64(sid, 21) % (30 * 86400000000 - 3600000000) AS s_at,
               arrayJoin(range(1 + sipHash64(sid, 22) % 3)) AS j, sid * 4 + j AS cid,
               sipHash64(cid, 23) % 30 AS p, sipHash64(cid, 24) % 6 AS m,
               s_at + j * (300000000 + sipHash64(cid, 25) % 300000000) AS c_at,
               arrayJoin(range(1 + sipHash64(cid, 26) % 12)) AS t,
               30 * 86400000000 - (c_at + t * 60000000 + sipHash64(cid, t, 27) % 40000000) AS d
        FROM numbers(intDiv({count}, 10))
    )
    LIMIT {count}
"""
GENERATORS = {"nested": NESTED, "independent": INDEPENDENT}

def queries(now: dt.datetime) -> dict[str, tuple[str, str]]:
    """name -> (rollup SQL, raw SQL) over the 30 days (last 24 h) before ``now``. The rollup side is the source the
    dashboards read (dashboards/queries.py ``rollup()``, macros expanded as Grafana sends them, every variable All):
    whole days from llm_calls_1d, the partial first and last day from llm_calls_1h. The first row reads
    llm_calls_1h alone, as every long-range panel did before llm_calls_1d; the second reads days + edges without
    llm_calls_1h's time-ordered projection (schemas/010), as main 89460c6 did (same numbers: before/after pairs)."""
    month, day = now - dt.timedelta(days=30), now - dt.timedelta(days=1)

    def dash(sql: str, start: dt.datetime = month) -> str:
        variables = {v: macros.ALL for v in dq.VARIABLES}
        return macros.expand(sql, time_from=start, time_to=now, interval_s=3600, variables=variables)

    since = f"timestamp >= toDateTime({int(month.timestamp())})"
    pcts = "promptpulse_hist_quantiles(sumMap(latency_hist), [0.5, 0.95, 0.99])"
    one_prompt = dq.rollup(extra="prompt_name = 'prompt_7'")
    return {
        "p50/p95/p99 latency by prompt, 30 days, llm_calls_1h only (before)": (
            f"SELECT prompt_name, {pcts} FROM llm_calls_1h WHERE bucket >= toStartOfHour(toDateTime("
            f"{int(month.timestamp())})) GROUP BY prompt_name ORDER BY prompt_name",
            f"SELECT prompt_name, quantilesExact(0.5, 0.95, 0.99)(latency_ms) FROM llm_calls "
            f"WHERE {since} GROUP BY prompt_name ORDER BY prompt_name"),
        "p50/p95/p99 latency by prompt, 30 days, without llm_calls_1h's by_time projection (before: main 89460c6)": (
            dash(f"SELECT prompt_name, {pcts} FROM {dq.rollup()} GROUP BY prompt_name ORDER BY prompt_name "
                 "SETTINGS optimize_use_projections = 0"),
            f"SELECT prompt_name, quantilesExact(0.5, 0.95, 0.99)(latency_ms) FROM llm_calls "
            f"WHERE {since} GROUP BY prompt_name ORDER BY prompt_name"),
        "p50/p95/p99 latency by prompt, 30 days": (
            dash(f"SELECT prompt_name, {pcts} FROM {dq.rollup()} GROUP BY prompt_name ORDER BY prompt_name"),
            f"SELECT prompt_name, quantilesExact(0.5, 0.95, 0.99)(latency_ms) FROM llm_calls "
            f"WHERE {since} GROUP BY prompt_name ORDER BY prompt_name"),
        "p95 of one prompt by version, 30 days": (
            dash(f"SELECT prompt_version, {dq.P95} FROM {one_prompt} "
                 "GROUP BY prompt_version ORDER BY prompt_version"),
            f"SELECT prompt_version, quantileExact(0.95)(latency_ms) FROM llm_calls "
            f"WHERE prompt_name = 'prompt_7' AND {since} GROUP BY prompt_version ORDER BY prompt_version"),
        "error rate by prompt version, 30 days": (
            dash(f"SELECT prompt_name, prompt_version, sum(errors) / sum(calls) FROM {dq.rollup()} "
                 "GROUP BY prompt_name, prompt_version ORDER BY prompt_name, prompt_version"),
            f"SELECT prompt_name, prompt_version, countIf(status = 'error') / count() FROM llm_calls "
            f"WHERE {since} GROUP BY prompt_name, prompt_version ORDER BY prompt_name, prompt_version"),
        "cost by model per day, 30 days": (
            dash(f"SELECT toStartOfDay(bucket) AS d, model, sum(cost_usd) FROM {dq.rollup()} "
                 "GROUP BY d, model ORDER BY d, model"),
            f"SELECT toStartOfDay(timestamp) AS d, request_model, sum(cost_usd) FROM llm_calls "
            f"WHERE {since} GROUP BY d, request_model ORDER BY d, request_model"),
        "p95 latency per 5 min, last 24 h (1m rollup)": (
            dash(f"SELECT toStartOfFiveMinutes(bucket) AS t, {dq.P95} FROM {dq.rollup()} GROUP BY t ORDER BY t",
                 day),
            "SELECT toStartOfFiveMinutes(timestamp) AS t, quantileExact(0.95)(latency_ms) FROM llm_calls "
            f"WHERE timestamp >= toDateTime({int(day.timestamp())}) GROUP BY t ORDER BY t"),
    }


def timed(store: EmbeddedStore, sqls: dict[str, str], runs: int) -> dict[str, tuple[float, list]]:
    """Each query once to warm up, then ``runs`` rounds of all of them in turn (so a change in machine speed hits
    every query alike): name -> (median ms, rows)."""
    rows = {name: store.query(sql).rows for name, sql in sqls.items()}
    times: dict[str, list[float]] = {name: [] for name in sqls}
    for _ in range(runs):
        for name, sql in sqls.items():
            started = time.perf_counter()
            store.query(sql)
            times[name].append(time.perf_counter() - started)
    return {name: (statistics.median(times[name]) * 1000, rows[name]) for name in sqls}


def run(calls: int, runs: int, generator: str = "nested") -> dict:
    tmp = tempfile.mkdtemp(prefix="pp-bench-q-")
    store = EmbeddedStore(tmp)
    store.apply_schema()
    # wide parts even for small per-day parts, so system.parts_columns can attribute bytes to columns (compact
    # parts report 0 per column; the total size is the same within a few bytes per part)
    store.command("ALTER TABLE llm_calls MODIFY SETTING min_bytes_for_wide_part = 0")
    started = time.perf_counter()
    for start in range(0, calls, CHUNK):
        count = min(CHUNK, calls - start)
        generate(store, GENERATORS[generator].format(start=start, count=count))
    t_gen = time.perf_counter() - started
    started = time.perf_counter()
    for table in ("llm_calls", "llm_calls_1m", "llm_calls_1h", "llm_calls_1d"):
        store.command(f"OPTIMIZE TABLE {table} FINAL")
    t_opt = time.perf_counter() - started
    parts = {t: (r, b, u) for t, r, b, u in store.query(
        "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE active AND database = currentDatabase() GROUP BY table").rows}
    n = parts["llm_calls"][0]
    columns = store.query(
        "SELECT column, sum(column_data_compressed_bytes) FROM system.parts_columns WHERE active "
        "AND database = currentDatabase() AND table = 'llm_calls' GROUP BY column ORDER BY 2 DESC").rows
    out = {"calls": calls, "generator": generator, "generate_s": round(t_gen, 1), "optimize_s": round(t_opt, 1),
           "rows": {t: v[0] for t, v in parts.items() if t.startswith("llm_calls")},
           "bytes_per_call": round(parts["llm_calls"][1] / n, 2),
           "bytes_per_call_uncompressed": round(parts["llm_calls"][2] / n, 1),
           "rollup_mb": {t: round(parts[t][1] / 1e6, 2) for t in ("llm_calls_1m", "llm_calls_1h", "llm_calls_1d")},
           "projection_mb": {f"{t}.{p}": round(b / 1e6, 2) for t, p, b in store.query(
               "SELECT table, name, sum(data_compressed_bytes) FROM system.projection_parts WHERE active "
               "AND database = currentDatabase() GROUP BY table, name").rows},
           "column_bytes_per_call": {c: round(b / n, 2) for c, b in columns},
           "queries_ms": {}}
    exact = {}
    qs = queries(dt.datetime.now(dt.timezone.utc))
    measured = timed(store, {f"{kind} {name}": sql for name, pair in qs.items()
                             for kind, sql in zip(("rollup", "raw"), pair, strict=True)}, runs)
    for name in qs:
        (t_roll, r_roll), (t_raw, r_raw) = measured[f"rollup {name}"], measured[f"raw {name}"]
        out["queries_ms"][name] = {"rollup": round(t_roll, 1), "raw": round(t_raw, 1)}
        exact[name] = (r_roll, r_raw)
    # the rollups agree with the raw rows: counts and costs exactly, percentiles within the sketch's 1%
    raw = store.query("SELECT count(), sum(cost_usd), countIf(status = 'error') FROM llm_calls").rows[0]
    out["rollup_totals_equal_raw"] = all(
        tuple(store.query(f"SELECT sum(calls), sum(cost_usd), sum(errors) FROM {t}").rows[0]) == tuple(raw)
        for t in ("llm_calls_1m", "llm_calls_1h", "llm_calls_1d"))
    # days + edge hours give exactly the numbers of the hourly rows alone
    out["daily_equals_hourly"] = all(exact[name][0] == exact[
        "p50/p95/p99 latency by prompt, 30 days, llm_calls_1h only (before)"][0] for name in exact
        if name.startswith("p50/p95/p99 latency by prompt, 30 days"))
    r_roll, r_raw = exact["p50/p95/p99 latency by prompt, 30 days"]
    out["max_rel_error_p50_p95_p99"] = round(max(abs(a - b) / b for x, y in zip(r_roll, r_raw, strict=True)
                                                 for a, b in zip(x[1], y[1], strict=True)), 4)
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--generator", choices=sorted(GENERATORS), nargs="+", default=["nested"],
                    help="how calls are drawn (see NESTED / INDEPENDENT); several run one after the other")
    args = ap.parse_args()
    if len(args.calls) == 1 and len(args.generator) == 1:
        print(json.dumps(run(args.calls[0], args.runs, args.generator[0])), flush=True)
        return
    for generator in args.generator:
        for calls in args.calls:  # chDB opens one data path per process: one process per size
            subprocess.run([sys.executable, __file__, "--calls", str(calls), "--runs", str(args.runs),
                            "--generator", generator], check=True)


if __name__ == "__main__":
    main()
