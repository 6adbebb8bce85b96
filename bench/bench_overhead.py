"""Per-call overhead of the OpenAI instrumentation: instrumented minus bare, in microseconds.

The real openai SDK talks to an in-memory httpx2 transport (``httpx2.MockTransport`` returning canned JSON / SSE
bytes), so the measurement is SDK + PromptPulse and nothing else. Bare and instrumented batches alternate in one
process (instrument/uninstrument between batches, ABBA order) and the overhead is the median over rounds of the
per-round difference, on three clocks:

- wall: what the loop took, including waits for the GIL held by the metrics flusher thread and by other processes;
- thread: CPU of the calling thread (``time.thread_time``) — the instrumentation work the app's call itself does;
- process: CPU of the whole process (``time.process_time``) plus the flush of histogram records still pending at the
  end of the batch — everything the instrumentation costs, wherever it runs.

    .venv/bin/python bench/bench_overhead.py                 # plain and streamed, Simple and Batch span processors
    .venv/bin/python bench/bench_overhead.py --profile       # cProfile of the instrumented plain + streamed paths
    .venv/bin/python bench/bench_overhead.py --callgrind --setups noop --calls 200   # instructions per call
    .venv/bin/python bench/bench_overhead.py --wrapper --setups noop --calls 2000 --rounds 9   # own Python alone
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.metadata
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
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

from promptpulse.instrumentation import metrics_buffer
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


CLOCKS = ("wall", "thread", "process")


def batch(fn: Callable[[openai.OpenAI], None], client: openai.OpenAI, n: int, instrumented: bool) -> dict[str, float]:
    """µs per call over n calls on three clocks: wall time, the calling thread's CPU, and the whole process's CPU.

    Pending histogram records are flushed before the batch (so a bare batch never pays for an instrumented one) and,
    for an instrumented batch, after it: that flush is what the metrics flusher thread would still have to do, so it
    is added to the process clock only — it is CPU the process spends, not time the calling thread waits for."""
    metrics_buffer.flush()
    gc.collect()
    w0, t0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    for _ in range(n):
        fn(client)
    w1, t1 = time.perf_counter(), time.thread_time()
    if instrumented:
        metrics_buffer.flush()
    p2 = time.process_time()
    return {"wall": (w1 - w0) / n * 1e6, "thread": (t1 - t0) / n * 1e6, "process": (p2 - p0) / n * 1e6}


def measure(fn: Callable[[openai.OpenAI], None], setup: Setup, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    """Bare and instrumented batches alternate (ABBA order, so drift cancels); per clock: the median and the
    quartiles of the per-round differences (instrumented minus bare of the same round), and the difference of
    the fastest batches."""
    client = make_client()
    for _ in range(100):  # warm up: imports, pydantic caches, price table, fingerprint memo
        fn(client)
    setup.on()
    for _ in range(100):
        fn(client)
    setup.off()
    bare: list[dict[str, float]] = []
    inst: list[dict[str, float]] = []
    for r in range(rounds):
        for instrumented in (False, True) if r % 2 == 0 else (True, False):
            if instrumented:
                setup.on()
                inst.append(batch(fn, client, calls, True))
                setup.off()
            else:
                bare.append(batch(fn, client, calls, False))
    out: dict[str, dict[str, float]] = {}
    for clock in CLOCKS:
        diffs = sorted(i[clock] - b[clock] for b, i in zip(bare, inst, strict=True))
        q1, med, q3 = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else (diffs[0],) * 3
        out[clock] = {
            "bare_us": statistics.median(b[clock] for b in bare),
            "instrumented_us": statistics.median(i[clock] for i in inst),
            "overhead_us": med,
            "overhead_q1_us": q1,
            "overhead_q3_us": q3,
            "overhead_min_us": min(i[clock] for i in inst) - min(b[clock] for b in bare),
        }
    return out


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


def wrapper_level(setup_name: str, calls: int, rounds: int) -> float:
    """µs of the calling thread's CPU per call at the level of the wrapper: PromptPulse's ``sync_wrapper`` and chat
    endpoint around a stub that returns a parsed ``ChatCompletion`` at once (no openai request building, no HTTP),
    minus the stub alone; second-fastest of ``rounds`` batches."""
    from openai.types.chat import ChatCompletion

    from promptpulse.instrumentation import openai as instr_openai
    from promptpulse.instrumentation import wrappers
    from promptpulse.instrumentation.spans import Telemetry

    setup = Setup(setup_name)
    telemetry = Telemetry("bench", "0", tracer_provider=setup.tracer_provider, meter_provider=setup.meter_provider)
    wrapper = wrappers.sync_wrapper(telemetry, instr_openai._ChatEndpoint(telemetry, instr_openai._bind_sdk_types()))
    instance = make_client().chat.completions
    kwargs: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "temperature": 0.2, "max_tokens": 200}
    result = ChatCompletion.model_validate(json.loads(CHAT_BODY))

    def stub(*args: Any, **kw: Any) -> Any:
        return result

    def per_call(fn: Callable[[], Any]) -> float:
        times = []
        for _ in range(rounds):
            metrics_buffer.flush()
            gc.collect()
            start = time.thread_time()
            for _ in range(calls):
                fn()
            times.append((time.thread_time() - start) / calls * 1e6)
            setup.exporter.clear()
        return sorted(times)[1] if len(times) > 1 else times[0]

    return per_call(lambda: wrapper(stub, instance, (), kwargs)) - per_call(lambda: stub(**kwargs))


def _callgrind_count(mode: str, setup_name: str, calls: int) -> None:
    """Child of ``--callgrind``: warm up, then make ``calls`` calls (bare or instrumented) and exit."""
    setup = Setup(setup_name)
    client = make_client()
    fn = streamed_call if mode.startswith("streamed") else plain_call
    for _ in range(100):
        fn(client)
    if mode.endswith("inst"):
        setup.on()
        for _ in range(100):
            fn(client)
    # In batches like the timed runs: the exporter is emptied between them, so retained spans do not grow the heap
    # the garbage collector walks.
    for start in range(0, calls, 100):
        for _ in range(min(100, calls - start)):
            fn(client)
        if hasattr(setup.tracer_provider, "force_flush"):
            setup.tracer_provider.force_flush()
        setup.exporter.clear()
    metrics_buffer.flush()


def _instructions(mode: str, setup_name: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
             "--_count", mode, "--setups", setup_name, "--calls", str(calls)],
            check=True, capture_output=True,
        )  # fmt: skip
        with open(out) as fh:
            for line in fh:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise RuntimeError("no callgrind summary")


def callgrind(setups: list[str], low: int, high: int) -> dict[str, dict[str, float]]:
    """Instructions per call (Ir, valgrind's callgrind; every thread of the process counted): each case runs at
    ``low`` and ``high`` calls and the difference divided by ``high - low`` removes start-up and warm-up."""
    out: dict[str, dict[str, float]] = {}
    for setup_name in setups:
        for call in ("plain", "streamed"):
            per_call = {}
            for side in ("bare", "inst"):
                mode = f"{call}-{side}"
                per_call[side] = (_instructions(mode, setup_name, high) - _instructions(mode, setup_name, low)) / (
                    high - low
                )
            client, fn = make_client(), streamed_call if call == "streamed" else plain_call
            bare_us = min(batch(fn, client, 200, False)["thread"] for _ in range(5))  # outside valgrind
            out[f"{call}/{setup_name}"] = {
                "bare_us": bare_us,
                "bare_ir": per_call["bare"],
                "instrumented_ir": per_call["inst"],
                "overhead_ir": per_call["inst"] - per_call["bare"],
            }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=300, help="calls per batch")
    p.add_argument("--rounds", type=int, default=20, help="bare/instrumented batch pairs (ABBA order)")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--callgrind", action="store_true", help="instructions per call under valgrind (slow)")
    p.add_argument("--wrapper", action="store_true", help="PromptPulse's wrapper around a stub (no openai call)")
    p.add_argument("--_count", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument(
        "--setups",
        default="simple,batch,simple-nometrics,noop",
        help="comma-separated: simple, batch (SDK span processors + SDK metrics), simple-nometrics, noop",
    )
    args = p.parse_args(argv)
    setups = args.setups.split(",")
    if args._count:
        _callgrind_count(args._count, setups[0], args.calls)
        return
    if args.profile:
        profile(args.calls * 3)
        return
    if args.wrapper:
        for setup_name in setups:
            us = wrapper_level(setup_name, args.calls, args.rounds)
            print(f"wrapper level, {setup_name}: {us:.2f} µs of the calling thread per call")
        return
    header = (
        f"python {platform.python_version()}, openai {openai.__version__}, "
        f"opentelemetry-sdk {importlib.metadata.version('opentelemetry-sdk')}, {os.cpu_count()} cores"
    )
    if args.callgrind:
        counts = callgrind(setups, 50, 50 + args.calls)
        if args.json:
            print(json.dumps({"callgrind": counts}, indent=2))
            return
        print(f"{header}; instructions per call from runs of 50 and {50 + args.calls} calls")
        print(f"{'case':<26}{'bare Ir':>12}{'instr Ir':>12}{'overhead Ir':>13}{'≈ µs':>8}")
        for case, r in counts.items():
            print(
                f"{case:<26}{r['bare_ir']:>12.0f}{r['instrumented_ir']:>12.0f}{r['overhead_ir']:>13.0f}"
                f"{r['overhead_ir'] * r['bare_us'] / r['bare_ir']:>8.1f}"
            )
        print("(≈ µs: overhead Ir at the bare call's own rate, its thread CPU µs per Ir measured outside valgrind)")
        return
    results = {}
    for processor in setups:
        for name, fn in (("plain", plain_call), ("streamed", streamed_call)):
            results[f"{name}/{processor}"] = measure(fn, Setup(processor), args.calls, args.rounds)
    floors = {p: sdk_floor(p, args.calls, args.rounds) for p in ("simple", "batch")}
    if args.json:
        print(json.dumps({"results": results, "sdk_floor_us": floors}, indent=2))
        return
    print(f"{header}; {args.rounds} rounds x {args.calls} calls, streamed = {STREAM_PIECES + 3} chunks")
    print("overhead = median over rounds of (instrumented - bare) µs per call [quartiles]; min = fastest batches")
    print(f"{'case':<24}{'clock':<9}{'bare':>9}{'instr':>9}{'overhead':>10}{'[q1, q3]':>16}{'min':>8}")
    for case, by_clock in results.items():
        for clock, r in by_clock.items():
            print(
                f"{case:<24}{clock:<9}{r['bare_us']:>9.1f}{r['instrumented_us']:>9.1f}{r['overhead_us']:>10.1f}"
                f"   [{r['overhead_q1_us']:>5.1f}, {r['overhead_q3_us']:>5.1f}]{r['overhead_min_us']:>8.1f}"
            )
    for processor, floor in floors.items():
        print(f"OTel SDK floor ({processor}): one 20-attribute span + 3 histogram records = {floor:.1f} µs (min)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
