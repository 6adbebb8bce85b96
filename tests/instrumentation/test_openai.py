"""OpenAIInstrumentor with the real openai SDK over loopback HTTP against the fake provider."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import openai
import pydantic
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode
from wrapt import FunctionWrapper

import promptpulse
from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit.targets import provider_for_host
from promptpulse.instrumentation.openai import OpenAIInstrumentor, _target
from promptpulse.instrumentation.spans import CAPTURE_CONTENT_ENV, CONTENT_MAX_CHARS_ENV
from promptpulse.testing import FakeProvider, Fault, Latency, Scenario

MSGS = [{"role": "system", "content": "You are support agent 7."}, {"role": "user", "content": "Where is order 123?"}]

# Prices per million tokens, copied by hand from instrumentation/prices/prices.csv.
GPT_4O_MINI = {"input": 0.15, "output": 0.60, "cache_read": 0.075}
GPT_4O = {"input": 2.50, "output": 10.00, "cache_read": 1.25}
EMBEDDING_3_SMALL_INPUT = 0.02

USAGE = Scenario(input_tokens=1000, cached_tokens=400, output_tokens=200, reasoning_tokens=50)


def expected_cost(price: dict[str, float], inp: int, cached: int, out: int) -> float:
    return ((inp - cached) * price["input"] + cached * price["cache_read"] + out * price["output"]) / 1_000_000


@pytest.fixture
def instrumented(otel: Any) -> Iterator[OpenAIInstrumentor]:
    yield from otel.instrument(OpenAIInstrumentor())


@pytest.fixture
def fake(fake_provider: FakeProvider) -> FakeProvider:
    return fake_provider


@pytest.fixture
def client(fake: FakeProvider) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=2)
    yield c
    c.close()


@pytest.fixture
async def aclient(fake: FakeProvider) -> Any:
    c = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=2)
    yield c
    await c.close()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def assert_usage(a: dict[str, Any], inp: int, out: int, cached: int = 0, reasoning: int = 0) -> None:
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == inp
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == out
    assert a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0) == cached
    assert a.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, 0) == reasoning
    assert sc.PROMPTPULSE_USAGE_MISSING not in a


# --- plain calls ------------------------------------------------------------------------------------------------


def test_chat_span_exact_attributes_tokens_and_cost(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE.with_(response_models={"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}))
    result = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSGS,
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=500,
        seed=7,
        stop=["END"],
        frequency_penalty=0.1,
        presence_penalty=0.2,
        n=1,
        response_format={"type": "json_object"},
        reasoning_effort="low",
        service_tier="auto",
    )
    span = otel.only_span()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    port = httpx2.URL(fake.openai_base_url).port
    assert attrs(span) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        sc.SERVER_ADDRESS: "127.0.0.1",
        sc.SERVER_PORT: port,
        sc.PROMPTPULSE_PROMPT_FINGERPRINT: fp.fingerprint(fp.template_of("You are support agent 7.", None)),
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.3,
        sc.GEN_AI_REQUEST_TOP_P: 0.9,
        sc.GEN_AI_REQUEST_MAX_TOKENS: 500,
        sc.GEN_AI_REQUEST_SEED: 7,
        sc.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        sc.GEN_AI_REQUEST_FREQUENCY_PENALTY: 0.1,
        sc.GEN_AI_REQUEST_PRESENCE_PENALTY: 0.2,
        sc.GEN_AI_REQUEST_CHOICE_COUNT: 1,
        sc.GEN_AI_OUTPUT_TYPE: "json",
        sc.GEN_AI_REQUEST_REASONING_LEVEL: "low",
        sc.OPENAI_API_TYPE: "chat_completions",
        sc.OPENAI_REQUEST_SERVICE_TIER: "auto",
        sc.OPENAI_RESPONSE_SERVICE_TIER: "default",
        sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: "fp_promptpulse_fake",
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        sc.GEN_AI_RESPONSE_ID: result.id,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 400,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 50,
        sc.PROMPTPULSE_COST_USD: pytest.approx(expected_cost(GPT_4O_MINI, 1000, 400, 200)),
    }
    assert attrs(span)[sc.PROMPTPULSE_COST_USD] == pytest.approx(0.00024)


def test_fingerprint_ignores_variable_parts_and_falls_back_to_first_message(instrumented, otel, client) -> None:
    for n in (7, 9):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "system", "content": f"Agent {n}."}])
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi, I am Ann"}])
    a, b, c = (attrs(s)[sc.PROMPTPULSE_PROMPT_FINGERPRINT] for s in otel.spans())
    assert a == b == fp.fingerprint("Agent 7.")
    assert c == fp.fingerprint(fp.template_of(None, "Hi, I am Ann"))


async def test_async_chat(instrumented, otel, fake, aclient) -> None:
    fake.set_scenario(USAGE)
    result = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert result.usage.prompt_tokens == 1000
    a = attrs(otel.only_span())
    assert_usage(a, 1000, 200, cached=400, reasoning=50)
    assert a[sc.GEN_AI_RESPONSE_ID] == result.id


def test_embeddings_completions_and_responses(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE)
    client.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float", dimensions=16)
    client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this", max_tokens=300)
    resp = client.responses.create(
        model="gpt-4o", input="hi", instructions="You are bot 5", max_output_tokens=400, reasoning={"effort": "high"}
    )
    emb, comp, rsp = otel.spans()

    a = attrs(emb)
    assert emb.name == "embeddings text-embedding-3-small"
    assert a[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert a[sc.GEN_AI_REQUEST_ENCODING_FORMATS] == ("float",)
    assert a[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 16
    # The spec defines only input tokens for embeddings: no output count on the span, no output metric point.
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000 and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx(1000 * EMBEDDING_3_SMALL_INPUT / 1e6)
    points = otel.histogram(sc.METRIC_TOKEN_USAGE)
    points = [p for p in points if p.attributes[sc.GEN_AI_OPERATION_NAME] == "embeddings"]
    assert [(p.attributes[sc.GEN_AI_TOKEN_TYPE], p.sum, p.count) for p in points] == [("input", 1000, 1)]

    a = attrs(comp)
    assert a[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 300
    assert_usage(a, 1000, 200, cached=400, reasoning=50)
    assert a[sc.PROMPTPULSE_PROMPT_FINGERPRINT] == fp.fingerprint(fp.template_of(None, "Say this"))

    a = attrs(rsp)
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.OPENAI_API_TYPE] == "responses" and a[sc.GEN_AI_REQUEST_REASONING_LEVEL] == "high"
    assert sc.OPENAI_API_TYPE not in attrs(emb) and sc.OPENAI_API_TYPE not in attrs(comp)
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 400
    assert a[sc.GEN_AI_RESPONSE_ID] == resp.id
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.PROMPTPULSE_PROMPT_FINGERPRINT] == fp.fingerprint("You are bot 5")
    assert_usage(a, 1000, 200, cached=400, reasoning=50)
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx(expected_cost(GPT_4O, 1000, 400, 200))


class Answer(pydantic.BaseModel):
    answer: str


def test_parse_helpers_make_one_span(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE.with_(text='{"answer": "4"}'))
    parsed = client.chat.completions.parse(model="gpt-4o-mini", messages=MSGS, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(answer="4")
    rparsed = client.responses.parse(model="gpt-4o", input="2+2?", text_format=Answer)
    assert rparsed.output_parsed == Answer(answer="4")
    chat, rsp = otel.spans()
    for span in (chat, rsp):
        a = attrs(span)
        assert a[sc.GEN_AI_OUTPUT_TYPE] == "json"
        assert_usage(a, 1000, 200, cached=400, reasoning=50)


# --- streams ----------------------------------------------------------------------------------------------------


def _stream(client: openai.OpenAI, usage: bool = True, **kw: Any) -> Any:
    extra = {"stream_options": {"include_usage": True}} if usage else {}
    return client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True, **extra, **kw)


def test_stream_with_usage(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE)
    stream = _stream(client)
    assert isinstance(stream, openai.Stream)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == fake.scenario.text
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.GEN_AI_RESPONSE_ID].startswith("chatcmpl-")
    assert_usage(a, 1000, 200, cached=400, reasoning=50)
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx(expected_cost(GPT_4O_MINI, 1000, 400, 200))


def test_stream_without_usage_says_so_and_request_is_unchanged(instrumented, otel, fake, client) -> None:
    for _ in _stream(client, usage=False):
        pass
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_USAGE_MISSING] is True
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a and sc.PROMPTPULSE_COST_USD not in a
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a  # unknown, never 0
    assert otel.histogram(sc.METRIC_TOKEN_USAGE) == []  # no token point at all; the duration point stays
    assert len(otel.histogram(sc.METRIC_OPERATION_DURATION)) == 1
    assert "stream_options" not in fake.requests[-1].body


@pytest.mark.parametrize("how", ["break", "close", "context", "next_then_close"])
def test_stream_ends_early(instrumented, otel, client, how: str) -> None:
    if how == "break":
        for _ in _stream(client):
            break
        state = "interrupted"
    elif how == "close":
        _stream(client).close()
        state = "closed"
    elif how == "context":
        with _stream(client) as s:
            for _ in s:
                break
        state = "interrupted"  # the loop's break ends it first; the context exit is then a no-op
    else:
        s = _stream(client)
        next(s)
        s.close()
        state = "closed"
    span = otel.only_span()
    assert attrs(span)[sc.PROMPTPULSE_STREAM_STATE] == state
    assert attrs(span)[sc.PROMPTPULSE_USAGE_MISSING] is True


def test_stream_broken_out_of_then_resumed(instrumented, otel, fake, client) -> None:
    """Decided: a break ends the span at once (most apps that break are done, and a span must not wait for a stream
    the app may hold for long). Reading on afterwards works exactly as without PromptPulse, but what arrives later —
    the usage chunk included — is not added to the ended span: it stays interrupted, usage unknown."""
    fake.set_scenario(USAGE)
    stream = _stream(client)
    first = None
    for chunk in stream:
        first = chunk
        break
    (span,) = otel.spans()
    rest = list(stream)
    assert first.choices[0].delta.content is not None
    assert "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices) == fake.scenario.text
    assert rest[-1].usage.prompt_tokens == 1000  # the app still gets the usage chunk
    assert otel.spans() == [span]
    a = attrs(span)
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert a[sc.PROMPTPULSE_USAGE_MISSING] is True
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a and sc.PROMPTPULSE_COST_USD not in a
    assert [p.attributes[sc.GEN_AI_TOKEN_TYPE] for p in otel.histogram(sc.METRIC_TOKEN_USAGE)] == []


def test_stream_context_exit_without_iterating(instrumented, otel, client) -> None:
    with _stream(client):
        pass
    assert attrs(otel.only_span())[sc.PROMPTPULSE_STREAM_STATE] == "closed"


def test_abandoned_stream_ends_on_gc(instrumented, otel, client) -> None:
    s = _stream(client)
    next(s)
    assert otel.spans() == []
    del s
    gc.collect()
    assert attrs(otel.only_span())[sc.PROMPTPULSE_STREAM_STATE] == "abandoned"


def test_cut_stream_records_error_and_app_sees_sdk_error(instrumented, otel, fake, client) -> None:
    fake.inject(Fault.cut(after_chunks=2))
    with pytest.raises(openai.APIError) as info:
        for _ in _stream(client):
            pass
    span = otel.only_span()
    a = attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "error"
    assert a[sc.ERROR_TYPE].endswith(type(info.value).__name__)
    assert a[sc.PROMPTPULSE_ERROR_CATEGORY] in sc.ERROR_CATEGORIES
    assert sc.PROMPTPULSE_USAGE_MISSING not in a  # an error, not a silent gap
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)  # cut before the choice's finish_reason


def _choice_events(stream: Any, stop_after_finish_of: int | None = None) -> list[tuple[int, str | None]]:
    """(index, finish_reason) of every choice in the chunks read; with ``stop_after_finish_of``, break right after
    that choice's finish_reason arrives."""
    seen = []
    for chunk in stream:
        for c in chunk.choices:
            seen.append((c.index, c.finish_reason))
        if any(c.index == stop_after_finish_of and c.finish_reason for c in chunk.choices):
            break
    return seen


