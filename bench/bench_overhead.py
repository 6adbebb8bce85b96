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
    .venv/bin/python bench/bench_overhead.py --floor-ratio --rounds 40 --calls 200   # overhead / the SDK span floor
    .venv/bin/python bench/bench_overhead.py --callgrind --cache-sim --calls 100 --floor-calls 1000   # est. cycles
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
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptpulse.instrumentation import metrics_buffer
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.openai import OpenAIInstrumentor

if TYPE_CHECKING:  # imported where used: the SDK-span-alone counts run without openai
    import httpx2
    import openai

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


def _sse_events(pieces: int = STREAM_PIECES) -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench", "usage": None}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f"word{i} "}) for i in range(pieces)]
    events.append(chunk({}, "stop"))
    events.append(b"data: " + json.dumps({**base, "choices": [], "usage": USAGE}).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


SSE_EVENTS = _sse_events()
JSON_HEADERS = {"content-type": "application/json", "x-request-id": "req_bench"}
SSE_HEADERS = {"content-type": "text/event-stream", "x-request-id": "req_bench"}


def make_client() -> openai.OpenAI:
    import httpx2
    import openai

    def handler(request: httpx2.Request) -> httpx2.Response:
        if b'"stream":true' in request.content or b'"stream": true' in request.content:
            return httpx2.Response(200, headers=SSE_HEADERS, content=iter(SSE_EVENTS))  # one network chunk per event
        return httpx2.Response(200, headers=JSON_HEADERS, content=CHAT_BODY)

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
        if processor in ("simple", "simple-nometrics"):
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


def floor_ratio(
    calls: int,
    rounds: int,
    pieces: int,
    pyinstrument_out: str | None = None,
    defer_arm: bool = False,
    after_arm: bool = False,
) -> dict[str, Any]:
    """Issue 11 §5's side-by-side run: per round, three batches in rotating order — the bare call, the instrumented
    call (SDK spans through ``SimpleSpanProcessor`` into an in-memory exporter, no MeterProvider: the API's no-op
    meter), and the OTel SDK span alone with the plain call's attributes through the same processor (the floor;
    16 attributes since ``openai.api.type`` and the system fingerprint). Reported per case and clock (wall, and the
    calling thread's CPU): the median over rounds of (instrumented - bare) and of the floor, their quartiles, and
    the median of the per-round ratios (overhead / floor). A fourth batch makes the same span by hand around the
    bare call: what the floor's span costs where it really runs, between the SDK's own work (cold caches).
    ``defer_arm``: a fifth batch, instrumented with the metrics hand-off forced on (as before no-op meters were
    skipped: one item per call to the flusher thread, which records into no-op histograms). ``after_arm``: another,
    the same span made by hand *after* the bare call, with the call's start as its start time — what a span created
    in one burst once the call is over would cost (a lazily created span: does splitting start and end around the
    call make the span dearer?). Per round also: by hand / floor — the limit, what any instrumentation that makes
    this span around the call pays — and overhead / by hand — what PromptPulse adds to it."""
    from promptpulse.instrumentation import spans

    global SSE_EVENTS

    saved, SSE_EVENTS = SSE_EVENTS, _sse_events(pieces)
    records_metrics = spans.records_metrics
    try:
        _floor_attributes_check()
        setup = Setup("simple-nometrics")
        setup.meter_provider = metrics.NoOpMeterProvider()
        tracer = setup.tracer_provider.get_tracer("floor")
        start_attrs, end_attrs = dict(FLOOR_START), dict(FLOOR_END)

        floor = _floor_span(tracer, start_attrs, end_attrs)

        def q(values: list[float]) -> tuple[float, float, float]:
            q1, _, q3 = statistics.quantiles(values, n=4)
            return q1, statistics.median(values), q3

        client = make_client()
        out: dict[str, Any] = {"calls": calls, "rounds": rounds, "stream_chunks": pieces + 3}
        for name, fn in (("plain", plain_call), ("streamed", streamed_call)):
            for _ in range(100):
                fn(client)
                floor(None)
            setup.on()
            for _ in range(100):
                fn(client)
            setup.off()
            by_hand = _by_hand(tracer, start_attrs, end_attrs, fn)
            after = _by_hand(tracer, start_attrs, end_attrs, fn, after=True)
            extra = (*(("deferred",) if defer_arm else ()), *(("after",) if after_arm else ()))
            names = ("bare", "inst", "floor", "hand", *extra)
            arms: dict[str, dict[str, list[float]]] = {arm: {"wall": [], "thread": []} for arm in names}
            for r in range(rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                if r % 2:
                    order = order[::-1]
                for arm in order:
                    if arm in ("inst", "deferred"):
                        setup.on()
                        fn(client)  # the first call after instrument() builds per-instrumentor memos
                    if arm == "deferred":
                        spans.records_metrics = lambda histogram: True  # type: ignore[assignment]
                    run = {"floor": floor, "hand": by_hand, "after": after}.get(arm, fn)
                    gc.collect()
                    w0, t0 = time.perf_counter(), time.thread_time()
                    for _ in range(calls):
                        run(client)
                    w1, t1 = time.perf_counter(), time.thread_time()
                    arms[arm]["wall"].append((w1 - w0) / calls * 1e6)
                    arms[arm]["thread"].append((t1 - t0) / calls * 1e6)
                    if arm in ("inst", "deferred"):
                        spans.records_metrics = records_metrics
                        metrics_buffer.flush()
                        setup.off()
                    setup.tracer_provider.force_flush()
                    setup.exporter.clear()
            out[name] = {}
            for clock in ("wall", "thread"):
                bare, inst, flo = arms["bare"][clock], arms["inst"][clock], arms["floor"][clock]
                diffs = [i - b for b, i in zip(bare, inst, strict=True)]
                hand = [h - b for b, h in zip(bare, arms["hand"][clock], strict=True)]
                out[name][clock] = {
                    "bare_us": statistics.median(bare),
                    "overhead_us": q(diffs),
                    "floor_us": q(flo),
                    "span_by_hand_us": q(hand),
                    **(
                        {"deferred_overhead_us": q([d - b for b, d in zip(bare, arms["deferred"][clock], strict=True)])}
                        if defer_arm
                        else {}
                    ),
                    **(
                        {"span_after_call_us": q([a - b for b, a in zip(bare, arms["after"][clock], strict=True)])}
                        if after_arm
                        else {}
                    ),
                    "ratio": q([d / f for d, f in zip(diffs, flo, strict=True)]),
                    "by_hand_over_floor": q([h / f for h, f in zip(hand, flo, strict=True)]),
                    "overhead_over_by_hand": statistics.median(diffs) / statistics.median(hand),
                    "ratio_of_medians": statistics.median(diffs) / statistics.median(flo),
                }
        if pyinstrument_out:
            _pyinstrument(setup, client, calls * 5, pyinstrument_out)
        return out
    finally:
        SSE_EVENTS = saved


def _floor_span(tracer: Any, start_attrs: dict[str, Any], end_attrs: dict[str, Any]) -> Callable[[Any], None]:
    """The floor: the OTel SDK span alone, the plain call's attributes at start and at end."""
    from opentelemetry.trace import SpanKind

    def floor(_: Any) -> None:
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=start_attrs)
        span.set_attributes(end_attrs)
        span.end()

    return floor


def _by_hand(
    tracer: Any,
    start_attrs: dict[str, Any],
    end_attrs: dict[str, Any],
    call: Callable[[openai.OpenAI], None],
    *,
    after: bool = False,
) -> Callable[[openai.OpenAI], None]:
    """The floor's span made by hand around the bare call: started before it, ended after it. ``after``: started
    and ended at once after the call, with the call's start as its start time (a lazily created span)."""
    from opentelemetry.trace import SpanKind

    def around(client: openai.OpenAI) -> None:
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=start_attrs)
        call(client)
        span.set_attributes(end_attrs)
        span.end()

    def behind(client: openai.OpenAI) -> None:
        start = time.time_ns()
        call(client)
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=start_attrs, start_time=start)
        span.set_attributes(end_attrs)
        span.end()

    return behind if after else around


