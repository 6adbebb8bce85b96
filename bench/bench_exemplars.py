"""What linking metric points to their spans (exemplars) costs per call: before vs after, side by side in one run.

Before (what PromptPulse did until issue 11): the metrics flusher recorded the histograms in its own, empty context,
so the SDK's trace-based exemplar filter kept no exemplar. After: each record carries the call's span context (a
stand-in span holding only the ids, built in the flusher), so every point gets an exemplar of its span. The only
difference between the two modes is ``spans.measurement_context``: "before" replaces it with one returning None.

The real openai SDK over bench_overhead's in-memory transport, SimpleSpanProcessor into an in-memory exporter, the SDK
MeterProvider with ``TraceBasedExemplarFilter`` and an in-memory reader. Before and after batches alternate (ABBA)
in one process; per clock the median of the per-round differences (after minus before) and its quartiles:

- wall / thread: the app's call itself (the records run in the flusher, off the call path);
- records: CPU of flushing the batch's pending histogram records (what the flusher thread does) — where the exemplar
  work is;
- process: CPU of the whole process for calls and records together.

    .venv/bin/python bench/bench_exemplars.py                  # plain and streamed, 2000 calls x 15 rounds
    .venv/bin/python bench/bench_exemplars.py --calls 500 --rounds 5
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench_overhead import make_client, plain_call, streamed_call
from opentelemetry.sdk.metrics import MeterProvider, TraceBasedExemplarFilter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptpulse.instrumentation import metrics_buffer, spans
from promptpulse.instrumentation.openai import OpenAIInstrumentor

CLOCKS = ("wall", "thread", "records", "process")
MODES = ("before", "after")
_after = spans.measurement_context


def _before(span_context: Any) -> None:
    return None


def set_mode(mode: str) -> None:
    spans.measurement_context = _after if mode == "after" else _before  # type: ignore[assignment]


def batch(fn: Callable[[Any], None], client: Any, n: int, exporter: InMemorySpanExporter) -> dict[str, float]:
    """µs per call: the calls (wall, thread CPU), the flush of their pending histogram records (thread CPU), and the
    process CPU of both. The flusher thread is held off (the interval is raised for the batch), so every record of
    the batch runs in the timed flush."""
    metrics_buffer.flush()
    exporter.clear()
    gc.collect()
    w0, t0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    for _ in range(n):
        fn(client)
    w1, t1 = time.perf_counter(), time.thread_time()
    metrics_buffer.flush()
    t2, p1 = time.thread_time(), time.process_time()
    return {"wall": (w1 - w0) / n * 1e6, "thread": (t1 - t0) / n * 1e6, "records": (t2 - t1) / n * 1e6,
            "process": (p1 - p0) / n * 1e6}


def exemplar_share(reader: InMemoryMetricReader) -> tuple[int, int]:
    """(points with an exemplar, points) of the GenAI metrics collected so far."""
    data = reader.get_metrics_data()
    points = [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
              if m.name.startswith("gen_ai.") for p in m.data.data_points]  # fmt: skip
    return sum(1 for p in points if p.exemplars), len(points)


def run(calls: int, rounds: int) -> dict[str, Any]:
    metrics_buffer.FLUSH_INTERVAL_S = 3600.0  # before the flusher starts: it waits this long between its flushes
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    results: dict[str, Any] = {}
    client = make_client()
    for fn in (plain_call, streamed_call):
        # A fresh meter provider per kind, so its exemplar check below sees this kind's points only.
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader], exemplar_filter=TraceBasedExemplarFilter())
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        share = {}
        for mode in MODES:  # warm up both, and check what each mode records
            set_mode(mode)
            reader.get_metrics_data()  # a collection empties the exemplar reservoirs: the share below is this mode's
            for _ in range(200):
                fn(client)
            metrics_buffer.flush()
            share[mode] = exemplar_share(reader)
        per_mode: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                set_mode(mode)
                per_mode[mode].append(batch(fn, client, calls, exporter))
        instrumentor.uninstrument()
        meter_provider.shutdown()
        out: dict[str, Any] = {"exemplars_before": share["before"], "exemplars_after": share["after"]}
        for clock in CLOCKS:
            diffs = sorted(a[clock] - b[clock] for b, a in zip(per_mode["before"], per_mode["after"], strict=True))
            q1, med, q3 = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else (diffs[0],) * 3
            out[clock] = {
                "before_us": statistics.median(b[clock] for b in per_mode["before"]),
                "after_us": statistics.median(a[clock] for a in per_mode["after"]),
                "cost_us": med,
                "cost_q1_us": q1,
                "cost_q3_us": q3,
            }
        results[fn.__name__] = out
    set_mode("after")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per batch")
    parser.add_argument("--rounds", type=int, default=15, help="before/after batch pairs")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}; {args.calls} calls x {args.rounds} rounds",
          file=sys.stderr)
    results = run(args.calls, args.rounds)
    print(f"{'call':<14} {'clock':<8} {'before µs':>10} {'after µs':>10} {'cost µs':>8} {'(q1..q3)':>14}  exemplars")
    for kind, out in results.items():
        for clock in CLOCKS:
            c = out[clock]
            ex = ""
            if clock == "records":
                (wb, nb), (wa, na) = out["exemplars_before"], out["exemplars_after"]
                ex = f"before {wb}/{nb} points, after {wa}/{na}"
            print(f"{kind:<14} {clock:<8} {c['before_us']:>10.1f} {c['after_us']:>10.1f} {c['cost_us']:>8.2f} "
                  f"{c['cost_q1_us']:>6.2f}..{c['cost_q3_us']:<6.2f}  {ex}")


if __name__ == "__main__":
    main()
