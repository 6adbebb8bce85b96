"""What the HTTP API's built-in endpoints compute: /api/metrics, /api/query, /readyz, /metrics (Prometheus).

The routes are in processor/api_app.py (FastAPI), served by processor/api_server.py (uvicorn). SQL is
parameterised; /api/query runs one statement that processor/sql_guard.py admits (the engine's parser; only the
project's tables, no table functions or functions that reach files, URLs or other servers, no settings) with
``readonly=1`` and row, time and memory limits.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import re
from typing import Any

from promptpulse.dashboards.queries import APP_CALLS

from .timerange import parse_time

log = logging.getLogger(__name__)

# a quick pre-check of the statement's first keyword (after comments, parentheses); sql_guard is the check
_READ_ONLY = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN)\b",
                        re.IGNORECASE | re.DOTALL)
FILTERS = {"version": "prompt_version", "service": "service", "environment": "environment"}


def metrics_query(params: dict[str, str]) -> tuple[str, str, dict[str, Any], str]:
    """(summary SQL, errors SQL, parameters, period) for /api/metrics."""
    now = dt.datetime.now(dt.timezone.utc)
    start_s, end_s = params.get("start"), params.get("end")
    end = parse_time(end_s, end=True, now=now) if end_s else now
    start = parse_time(start_s, now=now) if start_s else end - dt.timedelta(days=7)
    # the app's calls only: an in-app judge's own calls are evaluation cost (the rollups skip them too)
    where = ["timestamp >= {start:DateTime64(6, 'UTC')}", "timestamp < {end:DateTime64(6, 'UTC')}", APP_CALLS]
    p: dict[str, Any] = {"start": start.strftime("%Y-%m-%d %H:%M:%S.%f"), "end": end.strftime("%Y-%m-%d %H:%M:%S.%f")}
    if params.get("prompt_id"):
        where.append("prompt_name = {prompt_id:String}")
        p["prompt_id"] = params["prompt_id"]
    for k, col in FILTERS.items():
        if params.get(k):
            where.append(f"{col} = {{{k}:String}}")
            p[k] = params[k]
    if params.get("model"):
        where.append("(request_model = {model:String} OR response_model = {model:String})")
        p["model"] = params["model"]
    w = " AND ".join(where)
    summary = (
        "SELECT count() AS total, countIf(status != 'error') AS ok, avg(latency_ms) AS avg_ms, "
        "quantilesExact(0.5, 0.95, 0.99)(latency_ms) AS q, sum(input_tokens) AS inp, sum(output_tokens) AS outp, "
        "sum(cost_usd) AS cost, countIf(NOT usage_known) AS no_usage, countIf(usage_known AND NOT cost_known) "
        f"AS unpriced, countIf(NOT cost_known) AS no_cost FROM llm_calls WHERE {w}"
    )
    errors = (f"SELECT error_category, count() FROM llm_calls WHERE {w} AND status = 'error' "
              "GROUP BY error_category ORDER BY error_category")
    # the seed's shape echoes the dates given ("2024-01-01 to 2024-01-31"); "-7d", "now" are shown as times
    period = " to ".join(given if given and given[0].isdigit() else t.isoformat()
                         for given, t in ((start_s, start), (end_s, end)))
    return summary, errors, p, period


def get_metrics(store: Any, params: dict[str, str]) -> dict[str, Any]:
    summary, errors, p, period = metrics_query(params)
    total, ok, avg_ms, q, inp, outp, cost, no_usage, unpriced, no_cost = store.query(summary, p).rows[0]
    errs = {str(cat or "unknown"): int(n) for cat, n in store.query(errors, p).rows}
    q = list(q) if total else [0, 0, 0]

    def ms(v: Any) -> float:
        return round(float(v or 0), 1) if total else 0.0

    return {
        "prompt_id": params.get("prompt_id"),
        "period": period,
        "metrics": {
            "total_requests": int(total),
            "success_rate": round(100.0 * ok / total, 2) if total else 0.0,
            "avg_latency_ms": ms(avg_ms),
            "p95_latency_ms": ms(q[1]),
            "total_tokens": int(inp or 0) + int(outp or 0),
            "total_cost_usd": round(float(cost or 0), 6),
            "p50_latency_ms": ms(q[0]),
            "p99_latency_ms": ms(q[2]),
            "input_tokens": int(inp or 0),
            "output_tokens": int(outp or 0),
            "errors": errs,
            # token and cost sums are over the calls that report them; these calls' numbers are unknown, not 0
            "calls_without_usage": int(no_usage),
            "calls_unpriced": int(unpriced),
            "calls_without_cost": int(no_cost),
            "avg_tokens": (round((int(inp or 0) + int(outp or 0)) / (total - no_usage), 4)
                           if total > no_usage else None),
            "cost_per_request": round(float(cost or 0) / (total - no_cost), 12) if total > no_cost else None,
        },
    }


def check_read_only(sql: str) -> str:
    """Quick store-less pre-check (the CLI fails early with it); the guard itself needs the engine's parser."""
    s = sql.strip()
    if not _READ_ONLY.match(s):
        raise ValueError("only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN statements are allowed")
    return s