def _pyinstrument(setup: Setup, client: Any, calls: int, path: str) -> None:
    """A wall-clock profile (pyinstrument) of instrumented plain and streamed calls, as text in ``path``."""
    from pyinstrument import Profiler

    setup.on()
    with open(path, "w") as fh:
        for fn in (plain_call, streamed_call):
            profiler = Profiler(interval=0.0001)
            profiler.start()
            for i in range(calls):
                fn(client)
                if i % 200 == 199:
                    setup.exporter.clear()
            profiler.stop()
            fh.write(f"=== {fn.__name__}: {calls} instrumented calls ===\n")
            fh.write(profiler.output_text(unicode=False, color=False, show_all=False))
    setup.off()


def print_floor_ratio(header: str, r: dict[str, Any]) -> None:
    print(f"{header}; {r['rounds']} rounds x {r['calls']} calls per arm, streamed = {r['stream_chunks']} chunks")
    print("µs per call: median [q1, q3] over rounds; overhead = instrumented - bare of the same round;")
    print("floor = OTel SDK span alone, same 16 attributes, SimpleSpanProcessor; ratio = overhead / floor per round")
    print("by hand = the same span made by hand around the bare call, minus bare (the floor where it really runs)")
    print(f"{'case':<10}{'clock':<8}{'bare':>8}{'overhead':>24}{'floor':>22}{'ratio':>22}{'ratio of medians':>18}"
          f"{'by hand':>24}")  # fmt: skip
    for name in ("plain", "streamed"):
        for clock, c in r[name].items():
            o, f, x, h = c["overhead_us"], c["floor_us"], c["ratio"], c["span_by_hand_us"]
            print(
                f"{name:<10}{clock:<8}{c['bare_us']:>8.1f}{o[1]:>8.1f} [{o[0]:>6.1f}, {o[2]:>6.1f}]"
                f"{f[1]:>8.1f} [{f[0]:>5.1f}, {f[2]:>5.1f}]{x[1]:>7.2f} [{x[0]:>5.2f}, {x[2]:>5.2f}]"
                f"{c['ratio_of_medians']:>18.2f}{h[1]:>8.1f} [{h[0]:>6.1f}, {h[2]:>6.1f}]"
            )
            b = c["by_hand_over_floor"]
            print(f"{'':<18}by hand / floor (the limit): {b[1]:.2f} [{b[0]:.2f}, {b[2]:.2f}] per round; "
                  f"overhead / by hand (medians): {c['overhead_over_by_hand']:.2f}")  # fmt: skip
            if "span_after_call_us" in c:
                a = c["span_after_call_us"]
                print(f"{'':<18}the span made by hand after the call instead: {a[1]:.1f} [{a[0]:.1f}, {a[2]:.1f}]")
            if "deferred_overhead_us" in c:
                d = c["deferred_overhead_us"]
                print(f"{'':<18}overhead with the metrics hand-off forced on: {d[1]:.1f} [{d[0]:.1f}, {d[2]:.1f}]")


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
    from promptpulse.instrumentation.kit import stainless
    from promptpulse.instrumentation.spans import Telemetry

    setup = Setup(setup_name)
    telemetry = Telemetry("bench", "0", tracer_provider=setup.tracer_provider, meter_provider=setup.meter_provider)
    endpoint = stainless.ChatEndpoint(telemetry, instr_openai._bind_sdk_types())
    wrapper = wrappers.sync_wrapper(telemetry, endpoint)
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


