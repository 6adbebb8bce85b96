"""Where the wall clock of an instrumented OpenAI call goes, step by step, where the steps really run (inside the
openai call, caches cold), next to the same OTel SDK span made by hand around the call, in a hot loop (the floor),
and recorded by a flat reference wrapper.

During the instrumented batches each listed step is wrapped with a ``perf_counter_ns`` timer (≈ 0.3 µs each, so
those rows run a little high) and its inclusive time summed; batches of the bare call, the instrumented call (SDK
spans through ``SimpleSpanProcessor``, no MeterProvider — ``bench_overhead.py --floor-ratio``'s setup), the span by
hand, the floor and the flat reference alternate (ABBA). Printed: medians over rounds of µs per call.

The flat reference (plain call only) is one wrapt wrapper that records the plain call's 16 attributes, cost from the
same price table, the span current during the call — and nothing else PromptPulse does (no provider kit, usage
details, tags, ``score()`` maps, suppression checks or error isolation): the bound of flattening the hot path.

``--opcodes`` counts instead the bytecodes each arm executes beyond the bare call (``sys.settrace`` opcode events;
deterministic), by function for the instrumented call.

    .venv/bin/python bench/overhead_phases.py --rounds 30 --calls 200            # plain
    .venv/bin/python bench/overhead_phases.py --rounds 30 --calls 200 --stream   # 10 chunks
    .venv/bin/python bench/overhead_phases.py --opcodes
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
import wrapt
from openai.resources.chat.completions import Completions
from opentelemetry import context, metrics, trace
from opentelemetry.sdk.trace import Span, Tracer
from opentelemetry.trace import SpanKind

from promptpulse.instrumentation import pricing, spans, streams, tagging, wrappers
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import content, stainless

ROOT = Path(__file__).resolve().parent.parent
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


_INHERITED = object()  # the step is the owner's base class's: restored by deleting the timer


def _timed(owner: Any, name: str, label: str) -> Any:
    saved = vars(owner).get(name, _INHERITED)
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return original(*args, **kwargs)
        finally:
            _spent[label] += time.perf_counter_ns() - started

    setattr(owner, name, timed)
    return saved


def _timers_on() -> list[tuple[Any, str, Any]]:
    return [(owner, name, _timed(owner, name, label)) for owner, name, label in STEPS]


def _timers_off(saved: list[tuple[Any, str, Any]]) -> None:
    for owner, name, original in saved:
        if original is _INHERITED:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


class FlatReference:
    """The plain call's attributes recorded by one flat wrapper (see the module docstring)."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.prices = pricing.default_table()
        self.original = Completions.__dict__["create"]

    def wrapper(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        model = kwargs.get("model")
        attrs: dict[str, Any] = {
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.SERVER_ADDRESS: "api.openai.com",
            sc.SERVER_PORT: 443,
            sc.OPENAI_API_TYPE: "chat_completions",
        }
        temperature, max_tokens = kwargs.get("temperature"), kwargs.get("max_tokens")
        if temperature is not None:
            attrs[sc.GEN_AI_REQUEST_TEMPERATURE] = temperature
        if max_tokens is not None:
            attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        fingerprint = content.messages_fingerprint(kwargs.get("messages"))
        if fingerprint:
            attrs[sc.PROMPTPULSE_PROMPT_FINGERPRINT] = fingerprint
        span = self.tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attrs)
        token = context.attach(trace.set_span_in_context(span))
        try:
            result = wrapped(*args, **kwargs)
        finally:
            context.detach(token)
        usage = result.usage
        end = {
            sc.GEN_AI_RESPONSE_MODEL: result.model,
            sc.GEN_AI_RESPONSE_ID: result.id,
            sc.GEN_AI_RESPONSE_FINISH_REASONS: (result.choices[0].finish_reason,),
            sc.GEN_AI_USAGE_INPUT_TOKENS: usage.prompt_tokens,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.completion_tokens,
        }
        if result.system_fingerprint:
            end[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = result.system_fingerprint
        price = self.prices.lookup("openai", result.model)
        if price is not None:
            end[sc.PROMPTPULSE_COST_USD] = price.cost(usage.prompt_tokens, usage.completion_tokens)
        span.set_attributes(end)
        span.end()
        return result

    def on(self) -> None:
        wrapt.wrap_function_wrapper(Completions, "create", self.wrapper)

    def off(self) -> None:
        Completions.create = self.original


def _arms(stream: bool) -> tuple[Any, Any, Any, dict[str, Any]]:
    setup = bo.Setup("simple-nometrics")
    setup.meter_provider = metrics.NoOpMeterProvider()
    tracer = setup.tracer_provider.get_tracer("floor")
    start, end = dict(bo.FLOOR_START), dict(bo.FLOOR_END)
    client = bo.make_client()
    call = bo.streamed_call if stream else bo.plain_call
    arms = {"bare": call, "instrumented": call, "by hand": bo._by_hand(tracer, start, end, call)}
    arms["floor"] = bo._floor_span(tracer, start, end)
    flat = FlatReference(tracer)
    if not stream:
        arms["flat reference"] = call
    for _ in range(200):
        for fn in arms.values():
            fn(client)
    for on, off in ((setup.on, setup.off), *(() if stream else ((flat.on, flat.off),))):
        on()
        for _ in range(200):
            call(client)
        off()
    if not stream:
        _check_flat_reference(setup, flat, client)
    setup.tracer_provider.force_flush()
    setup.exporter.clear()
    return setup, client, flat, arms


def _check_flat_reference(setup: Any, flat: FlatReference, client: Any) -> None:
    """The flat reference records exactly the instrumented plain call's attributes, or the comparison is void."""
    spans = []
    for on, off in ((setup.on, setup.off), (flat.on, flat.off)):
        setup.exporter.clear()
        on()
        bo.plain_call(client)
        spans.append(dict(setup.exporter.get_finished_spans()[-1].attributes))
        off()
    if spans[0] != spans[1]:
        raise SystemExit(f"the flat reference's attributes differ from the instrumented call's: {spans}")


def run(calls: int, rounds: int, stream: bool) -> dict[str, float]:
    setup, client, flat, arms = _arms(stream)
    call = arms["bare"]
    per_round: dict[str, list[float]] = collections.defaultdict(list)
    names = list(arms)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for arm in order[::-1] if r % 2 else order:
            saved = []
            if arm == "instrumented":
                setup.on()
                call(client)
                saved = _timers_on()
            elif arm == "flat reference":
                flat.on()
            gc.collect()
            _spent.clear()
            started = time.perf_counter_ns()
            for _ in range(calls):
                arms[arm](client)
            per_round[arm].append((time.perf_counter_ns() - started) / calls / 1e3)
            if arm == "instrumented":
                _timers_off(saved)
                for label, ns in _spent.items():
                    per_round[label].append(ns / calls / 1e3)
                setup.off()
            elif arm == "flat reference":
                flat.off()
            setup.tracer_provider.force_flush()
            setup.exporter.clear()
    bare = per_round["bare"]
    out = {arm: statistics.median(per_round[arm]) for arm in names}
    for arm in ("instrumented", "by hand", "flat reference")[: 2 if stream else 3]:
        out[f"{arm} - bare"] = statistics.median(a - b for a, b in zip(per_round[arm], bare, strict=True))
    out.update({label: statistics.median(per_round[label]) for _, _, label in STEPS if per_round[label]})
    return out


def opcodes(stream: bool) -> dict[str, Any]:
    """Bytecodes executed per call beyond the bare call: per arm, and by function for the instrumented call."""
    setup, client, flat, arms = _arms(stream)
    call = arms["bare"]

    def count(fn: Any) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()

        def tracer(frame: Any, event: str, arg: Any) -> Any:
            frame.f_trace_opcodes = True
            if event == "opcode":
                code = frame.f_code
                where = code.co_filename.split("site-packages/")[-1].replace(f"{ROOT}/", "")
                counts[f"{where}:{code.co_name}"] += 1
            return tracer

        sys.settrace(tracer)
        try:
            fn(client)
        finally:
            sys.settrace(None)
        return counts

    bare = count(call)
    setup.on()
    instrumented = count(call)
    setup.off()
    out: dict[str, Any] = {
        "instrumented": sum((instrumented - bare).values()),
        "by hand": sum((count(arms["by hand"]) - bare).values()),
    }
    if not stream:
        flat.on()
        out["flat reference"] = sum((count(call) - bare).values())
        flat.off()
    out["floor"] = sum(count(arms["floor"]).values())
    out["by function"] = (instrumented - bare).most_common(40)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--stream", action="store_true", help="the 10-chunk stream instead of the plain call")
    p.add_argument("--opcodes", action="store_true", help="bytecodes executed per call instead of time")
    args = p.parse_args()
    if args.opcodes:
        counts = opcodes(args.stream)
        print(f"{'streamed, 10 chunks' if args.stream else 'plain'}: bytecodes executed per call beyond the bare call")
        for arm, n in counts.items():
            if arm != "by function":
                print(f"  {arm:<58}{n:>9}")
        print("  the instrumented call's, by function:")
        for where, n in counts["by function"]:
            print(f"    {where:<56}{n:>9}")
        return
    out = run(args.calls, args.rounds, args.stream)
    print(f"{'streamed, 10 chunks' if args.stream else 'plain'}; {args.rounds} rounds x {args.calls} calls per arm; "
          "µs per call, medians over rounds (timers included)")  # fmt: skip
    for label, us in out.items():
        print(f"  {label:<58}{us:>9.1f}")


if __name__ == "__main__":
    main()
