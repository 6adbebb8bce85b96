"""Span building, stream proxies and the wrapper discipline, with a stand-in endpoint (no SDK needed)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import promptpulse
from promptpulse.instrumentation import metrics_buffer
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.spans import LLMCall, Telemetry
from promptpulse.instrumentation.streams import AsyncStreamProxy, SyncStreamProxy
from promptpulse.instrumentation.wrappers import async_wrapper, sync_wrapper


class Harness:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(
            "test", "0", tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def only_span(self) -> ReadableSpan:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]


@pytest.fixture
def h() -> Harness:
    return Harness()


class CountingHandler:
    """Reports usage only when the stream said so (a final usage chunk), like a real provider handler."""

    def __init__(self) -> None:
        self.chunks = 0
        self.usage: tuple[int, int] | None = None

    def on_chunk(self, call: LLMCall, chunk: Any) -> None:
        self.chunks += 1
        if isinstance(chunk, dict):
            self.usage = (chunk["in"], chunk["out"])

    def on_finish(self, call: LLMCall) -> None:
        if self.usage:
            call.set_usage(input_tokens=self.usage[0], output_tokens=self.usage[1])


def _chunks() -> list[Any]:
    return ["a", "b", {"in": 10, "out": 2}]


class Closable:
    def __init__(self, items: list[Any]) -> None:
        self._it = iter(items)
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Closable:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def test_call_span_has_contract_attributes_cost_and_tags(h: Harness) -> None:
    with promptpulse.prompt("support_reply", "2.1.0", user_id="u1", feature="chat", tags=["vip", "eu"]):
        call = h.telemetry.start("chat", "openai", "gpt-4o-mini", server_address="api.openai.com", server_port=443)
    call.set_response(model="gpt-4o-mini-2024-07-18", response_id="r1", finish_reasons=["stop"])
    call.set_usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200)
    call.end()
    call.end()  # idempotent
    span = h.only_span()
    assert span.name == "chat gpt-4o-mini"
    a = span.attributes
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 200
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx(0.000435, abs=1e-15)  # 800*.15 + 200*.075 + 500*.6
    assert a[sc.GEN_AI_PROMPT_NAME] == "support_reply"
    assert a[sc.GEN_AI_PROMPT_VERSION] == "2.1.0"
    assert a[sc.USER_ID] == "u1"
    assert a[sc.PROMPTPULSE_FEATURE] == "chat"
    assert a[sc.PROMPTPULSE_TAGS] == ("vip", "eu")


def test_metrics_use_semconv_buckets(h: Harness) -> None:
    call = h.telemetry.start("chat", "openai", "gpt-4o")
    call.set_usage(input_tokens=7, output_tokens=3)
    call.end()
    metrics_buffer.flush()
    data = h.reader.get_metrics_data()
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert set(metrics) == {sc.METRIC_TOKEN_USAGE, sc.METRIC_OPERATION_DURATION}
    duration = metrics[sc.METRIC_OPERATION_DURATION].data.data_points[0]
    assert tuple(duration.explicit_bounds) == sc.DURATION_BUCKETS
    tokens = {dp.attributes[sc.GEN_AI_TOKEN_TYPE]: dp.sum for dp in metrics[sc.METRIC_TOKEN_USAGE].data.data_points}
    assert tokens == {"input": 7, "output": 3}
    assert tuple(metrics[sc.METRIC_TOKEN_USAGE].data.data_points[0].explicit_bounds) == sc.TOKEN_BUCKETS


def test_nested_prompt_blocks_override_key_by_key(h: Harness) -> None:
    with promptpulse.prompt("outer", "1", user_id="u1", tags=["a"]):
        with promptpulse.prompt(version="2", tags=["b"]):
            inner = h.telemetry.start("chat", "openai", "gpt-4o")
        outer = h.telemetry.start("chat", "openai", "gpt-4o")
    after = h.telemetry.start("chat", "openai", "gpt-4o")
    for c in (inner, outer, after):
        c.end()
    a_inner, a_outer, a_after = (s.attributes for s in h.spans())
    assert a_inner[sc.GEN_AI_PROMPT_NAME] == "outer"
    assert (a_inner[sc.GEN_AI_PROMPT_VERSION], a_inner[sc.USER_ID]) == ("2", "u1")
    assert a_inner[sc.PROMPTPULSE_TAGS] == ("b",)
    assert (a_outer[sc.GEN_AI_PROMPT_VERSION], a_outer[sc.PROMPTPULSE_TAGS]) == ("1", ("a",))
    assert sc.GEN_AI_PROMPT_NAME not in a_after


async def test_decorator_on_async_tasks_keeps_tags_apart(h: Harness) -> None:
    @promptpulse.prompt("p", version="1")
    async def v1() -> None:
        await asyncio.sleep(0.01)
        h.telemetry.start("chat", "openai", "gpt-4o").end()

    @promptpulse.prompt("p", version="2")
    async def v2() -> None:
        await asyncio.sleep(0.005)
        h.telemetry.start("chat", "openai", "gpt-4o").end()

    await asyncio.gather(*(v1() for _ in range(5)), *(v2() for _ in range(5)))
    versions = sorted(s.attributes[sc.GEN_AI_PROMPT_VERSION] for s in h.spans())
    assert versions == ["1"] * 5 + ["2"] * 5


def test_prompt_sets_current_span_attributes(h: Harness) -> None:
    tracer = h.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handler"), promptpulse.prompt("p", "3"):
        pass
    assert h.only_span().attributes[sc.GEN_AI_PROMPT_VERSION] == "3"


def test_baggage_propagation_is_opt_in(h: Harness) -> None:
    from opentelemetry import baggage

    with promptpulse.prompt("p", "1", tags=["x", "y"]):
        assert baggage.get_baggage(sc.GEN_AI_PROMPT_NAME) is None
    with promptpulse.prompt("p", "1", tags=["x", "y"], propagate=True):
        assert baggage.get_baggage(sc.GEN_AI_PROMPT_NAME) == "p"
        assert baggage.get_baggage(sc.PROMPTPULSE_TAGS) == "x,y"
    assert baggage.get_baggage(sc.GEN_AI_PROMPT_NAME) is None


def test_score_is_a_child_span_of_the_last_call(h: Harness) -> None:
    call = h.telemetry.start("chat", "openai", "gpt-4o")
    call.end()
    assert promptpulse.score("helpfulness", 0.8, label="good", comment="fine", tracer_provider=h.tracer_provider)
    llm, score = h.spans()
    assert score.parent is not None
    assert (score.parent.trace_id, score.parent.span_id) == (llm.context.trace_id, llm.context.span_id)
    assert score.attributes[sc.GEN_AI_EVALUATION_NAME] == "helpfulness"
    assert score.attributes[sc.GEN_AI_EVALUATION_SCORE_VALUE] == 0.8
    assert score.attributes[sc.GEN_AI_EVALUATION_SCORE_LABEL] == "good"
    assert promptpulse.score("x", 1, trace_id="ab" * 16, span_id="cd" * 8, tracer_provider=h.tracer_provider)
    assert h.spans()[-1].parent.span_id == int("cd" * 8, 16)  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["exhaust", "break", "close", "with", "gc", "next"])
def test_sync_stream_ends_exactly_once(h: Harness, how: str) -> None:
    call = h.telemetry.start("chat", "openai", "gpt-4o", stream=True)
    source = Closable(_chunks())
    proxy = SyncStreamProxy(source, call, CountingHandler())
    assert isinstance(proxy, Closable)
    if how == "exhaust":
        assert list(proxy) == _chunks()
    elif how == "break":
        for _ in proxy:
            break
    elif how == "close":
        next(proxy)
        proxy.close()
        assert source.closed
    elif how == "with":
        with proxy as s:
            for _ in s:
                pass
    elif how == "gc":
        del proxy
        gc.collect()
    elif how == "next":
        with pytest.raises(StopIteration):
            while True:
                next(proxy)
    span = h.only_span()
    state = span.attributes[sc.PROMPTPULSE_STREAM_STATE]
    expected_state = {
        "exhaust": "complete",
        "break": "interrupted",
        "close": "closed",
        "with": "complete",
        "gc": "abandoned",
        "next": "complete",
    }[how]
    assert state == expected_state
    if how in ("exhaust", "with", "next"):
        assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
        assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes
    else:
        assert span.attributes[sc.PROMPTPULSE_USAGE_MISSING] is True
        assert sc.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
        # cut before the event that says how the choice ended: "error", not omitted
        assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)


def test_stream_error_is_recorded_and_reraised(h: Harness) -> None:
    def broken() -> Iterator[str]:
        yield "a"
        raise ConnectionResetError("cut")

    call = h.telemetry.start("chat", "openai", "gpt-4o", stream=True)
    with pytest.raises(ConnectionResetError):
        for _ in SyncStreamProxy(broken(), call, CountingHandler()):
            pass
    span = h.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.PROMPTPULSE_ERROR_CATEGORY] == "system"
    assert span.attributes[sc.PROMPTPULSE_STREAM_STATE] == "error"


async def test_async_stream_exhaust_and_break(h: Harness) -> None:
    class AsyncSource:
        def __init__(self) -> None:
            self._items = iter(_chunks())

        def __aiter__(self) -> AsyncSource:
            return self

        async def __anext__(self) -> Any:
            try:
                return next(self._items)
            except StopIteration:
                raise StopAsyncIteration from None

    call = h.telemetry.start("chat", "openai", "gpt-4o", stream=True)
    assert [c async for c in AsyncStreamProxy(AsyncSource(), call, CountingHandler())] == _chunks()
    call2 = h.telemetry.start("chat", "openai", "gpt-4o", stream=True)
    proxy = AsyncStreamProxy(AsyncSource(), call2, CountingHandler())
    it = proxy.__aiter__()
    await it.__anext__()
    await it.aclose()
    states = [s.attributes[sc.PROMPTPULSE_STREAM_STATE] for s in h.spans()]
    assert states == ["complete", "interrupted"]


class _Endpoint:
    def __init__(self, fail_start: bool = False, fail_finish: bool = False) -> None:
        self.fail_start = fail_start
        self.fail_finish = fail_finish

    def start(self, telemetry: Telemetry, instance: Any, args: Any, kwargs: Any) -> LLMCall:
        if self.fail_start:
            raise RuntimeError("bug in promptpulse")
        return telemetry.start("chat", "openai", kwargs["model"])

    def finish(self, call: LLMCall, result: Any) -> Any:
        if self.fail_finish:
            raise RuntimeError("bug in promptpulse")
        call.set_usage(input_tokens=1, output_tokens=1)
        call.end()
        return result


def test_wrapper_never_breaks_the_app(h: Harness) -> None:
    def create(**kwargs: Any) -> str:
        return "ok"

    def boom(**kwargs: Any) -> str:
        raise KeyError("sdk error")

    assert sync_wrapper(h.telemetry, _Endpoint(fail_start=True))(create, None, (), {"model": "m"}) == "ok"
    assert sync_wrapper(h.telemetry, _Endpoint(fail_finish=True))(create, None, (), {"model": "m"}) == "ok"
    with pytest.raises(KeyError, match="sdk error"):
        sync_wrapper(h.telemetry, _Endpoint())(boom, None, (), {"model": "m"})
    spans = h.spans()
    assert len(spans) == 2  # the failed start made no span; the failed finish still ended its span
    assert spans[1].attributes[sc.ERROR_TYPE] == "KeyError"


def test_nested_wrapped_calls_make_one_span(h: Harness) -> None:
    wrapper = sync_wrapper(h.telemetry, _Endpoint())

    def inner(**kwargs: Any) -> str:
        return "inner"

    def outer(**kwargs: Any) -> str:
        return wrapper(inner, None, (), kwargs)

    assert wrapper(outer, None, (), {"model": "m"}) == "inner"
    assert len(h.spans()) == 1


async def test_async_wrapper_parents_nested_spans(h: Harness) -> None:
    tracer = h.tracer_provider.get_tracer("sdk")

    async def create(**kwargs: Any) -> str:
        with tracer.start_as_current_span("http"):
            await asyncio.sleep(0)
        return "ok"

    assert await async_wrapper(h.telemetry, _Endpoint())(create, None, (), {"model": "m"}) == "ok"
    http, llm = h.spans()
    assert http.parent is not None and http.parent.span_id == llm.context.span_id


def test_metrics_reach_the_reader_without_an_explicit_flush(h: Harness) -> None:
    import time

    call = h.telemetry.start("chat", "openai", "gpt-4o")
    call.set_usage(input_tokens=5, output_tokens=1)
    call.end()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data = h.reader.get_metrics_data()
        if data and data.resource_metrics:
            break
        time.sleep(0.05)
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert sc.METRIC_OPERATION_DURATION in names


class FailingHandler(CountingHandler):
    """Raises on the chunks it is told to (counted from 1), after counting them."""

    def __init__(self, fail_on: set[int]) -> None:
        super().__init__()
        self.fail_on = fail_on

    def on_chunk(self, call: LLMCall, chunk: Any) -> None:
        super().on_chunk(call, chunk)
        if self.chunks in self.fail_on:
            raise RuntimeError("bug in a handler")


@pytest.mark.parametrize("fail_on", [{1}, {2}, {1, 2, 3}])
def test_a_failing_handler_never_breaks_the_stream(h: Harness, fail_on: set[int]) -> None:
    call = h.telemetry.start("chat", "openai", "gpt-4o", stream=True)
    handler = FailingHandler(fail_on)
    assert list(SyncStreamProxy(Closable(_chunks()), call, handler)) == _chunks()
    assert handler.chunks == 3  # every chunk still reached the handler
    span = h.only_span()
    assert span.attributes[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert span.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 2  # counted before the handler raised


async def test_a_failing_async_handler_never_breaks_the_stream(h: Harness) -> None:
    async def source() -> Any:
        for chunk in _chunks():
            yield chunk

    call = h.telemetry.start("chat", "openai", "gpt-4o", stream=True)
    handler = FailingHandler({1, 2})
    assert [c async for c in AsyncStreamProxy(source(), call, handler)] == _chunks()
    assert handler.chunks == 3
    assert h.only_span().attributes[sc.PROMPTPULSE_STREAM_STATE] == "complete"


@pytest.mark.parametrize("taken", [1, 2])
def test_break_after_some_chunks_ends_once_with_time_to_first_chunk(h: Harness, taken: int) -> None:
    call = h.telemetry.start("chat", "openai", "gpt-4o", stream=True)
    handler = CountingHandler()
    got = []
    for chunk in SyncStreamProxy(Closable(_chunks()), call, handler):
        got.append(chunk)
        if len(got) == taken:
            break
    gc.collect()
    assert got == _chunks()[:taken] and handler.chunks == taken
    span = h.only_span()
    assert span.attributes[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert span.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    assert span.attributes[sc.PROMPTPULSE_USAGE_MISSING] is True


@pytest.mark.parametrize("key", ["api", "plain"])
def test_suppressed_instrumentation_makes_no_span(h: Harness, key: str) -> None:
    from opentelemetry import context
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    def create(**kwargs: Any) -> str:
        return "ok"

    wrapper = sync_wrapper(h.telemetry, _Endpoint())
    if key == "api":
        with suppress_instrumentation():
            assert wrapper(create, None, (), {"model": "m"}) == "ok"
    else:  # the older plain-string key some instrumentations still set
        token = context.attach(context.set_value("suppress_instrumentation", True))
        try:
            assert wrapper(create, None, (), {"model": "m"}) == "ok"
        finally:
            context.detach(token)
    assert h.spans() == []
    assert wrapper(create, None, (), {"model": "m"}) == "ok"
    assert len(h.spans()) == 1


def test_call_span_is_a_child_of_the_current_span_and_parents_nested_spans(h: Harness) -> None:
    tracer = h.tracer_provider.get_tracer("app")

    def create(**kwargs: Any) -> str:
        with tracer.start_as_current_span("http"):
            pass
        return "ok"

    with tracer.start_as_current_span("request") as request:
        assert sync_wrapper(h.telemetry, _Endpoint())(create, None, (), {"model": "m"}) == "ok"
        assert trace.get_current_span() is request  # the call's context was detached again
    http, llm, outer = h.spans()
    assert llm.parent is not None and llm.parent.span_id == outer.context.span_id
    assert http.parent is not None and http.parent.span_id == llm.context.span_id


def test_deferred_metric_work_survives_a_failing_item(h: Harness) -> None:
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("bug")

    metrics_buffer.defer(boom)
    metrics_buffer.defer(ran.append, 1)
    metrics_buffer.flush()
    assert ran == [1]


def test_a_collection_records_pending_histograms_first(h: Harness) -> None:
    """No explicit flush: the reader's collection itself records what the flusher thread has not yet."""
    call = h.telemetry.start("chat", "openai", "gpt-4o")
    call.set_usage(input_tokens=7, output_tokens=3)
    call.end()
    data = h.reader.get_metrics_data()
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "promptpulse.metrics_buffer.flush" not in metrics  # the hook observes nothing
    (duration,) = metrics[sc.METRIC_OPERATION_DURATION].data.data_points
    assert duration.count == 1
    tokens = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in metrics[sc.METRIC_TOKEN_USAGE].data.data_points}
    assert tokens == {"input": 7, "output": 3}