# --- instruction counts (valgrind's callgrind) ---------------------------------------------------------------------
# The plain call's 16 span attributes, as PromptPulse sets them (checked against a real instrumented call before the
# counts run): 9 known at the start, 7 read from the response (14 until openai.api.type and
# openai.response.system_fingerprint were added).
FLOOR_START: dict[str, Any] = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: MODEL,
    sc.SERVER_ADDRESS: "api.openai.com",
    sc.SERVER_PORT: 443,
    sc.PROMPTPULSE_PROMPT_FINGERPRINT: "",  # filled in by _floor_attributes_check()
    sc.GEN_AI_REQUEST_TEMPERATURE: 0.2,
    sc.GEN_AI_REQUEST_MAX_TOKENS: 200,
    sc.OPENAI_API_TYPE: "chat_completions",
}
FLOOR_END: dict[str, Any] = {
    sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    sc.GEN_AI_RESPONSE_ID: "chatcmpl-bench",
    sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
    sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: "fp_bench",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 42,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
    sc.PROMPTPULSE_COST_USD: 0.0,  # filled in by _floor_attributes_check()
}
# How the same 14 attributes are split between start_span and the one set_attributes at the end.
FLOOR_SPLITS: dict[str, str] = {
    "ours (8 at start + 6 at end)": "8",
    "ours, finish_reasons as a list": "8-list",
    "sampling 5 (semconv's) + 9": "5",
    "sampling 3 (operation, provider, model) + 11": "3",
    "all 14 at end (semconv: not allowed)": "0",
    "no attributes (the span alone)": "none",
}


def _floor_attributes_check() -> None:
    """Take the fingerprint and cost from a real instrumented plain call and check the floor's attributes are
    exactly that call's span attributes."""
    setup = Setup("simple")
    client = make_client()
    setup.on()
    try:
        plain_call(client)
        (span,) = setup.exporter.get_finished_spans()
    finally:
        setup.off()
    real = dict(span.attributes or {})
    FLOOR_START[sc.PROMPTPULSE_PROMPT_FINGERPRINT] = real.get(sc.PROMPTPULSE_PROMPT_FINGERPRINT, "")
    FLOOR_END[sc.PROMPTPULSE_COST_USD] = real.get(sc.PROMPTPULSE_COST_USD, 0.0)
    if real != {**FLOOR_START, **FLOOR_END}:
        raise SystemExit(f"the floor's attributes are not the instrumented call's: {real}")