def test_stream_of_two_choices_exhausted(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE)
    seen = _choice_events(_stream(client, n=2))
    assert {i for i, _ in seen} == {0, 1}
    assert [(i, r) for i, r in seen if r] == [(0, "stop"), (1, "stop")]
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_REQUEST_CHOICE_COUNT] == 2
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop", "stop")
    assert_usage(a, 1000, 200, cached=400, reasoning=50)


def test_stream_of_two_choices_broken_out_of_after_the_first_finished(instrumented, otel, fake, client) -> None:
    """Issue 11 §2: the choice cut before its finish_reason reports "error"; the finished one keeps its own."""
    fake.set_scenario(USAGE)
    seen = _choice_events(_stream(client, n=2), stop_after_finish_of=0)
    assert seen[-1] == (0, "stop") and (1, None) in seen and (1, "stop") not in seen
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop", "error")
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a and sc.GEN_AI_USAGE_INPUT_TOKENS not in a  # unknown, never 0
    assert a[sc.PROMPTPULSE_USAGE_MISSING] is True
    assert otel.histogram(sc.METRIC_TOKEN_USAGE) == []


def test_stream_of_three_choices_closed_after_the_first_chunk(instrumented, otel, fake, client) -> None:
    """Closed when only choice 0 has been seen: the request's n still says three choices, none finished."""
    s = _stream(client, usage=False, n=3)
    assert [c.index for c in next(s).choices] == [0]
    s.close()
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "closed"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("error", "error", "error")
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a