def test_no_meter_provider_hands_nothing_to_the_metrics_flusher(h: Harness) -> None:
    """A no-op meter (no MeterProvider) has nothing to record: no item per call for the flusher thread, and the
    span is unchanged. A real MeterProvider still gets every call's histograms."""
    metrics_buffer.flush()
    quiet = Telemetry("test", "0", tracer_provider=h.tracer_provider, meter_provider=metrics.NoOpMeterProvider())
    call = quiet.start("chat", "openai", "gpt-4o")
    call.set_usage(input_tokens=7, output_tokens=3)
    call.end()
    assert len(metrics_buffer._pending) == 0
    span = h.only_span()
    assert (span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS], span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (7, 3)
    call = h.telemetry.start("chat", "openai", "gpt-4o")
    call.set_usage(input_tokens=7, output_tokens=3)
    call.end()
    assert len(metrics_buffer._pending) == 1
    metrics_buffer.flush()


def test_records_metrics_follows_the_global_meter_once_it_is_set() -> None:
    """The global meter's stand-in histogram records nowhere until a provider is set; then it does."""
    from opentelemetry.metrics._internal import _ProxyMeter

    from promptpulse.instrumentation.spans import records_metrics

    meter = _ProxyMeter("test")
    histogram = meter.create_histogram("h")
    assert not records_metrics(histogram)
    meter.on_set_meter_provider(metrics.NoOpMeterProvider())
    assert not records_metrics(histogram)
    real = _ProxyMeter("test")
    histogram = real.create_histogram("h")
    real.on_set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    assert records_metrics(histogram)


@pytest.mark.parametrize(("per_choice", "given", "cut", "want"), [
    (None, None, False, ()),  # a plain call without reasons: none invented
    (None, ("stop",), False, ("stop",)),
    (None, None, True, ("error",)),  # cut before the final event, any provider
    (None, ("length",), True, ("length",)),  # the final event came, then the stream was cut
    (("stop", None), None, False, ("stop",)),  # complete: an unknown choice is left out
    (("stop", None), ("stop",), True, ("stop", "error")),  # cut: every unfinished choice says so
    ((None, None, None), None, True, ("error", "error", "error")),
    ((), None, True, ("error",)),  # a handler that saw no choice at all
])
def test_one_finish_reason_rule(per_choice: Any, given: Any, cut: bool, want: tuple[str, ...]) -> None:
    from promptpulse.instrumentation.spans import _finish_reasons

    assert _finish_reasons(per_choice, given, cut) == want
