"""Per-call overhead of the OpenAI instrumentation: instrumented minus bare, in microseconds.

The real openai SDK talks to an in-memory httpx2 transport (``httpx2.MockTransport`` returning canned JSON / SSE
bytes), so the measurement is SDK + PromptPulse and nothing else. Bare and instrumented batches alternate in one
process (instrument/uninstrument between batches) and the overhead is the difference of the medians of the
per-batch means, so drift on a shared machine hits both sides alike.

    .venv/bin/python bench/bench_overhead.py                 # plain and streamed, Simple and Batch span processors
    .venv/bin/python bench/bench_overhead.py --profile       # cProfile of the instrumented plain + streamed paths
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptpulse.instrumentation.openai import OpenAIInstrumentor

MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You are a helpful support agent for ACME. Answer in two sentences."},
    {"role": "user", "content": "Where is my order 12345?"},
]
STREAM_PIECES = 20  # content chunks per streamed answer (+ role, finish and usage chunks)

USAGE = {
    "prompt_tokens": 42,
    "completion_tokens": 20,
    "total_tokens": 62,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}
CHAT_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Your order ships tomorrow. " * 4, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
        "system_fingerprint": "fp_bench",
    }
).encode()


def _sse_events() -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench", "usage": None}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f"word{i} "}) for i in range(STREAM_PIECES)]
    events.append(chunk({}, "stop"))
    events.append(b"data: " + json.dumps({**base, "choices": [], "usage": USAGE}).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


SSE_EVENTS = _sse_events()
JSON_HEADERS = {"content-type": "application/json", "x-request-id": "req_bench"}
SSE_HEADERS = {"content-type": "text/event-stream", "x-request-id": "req_bench"}


def handler(request: httpx2.Request) -> httpx2.Response:
    if b'"stream":true' in request.content or b'"stream": true' in request.content:
        return httpx2.Response(200, headers=SSE_HEADERS, content=iter(SSE_EVENTS))  # one network chunk per event
    return httpx2.Response(200, headers=JSON_HEADERS, content=CHAT_BODY)


def make_client() -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-bench",
        base_url="https://api.openai.com/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def plain_call(client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2, max_tokens=200)


def streamed_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, temperature=0.2, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass


class Setup:
    """One telemetry configuration: a tracer provider with an in-memory exporter and an SDK meter provider."""

    def __init__(self, processor: str) -> None:
        self.exporter = InMemorySpanExporter()
        self.instrumentor = OpenAIInstrumentor()
        if processor == "noop":  # the OTel API's no-op providers: PromptPulse's own Python cost alone
            self.tracer_provider: Any = trace.NoOpTracerProvider()
            self.meter_provider: Any = metrics.NoOpMeterProvider()
            return
        self.tracer_provider = TracerProvider()
        if processor == "simple":
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        else:
            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(self.exporter, max_queue_size=65536, schedule_delay_millis=200)
            )
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        if processor == "simple-nometrics":  # SDK spans, no-op metrics: how much the three histograms cost
            self.meter_provider = metrics.NoOpMeterProvider()

    def on(self) -> None:
        self.instrumentor.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def off(self) -> None:
        self.instrumentor.uninstrument()
        if hasattr(self.tracer_provider, "force_flush"):
            self.tracer_provider.force_flush()
        self.exporter.clear()


def batch(fn: Callable[[openai.OpenAI], None], client: openai.OpenAI, n: int) -> float:
    """Mean µs per call over n calls."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        fn(client)
    return (time.perf_counter() - start) / n * 1e6


