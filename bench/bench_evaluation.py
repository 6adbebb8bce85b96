"""What the in-app evaluator costs the app's call, and what evaluating a call costs its worker: side by side in one run.

Modes of the call path (the real openai SDK over bench_overhead's in-memory transport, SimpleSpanProcessor into an
in-memory exporter, content capture off):

- off: no evaluator;
- not sampled: an evaluator whose only rule samples 0 %: content is collected for it, the trace id is hashed, nothing
  is queued;
- queued: a rule at 100 %: the call's span and content are put on the queue (the worker is not started, so the batch
  measures the call path alone; the queue is emptied between batches).

Then the worker's side: CPU per call to evaluate the queued calls with one heuristic rule (pii) and export its score
span. Modes alternate per round (ABBA); thread CPU µs per call (the calling thread's: stable on a loaded machine),
medians of the rounds and of the per-round differences to "off".

    .venv/bin/python bench/bench_evaluation.py                  # 2000 calls x 9 rounds
    .venv/bin/python bench/bench_evaluation.py --calls 500 --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from typing import Any

from bench_overhead import make_client, plain_call
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptpulse.evaluation.inapp import InAppEvaluator
from promptpulse.evaluation.rules import parse_rule
from promptpulse.instrumentation import spans
from promptpulse.instrumentation.openai import OpenAIInstrumentor

MODES = ("off", "not sampled", "queued")


def run(calls: int, rounds: int) -> dict[str, Any]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp, capture_content=False)
    client = make_client()
    evaluators = {
        "not sampled": InAppEvaluator([parse_rule({"name": "r", "metric": "pii", "sampling": 0.0})],
                                      tracer_provider=tp, start=False),
        "queued": InAppEvaluator([parse_rule({"name": "r", "metric": "pii"})], tracer_provider=tp,
                                 queue_size=calls + 1, start=False),
    }
    per: dict[str, list[float]] = {m: [] for m in MODES}
    worker: list[float] = []
    for r in range(rounds + 1):  # round 0 warms up
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            ev = evaluators.get(mode)
            spans.end_hook = ev.hook if ev is not None else None
            exporter.clear()
            gc.collect()
            t0 = time.thread_time()  # CPU of the calling thread: what the app's call pays, whatever the load
            for _ in range(calls):
                plain_call(client)
            dt = (time.thread_time() - t0) / calls * 1e6
            spans.end_hook = None
            if mode == "queued":
                assert ev is not None
                items = []
                while not ev._queue.empty():
                    items.append(ev._queue.get_nowait())
                    ev._queue.task_done()
                assert len(items) == calls, len(items)
                c0 = time.thread_time()
                for span, content in items:
                    ev._handle(span, content)
                if r:
                    worker.append((time.thread_time() - c0) / calls * 1e6)
            if r:
                per[mode].append(dt)
    inst.uninstrument()
    tp.shutdown()
    out: dict[str, Any] = {}
    for mode in MODES:
        diffs = [a - b for a, b in zip(per[mode], per["off"], strict=True)]
        out[mode] = {"us": statistics.median(per[mode]), "cost_us": statistics.median(diffs)}
    out["worker_us"] = statistics.median(worker)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}; {args.calls} calls x {args.rounds} rounds",
          file=sys.stderr)
    res = run(args.calls, args.rounds)
    print(f"{'mode':<12} {'CPU µs/call':>12} {'vs off µs':>10}")
    for mode in MODES:
        print(f"{mode:<12} {res[mode]['us']:>12.1f} {res[mode]['cost_us']:>10.2f}")
    print(f"worker: {res['worker_us']:.1f} µs CPU per call to evaluate (pii) and export the score span")


if __name__ == "__main__":
    main()