def test_stream_of_two_choices_cut_by_an_error(instrumented, otel, fake, client) -> None:
    # n=2, 4 pieces: 2 role chunks, 8 content chunks, then choice 0's finish (event 11) and choice 1's (event 12)
    fake.set_scenario(USAGE.with_(stream_chunks=4))
    fake.inject(Fault.cut(after_chunks=11))
    seen: list[tuple[int, str | None]] = []
    with pytest.raises(openai.APIError):
        for chunk in _stream(client, n=2):
            seen += [(c.index, c.finish_reason) for c in chunk.choices]
    assert [(i, r) for i, r in seen if r] == [(0, "stop")] and len(seen) == 11
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "error"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop", "error")
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a


def test_stream_of_one_choice_broken_out_of_reports_error(instrumented, otel, fake, client) -> None:
    for _ in _stream(client):
        break
    assert attrs(otel.only_span())[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)


def test_tracer_and_meter_carry_the_semconv_schema_url(instrumented, otel, client) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    span = otel.only_span()
    assert span.instrumentation_scope.schema_url == sc.SCHEMA_URL == "https://opentelemetry.io/schemas/1.44.0"
    metrics_data = (otel.histogram(sc.METRIC_OPERATION_DURATION), otel.reader.get_metrics_data())[1]
    scopes = [s.scope for rm in metrics_data.resource_metrics for s in rm.scope_metrics]
    assert [s.schema_url for s in scopes if s.name == "promptpulse.instrumentation.openai"] == [sc.SCHEMA_URL]