def _floor_count(split: int | None, processor: str, calls: int, start: dict[str, Any], end: dict[str, Any]) -> None:
    """Child of ``--callgrind``: the OTel SDK span alone (no openai, no PromptPulse) with the plain call's 14
    attributes, ``split`` of them at start_span (None: no attributes at all)."""
    from opentelemetry.trace import SpanKind

    setup = Setup(processor)
    tracer = setup.tracer_provider.get_tracer("floor")
    everything = {**start, **end}
    keys = list(everything)
    at_start = {k: everything[k] for k in keys[: split or 0]} if split is not None else None
    at_end = {k: everything[k] for k in keys[split or 0 :]} if split is not None else None

    def one() -> None:
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=at_start)
        if at_end:
            span.set_attributes(at_end)
        span.end()

    cg = _client_requests()
    for i in range(100 + (CACHE_WARM_CALLS if not isinstance(cg, _NoClientRequests) else 0)):
        if i == 100:
            cg.pp_start()  # --cache-sim: the last warm-up calls fill the simulated caches
        one()
    setup.tracer_provider.force_flush()
    setup.exporter.clear()
    cg.pp_zero()
    for first in range(0, calls, 100):  # in batches, like the full-path counts
        for _ in range(min(100, calls - first)):
            one()
        setup.tracer_provider.force_flush()
        setup.exporter.clear()
    cg.pp_dump()
    cg.pp_stop()


CACHE_WARM_CALLS = 5  # --cache-sim: calls in the simulated caches before counting (the Python warm-up runs before)


class _NoClientRequests:
    def pp_start(self) -> None: ...
    def pp_zero(self) -> None: ...
    def pp_dump(self) -> None: ...
    def pp_stop(self) -> None: ...


def _client_requests() -> Any:
    """In a ``--cache-sim`` child: callgrind's client requests (bench/callgrind_client.c, built by the parent);
    otherwise no-ops (the counts are a run of N calls minus a run of 0)."""
    import ctypes

    path = os.environ.get("PROMPTPULSE_BENCH_CALLGRIND_CLIENT")
    return ctypes.CDLL(path) if path else _NoClientRequests()


def _callgrind_count(
    mode: str,
    setup_name: str,
    calls: int,
    hand_start: dict[str, Any] | None = None,
    hand_end: dict[str, Any] | None = None,
) -> None:
    """Child of ``--callgrind``: warm up, then make ``calls`` calls and exit. ``mode`` is ``{plain,streamed}-`` and
    ``bare``, ``inst`` (instrumented) or ``hand`` (bare, inside the floor's span made by hand: ``--floor-ratio``'s
    "by hand" arm, attributes ``hand_start`` / ``hand_end``, tracer of ``setup_name``)."""
    setup = Setup(setup_name)
    client = make_client()
    fn = streamed_call if mode.startswith("streamed") else plain_call
    for _ in range(100):
        fn(client)
    if mode.endswith("inst"):
        setup.on()
        for _ in range(100):
            fn(client)
    if mode.endswith("hand"):
        fn = _by_hand(setup.tracer_provider.get_tracer("floor"), hand_start or {}, hand_end or {}, fn)
        for _ in range(100):
            fn(client)
    cg = _client_requests()
    cg.pp_start()  # --cache-sim: from here on simulated; a few calls fill the simulated caches, then count
    for _ in range(CACHE_WARM_CALLS if not isinstance(cg, _NoClientRequests) else 0):
        fn(client)
    if hasattr(setup.tracer_provider, "force_flush"):
        setup.tracer_provider.force_flush()
    setup.exporter.clear()
    metrics_buffer.flush()
    cg.pp_zero()
    # In batches like the timed runs: the exporter is emptied between them, so retained spans do not grow the heap
    # the garbage collector walks.
    for start in range(0, calls, 100):
        for _ in range(min(100, calls - start)):
            fn(client)
        if hasattr(setup.tracer_provider, "force_flush"):
            setup.tracer_provider.force_flush()
        setup.exporter.clear()
    metrics_buffer.flush()
    cg.pp_dump()
    cg.pp_stop()


