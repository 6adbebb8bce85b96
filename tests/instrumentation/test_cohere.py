"""CohereInstrumentor with the real cohere SDK (ClientV2) over loopback HTTP against the fake provider's Cohere wire."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import cohere
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.cohere import CohereInstrumentor
from promptpulse.testing import FakeProvider, Scenario

MODEL = "command-a-03-2025"  # → command-a
# prices/prices.csv: cohere,command-a,2.50,10.00 per MTok
PRICE_INPUT, PRICE_OUTPUT = Decimal("2.50"), Decimal("10.00")
INPUT, OUTPUT = 40, 12
SCENARIO = Scenario(input_tokens=INPUT, output_tokens=OUTPUT)
SYSTEM = "You are a support agent for ACME."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hello to order 123"}]


def expected_cost() -> float:
    return float((INPUT * PRICE_INPUT + OUTPUT * PRICE_OUTPUT) / Decimal(1_000_000))


USAGE = {"input_tokens": INPUT, "output_tokens": OUTPUT, "cost": expected_cost()}


@pytest.fixture
def instrumented(otel: Any) -> Any:
    yield from otel.instrument(CohereInstrumentor())


@pytest.fixture
def client(fake: FakeProvider) -> cohere.ClientV2:
    return cohere.ClientV2(api_key="fake-key", base_url=fake.cohere_base_url, max_retries=0)


@pytest.fixture
def aclient(fake: FakeProvider) -> cohere.AsyncClientV2:
    return cohere.AsyncClientV2(api_key="fake-key", base_url=fake.cohere_base_url, max_retries=0)


def test_chat_exact_attributes(instrumented: Any, client: cohere.ClientV2, fake: FakeProvider, otel: Any) -> None:
    response = client.chat(
        model=MODEL, messages=MESSAGES, max_tokens=64, temperature=0.5, p=0.9, k=40, seed=7, stop_sequences=["END"]
    )
    span = otel.only_span()
    assert span.name == f"chat {MODEL}"
    assert span.kind == SpanKind.CLIENT
    assert dict(span.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "cohere",
        sc.GEN_AI_REQUEST_MODEL: MODEL,
        sc.GEN_AI_REQUEST_MAX_TOKENS: 64,
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.5,
        sc.GEN_AI_REQUEST_TOP_P: 0.9,
        sc.GEN_AI_REQUEST_TOP_K: 40.0,
        sc.GEN_AI_REQUEST_SEED: 7,
        sc.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        sc.SERVER_ADDRESS: "127.0.0.1",
        sc.SERVER_PORT: fake.port,
        sc.PROMPTPULSE_PROMPT_FINGERPRINT: fp.fingerprint(SYSTEM),
        sc.GEN_AI_RESPONSE_ID: response.id,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("COMPLETE",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: INPUT,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: OUTPUT,
        sc.PROMPTPULSE_COST_USD: pytest.approx(expected_cost(), rel=1e-12),
    }
    assert fake.requests[0].path == "/v2/chat"


def test_chat_stream_exhausted(instrumented: Any, client: cohere.ClientV2, otel: Any) -> None:
    text = "".join(
        e.delta.message.content.text
        for e in client.chat_stream(model=MODEL, messages=MESSAGES)
        if e.type == "content-delta"
    )
    assert text == SCENARIO.text
    attrs = otel.only_span().attributes
    assert attrs[sc.GEN_AI_REQUEST_STREAM] is True
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("COMPLETE",)
    assert attrs[sc.GEN_AI_RESPONSE_ID].startswith("co-")
    otel.assert_usage(attrs, **USAGE)


def test_chat_stream_break(instrumented: Any, client: cohere.ClientV2, otel: Any) -> None:
    for _event in client.chat_stream(model=MODEL, messages=MESSAGES):
        break
    attrs = otel.only_span().attributes
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs
    assert attrs[sc.PROMPTPULSE_USAGE_MISSING] is True


async def test_async_chat_and_stream(instrumented: Any, aclient: cohere.AsyncClientV2, otel: Any) -> None:
    await aclient.chat(model=MODEL, messages=MESSAGES)
    async for _event in aclient.chat_stream(model=MODEL, messages=MESSAGES):
        pass
    plain, streamed = otel.spans()
    otel.assert_usage(plain.attributes, **USAGE)
    assert streamed.attributes[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    otel.assert_usage(streamed.attributes, **USAGE)


def test_rate_limit_error(instrumented: Any, client: cohere.ClientV2, fake: FakeProvider, otel: Any) -> None:
    fake.fail_next(1, 429)
    with pytest.raises(cohere.TooManyRequestsError):
        client.chat(model=MODEL, messages=MESSAGES)
    span = otel.only_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.PROMPTPULSE_ERROR_CATEGORY] == "rate_limit"
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 429


def test_stream_error(instrumented: Any, client: cohere.ClientV2, fake: FakeProvider, otel: Any) -> None:
    fake.fail_next(1, 500)
    with pytest.raises(cohere.core.api_error.ApiError):
        for _event in client.chat_stream(model=MODEL, messages=MESSAGES):
            pass
    attrs = otel.only_span().attributes
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "error"
    assert attrs[sc.PROMPTPULSE_ERROR_CATEGORY] == "model_error"


def test_embed(instrumented: Any, client: cohere.ClientV2, otel: Any) -> None:
    client.embed(
        model="embed-v4.0", texts=["first text", "second"], input_type="search_document", embedding_types=["float"]
    )
    attrs = otel.only_span().attributes
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs[sc.GEN_AI_REQUEST_ENCODING_FORMATS] == ("float",)
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == INPUT
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs  # the spec defines only input for embeddings
    assert attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == SCENARIO.embedding_dims
    assert attrs[sc.PROMPTPULSE_COST_USD] == pytest.approx(INPUT * 0.12 / 1e6, rel=1e-12)


def test_uninstrument(client: cohere.ClientV2, otel: Any) -> None:
    instrumentor = CohereInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    instrumentor.uninstrument()
    client.chat(model=MODEL, messages=MESSAGES)
    assert otel.spans() == []


def test_content_follows_the_genai_schemas(fake: FakeProvider, otel: Any) -> None:
    import json

    instrumentor = CohereInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, capture_content=True)
    try:  # the client is made after instrument(): ClientV2 binds its v2 methods when it is built
        client = cohere.ClientV2(api_key="fake-key", base_url=fake.cohere_base_url, max_retries=0)
        client.chat(model=MODEL, messages=MESSAGES)
        streamed = "".join(
            e.delta.message.content.text
            for e in client.chat_stream(model=MODEL, messages=MESSAGES)
            if e.type == "content-delta"
        )
    finally:
        instrumentor.uninstrument()
    plain, streaming = otel.spans()
    attrs = plain.attributes
    assert json.loads(attrs[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
        {"role": "user", "parts": [{"type": "text", "content": "Say hello to order 123"}]},
    ]
    (answer,) = json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES])
    assert answer["role"] == "assistant"
    assert answer["finish_reason"] == attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS][0]
    assert [p["type"] for p in answer["parts"]] == ["text"] and answer["parts"][0]["content"].startswith("Hello")
    (answer,) = json.loads(streaming.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    assert answer["parts"] == [{"type": "text", "content": streamed}]
    assert answer["finish_reason"] == streaming.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS][0]