def test_stream_helper_is_one_span(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE)
    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=MSGS, stream_options={"include_usage": True}
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.usage.prompt_tokens == 1000
    assert_usage(attrs(otel.only_span()), 1000, 200, cached=400, reasoning=50)

    otel.clear()
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MSGS) as stream:
        for _ in stream:
            break
        assert otel.spans() == []
    assert attrs(otel.only_span())[sc.PROMPTPULSE_STREAM_STATE] == "closed"


def test_responses_streaming(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE)
    events = list(client.responses.create(model="gpt-4o", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    with client.responses.stream(model="gpt-4o", input="hi") as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().usage.input_tokens == 1000
    for span in otel.spans():
        a = attrs(span)
        assert a[sc.PROMPTPULSE_STREAM_STATE] == "complete"
        assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
        assert_usage(a, 1000, 200, cached=400, reasoning=50)
    assert len(otel.spans()) == 2


async def test_async_stream(instrumented, otel, fake, aclient) -> None:
    fake.set_scenario(USAGE)
    stream = await aclient.chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.AsyncStream)
    async for _ in stream:
        pass
    async with aclient.chat.completions.stream(model="gpt-4o-mini", messages=MSGS) as s:
        async for _ in s:
            break
    first, second = otel.spans()
    assert_usage(attrs(first), 1000, 200, cached=400, reasoning=50)
    assert attrs(second)[sc.PROMPTPULSE_USAGE_MISSING] is True
    assert attrs(second)[sc.PROMPTPULSE_STREAM_STATE] == "closed"  # ended on leaving the helper's block


async def test_concurrent_calls_keep_their_parents_and_tags(instrumented, otel, fake, aclient) -> None:
    fake.set_scenario(Scenario(latency=Latency.fixed(0.05)))
    tracer = otel.tracer_provider.get_tracer("app")

    async def one(i: int) -> int:
        with tracer.start_as_current_span(f"parent {i}") as parent, promptpulse.prompt(f"p{i}", version=f"v{i}"):
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
            return parent.get_span_context().span_id

    parents = await asyncio.gather(*(one(i) for i in range(6)))
    chats = otel.spans("chat ")
    assert len(chats) == 6
    for span in chats:
        i = int(attrs(span)[sc.GEN_AI_PROMPT_NAME][1:])
        assert attrs(span)[sc.GEN_AI_PROMPT_VERSION] == f"v{i}"
        assert span.parent is not None and span.parent.span_id == parents[i]


# --- raw responses ----------------------------------------------------------------------------------------------


def test_with_raw_response(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
    assert isinstance(raw, openai._legacy_response.LegacyAPIResponse)
    assert raw.headers["x-request-id"]
    completion = raw.parse()
    assert completion.usage.prompt_tokens == 1000 and raw.parse() is completion
    a = attrs(otel.only_span())
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert_usage(a, 1000, 200, cached=400, reasoning=50)

    otel.clear()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    assert otel.spans() == []
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == fake.scenario.text
    assert_usage(attrs(otel.only_span()), 1000, 200, cached=400, reasoning=50)


def test_with_streaming_response(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE)
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MSGS) as resp:
        assert otel.spans() == []  # nothing read yet
        assert resp.parse().usage.completion_tokens == 200
    assert_usage(attrs(otel.only_span()), 1000, 200, cached=400, reasoning=50)

    otel.clear()
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MSGS) as resp:
        body = json.loads(b"".join(resp.iter_bytes()))  # the app reads the bytes itself
    assert body["usage"]["prompt_tokens"] == 1000
    span = otel.only_span()
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in attrs(span)  # the bytes were the app's: nothing invented
    assert attrs(span)[sc.PROMPTPULSE_USAGE_MISSING] is True

    otel.clear()
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
    ) as resp:
        for _ in resp.parse():
            pass
    assert_usage(attrs(otel.only_span()), 1000, 200, cached=400, reasoning=50)


