"""GroqInstrumentor with the real groq SDK over loopback HTTP against the fake provider's Groq wire."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import groq
import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from wrapt import FunctionWrapper

from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.groq import GroqInstrumentor
from promptpulse.testing import FakeProvider, Scenario

MSGS = [{"role": "system", "content": "You are a terse assistant."}, {"role": "user", "content": "Capital of France?"}]
# Per million tokens, copied by hand from instrumentation/prices/prices.csv.
LLAMA_70B = {"input": 0.59, "output": 0.79}
USAGE = Scenario(input_tokens=1200, output_tokens=300)
COST_70B = (1200 * 0.59 + 300 * 0.79) / 1_000_000  # 0.0009450


@pytest.fixture
def instrumented(otel: Any) -> Iterator[GroqInstrumentor]:
    yield from otel.instrument(GroqInstrumentor())


@pytest.fixture
def client(fake_provider: FakeProvider) -> Iterator[groq.Groq]:
    c = groq.Groq(base_url=fake_provider.groq_base_url, api_key="gsk-fake", max_retries=1)
    yield c
    c.close()


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_chat_span_tokens_and_cost(instrumented, otel, fake_provider, client) -> None:
    fake_provider.set_scenario(USAGE)
    result = client.chat.completions.create(
        model="llama-3.3-70b-versatile", messages=MSGS, temperature=0.2, max_completion_tokens=400, stop="END"
    )
    span = otel.only_span()
    assert span.name == "chat llama-3.3-70b-versatile"
    assert span.kind is SpanKind.CLIENT
    assert attrs(span) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "groq",
        sc.GEN_AI_REQUEST_MODEL: "llama-3.3-70b-versatile",
        sc.SERVER_ADDRESS: "127.0.0.1",
        sc.SERVER_PORT: fake_provider.port,
        sc.PROMPTPULSE_PROMPT_FINGERPRINT: fp.fingerprint("You are a terse assistant."),
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        sc.GEN_AI_REQUEST_MAX_TOKENS: 400,
        sc.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        sc.OPENAI_API_TYPE: "chat_completions",  # Groq serves the OpenAI Chat Completions API
        sc.OPENAI_RESPONSE_SERVICE_TIER: "default",
        sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: "fp_promptpulse_fake",
        sc.GEN_AI_RESPONSE_MODEL: "llama-3.3-70b-versatile",
        sc.GEN_AI_RESPONSE_ID: result.id,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1200,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
        sc.PROMPTPULSE_COST_USD: pytest.approx(COST_70B),
    }
    assert attrs(span)[sc.PROMPTPULSE_COST_USD] == pytest.approx(0.000945)


def test_stream_usage_from_x_groq_without_stream_options(instrumented, otel, fake_provider, client) -> None:
    fake_provider.set_scenario(Scenario(input_tokens=50, output_tokens=20))
    stream = client.chat.completions.create(model="llama-3.1-8b-instant", messages=MSGS, stream=True)
    assert otel.spans() == []  # open until the stream ends
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("Hello")
    span = otel.only_span()
    a = attrs(span)
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 50 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 20
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx((50 * 0.05 + 20 * 0.08) / 1_000_000)
    assert a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert sc.PROMPTPULSE_USAGE_MISSING not in a


async def test_async_chat_and_stream(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE)
    async with groq.AsyncGroq(base_url=fake_provider.groq_base_url, api_key="gsk-fake") as aclient:
        await aclient.chat.completions.create(model="llama-3.3-70b-versatile", messages=MSGS)
        stream = await aclient.chat.completions.create(model="llama-3.3-70b-versatile", messages=MSGS, stream=True)
        async for _ in stream:
            pass
    spans = otel.spans()
    assert len(spans) == 2
    for span in spans:
        assert attrs(span)[sc.GEN_AI_PROVIDER_NAME] == "groq"
        assert attrs(span)[sc.PROMPTPULSE_COST_USD] == pytest.approx(COST_70B)


def test_rate_limit_error_after_retry(instrumented, otel, fake_provider, client) -> None:
    fake_provider.fail_next(2, 429, retry_after=0.01)
    with pytest.raises(groq.RateLimitError):
        client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MSGS)
    span = otel.only_span()
    a = attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert a[sc.ERROR_TYPE] == "groq.RateLimitError"
    assert a[sc.PROMPTPULSE_ERROR_CATEGORY] == "rate_limit"
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 429
    assert a[sc.PROMPTPULSE_RETRY_COUNT] == 1
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a
    assert len(fake_provider.requests) == 2


def test_embeddings(instrumented, otel, fake_provider, client) -> None:
    fake_provider.set_scenario(Scenario(input_tokens=9))
    client.embeddings.create(model="nomic-embed-text-v1_5", input="hello")
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "groq"
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 9


def test_with_raw_response_is_read_when_parsed(instrumented, otel, fake_provider, client) -> None:
    fake_provider.set_scenario(USAGE)
    raw = client.chat.completions.with_raw_response.create(model="llama-3.3-70b-versatile", messages=MSGS)
    assert isinstance(raw.http_response, httpx.Response)
    raw.parse()
    a = attrs(otel.only_span())
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200


def test_uninstrument_restores(otel, fake_provider, client) -> None:
    inst = GroqInstrumentor()
    inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    completions = groq.resources.chat.completions.Completions
    assert isinstance(completions.__dict__["create"], FunctionWrapper)
    inst.uninstrument()
    assert not isinstance(completions.__dict__["create"], FunctionWrapper)
    client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MSGS)
    assert otel.spans() == []
