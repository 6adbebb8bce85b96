"""The console's panel queries one at a time against two at a time on the embedded store's read handles, side by
side in one process on one store: medians over 5 alternating rounds (a warm-up round not counted), in ms.

    .venv/bin/python bench/bench_panel_concurrency.py [CALLS]   # default 10,000,000

Data as bench_console.py (bench_queries.py's NESTED generator, rollups optimised); panels.run_many with the store's
query_concurrency set to 1 or 2, for the Overview's 9 and the Performance section's 6 panels, over 1 and 30 days.
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_queries import CHUNK, GENERATORS, generate

from promptpulse.processor.console import panels
from promptpulse.processor.store.embedded import EmbeddedStore

OVERVIEW = ["requests", "rpm", "peak_rpm", "trend", "success_rate", "error_rate", "latency_stats", "tokens",
            "cost_stats"]
PERFORMANCE = ["rpm_by_prompt", "success_ts", "latency_ts", "ttft_ts", "errors_by_category", "tokens_ts"]


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    tmp = tempfile.mkdtemp(prefix="pp-bench-concurrency-")
    store = EmbeddedStore(tmp)
    try:
        store.apply_schema()
        for start in range(0, calls, CHUNK):
            generate(store, GENERATORS["nested"].format(start=start, count=min(CHUNK, calls - start)))
        for table in ("llm_calls_1m", "llm_calls_1h", "llm_calls_1d"):
            store.command(f"OPTIMIZE TABLE {table} FINAL")
        now = dt.datetime.now(dt.timezone.utc)
        for days in (1, 30):
            p = panels.PanelParams(now - dt.timedelta(days=days), now)
            for name, keys in (("Overview", OVERVIEW), ("Performance", PERFORMANCE)):
                ms: dict[int, list[float]] = {1: [], 2: []}
                for _ in range(6):
                    for n in (1, 2):
                        store.query_concurrency = n
                        t0 = time.perf_counter()
                        panels.run_many(store, keys, p)
                        ms[n].append((time.perf_counter() - t0) * 1000)
                print(f"{days:>2} d {name:<11} " + "  ".join(
                    f"{n} at a time: median {statistics.median(v[1:]):.0f} (min {min(v[1:]):.0f}, max "
                    f"{max(v[1:]):.0f})" for n, v in ms.items()), flush=True)
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