async def test_async_with_streaming_and_raw_response(instrumented, otel, fake, aclient) -> None:
    fake.set_scenario(USAGE)
    async with aclient.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MSGS) as resp:
        assert (await resp.parse()).usage.prompt_tokens == 1000
    raw = await aclient.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
    assert raw.parse().usage.prompt_tokens == 1000
    assert len(otel.spans()) == 2
    for span in otel.spans():
        assert_usage(attrs(span), 1000, 200, cached=400, reasoning=50)


# --- errors and retries -----------------------------------------------------------------------------------------


def test_429_then_success_counts_retries(instrumented, otel, client) -> None:
    result = client.chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, extra_headers={"x-fake-fault": "429:0.01,429:0.01,ok"}
    )
    assert result.choices[0].message.content
    span = otel.only_span()
    assert span.status.status_code is StatusCode.UNSET
    assert attrs(span)[sc.PROMPTPULSE_RETRY_COUNT] == 2
    assert sc.ERROR_TYPE not in attrs(span)


def test_rate_limit_exhausted(instrumented, otel, client) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers={"x-fake-fault": "429:0.01"})
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_ERROR_CATEGORY] == "rate_limit"
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 429
    assert a[sc.PROMPTPULSE_RETRY_COUNT] == 2


def test_500_is_model_error_and_app_gets_sdk_exception(instrumented, otel, fake, client) -> None:
    fake.inject(Fault.http(500))
    with pytest.raises(openai.InternalServerError) as info:
        client.with_options(max_retries=0).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert type(info.value) is openai.InternalServerError
    span = otel.only_span()
    a = attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert a[sc.ERROR_TYPE] == "openai.InternalServerError"
    assert a[sc.PROMPTPULSE_ERROR_CATEGORY] == "model_error"
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 500
    assert sc.PROMPTPULSE_RETRY_COUNT not in a