def run_read_only(store: Any, sql: str) -> tuple[list[str], list[tuple]]:
    """One statement checked by processor/sql_guard.py (the engine's parser, whitelists), run with readonly = 1
    and the guard's limits; sql_guard.QueryRefused (a ValueError) names what was refused."""
    from . import sql_guard

    return sql_guard.run(store, sql)


def json_default(o: Any) -> Any:
    if isinstance(o, (dt.datetime, dt.date)):
        return o.isoformat()
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def readiness(service: Any) -> tuple[bool, dict[str, Any]]:
    """/readyz: the store answers and the writer moves (no pending spans without a finished batch for
    ``stall_after_s``)."""
    w = service.writer
    try:
        store_ok = bool(service.get_store().ping())
    except Exception:
        store_ok = False
    stalled = w.stalled_s()
    status = "ready" if store_ok else "store unavailable"
    if store_ok and stalled > w.stall_after_s:
        status = f"writer stalled: {w.pending_spans} span(s) pending, no batch stored for {stalled:.0f} s"
    doc = {"status": status, "store_up": store_ok, "pending_spans": w.pending_spans,
           "writer_stalled_s": round(stalled, 1), "dead_letters": w.stats["deadletter_requests"]}
    return status == "ready", doc


def prometheus(service: Any) -> str:
    w = service.writer
    c = service.ingest.counters
    lines = []

    def metric(name: str, kind: str, help_: str, value: Any) -> None:
        lines.extend([f"# HELP promptpulse_{name} {help_}", f"# TYPE promptpulse_{name} {kind}",
                      f"promptpulse_{name} {value}"])

    metric("otlp_requests_total", "counter", "OTLP export requests", c["requests"])
    metric("spans_received_total", "counter", "Spans received (accepted + rejected)", c["received_spans"])
    metric("spans_accepted_total", "counter", "Spans accepted (spooled durably)", c["accepted_spans"])
    metric("spans_rejected_total", "counter", "Spans rejected as invalid (partial success)", c["rejected_spans"])
    metric("requests_bad_total", "counter", "Malformed requests (400)", c["bad_requests"])
    metric("requests_unauthorized_total", "counter", "Requests with a bad token (401)", c["unauthorized"])
    metric("requests_throttled_total", "counter", "Requests refused, queue full (429)", c["throttled"])
    metric("requests_unavailable_total", "counter", "Requests refused, store down and spool full (503)",
           c["unavailable"])
    metric("spans_inserted_total", "counter", "Spans inserted into the store", w.stats["inserted_spans"])
    for sig, items in (("metrics", "metric_points"), ("logs", "log_records")):  # receiver.signals
        metric(f"otlp_{sig}_requests_total", "counter", f"OTLP {sig} export requests", c[f"{sig}_requests"])
        metric(f"{items}_accepted_total", "counter", f"{sig}: items accepted (spooled durably)", c[f"{sig}_accepted"])
        metric(f"{items}_rejected_total", "counter", f"{sig}: items rejected as invalid (partial success)",
               c[f"{sig}_rejected"])
        metric(f"{sig}_requests_bad_total", "counter", f"Malformed {sig} requests (400)", c[f"{sig}_bad_requests"])
        metric(f"{items}_inserted_total", "counter", f"{sig}: items inserted into the store",
               w.stats[f"inserted_{sig}"])
    metric("batches_inserted_total", "counter", "Batches inserted", w.stats["inserted_batches"])
    metric("insert_failures_total", "counter", "Failed insert attempts", w.stats["insert_failures"])
    metric("spans_spooled_total", "counter", "Spans accepted while the store was down", w.stats["spooled_spans"])
    metric("spans_replayed_total", "counter", "Spans replayed from the spool at start", w.stats["replayed_spans"])
    metric("queue_spans", "gauge", "Accepted spans waiting for insert", w.pending_spans)
    metric("spool_bytes", "gauge", "Bytes of spool segment files", w.spool.bytes)
    metric("store_up", "gauge", "1 when the last insert succeeded", int(w.store_up))
    metric("deadletter_requests_total", "counter", "Requests the store refused on their data, kept as dead letters",
           w.stats["deadletter_requests"])
    metric("deadletter_spans_total", "counter", "Spans in those requests", w.stats["deadletter_spans"])
    metric("split_inserts_total", "counter", "Inserts of half batches while isolating a bad request",
           w.stats["split_inserts"])
    metric("duplicate_requests_total", "counter", "Requests whose body was accepted already (a retry): not stored "
           "again", w.stats["duplicate_requests"])
    metric("duplicate_spans_total", "counter", "Spans in those requests", w.stats["duplicate_spans"])
    metric("writer_stalled_seconds", "gauge", "Seconds without a finished batch while spans are pending",
           round(w.stalled_s(), 3))
    h = w.insert_latency
    lines += ["# HELP promptpulse_insert_duration_seconds Store insert latency",
              "# TYPE promptpulse_insert_duration_seconds histogram"]
    acc = 0
    for b, n in zip(h.BUCKETS, h.counts, strict=False):
        acc += n
        lines.append(f'promptpulse_insert_duration_seconds_bucket{{le="{b}"}} {acc}')
    lines.append(f'promptpulse_insert_duration_seconds_bucket{{le="+Inf"}} {h.count}')
    lines.append(f"promptpulse_insert_duration_seconds_sum {h.sum}")
    lines.append(f"promptpulse_insert_duration_seconds_count {h.count}")
    return "\n".join(lines) + "\n"