def _instructions(child_args: list[str]) -> tuple[int, int]:
    """(calling thread, all threads) instructions of one child run under callgrind, hash seed fixed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-instr=no", "--separate-threads=yes",
             f"--callgrind-out-file={out}", sys.executable, __file__, *child_args],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},
            preexec_fn=lambda: os.nice(10),  # counts do not depend on load; others' timed runs do
        )  # fmt: skip
        per_thread: dict[str, int] = {}
        for name in os.listdir(tmp):  # callgrind.out-01 is the main thread, -02… the flusher, the batch worker
            with open(os.path.join(tmp, name)) as fh:
                for line in fh:
                    if line.startswith(("summary:", "totals:")):
                        per_thread[name] = int(line.split()[1])
                        break
    if not per_thread:
        raise RuntimeError("no callgrind summary")
    main_thread = per_thread.get("callgrind.out-01", min(per_thread.values()))
    return main_thread, sum(per_thread.values())


def _per_call(child_args: list[str], calls: int, pool: Any) -> tuple[Any, Any]:
    """Futures of a run of ``calls`` calls and of a run of 0 (same start-up and warm-up): see ``_difference``."""
    return (
        pool.submit(_instructions, [*child_args, "--calls", "0"]),
        pool.submit(_instructions, [*child_args, "--calls", str(calls)]),
    )


def _difference(runs: tuple[Any, Any], calls: int) -> tuple[float, float]:
    """(calling thread, all threads) instructions per call."""
    (m0, a0), (m1, a1) = runs[0].result(), runs[1].result()
    return (m1 - m0) / calls, (a1 - a0) / calls


def _cpu_lock(path: str | None) -> Any:
    """An exclusive flock on ``path`` for the timed part (a no-op without one)."""
    import contextlib
    import fcntl

    @contextlib.contextmanager
    def held() -> Any:
        if not path:
            yield
            return
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    return held()


def callgrind(setups: list[str], calls: int, floor_calls: int, jobs: int, cpu_lock: str | None) -> dict[str, Any]:
    """Instructions per call (valgrind's callgrind, ``--separate-threads``): the calling thread and all threads.

    Full path: bare openai call, then instrumented with each setup, plain and streamed. Floor: the OTel SDK span
    alone with the plain call's 14 attributes, split in several ways, Simple and Batch. The µs conversion uses the
    bare call's calling-thread CPU time measured in this run outside valgrind (second-fastest of 7 batches)."""
    from concurrent.futures import ThreadPoolExecutor

    _floor_attributes_check()
    floor_args = ["--_floor-start", json.dumps(FLOOR_START), "--_floor-end", json.dumps(FLOOR_END)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        full: dict[str, Any] = {}
        for call in ("plain", "streamed"):
            full[f"{call}/bare"] = _per_call(["--_count", f"{call}-bare", "--setups", "noop"], calls, pool)
            for setup_name in setups:
                args = ["--_count", f"{call}-inst", "--setups", setup_name]
                full[f"{call}/{setup_name}"] = _per_call(args, calls, pool)
        floor: dict[str, Any] = {}
        for processor in ("simple", "batch"):
            for label, split in FLOOR_SPLITS.items():
                args = ["--_floor", split, "--setups", processor, *floor_args]
                floor[f"{processor}/{label}"] = _per_call(args, floor_calls, pool)
        full = {case: _difference(runs, calls) for case, runs in full.items()}
        floor = {case: _difference(runs, floor_calls) for case, runs in floor.items()}
    with _cpu_lock(cpu_lock):  # after the valgrind runs: they would compete for the CPU
        client = make_client()
        bare_us = {}
        for call, fn in (("plain", plain_call), ("streamed", streamed_call)):
            for _ in range(100):
                fn(client)
            bare_us[call] = sorted(batch(fn, client, 200, False)["thread"] for _ in range(7))[1]
    out: dict[str, Any] = {"calls": calls, "floor_calls": floor_calls, "bare_us": bare_us, "full": {}, "floor": {}}
    rate = {call: full[f"{call}/bare"][0] / bare_us[call] for call in ("plain", "streamed")}  # Ir per µs
    out["ir_per_us"] = rate
    for case, (main_ir, all_ir) in full.items():
        call, setup_name = case.split("/")
        bare_main, bare_all = full[f"{call}/bare"]
        row = {"calling_thread_ir": main_ir, "all_threads_ir": all_ir}
        if setup_name != "bare":
            row["overhead_calling_thread_ir"] = main_ir - bare_main
            row["overhead_all_threads_ir"] = all_ir - bare_all
            row["overhead_calling_thread_us"] = (main_ir - bare_main) / rate[call]
        out["full"][case] = row
    for case, (main_ir, all_ir) in floor.items():
        out["floor"][case] = {"calling_thread_ir": main_ir, "all_threads_ir": all_ir, "us": main_ir / rate["plain"]}
    return out


# --- estimated cycles (callgrind's cache simulation) ---------------------------------------------------------------
# The simulated caches, fixed so that counts do not depend on what valgrind reads from the CPU (on this VM it finds a
# 256 MB direct-mapped "L3"): this machine's per-core L1s (lscpu: 32 KiB each, 8-way, 64 B lines) and its 32 MiB L3
# as the last level (16-way), all of it ours — callgrind simulates two levels (L1, LL), one hierarchy for all threads.
CACHES = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=33554432,16,64")


def estimated_cycles(ev: dict[str, float]) -> float:
    """KCachegrind's "Cycle Estimation" (CEst), the formula it derives from callgrind's events (KDE/kcachegrind,
    libcore/globalconfig.cpp, ``GlobalConfig::knownFormula``): CEst = Ir + 10 Bm + 10 L1m + 20 Ge + 100 L2m + 100 LLm,
    with L1m = I1mr + D1mr + D1mw, LLm = ILmr + DLmr + DLmw, Bm = Bim + Bcm (0 without ``--branch-sim``); Ge and L2m
    are events callgrind does not produce. The weights are the valgrind manual's orders of magnitude (Cachegrind
    chapter: an L1 miss costs around 10 cycles, an LL miss up to 200, a mispredicted branch 10 to 30)."""
    l1m = ev.get("I1mr", 0) + ev.get("D1mr", 0) + ev.get("D1mw", 0)
    llm = ev.get("ILmr", 0) + ev.get("DLmr", 0) + ev.get("DLmw", 0)
    bm = ev.get("Bim", 0) + ev.get("Bcm", 0)
    return ev["Ir"] + 10 * bm + 10 * l1m + 100 * llm


def _client_library(tmp: str) -> str:
    """bench/callgrind_client.c built into ``tmp``: the child's switch for instrumentation, zero and dump."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callgrind_client.c")
    lib = os.path.join(tmp, "callgrind_client.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", lib, src], check=True)
    return lib


def _events(
    child_args: list[str], lib: str, caches: tuple[str, ...], branch_sim: bool, keep: str | None
) -> dict[str, dict[str, int]]:
    """Per thread of one child run under callgrind with the cache simulation: the events of its first dump (the
    measured calls, from ``pp_zero`` to ``pp_dump``), from the ``events:`` and ``summary:`` lines."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no", "--separate-threads=yes",
             "--cache-sim=yes", *caches, *(["--branch-sim=yes"] if branch_sim else []),
             f"--callgrind-out-file={out}", sys.executable, __file__, *child_args],
            check=True, capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0", "PROMPTPULSE_BENCH_CALLGRIND_CLIENT": lib},
            preexec_fn=lambda: os.nice(10),  # counts do not depend on load; others' timed runs do
        )  # fmt: skip
        per_thread: dict[str, dict[str, int]] = {}
        for name in sorted(os.listdir(tmp)):  # callgrind.out.1-01: first dump, main thread; -02…: other threads
            if not name.startswith("callgrind.out.1-"):
                continue
            events: list[str] = []
            with open(os.path.join(tmp, name)) as fh:
                for line in fh:
                    if line.startswith("events:"):
                        events = line.split()[1:]
                    elif line.startswith("summary:"):
                        per_thread[name] = dict(zip(events, map(int, line.split()[1:]), strict=True))
                        break
            if keep:
                import shutil

                os.makedirs(keep, exist_ok=True)
                label = "_".join(a.strip("-") for a in child_args if not a.startswith("{"))
                shutil.copy(os.path.join(tmp, name), os.path.join(keep, f"{label}.{name.rsplit('-', 1)[1]}"))
    if "callgrind.out.1-01" not in per_thread:
        raise RuntimeError(f"no callgrind dump for {child_args}")
    return per_thread


