"""Raw-row reads through llm_calls' ALIAS columns vs main 89460c6's physical columns, A/B on one data set.

    .venv/bin/python bench/bench_alias_reads.py [--calls 10000000] [--runs 7]

Generates --calls nested calls (bench_queries.generate / NESTED) into llm_calls (ids as bytes, latency/TTFT as
Float32 bits, read through trace_id / span_id / latency_ms / ttft_ms ALIAS columns, schemas/003), copies the columns
the queries read into a table with main's physical columns (String ids, Float32 latency, Nullable(Float32) TTFT;
same order, partitions and bloom index), OPTIMIZE ... FINAL both, then runs each query alternating between the two
tables (median ms of --runs); the answers must be identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time

import bench_queries as bq

from promptpulse.processor.store.embedded import EmbeddedStore

MAIN_LAYOUT = """
CREATE TABLE main_layout
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(3)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    service LowCardinality(String),
    prompt_name LowCardinality(String),
    prompt_version LowCardinality(String),
    request_model LowCardinality(String),
    conversation_id String CODEC(ZSTD(3)),
    status LowCardinality(String) CODEC(ZSTD(1)),
    latency_ms Float32 CODEC(ZSTD(1)),
    ttft_ms Nullable(Float32) CODEC(ZSTD(1)),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree PARTITION BY toDate(timestamp)
ORDER BY (service, prompt_name, prompt_version, request_model, toDate(timestamp), conversation_id, timestamp)
"""
COLUMNS = ("timestamp, trace_id, span_id, service, prompt_name, prompt_version, request_model, conversation_id, "
           "status, latency_ms, ttft_ms")
QUERIES = {
    "exact p50/p95/p99 by prompt, 30 days": "SELECT prompt_name, quantilesExact(0.5, 0.95, 0.99)(latency_ms) FROM {t} "
    "WHERE timestamp >= now() - INTERVAL 30 DAY GROUP BY prompt_name ORDER BY prompt_name",
    "exact p95 per 5 min, 24 h": "SELECT toStartOfFiveMinutes(timestamp) AS b, quantileExact(0.95)(latency_ms) "
    "FROM {t} WHERE timestamp >= now() - INTERVAL 1 DAY GROUP BY b ORDER BY b",
    "mean TTFT by prompt, all rows": "SELECT prompt_name, avg(ttft_ms) FROM {t} GROUP BY prompt_name ORDER BY 1",
    "one trace by trace_id": "SELECT trace_id, span_id, latency_ms FROM {t} WHERE trace_id = '{tid}'",
    "export page, 5000 calls of last 6 h": "SELECT timestamp, trace_id, span_id, latency_ms, ttft_ms FROM {t} "
    "WHERE timestamp >= now() - INTERVAL 6 HOUR ORDER BY timestamp LIMIT 5000",
    "slowest 20 of last hour": "SELECT trace_id, latency_ms FROM {t} WHERE timestamp >= now() - INTERVAL 1 HOUR "
    "ORDER BY latency_ms DESC LIMIT 20",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pp-bench-alias-")
    store = EmbeddedStore(tmp)
    try:
        store.apply_schema()
        for start in range(0, args.calls, bq.CHUNK):
            count = min(bq.CHUNK, args.calls - start)
            bq.generate(store, bq.NESTED.format(start=start, count=count))
        store.command("OPTIMIZE TABLE llm_calls FINAL")
        store.command(MAIN_LAYOUT)
        store.command(f"INSERT INTO main_layout SELECT {COLUMNS} FROM llm_calls")
        store.command("OPTIMIZE TABLE main_layout FINAL")
        tid = store.query("SELECT trace_id FROM llm_calls WHERE timestamp > now() - INTERVAL 2 DAY LIMIT 1").scalar()
        out = {}
        for name, sql in QUERIES.items():
            tables = ("main_layout", "llm_calls")
            answers = [store.query(sql.format(t=t, tid=tid)).rows for t in tables]
            assert answers[0] == answers[1], name
            times: dict[str, list[float]] = {t: [] for t in tables}
            for _ in range(args.runs):
                for t in tables:
                    started = time.perf_counter()
                    store.query(sql.format(t=t, tid=tid))
                    times[t].append((time.perf_counter() - started) * 1000)
            out[name] = {t: round(statistics.median(v), 1) for t, v in times.items()}
        print(json.dumps({"calls": args.calls, "runs": args.runs, "median_ms": out}))
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