def test_timeout(instrumented, otel, fake, client) -> None:
    fake.inject(Fault.timeout(5))
    with pytest.raises(openai.APITimeoutError):
        client.with_options(max_retries=0, timeout=0.3).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_ERROR_CATEGORY] == "timeout"
    assert a[sc.ERROR_TYPE] == "openai.APITimeoutError"


# --- the app is undisturbed ---------------------------------------------------------------------------------------


def _comparable(result: Any) -> Any:
    return result.model_dump(exclude={"id", "created"})


def test_results_identical_with_and_without_instrumentation(otel, fake, client) -> None:
    fake.set_scenario(USAGE)
    bare = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    bare_chunks = [c.model_dump(exclude={"id", "created"}) for c in _stream(client)]
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        wrapped = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        wrapped_chunks = [c.model_dump(exclude={"id", "created"}) for c in _stream(client)]
    finally:
        inst.uninstrument()
    assert type(wrapped) is type(bare)
    assert _comparable(wrapped) == _comparable(bare)
    assert wrapped_chunks == bare_chunks
    assert len(otel.spans()) == 2
    bodies = [r.body for r in fake.requests]
    assert bodies[0] == bodies[2] and bodies[1] == bodies[3]  # the requests went out unchanged too


class RaisingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise RuntimeError("exporter down")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class RaisingProcessor(SpanProcessor):
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("processor down")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor down")


def test_raising_exporter_and_processor_do_not_disturb_the_app(fake, client) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RaisingExporter()))
    provider.add_span_processor(RaisingProcessor())
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        result = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert result.choices[0].message.content == fake.scenario.text
        chunks = list(_stream(client))
        assert chunks[-1].usage is not None
        with pytest.raises(openai.InternalServerError):
            client.with_options(max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=MSGS, extra_headers={"x-fake-fault": "500"}
            )
    finally:
        inst.uninstrument()


