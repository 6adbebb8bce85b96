"""Percentile states in the hourly rollup, side by side: log-bucket histogram (what schemas/004 uses) vs
quantilesDD vs scanning raw rows. Synthetic calls over 30 days and 180 series, all in chDB.

    .venv/bin/python bench/bench_percentile_states.py [--calls 2000000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

from promptpulse.processor.store.embedded import EmbeddedStore


def timed(store: EmbeddedStore, sql: str, runs: int = 5) -> tuple[float, list]:
    result = store.query(sql).rows
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        store.query(sql)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2_000_000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    store = EmbeddedStore(tmp)
    store.apply_schema()  # for the promptpulse_hist_* functions
    store.command("CREATE TABLE raw (ts DateTime, prompt LowCardinality(String), model LowCardinality(String),"
                  " latency Float32) ENGINE = MergeTree ORDER BY (prompt, model, ts)")
    # 180 series = 30 prompts x 6 models; lognormal latencies around 0.3..3 s with a long tail
    store.command(
        f"INSERT INTO raw SELECT now() - toIntervalSecond(rand32(1) % (30 * 86400)),"
        f" concat('prompt_', toString(n % 30)),"
        f" concat('model_', toString(intDiv(n, 30) % 6)),"
        f" toFloat32(exp(log(300 + 100 * (n % 30)) + 0.9 * sqrt(-2 * log((rand32(2) + 1) / 4294967297.))"
        f" * cos(2 * pi() * rand32(3) / 4294967296.)))"
        f" FROM (SELECT number AS n FROM numbers({args.calls}))")
    store.command("CREATE TABLE r_hist (bucket DateTime, prompt LowCardinality(String), model LowCardinality(String),"
                  " h SimpleAggregateFunction(sumMap, Map(UInt16, UInt64))) ENGINE = AggregatingMergeTree"
                  " ORDER BY (prompt, model, bucket)")
    store.command("INSERT INTO r_hist SELECT toStartOfHour(ts), prompt, model,"
                  " sumMap(map(promptpulse_hist_bucket(latency), toUInt64(1))) FROM raw GROUP BY 1, 2, 3")
    store.command("CREATE TABLE r_dd (bucket DateTime, prompt LowCardinality(String), model LowCardinality(String),"
                  " s AggregateFunction(quantilesDD(0.01, 0.5, 0.95, 0.99), Float32)) ENGINE = AggregatingMergeTree"
                  " ORDER BY (prompt, model, bucket)")
    store.command("INSERT INTO r_dd SELECT toStartOfHour(ts), prompt, model,"
                  " quantilesDDState(0.01, 0.5, 0.95, 0.99)(latency) FROM raw GROUP BY 1, 2, 3")
    for t in ("raw", "r_hist", "r_dd"):
        store.command(f"OPTIMIZE TABLE {t} FINAL")
    sizes = dict(store.query("SELECT table, sum(data_compressed_bytes) FROM system.parts WHERE active"
                             " AND database = currentDatabase() GROUP BY table").rows)
    rows = dict(store.query("SELECT table, sum(rows) FROM system.parts WHERE active"
                            " AND database = currentDatabase() GROUP BY table").rows)
    exact_ms, exact = timed(store, "SELECT prompt, quantilesExactHigh(0.5, 0.95, 0.99)(latency) FROM raw"
                                   " GROUP BY prompt ORDER BY prompt")
    raw_ms, _ = timed(store, "SELECT prompt, quantiles(0.5, 0.95, 0.99)(latency) FROM raw GROUP BY prompt")
    hist_ms, hist = timed(store, "SELECT prompt, promptpulse_hist_quantiles(sumMap(h), [0.5, 0.95, 0.99])"
                                 " FROM r_hist"
                                 " GROUP BY prompt ORDER BY prompt")
    dd_ms, dd = timed(store, "SELECT prompt, quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(s) FROM r_dd"
                             " GROUP BY prompt ORDER BY prompt")

    def max_err(approx: list) -> float:
        pairs = zip(exact, approx, strict=True)
        return max(abs(a - e) / e for (_, ev), (_, av) in pairs for e, a in zip(ev, av, strict=True))

    print(f"calls={args.calls} series=180 rollup rows: hist={rows['r_hist']} dd={rows['r_dd']}")
    print(f"{'method':34s} {'query ms':>9s} {'size MB':>8s} {'max rel err':>12s}")
    print(f"{'raw quantilesExactHigh':34s} {exact_ms:9.1f} {sizes['raw'] / 1e6:8.2f} {0:12.4f}")
    print(f"{'raw quantiles (reservoir)':34s} {raw_ms:9.1f} {sizes['raw'] / 1e6:8.2f} {'-':>12s}")
    hist_mb = sizes["r_hist"] / 1e6
    print(f"{'1h rollup, log-bucket hist sumMap':34s} {hist_ms:9.1f} {hist_mb:8.2f} {max_err(hist):12.4f}")
    print(f"{'1h rollup, quantilesDD(0.01)':34s} {dd_ms:9.1f} {sizes['r_dd'] / 1e6:8.2f} {max_err(dd):12.4f}")
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