def measure(fn: Callable[[openai.OpenAI], None], setup: Setup, calls: int, rounds: int) -> dict[str, float]:
    client = make_client()
    for _ in range(50):  # warm up: imports, pydantic caches, price table, fingerprint memo
        fn(client)
    setup.on()
    for _ in range(50):
        fn(client)
    setup.off()
    bare, inst = [], []
    for _ in range(rounds):
        bare.append(batch(fn, client, calls))
        setup.on()
        inst.append(batch(fn, client, calls))
        setup.off()
    b, i = statistics.median(bare), statistics.median(inst)
    return {"bare_us": b, "instrumented_us": i, "overhead_us": i - b, "overhead_min_us": min(inst) - min(bare)}


def sdk_floor(processor: str, calls: int, rounds: int) -> float:
    """µs for what the OTel SDK itself charges for one call's telemetry, without PromptPulse or openai: one span
    with the same 20 attributes (12 at start, 8 at end) through the same processor, plus the three histogram
    records (duration, input tokens, output tokens) with the semconv metric attributes."""
    setup = Setup(processor)
    tracer = setup.tracer_provider.get_tracer("floor")
    meter = setup.meter_provider.get_meter("floor")
    duration = meter.create_histogram("d", unit="s")
    tokens = meter.create_histogram("t", unit="{token}")
    start_attrs = {f"gen_ai.start.{i}": ("v" if i % 2 else i) for i in range(12)}
    end_attrs = {f"gen_ai.end.{i}": i for i in range(8)}
    metric_attrs = {f"gen_ai.m.{i}": "v" for i in range(6)}

    def one() -> None:
        span = tracer.start_span("chat gpt-4o-mini", attributes=start_attrs)
        span.set_attributes(end_attrs)
        span.end()
        duration.record(0.5, metric_attrs)
        tokens.record(42, {**metric_attrs, "gen_ai.token.type": "input"})
        tokens.record(20, {**metric_attrs, "gen_ai.token.type": "output"})

    means = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            one()
        means.append((time.perf_counter() - start) / calls * 1e6)
        setup.tracer_provider.force_flush()
        setup.exporter.clear()
    return min(means)


def profile(calls: int) -> None:
    setup = Setup("simple")
    client = make_client()
    setup.on()
    for fn in (plain_call, streamed_call):
        for _ in range(50):
            fn(client)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(calls):
            fn(client)
        prof.disable()
        print(f"\n=== {fn.__name__}: {calls} instrumented calls, by own time ===")
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(r"promptpulse|instrumentation|opentelemetry|wrapt", 25)
    setup.off()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=300, help="calls per batch")
    p.add_argument("--rounds", type=int, default=15, help="bare/instrumented batch pairs")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument(
        "--setups",
        default="simple,batch,simple-nometrics,noop",
        help="comma-separated: simple, batch (SDK span processors + SDK metrics), simple-nometrics, noop",
    )
    args = p.parse_args(argv)
    if args.profile:
        profile(args.calls * 3)
        return
    results = {}
    for processor in args.setups.split(","):
        for name, fn in (("plain", plain_call), ("streamed", streamed_call)):
            results[f"{name}/{processor}"] = measure(fn, Setup(processor), args.calls, args.rounds)
    floors = {p: sdk_floor(p, args.calls, args.rounds) for p in ("simple", "batch")}
    if args.json:
        print(json.dumps({"results": results, "sdk_floor_us": floors}, indent=2))
        return
    print(
        f"python {platform.python_version()}, openai {openai.__version__}, {os.cpu_count()} cores, "
        f"{args.rounds} rounds x {args.calls} calls, streamed = {STREAM_PIECES + 3} chunks"
    )
    print(f"{'case':<26}{'bare µs':>10}{'instr µs':>10}{'overhead µs':>13}{'(min-based)':>13}")
    for case, r in results.items():
        print(
            f"{case:<26}{r['bare_us']:>10.1f}{r['instrumented_us']:>10.1f}{r['overhead_us']:>13.1f}"
            f"{r['overhead_min_us']:>13.1f}"
        )
    for processor, floor in floors.items():
        print(f"OTel SDK floor ({processor}): one 20-attribute span + 3 histogram records = {floor:.1f} µs (min)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