def test_uninstrument_restores_originals_and_twice_does_not_double_wrap(otel, client) -> None:
    from openai._base_client import SyncAPIClient
    from openai.resources.chat.completions.completions import AsyncCompletions, Completions

    originals = (Completions.__dict__["create"], AsyncCompletions.__dict__["create"])
    sleep = SyncAPIClient.__dict__["_sleep_for_retry"]
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    inst.instrument(tracer_provider=otel.tracer_provider)  # ignored by BaseInstrumentor
    inst._instrument(tracer_provider=otel.tracer_provider)  # and by us
    try:
        wrapped = Completions.__dict__["create"]
        assert isinstance(wrapped, FunctionWrapper) and not isinstance(wrapped.__wrapped__, FunctionWrapper)
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert len(otel.spans()) == 1
    finally:
        inst.uninstrument()
    assert (Completions.__dict__["create"], AsyncCompletions.__dict__["create"]) == originals
    assert SyncAPIClient.__dict__["_sleep_for_retry"] is sleep
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert len(otel.spans()) == 1


# --- providers ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://my-res.openai.azure.com/openai", "azure.ai.openai"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.deepseek.com", "deepseek"),
        ("https://api.together.xyz/v1", "together_ai"),
        ("https://api.mistral.ai/v1", "mistral_ai"),
        ("http://localhost:11434/v1", "ollama"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.x.ai/v1", "x_ai"),
        ("http://vllm.internal:8000/v1", "openai"),
    ],
)
def test_provider_from_base_url(url: str, provider: str) -> None:
    client = SimpleNamespace(_base_url=httpx2.URL(url))
    assert _target(client)[0] == provider
    parsed = httpx2.URL(url)
    assert provider_for_host(parsed.host, parsed.port or 443) == provider


def test_azure_client(instrumented, otel, fake) -> None:
    client = openai.AzureOpenAI(azure_endpoint=fake.azure_endpoint, api_key="k", api_version="2024-10-21")
    client.chat.completions.create(model="my-gpt-4o-mini", messages=MSGS)
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1"


# --- metrics and content ----------------------------------------------------------------------------------------


def test_metrics_use_semconv_buckets(instrumented, otel, fake, client) -> None:
    fake.set_scenario(USAGE)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    for _ in _stream(client):
        pass
    (duration,) = otel.histogram(sc.METRIC_OPERATION_DURATION)
    assert tuple(duration.explicit_bounds) == sc.DURATION_BUCKETS and duration.count == 2
    assert duration.attributes[sc.GEN_AI_PROVIDER_NAME] == "openai"
    (ttfc,) = otel.histogram(sc.METRIC_TIME_TO_FIRST_CHUNK)
    assert tuple(ttfc.explicit_bounds) == sc.DURATION_BUCKETS and ttfc.count == 1
    tokens = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p for p in otel.histogram(sc.METRIC_TOKEN_USAGE)}
    assert tuple(tokens["input"].explicit_bounds) == sc.TOKEN_BUCKETS
    assert tokens["input"].sum == 2000 and tokens["output"].sum == 400


def test_content_off_by_default(instrumented, otel, client) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    a = attrs(otel.only_span())
    assert sc.GEN_AI_INPUT_MESSAGES not in a and sc.GEN_AI_OUTPUT_MESSAGES not in a


