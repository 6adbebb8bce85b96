"""score(call=...) names its call explicitly, e.g. after asyncio.gather: the real openai and anthropic SDKs over the
fake provider, the spans through the OTLP encoding and the processor's decoder into llm_scores."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

import promptpulse
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation import tagging
from promptpulse.instrumentation.anthropic import AnthropicInstrumentor
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.processor.receiver.decode import decode_protobuf
from promptpulse.processor.store.base import Store
from promptpulse.testing import FakeProvider

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    from promptpulse.processor.store.embedded import EmbeddedStore

    s = EmbeddedStore(str(tmp_path_factory.mktemp("scores")))
    s.apply_schema()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(autouse=True)
def no_earlier_call() -> Iterator[None]:
    """Each test starts in a context that has made no LLM call (earlier tests' sync calls ran in the main context,
    which the event loop's tasks copy)."""
    token = tagging._last_call.set(None)
    yield
    tagging._last_call.reset(token)


@pytest.fixture
def instrumented(otel: Any) -> Iterator[None]:
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for i in instrumentors:
        i.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    yield
    for i in instrumentors:
        i.uninstrument()


def _stored_scores(otel: Any, store: Store, dedup: str) -> dict[str, tuple[str, str, float]]:
    """Every score in llm_scores by name: (trace id, span id, value), after the OTLP round trip."""
    decoded = decode_protobuf(encode_spans(otel.spans()).SerializeToString())
    assert decoded.rejected == 0
    store.insert_otel_traces(decoded.rows, dedup_token=dedup)
    rows = store.query(
        "SELECT name, trace_id, span_id, value FROM llm_scores WHERE name LIKE {p:String}", {"p": f"{dedup}.%"}
    ).rows
    return {name: (trace_id, span_id, value) for name, trace_id, span_id, value in rows}


def _ids(span: ReadableSpan) -> tuple[str, str]:
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def _call_spans(otel: Any) -> list[ReadableSpan]:
    return [s for s in otel.spans() if not s.name.startswith("gen_ai.evaluation")]


def _by_response_id(otel: Any, response_id: str) -> ReadableSpan:
    (span,) = [s for s in _call_spans(otel) if s.attributes.get(sc.GEN_AI_RESPONSE_ID) == response_id]
    return span


async def test_openai_scores_after_gather_land_on_their_calls(
    otel: Any, instrumented: None, fake_provider: FakeProvider, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)

    async def plain() -> Any:
        return await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)

    async def streamed() -> Any:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
        async for _ in stream:
            pass
        return stream

    async def raw() -> Any:
        return await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)

    async def embedded() -> Any:
        return await client.embeddings.create(model="text-embedding-3-small", input="hi")

    async def handle() -> Any:
        await client.chat.completions.create(model="gpt-4.1", messages=MSGS)
        return promptpulse.last_call()

    try:
        got = await asyncio.gather(plain(), streamed(), raw(), embedded(), handle())
    finally:
        await client.close()
    completion, stream, raw_response, embedding, ref = got
    parsed = raw_response.parse()
    # The gathered calls ran in child tasks: this context made none, so score() without call= has nothing to name.
    with caplog.at_level(logging.WARNING, logger=tagging.__name__):
        assert promptpulse.score("openai.unnamed", 1.0, tracer_provider=otel.tracer_provider) is False
    assert "pass call=" in caplog.text
    assert promptpulse.score("openai.plain", 0.1, call=completion, tracer_provider=otel.tracer_provider)
    assert promptpulse.score("openai.stream", 0.2, call=stream, tracer_provider=otel.tracer_provider)
    assert promptpulse.score("openai.raw", 0.3, call=raw_response, tracer_provider=otel.tracer_provider)
    assert promptpulse.score("openai.parsed", 0.4, call=parsed, tracer_provider=otel.tracer_provider)
    assert promptpulse.score("openai.embedding", 0.5, call=embedding, tracer_provider=otel.tracer_provider)
    assert promptpulse.score("openai.handle", 0.6, call=ref, tracer_provider=otel.tracer_provider)
    # Not a response of an instrumented call: a warning and False, never an exception.
    assert promptpulse.score("openai.stranger", 0.7, call=object(), tracer_provider=otel.tracer_provider) is False

    calls = _call_spans(otel)
    assert len(calls) == 5
    stream_span = next(s for s in calls if s.attributes.get(sc.GEN_AI_REQUEST_STREAM))
    embedding_span = next(s for s in calls if s.attributes[sc.GEN_AI_OPERATION_NAME] == "embeddings")
    raw_span = next(s for s in calls if s.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o")
    handle_span = next(s for s in calls if s.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4.1")
    assert raw_span is _by_response_id(otel, parsed.id)
    assert _stored_scores(otel, store, "openai") == {
        "openai.plain": (*_ids(_by_response_id(otel, completion.id)), 0.1),
        "openai.stream": (*_ids(stream_span), 0.2),
        "openai.raw": (*_ids(raw_span), 0.3),
        "openai.parsed": (*_ids(raw_span), 0.4),
        "openai.embedding": (*_ids(embedding_span), 0.5),
        "openai.handle": (*_ids(handle_span), 0.6),
    }


async def test_anthropic_scores_after_gather_land_on_their_calls(
    otel: Any, instrumented: None, fake_provider: FakeProvider, store: Store
) -> None:
    client = anthropic.AsyncAnthropic(base_url=fake_provider.anthropic_base_url, api_key="k", max_retries=0)
    model = "claude-sonnet-4-5"

    async def plain() -> Any:
        return await client.messages.create(model=model, max_tokens=64, messages=MSGS)

    async def streamed() -> Any:
        stream = await client.messages.create(model=model, max_tokens=64, messages=MSGS, stream=True)
        async for _ in stream:
            pass
        return stream

    async def helper() -> Any:
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MSGS) as stream:
            async for _ in stream:
                pass
            return stream, await stream.get_final_message()

    try:
        message, stream, (helper_stream, final) = await asyncio.gather(plain(), streamed(), helper())
    finally:
        await client.close()
    tp = otel.tracer_provider
    assert promptpulse.score("anthropic.plain", 1.0, call=message, tracer_provider=tp)
    assert promptpulse.score("anthropic.stream", 2.0, call=stream, tracer_provider=tp)
    assert promptpulse.score("anthropic.helper", 3.0, call=helper_stream, tracer_provider=tp)
    assert promptpulse.score("anthropic.final", 4.0, call=final, tracer_provider=tp)

    calls = _call_spans(otel)
    assert len(calls) == 3
    helper_span = _by_response_id(otel, final.id)
    (stream_span,) = [s for s in calls if s.attributes.get(sc.GEN_AI_REQUEST_STREAM) and s is not helper_span]
    assert helper_span.attributes[sc.GEN_AI_REQUEST_MODEL] == "claude-haiku-4-5"
    assert _stored_scores(otel, store, "anthropic") == {
        "anthropic.plain": (*_ids(_by_response_id(otel, message.id)), 1.0),
        "anthropic.stream": (*_ids(stream_span), 2.0),
        "anthropic.helper": (*_ids(helper_span), 3.0),
        "anthropic.final": (*_ids(helper_span), 4.0),
    }


def test_a_call_made_in_a_thread_is_named_by_its_response(
    otel: Any, instrumented: None, fake_provider: FakeProvider
) -> None:
    """A call made in a worker thread: its response, handed back, still names it; the response map forgets dead
    responses."""
    import gc
    from concurrent.futures import ThreadPoolExecutor

    client = anthropic.Anthropic(base_url=fake_provider.anthropic_base_url, api_key="k", max_retries=0)
    with ThreadPoolExecutor(1) as pool:
        message = pool.submit(client.messages.create, model="claude-sonnet-4-5", max_tokens=8, messages=MSGS).result()
    assert promptpulse.score("thread", 1.0, tracer_provider=otel.tracer_provider) is False  # made in another thread
    assert promptpulse.score("thread", 1.0, call=message, tracer_provider=otel.tracer_provider)
    call_span, score_span = otel.spans()
    assert score_span.parent is not None and score_span.parent.span_id == call_span.context.span_id
    key = id(message)
    assert key in tagging._by_object
    del message
    gc.collect()
    assert key not in tagging._by_object
    client.close()


def test_the_response_id_map_keeps_the_last_ids_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace

    monkeypatch.setattr(tagging, "_by_response_id", {})
    monkeypatch.setattr(tagging, "_response_id_order", deque())
    monkeypatch.setattr(tagging, "RESPONSE_IDS_MAX", 3)
    for i in range(1, 6):
        tagging.remember_response_id(f"r{i}", trace.SpanContext(1, i, is_remote=False))

    class Response:
        def __init__(self, response_id: str) -> None:
            self.id = response_id

    assert [tagging.call_of(Response(f"r{i}")) for i in range(1, 6)] == [
        None, None, (1, 3), (1, 4), (1, 5)]  # fmt: skip
    assert len(tagging._by_response_id) == 3


def test_a_repeated_response_id_names_its_newest_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace

    monkeypatch.setattr(tagging, "_by_response_id", {})
    monkeypatch.setattr(tagging, "_response_id_order", deque())
    monkeypatch.setattr(tagging, "RESPONSE_IDS_MAX", 3)
    for i in range(1, 6):  # a compatible server that answers every call with the same id
        tagging.remember_response_id("same", trace.SpanContext(1, i, is_remote=False))

    class Response:
        id = "same"

    assert tagging.call_of(Response()) == (1, 5)
    assert list(tagging._response_id_order) == ["same"]