def cache_sim(
    calls: int, floor_calls: int, jobs: int, branch_sim: bool, keep: str | None, pieces: int, ll: str
) -> dict[str, Any]:
    """Estimated cycles per call (``estimated_cycles``) next to instructions, under callgrind's cache simulation:
    the bare call, the instrumented call (SDK spans through SimpleSpanProcessor, no-op meter: issue 11 §5's setup),
    the floor's span made by hand around the bare call (``--floor-ratio``'s "by hand" arm), plain and streamed, and
    the floor (the OTel SDK span alone, the plain call's 16 attributes, the same tracer, as ``--floor-ratio``). Each
    child warms up in the simulated caches and is counted over its ``calls`` calls only (client requests)."""
    from concurrent.futures import ThreadPoolExecutor

    _floor_attributes_check()
    attrs = ["--_floor-start", json.dumps(FLOOR_START), "--_floor-end", json.dumps(FLOOR_END)]
    caches = (*CACHES[:2], f"--LL={ll}")
    cases: dict[str, tuple[list[str], int]] = {}
    for call in ("plain", "streamed"):
        p = ["--pieces", str(pieces)]
        cases[f"{call}/bare"] = (["--_count", f"{call}-bare", "--setups", "noop", *p], calls)
        cases[f"{call}/instrumented"] = (["--_count", f"{call}-inst", "--setups", "simple-nometrics", *p], calls)
        cases[f"{call}/by hand"] = (["--_count", f"{call}-hand", "--setups", "simple-nometrics", *p, *attrs], calls)
    cases["floor"] = (["--_floor", str(len(FLOOR_START)), "--setups", "simple-nometrics", *attrs], floor_calls)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=jobs) as pool:
        lib = _client_library(tmp)
        runs = {
            case: pool.submit(_events, [*args, "--calls", str(n)], lib, caches, branch_sim, keep)
            for case, (args, n) in cases.items()
        }
        per_thread = {case: run.result() for case, run in runs.items()}
    out: dict[str, Any] = {"calls": calls, "floor_calls": floor_calls, "stream_chunks": pieces + 3, "caches": caches}
    out.update(cases={}, ratios={})
    for case, threads in per_thread.items():
        n = cases[case][1]
        main_ev = {k: v / n for k, v in threads["callgrind.out.1-01"].items()}
        all_ev = {k: sum(t.get(k, 0) for t in threads.values()) / n for k in main_ev}
        out["cases"][case] = {
            "calling_thread": {**main_ev, "CEst": estimated_cycles(main_ev)},
            "all_threads": {**all_ev, "CEst": estimated_cycles(all_ev)},
        }
    c = out["cases"]
    for call in ("plain", "streamed"):
        r: dict[str, Any] = {}
        for ev in ("Ir", "CEst"):
            bare = c[f"{call}/bare"]["calling_thread"][ev]
            overhead = c[f"{call}/instrumented"]["calling_thread"][ev] - bare
            hand = c[f"{call}/by hand"]["calling_thread"][ev] - bare
            floor = c["floor"]["calling_thread"][ev]
            r[ev] = {"overhead": overhead, "by_hand": hand, "floor": floor, "overhead/floor": overhead / floor,
                     "overhead/by_hand": overhead / hand, "by_hand/floor": hand / floor}  # fmt: skip
        out["ratios"][call] = r
    return out


