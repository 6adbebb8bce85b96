"""Where the wall clock of an instrumented OpenAI call goes, step by step, where the steps really run (inside the
openai call, caches cold), next to the same OTel SDK span made by hand around the call and in a hot loop (the floor).

Each listed function is wrapped with a ``perf_counter_ns`` timer (≈ 0.3 µs each, so totals run a little high) and
its inclusive time summed per batch; batches of the bare call, the instrumented call (SDK spans through
``SimpleSpanProcessor``, no MeterProvider — ``bench_overhead.py --floor-ratio``'s setup), the span by hand and the
floor alternate (ABBA). Printed: medians over rounds of µs per call, per arm and per timed step.

    .venv/bin/python bench/overhead_phases.py --rounds 30 --calls 200            # plain
    .venv/bin/python bench/overhead_phases.py --rounds 30 --calls 200 --stream   # 10 chunks
"""

from __future__ import annotations

import argparse
import collections
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_overhead as bo
from opentelemetry import context, metrics
from opentelemetry.sdk.trace import Span, Tracer

from promptpulse.instrumentation import pricing, spans, streams, tagging, wrappers
from promptpulse.instrumentation.kit import stainless

_spent: collections.Counter[str] = collections.Counter()

# (owner, attribute, label): inclusive time of each; "sdk." rows are the OTel SDK's span, "pp." PromptPulse's code.
STEPS: tuple[tuple[Any, str, str], ...] = (
    (wrappers, "_start", "pp. before the call (all)"),
    (spans.LLMCall, "__init__", "pp.  LLMCall() (SDK start_span included)"),
    (Tracer, "start_span", "sdk.   start_span"),
    (stainless.Endpoint, "target", "pp.  target"),
    (stainless.Endpoint, "attributes", "pp.  request attributes"),
    (stainless.ChatEndpoint, "fingerprint", "pp.  messages fingerprint"),
    (tagging, "current_attributes", "pp.  tags in force"),
    (context, "get_current", "otel. context.get_current"),
    (spans.LLMCall, "activate", "pp.  context attach"),
    (spans.LLMCall, "deactivate", "pp. context detach"),
    (wrappers, "_finish", "pp. after the call (all)"),
    (stainless.ChatEndpoint, "read", "pp.  read the response"),
    (stainless.ChoicesStreamHandler, "on_chunk", "pp.  stream: every chunk"),
    (stainless.ChoicesStreamHandler, "on_finish", "pp.  stream: the end"),
    (streams.SyncStreamProxy, "__init__", "pp.  stream proxy"),
    (spans.LLMCall, "end", "pp.  LLMCall.end (SDK set_attributes + end included)"),
    (Span, "set_attributes", "sdk.   set_attributes"),
    (Span, "end", "sdk.   end"),
    (pricing.PriceTable, "lookup", "pp.   price lookup"),
    (tagging, "remember_response_id", "pp.   score() map: response id"),
    (tagging, "remember_result", "pp.  score() map: result"),
)


def _timed(owner: Any, name: str, label: str) -> None:
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return original(*args, **kwargs)
        finally:
            _spent[label] += time.perf_counter_ns() - started

    setattr(owner, name, timed)


def run(calls: int, rounds: int, stream: bool) -> dict[str, float]:
    for owner, name, label in STEPS:
        _timed(owner, name, label)
    setup = bo.Setup("simple-nometrics")
    setup.meter_provider = metrics.NoOpMeterProvider()
    tracer = setup.tracer_provider.get_tracer("floor")
    start, end = dict(bo.FLOOR_START), dict(bo.FLOOR_END)
    client = bo.make_client()
    call = bo.streamed_call if stream else bo.plain_call
    arms = {"bare": call, "instrumented": call, "by hand": bo._by_hand(tracer, start, end, call)}
    arms["floor"] = bo._floor_span(tracer, start, end)
    for _ in range(200):
        for fn in arms.values():
            fn(client)
    setup.on()
    for _ in range(200):
        call(client)
    setup.off()
    per_round: dict[str, list[float]] = collections.defaultdict(list)
    names = list(arms)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for arm in order[::-1] if r % 2 else order:
            if arm == "instrumented":
                setup.on()
                call(client)
            gc.collect()
            _spent.clear()
            started = time.perf_counter_ns()
            for _ in range(calls):
                arms[arm](client)
            per_round[arm].append((time.perf_counter_ns() - started) / calls / 1e3)
            if arm == "instrumented":
                for label, ns in _spent.items():
                    per_round[label].append(ns / calls / 1e3)
                setup.off()
            setup.tracer_provider.force_flush()
            setup.exporter.clear()
    bare = per_round["bare"]
    out = {arm: statistics.median(per_round[arm]) for arm in names}
    for arm in ("instrumented", "by hand"):
        out[f"{arm} - bare"] = statistics.median(a - b for a, b in zip(per_round[arm], bare, strict=True))
    out.update({label: statistics.median(per_round[label]) for _, _, label in STEPS if per_round[label]})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--stream", action="store_true", help="the 10-chunk stream instead of the plain call")
    args = p.parse_args()
    out = run(args.calls, args.rounds, args.stream)
    print(f"{'streamed, 10 chunks' if args.stream else 'plain'}; {args.rounds} rounds x {args.calls} calls per arm; "
          "µs per call, medians over rounds (timers included)")  # fmt: skip
    for label, us in out.items():
        print(f"  {label:<58}{us:>9.1f}")


if __name__ == "__main__":
    main()
