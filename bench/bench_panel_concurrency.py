"""The console's panel queries side by side in one process on one store: one statement per panel one at a time,
one per panel two at a time on the embedded store's read handles, and one-row panels over one source merged into
one statement (panels.merge_totals) two at a time. Medians over 5 alternating rounds (a warm-up round not counted),
in ms.

    .venv/bin/python bench/bench_panel_concurrency.py [--calls N] [--data-dir DIR]   # default 10,000,000

Data as bench_console.py (bench_queries.py's NESTED generator, rollups optimised); ``--data-dir`` keeps the store
(generated when the directory has none) for the next run. panels.run_many for the Overview's 9, the Performance
section's 6 and the Cost and SLA sections' panels, over 1 and 30 days.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_queries import CHUNK, GENERATORS, generate

from promptpulse.processor.console import panels
from promptpulse.processor.store.embedded import EmbeddedStore

SECTIONS = {
    "Overview": ["requests", "rpm", "peak_rpm", "trend", "success_rate", "error_rate", "latency_stats", "tokens",
                 "cost_stats"],
    "Performance": ["rpm_by_prompt", "success_ts", "latency_ts", "ttft_ts", "errors_by_category", "tokens_ts"],
    "Cost + SLA": ["cost_stats", "budget_today", "month_projection", "sla_stats", "error_budget", "downtime"],
}
MERGED = panels.merge_totals


def one_per_panel(keys: Sequence[str]) -> list[list[str]]:
    return [[k] for k in keys]


ARMS: dict[str, tuple[int, Callable[[Sequence[str]], list[list[str]]]]] = {
    "per panel, 1 at a time": (1, one_per_panel), "per panel, 2 at a time": (2, one_per_panel),
    "merged, 2 at a time": (2, MERGED)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10_000_000)
    ap.add_argument("--data-dir", help="keep the generated store here (reused when it has one)")
    a = ap.parse_args()
    tmp = a.data_dir or tempfile.mkdtemp(prefix="pp-bench-concurrency-")
    store = EmbeddedStore(tmp)
    try:
        store.apply_schema()
        if not store.query("SELECT count() FROM llm_calls").scalar():
            for start in range(0, a.calls, CHUNK):
                generate(store, GENERATORS["nested"].format(start=start, count=min(CHUNK, a.calls - start)))
            for table in ("llm_calls_1m", "llm_calls_1h", "llm_calls_1d"):
                store.command(f"OPTIMIZE TABLE {table} FINAL")
        print(f"{store.query('SELECT count() FROM llm_calls').scalar():,} calls", flush=True)
        now = dt.datetime.now(dt.timezone.utc)
        for days in (1, 30):
            p = panels.PanelParams(now - dt.timedelta(days=days), now)
            for name, keys in SECTIONS.items():
                ms: dict[str, list[float]] = {arm: [] for arm in ARMS}
                for _ in range(6):
                    for arm, (n, plan) in ARMS.items():
                        store.query_concurrency = n
                        panels.merge_totals = plan
                        t0 = time.perf_counter()
                        panels.run_many(store, keys, p)
                        ms[arm].append((time.perf_counter() - t0) * 1000)
                panels.merge_totals = MERGED
                print(f"{days:>2} d {name:<11} " + "  ".join(
                    f"{arm}: {statistics.median(v[1:]):.0f} [{min(v[1:]):.0f}, {max(v[1:]):.0f}]"
                    for arm, v in ms.items()), flush=True)
    finally:
        store.close()
        if not a.data_dir:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