def print_cache_sim(header: str, r: dict[str, Any]) -> None:
    k = 1000.0
    print(header)
    print(
        f"per call, calling thread, callgrind --cache-sim=yes ({' '.join(r['caches'])}), PYTHONHASHSEED=0: "
        f"{r['calls']} calls ({r['floor_calls']} for the floor), streamed = {r['stream_chunks']} chunks, counted after "
        f"100 bare (+100 instrumented / by hand) warm-up calls, the last {CACHE_WARM_CALLS} in the simulated caches"
    )
    print("CEst = Ir + 10 (L1 misses) + 100 (LL misses) [+ 10 mispredicted branches] (KCachegrind's cycle estimation)")
    first = next(iter(r["cases"].values()))["calling_thread"]
    branches = "Bcm" in first
    print(f"{'case':<22}{'Ir':>11}{'I1mr':>9}{'D1mr+D1mw':>11}{'LL miss':>9}{'Bm' if branches else '':>9}"
          f"{'CEst':>11}{'CEst/Ir':>9}{'CEst all threads':>18}")  # fmt: skip
    for case, row in r["cases"].items():
        ev = row["calling_thread"]
        bm = f"{(ev['Bcm'] + ev['Bim']) / k:>7.1f} k" if branches else ""
        llm = ev["ILmr"] + ev["DLmr"] + ev["DLmw"]
        print(
            f"{case:<22}{ev['Ir'] / k:>9.1f} k{ev['I1mr'] / k:>7.1f} k{(ev['D1mr'] + ev['D1mw']) / k:>9.1f} k"
            f"{llm:>9.0f}{bm:>9}{ev['CEst'] / k:>9.1f} k{ev['CEst'] / ev['Ir']:>9.2f}"
            f"{row['all_threads']['CEst'] / k:>16.1f} k"
        )
    print("overhead = instrumented - bare; by hand = by hand - bare (the floor's span where it really runs)")
    print(f"{'case':<10}{'event':<6}{'overhead':>11}{'by hand':>11}{'floor':>11}{'overhead/floor':>16}"
          f"{'overhead/by hand':>18}{'by hand/floor':>15}")  # fmt: skip
    for call, by_event in r["ratios"].items():
        for ev, x in by_event.items():
            print(
                f"{call:<10}{ev:<6}{x['overhead'] / k:>9.1f} k{x['by_hand'] / k:>9.1f} k{x['floor'] / k:>9.1f} k"
                f"{x['overhead/floor']:>16.2f}{x['overhead/by_hand']:>18.2f}{x['by_hand/floor']:>15.2f}"
            )


def print_callgrind(header: str, counts: dict[str, Any]) -> None:
    k = 1000.0
    print(f"{header}")
    print(
        f"instructions per call (callgrind, PYTHONHASHSEED=0): a run of {counts['calls']} calls minus a run of 0, "
        f"after 100 bare (+100 instrumented) warm-up calls"
    )
    rate = counts["ir_per_us"]
    print(
        f"bare call, calling thread's CPU outside valgrind: plain {counts['bare_us']['plain']:.0f} µs, "
        f"streamed {counts['bare_us']['streamed']:.0f} µs -> {rate['plain']:.0f} / {rate['streamed']:.0f} Ir per µs"
    )
    print(f"{'full path':<28}{'calling thread':>16}{'all threads':>14}{'overhead: calling':>19}{'all':>10}{'≈ µs':>8}")
    for case, r in counts["full"].items():
        if "overhead_calling_thread_ir" not in r:
            print(f"{case:<28}{r['calling_thread_ir'] / k:>14.1f} k{r['all_threads_ir'] / k:>12.1f} k")
            continue
        print(
            f"{case:<28}{r['calling_thread_ir'] / k:>14.1f} k{r['all_threads_ir'] / k:>12.1f} k"
            f"{r['overhead_calling_thread_ir'] / k:>17.1f} k{r['overhead_all_threads_ir'] / k:>8.1f} k"
            f"{r['overhead_calling_thread_us']:>8.1f}"
        )
    print(f"{'SDK span alone (floor_calls ' + str(counts['floor_calls']) + ')':<52}{'calling thread':>16}"
          f"{'all threads':>14}{'≈ µs':>8}")  # fmt: skip
    for case, r in counts["floor"].items():
        print(f"{case:<52}{r['calling_thread_ir'] / k:>14.1f} k{r['all_threads_ir'] / k:>12.1f} k{r['us']:>8.1f}")
    print(
        "(≈ µs: calling-thread instructions at the bare call's own rate. noop = no-op tracer and meter: PromptPulse's"
        " own work; simple-nometrics = SDK spans, no-op meter; simple / batch = SDK spans + SDK metrics)"
    )