def test_content_on_and_truncated(otel, fake, client, monkeypatch) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    monkeypatch.setenv(CONTENT_MAX_CHARS_ENV, "160")
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        for _ in _stream(client):
            pass
    finally:
        inst.uninstrument()
    for span in otel.spans():
        a = attrs(span)
        # Cut inside the structure: still JSON, roles and part types kept, the texts shortened with a mark.
        captured = a[sc.GEN_AI_INPUT_MESSAGES]
        assert len(captured) <= 160
        messages = json.loads(captured)
        assert [m["role"] for m in messages] == [m["role"] for m in MSGS]
        assert messages[0]["parts"][0]["type"] == "text"
        assert messages[0]["parts"][0]["content"].endswith("…[truncated]")
        assert MSGS[0]["content"].startswith(messages[0]["parts"][0]["content"].removesuffix("…[truncated]"))
        assert json.loads(a[sc.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"].startswith("Hello")


# --- opentelemetry-instrument -------------------------------------------------------------------------------------


def _opentelemetry_instrument(fake: Any, script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` under ``opentelemetry-instrument`` with spans to the console exporter; it must exit 0."""
    env = {
        **os.environ,
        "OPENAI_BASE_URL": fake.openai_base_url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        # our own instrumentor alone (not OpenLLMetry's "openai", a dev dependency): names must not collide with ours
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "promptpulse_anthropic,openai",
        **env,
    }
    cli = Path(sys.executable).parent / "opentelemetry-instrument"
    out = subprocess.run(
        [str(cli), sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    return out


def test_runs_under_opentelemetry_instrument(fake, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import openai
            client = openai.OpenAI(api_key="sk-fake")
            r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            print("APP-RESULT", r.usage.total_tokens, flush=True)
            """
        )
    )
    out = _opentelemetry_instrument(fake, script, OTEL_SERVICE_NAME="pp-test")
    assert "APP-RESULT" in out.stdout
    start = out.stdout.index("{")
    span = json.loads(out.stdout[start : out.stdout.rindex("}") + 1])
    assert span["name"] == "chat gpt-4o-mini"
    a = span["attributes"]
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 20
    assert sc.PROMPTPULSE_COST_USD in a
    assert span["resource"]["attributes"]["service.name"] == "pp-test"


def test_stream_still_open_at_exit_is_ended_before_the_providers_shut_down(fake, tmp_path: Path) -> None:
    """A stream the app still holds when the interpreter exits (a module global, half read) is ended as abandoned by
    the exit hook, and its span reaches the exporter; the stream read to its end is not ended twice."""
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import openai
            client = openai.OpenAI(api_key="sk-fake")
            msgs = [{"role": "user", "content": "hi"}]
            held = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True)
            next(held)
            for _ in client.chat.completions.create(model="gpt-4o", messages=msgs, stream=True):
                pass
            print("APP-DONE", flush=True)
            """
        )
    )
    out = _opentelemetry_instrument(fake, script)
    assert "APP-DONE" in out.stdout
    body = out.stdout[out.stdout.index("APP-DONE") :]
    decoder, spans, i = json.JSONDecoder(), [], body.find("{")
    while i != -1:
        span, end = decoder.raw_decode(body, i)
        spans.append(span)
        i = body.find("{", end)
    states = {sp["attributes"][sc.GEN_AI_REQUEST_MODEL]: sp["attributes"][sc.PROMPTPULSE_STREAM_STATE] for sp in spans}
    assert states == {"gpt-4o": "complete", "gpt-4o-mini": "abandoned"}
    assert len(spans) == 2


def test_streamed_tool_calls_are_captured(otel) -> None:
    """Tool-call deltas (the SDK's own chunk type) become one tool_call part with the arguments joined."""
    from openai.types.chat import ChatCompletionChunk

    from promptpulse.instrumentation.kit.stainless import ChoicesStreamHandler
    from promptpulse.instrumentation.spans import Telemetry

    def chunk(delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    call_delta = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "find", "arguments": '{"n"'}}
    chunks = [
        chunk({"role": "assistant", "tool_calls": [call_delta]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 7}"}}]}),
        chunk({}, "tool_calls"),
    ]
    telemetry = Telemetry("t", "0", tracer_provider=otel.tracer_provider, capture_content=True)
    call = telemetry.start("chat", "openai", "gpt-4o-mini", stream=True)
    handler = ChoicesStreamHandler(True, chat=True)
    for c in chunks:
        handler.on_chunk(call, c)
    handler.on_finish(call)
    call.end()
    assert json.loads(attrs(otel.only_span())[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "find", "arguments": '{"n": 7}'}],
            "finish_reason": "tool_calls",
        }
    ]
