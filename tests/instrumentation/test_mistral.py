"""MistralInstrumentor with the real mistralai SDK over loopback HTTP against the fake provider's Mistral wire."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from mistralai.client import Mistral
from mistralai.client import errors as mistral_errors
from opentelemetry.trace import SpanKind, StatusCode

from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.mistral import MistralInstrumentor
from promptpulse.testing import FakeProvider, Scenario

MODEL = "mistral-small-latest"  # → mistral-small
# prices/prices.csv: mistral_ai,mistral-small,0.10,0.30 per MTok (no cache price: cached input bills as input)
PRICE_INPUT, PRICE_OUTPUT = Decimal("0.10"), Decimal("0.30")
INPUT, CACHED, OUTPUT = 40, 8, 12
SCENARIO = Scenario(input_tokens=INPUT, cached_tokens=CACHED, output_tokens=OUTPUT)
SYSTEM = "You are a support agent for ACME."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hello to order 123"}]


def expected_cost() -> float:
    return float((INPUT * PRICE_INPUT + OUTPUT * PRICE_OUTPUT) / Decimal(1_000_000))


USAGE = {"input_tokens": INPUT, "output_tokens": OUTPUT, "cache_read": CACHED, "cost": expected_cost()}


@pytest.fixture
def instrumented(otel: Any) -> Any:
    yield from otel.instrument(MistralInstrumentor())


@pytest.fixture
def client(fake: FakeProvider) -> Mistral:
    return Mistral(api_key="fake-key", server_url=fake.mistral_server_url)


def test_complete_exact_attributes(instrumented: Any, client: Mistral, fake: FakeProvider, otel: Any) -> None:
    response = client.chat.complete(
        model=MODEL, messages=MESSAGES, max_tokens=64, temperature=0.5, top_p=0.9, random_seed=7, stop=["END"]
    )
    span = otel.only_span()
    assert span.name == f"chat {MODEL}"
    assert span.kind == SpanKind.CLIENT
    assert dict(span.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "mistral_ai",
        sc.GEN_AI_REQUEST_MODEL: MODEL,
        sc.GEN_AI_REQUEST_MAX_TOKENS: 64,
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.5,
        sc.GEN_AI_REQUEST_TOP_P: 0.9,
        sc.GEN_AI_REQUEST_SEED: 7,
        sc.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        sc.SERVER_ADDRESS: "127.0.0.1",
        sc.SERVER_PORT: fake.port,
        sc.PROMPTPULSE_PROMPT_FINGERPRINT: fp.fingerprint(SYSTEM),
        sc.GEN_AI_RESPONSE_MODEL: MODEL,
        sc.GEN_AI_RESPONSE_ID: response.id,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: INPUT,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: OUTPUT,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: CACHED,
        sc.PROMPTPULSE_COST_USD: pytest.approx(expected_cost(), rel=1e-12),
    }
    assert fake.requests[0].path == "/mistral/v1/chat/completions"


def test_stream_exhausted(instrumented: Any, client: Mistral, otel: Any) -> None:
    with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
        text = "".join(event.data.choices[0].delta.content or "" for event in stream)
    assert text == SCENARIO.text
    attrs = otel.only_span().attributes
    assert attrs[sc.GEN_AI_REQUEST_STREAM] is True
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    otel.assert_usage(attrs, **USAGE)


def test_stream_break(instrumented: Any, client: Mistral, otel: Any) -> None:
    stream = client.chat.stream(model=MODEL, messages=MESSAGES)
    for _event in stream:
        break
    attrs = otel.only_span().attributes
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in attrs
    assert attrs[sc.PROMPTPULSE_USAGE_MISSING] is True
    stream.close()


async def test_async_complete_and_stream(instrumented: Any, client: Mistral, otel: Any) -> None:
    await client.chat.complete_async(model=MODEL, messages=MESSAGES)
    stream = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
    async for _event in stream:
        pass
    plain, streamed = otel.spans()
    otel.assert_usage(plain.attributes, **USAGE)
    assert streamed.attributes[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    otel.assert_usage(streamed.attributes, **USAGE)


def test_error(instrumented: Any, client: Mistral, fake: FakeProvider, otel: Any) -> None:
    fake.fail_next(1, 429)
    with pytest.raises(mistral_errors.SDKError):
        client.chat.complete(model=MODEL, messages=MESSAGES)
    span = otel.only_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.PROMPTPULSE_ERROR_CATEGORY] == "rate_limit"
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 429


def test_embeddings(instrumented: Any, client: Mistral, otel: Any) -> None:
    client.embeddings.create(model="mistral-embed", inputs=["first text", "second"])
    attrs = otel.only_span().attributes
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == INPUT
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs  # the spec defines only input for embeddings
    assert attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == SCENARIO.embedding_dims
    assert attrs[sc.PROMPTPULSE_COST_USD] == pytest.approx(INPUT * 0.10 / 1e6, rel=1e-12)


def test_sdk_tracing_stands_down(instrumented: Any, client: Mistral, otel: Any) -> None:
    """With the SDK's own tracing on (its hook given our tracer provider), there is still one span per call."""
    from mistralai.client._hooks.tracing import TracingHook

    sdk_hooks = client.sdk_configuration.__dict__["_hooks"].before_request_hooks
    (tracing,) = [h for h in sdk_hooks if isinstance(h, TracingHook)]
    tracing.tracer_provider = otel.tracer_provider  # without the stand-down this gives a second span
    client.chat.complete(model=MODEL, messages=MESSAGES)
    span = otel.only_span()
    assert span.instrumentation_scope.name == "promptpulse.instrumentation.mistral"


def test_uninstrument(client: Mistral, otel: Any) -> None:
    instrumentor = MistralInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    instrumentor.uninstrument()
    client.chat.complete(model=MODEL, messages=MESSAGES)
    assert otel.spans() == []


def test_content_follows_the_genai_schemas(client: Any, otel: Any) -> None:
    import json

    instrumentor = MistralInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, capture_content=True)
    try:
        client.chat.complete(model=MODEL, messages=MESSAGES)
        streamed = "".join(
            e.data.choices[0].delta.content or "" for e in client.chat.stream(model=MODEL, messages=MESSAGES)
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