def _tuples(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}  # JSON made the tuple a list


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=300, help="calls per batch")
    p.add_argument("--rounds", type=int, default=20, help="bare/instrumented batch pairs (ABBA order)")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--callgrind", action="store_true", help="instructions per call under valgrind (slow)")
    p.add_argument("--wrapper", action="store_true", help="PromptPulse's wrapper around a stub (no openai call)")
    p.add_argument("--floor-ratio", action="store_true", help="overhead vs the OTel SDK span floor (issue 11 §5)")
    p.add_argument(
        "--pieces", type=int, help="--floor-ratio, --cache-sim: content chunks per stream (+3), default 7: 10 chunks"
    )
    p.add_argument("--pyinstrument", help="--floor-ratio: also write a pyinstrument wall-clock profile to this file")
    p.add_argument("--defer-arm", action="store_true", help="--floor-ratio: also the metrics hand-off forced on")
    p.add_argument("--after-arm", action="store_true", help="--floor-ratio: also the span made after the call")
    p.add_argument("--_count", help=argparse.SUPPRESS)
    p.add_argument("--_floor", help=argparse.SUPPRESS)
    p.add_argument("--_floor-start", help=argparse.SUPPRESS)
    p.add_argument("--_floor-end", help=argparse.SUPPRESS)
    p.add_argument("--floor-calls", type=int, default=2000, help="--callgrind: SDK-span-alone calls per count")
    p.add_argument("--jobs", type=int, default=1, help="--callgrind: valgrind runs at once")
    p.add_argument("--cpu-lock", help="--callgrind: flock this file while timing the bare call (shared machines)")
    p.add_argument("--cache-sim", action="store_true", help="--callgrind: estimated cycles (cache simulation)")
    p.add_argument("--branch-sim", action="store_true", help="--cache-sim: also mispredicted branches")
    p.add_argument("--ll", default=CACHES[2].split("=")[1], help="--cache-sim: simulated last level, size,assoc,line")
    p.add_argument("--keep", help="--cache-sim: copy the callgrind outputs to this directory (callgrind_annotate)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument(
        "--setups",
        help="comma-separated: simple, batch (SDK span processors + SDK metrics), simple-nometrics, noop; default "
        "all four, with --callgrind noop,simple-nometrics,simple",
    )
    args = p.parse_args(argv)
    default_setups = "noop,simple-nometrics,simple" if args.callgrind else "simple,batch,simple-nometrics,noop"
    setups = (args.setups or default_setups).split(",")
    global SSE_EVENTS
    pieces = 7 if args.pieces is None else args.pieces
    if args._count:
        if args.pieces is not None:  # else the plain --callgrind counts' 20-piece streams, as before
            SSE_EVENTS = _sse_events(args.pieces)
        start = json.loads(args._floor_start) if args._floor_start else None
        end = _tuples(json.loads(args._floor_end)) if args._floor_end else None
        _callgrind_count(args._count, setups[0], args.calls, start, end)
        return
    if args._floor:
        split, _, shape = args._floor.partition("-")
        end = json.loads(args._floor_end)
        if shape != "list":
            end = _tuples(end)
        _floor_count(None if split == "none" else int(split), setups[0], args.calls, json.loads(args._floor_start), end)
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
        f"python {platform.python_version()}, openai {importlib.metadata.version('openai')}, "
        f"opentelemetry-sdk {importlib.metadata.version('opentelemetry-sdk')}, {os.cpu_count()} cores"
    )
    if args.floor_ratio:
        ratio = floor_ratio(args.calls, args.rounds, pieces, args.pyinstrument, args.defer_arm, args.after_arm)
        print(json.dumps(ratio, indent=2)) if args.json else print_floor_ratio(header, ratio)
        return
    if args.callgrind and args.cache_sim:
        cycles = cache_sim(args.calls, args.floor_calls, args.jobs, args.branch_sim, args.keep, pieces, args.ll)
        print(json.dumps({"cache_sim": cycles}, indent=2)) if args.json else print_cache_sim(header, cycles)
        return
    if args.callgrind:
        counts = callgrind(setups, args.calls, args.floor_calls, args.jobs, args.cpu_lock)
        if args.json:
            print(json.dumps({"callgrind": counts}, indent=2))
        else:
            print_callgrind(header, counts)
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
