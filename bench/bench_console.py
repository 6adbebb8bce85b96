"""The console's first render on a big store: how long until the page shows the Overview KPIs and until every
section is drawn, in Debian's headless Chromium, over `promptpulse serve`'s API app (FastAPI on uvicorn).

    flock /tmp/pp-cpu.lock .venv/bin/python bench/bench_console.py [--calls 10000000] [--runs 5] [--presets 24h 7d 30d]
                                                                   [--data-dir DIR]

Data: bench_queries.py's generator (NESTED: 180 series over the last 30 days, inserted into llm_calls in SQL so
the rollup views fill as on ingest), then OPTIMIZE ... FINAL of the rollups (llm_calls_1m/_1h/_1d) — what the
panels read. Each run opens the page in a fresh browser context (nothing cached) at ?range=PRESET and reads the
page's own performance marks: ``overview-1`` (Overview KPIs in the DOM) and ``rendered-1`` (all sections drawn),
both from navigation start; plus the slowest API request of the render. ``--data-dir`` keeps the store (generated
when it holds no calls) for the next run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_queries import CHUNK, GENERATORS, generate

from promptpulse.processor import api_server
from promptpulse.processor.api_app import create_app
from promptpulse.processor.console import router  # imported up front: the code of the start, not a later one
from promptpulse.processor.store.embedded import EmbeddedStore

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
MARKS = ("() => { const m = (n) => (performance.getEntriesByName(n)[0] || {}).startTime ?? null;"
         " const api = performance.getEntriesByType('resource').filter((r) => r.name.includes('/api/'))"
         ".map((r) => [new URL(r.name).pathname + '?keys=' + (new URL(r.name).searchParams.get('keys') || ''),"
         " r.duration]); return {overview: m('overview-1'), rendered: m('rendered-1'), api}; }")


def measure(url: str, presets: list[str], runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for preset in presets:
            samples = []
            for _ in range(runs + 1):  # the first run warms the store's caches and the server; not counted
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = ctx.new_page()
                page.goto(f"{url}/console/?range={preset}")
                page.wait_for_function("Number(document.body.dataset.refreshes || 0) >= 1", timeout=120_000)
                samples.append(page.evaluate(MARKS))
                ctx.close()
            samples = samples[1:]
            slowest = max((a for s in samples for a in s["api"]), key=lambda a: a[1])
            out[preset] = {
                "overview_ms": round(statistics.median(s["overview"] for s in samples), 1),
                "rendered_ms": round(statistics.median(s["rendered"] for s in samples), 1),
                "rendered_max_ms": round(max(s["rendered"] for s in samples), 1),
                "api_requests": len(samples[0]["api"]),
                "slowest_api": [slowest[0][:120], round(slowest[1], 1)],
            }
            print(f"  {preset}: {out[preset]}", file=sys.stderr, flush=True)
        browser.close()
    return out


def run(calls: int, runs: int, presets: list[str], data_dir: str | None = None) -> dict:
    tmp = data_dir or tempfile.mkdtemp(prefix="pp-bench-console-")
    store = EmbeddedStore(tmp)
    try:
        store.apply_schema()
        t_gen = t_opt = 0.0
        if not store.query("SELECT count() FROM llm_calls").scalar():
            t = time.perf_counter()
            for start in range(0, calls, CHUNK):
                generate(store, GENERATORS["nested"].format(start=start, count=min(CHUNK, calls - start)))
            t_gen = time.perf_counter() - t
            t = time.perf_counter()
            for table in ("llm_calls_1m", "llm_calls_1h", "llm_calls_1d"):
                store.command(f"OPTIMIZE TABLE {table} FINAL")
            t_opt = time.perf_counter() - t
        n = store.query("SELECT count() FROM llm_calls").scalar()
        assert create_app and router.router
        svc = SimpleNamespace(get_store=lambda: store, settings=None, ingest=SimpleNamespace(authorized=lambda h: True))
        srv = api_server.make_server("127.0.0.1", 0, svc)
        srv.start()
        time.sleep(0.5)
        try:
            pages = measure(f"http://127.0.0.1:{srv.server_address[1]}", presets, runs)
        finally:
            srv.shutdown()
            srv.server_close()
        return {"calls": n, "generate_s": round(t_gen, 1), "optimize_rollups_s": round(t_opt, 1), "runs": runs,
                "first_render": pages}
    finally:
        store.close()
        if not data_dir:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--presets", nargs="+", default=["24h", "7d", "30d"], choices=["1h", "24h", "7d", "30d"])
    ap.add_argument("--data-dir", help="keep the generated store here (reused when it holds calls)")
    a = ap.parse_args()
    print(json.dumps(run(a.calls, a.runs, a.presets, a.data_dir), indent=2))


if __name__ == "__main__":
    main()
