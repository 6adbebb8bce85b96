"""What the tag rollups' views (schemas/021) cost on insert: batches of the same spans inserted into one embedded
store with the two tag views attached and detached in turn (ABBA order), median ms per batch of each arm.

    .venv/bin/python bench/bench_tag_views.py [--spans 80000] [--batch 2000]

The spans are bench_store_insert.py's: every call carries two tags (the costly case; an untagged call adds no tag
row). The first batch of each arm is not counted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store_insert import make_rows

from promptpulse.processor.store.embedded import EmbeddedStore

VIEWS = ("llm_calls_tags_1m_mv", "llm_calls_tags_1h_mv")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=80_000)
    ap.add_argument("--batch", type=int, default=2_000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pp-bench-tags-")
    store = EmbeddedStore(tmp)
    try:
        store.apply_schema()
        rows = make_rows(a.spans)
        batches = [rows[i:i + a.batch] for i in range(0, len(rows), a.batch)]
        ms: dict[str, list[float]] = {"with the tag views": [], "without": []}
        attached = True
        for n, batch in enumerate(batches):
            arm = "with the tag views" if (n // 2 + n) % 2 == 0 else "without"  # ABBA
            if (arm != "without") != attached:
                attached = not attached
                for view in VIEWS:
                    store.command(f"{'ATTACH' if attached else 'DETACH'} TABLE {view}")
            t0 = time.perf_counter()
            store.insert_otel_traces(batch, dedup_token=f"b{n}")
            ms[arm].append((time.perf_counter() - t0) * 1000)
        tagged = store.query("SELECT sum(calls) FROM llm_calls_tags_1m").scalar()
        print(f"{len(rows):,} spans in batches of {a.batch:,}; tag rows' calls: {tagged:,}")
        for arm, v in ms.items():
            q = statistics.quantiles(v[1:], n=4)
            print(f"  {arm:<20} median {statistics.median(v[1:]):7.1f} ms per batch  [{q[0]:.0f}, {q[2]:.0f}]")
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
