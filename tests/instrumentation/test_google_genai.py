"""GoogleGenAIInstrumentor with the real google-genai SDK over loopback HTTP against the fake provider's Gemini wire."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2.credentials import Credentials
from opentelemetry.trace import SpanKind, StatusCode

from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.google_genai import GoogleGenAIInstrumentor
from promptpulse.testing import FakeProvider, Scenario

MODEL = "gemini-2.5-flash"
# prices/prices.csv: gcp.gemini,gemini-2.5-flash,0.30,2.50,0.03 (input, output, cache read per MTok); thinking
# tokens are billed as output.
PRICE_INPUT, PRICE_OUTPUT, PRICE_CACHE_READ = Decimal("0.30"), Decimal("2.50"), Decimal("0.03")
# Contract-1 usage: 40 input tokens of which 10 cached; 12 output tokens of which 5 thinking.
INPUT, CACHED, OUTPUT, THOUGHTS = 40, 10, 12, 5
SCENARIO = Scenario(input_tokens=INPUT, cached_tokens=CACHED, output_tokens=OUTPUT, reasoning_tokens=THOUGHTS)
SYSTEM = "You are a support agent for ACME."


def expected_cost() -> float:
    total = (INPUT - CACHED) * PRICE_INPUT + CACHED * PRICE_CACHE_READ + OUTPUT * PRICE_OUTPUT
    return float(total / Decimal(1_000_000))


# output = candidates 7 + thoughts 5
USAGE = {
    "input_tokens": INPUT,
    "output_tokens": OUTPUT,
    "cache_read": CACHED,
    "reasoning": THOUGHTS,
    "cost": expected_cost(),
}


@pytest.fixture
def instrumented(otel: Any) -> Any:
    yield from otel.instrument(GoogleGenAIInstrumentor())


@pytest.fixture
def client(fake: FakeProvider) -> genai.Client:
    return genai.Client(api_key="fake-key", http_options=types.HttpOptions(base_url=fake.gemini_base_url))


def test_generate_content_exact_attributes(
    instrumented: Any, client: genai.Client, fake: FakeProvider, otel: Any
) -> None:
    config = types.GenerateContentConfig(
        system_instruction=SYSTEM, max_output_tokens=64, temperature=0.5, top_p=0.9, top_k=40, stop_sequences=["END"]
    )
    response = client.models.generate_content(model=MODEL, contents="Say hello to order 123", config=config)
    span = otel.only_span()
    assert span.name == f"generate_content {MODEL}"
    assert span.kind == SpanKind.CLIENT
    assert dict(span.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "generate_content",
        sc.GEN_AI_PROVIDER_NAME: "gcp.gemini",
        sc.GEN_AI_REQUEST_MODEL: MODEL,
        sc.GEN_AI_REQUEST_MAX_TOKENS: 64,
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.5,
        sc.GEN_AI_REQUEST_TOP_P: 0.9,
        sc.GEN_AI_REQUEST_TOP_K: 40.0,
        sc.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        sc.SERVER_ADDRESS: "127.0.0.1",
        sc.SERVER_PORT: fake.port,
        sc.PROMPTPULSE_PROMPT_FINGERPRINT: fp.fingerprint(SYSTEM),
        sc.GEN_AI_RESPONSE_MODEL: MODEL,
        sc.GEN_AI_RESPONSE_ID: response.response_id,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: INPUT,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: OUTPUT,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: CACHED,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: THOUGHTS,
        sc.PROMPTPULSE_COST_USD: pytest.approx(expected_cost(), rel=1e-12),
    }
    # The fake sent Gemini's wire shape: candidates exclude thoughts.
    assert response.usage_metadata.candidates_token_count == OUTPUT - THOUGHTS
    (req,) = fake.requests
    assert req.path == f"/v1/models/{MODEL}:generateContent"


def test_stream_exhausted(instrumented: Any, client: genai.Client, otel: Any) -> None:
    text = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert text == SCENARIO.text
    span = otel.only_span()
    attrs = span.attributes
    assert attrs[sc.GEN_AI_REQUEST_STREAM] is True
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    otel.assert_usage(attrs, **USAGE)  # the last chunk's running total, not a sum over chunks


def test_stream_break_records_input_only(instrumented: Any, client: genai.Client, otel: Any) -> None:
    for _chunk in client.models.generate_content_stream(model=MODEL, contents="Hi"):
        break
    attrs = otel.only_span().attributes
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert attrs[sc.PROMPTPULSE_USAGE_INPUT_TOKENS_SEEN] == INPUT
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in attrs and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs
    assert sc.PROMPTPULSE_COST_USD not in attrs
    assert attrs[sc.PROMPTPULSE_USAGE_MISSING] is True


async def test_async_generate_and_stream(instrumented: Any, client: genai.Client, otel: Any) -> None:
    await client.aio.models.generate_content(model=MODEL, contents="Hi")
    stream = await client.aio.models.generate_content_stream(model=MODEL, contents="Hi")
    async for _chunk in stream:
        pass
    plain, streamed = otel.spans()
    otel.assert_usage(plain.attributes, **USAGE)
    assert streamed.attributes[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    otel.assert_usage(streamed.attributes, **USAGE)


def test_rate_limit_error(instrumented: Any, client: genai.Client, fake: FakeProvider, otel: Any) -> None:
    fake.fail_next(1, 429)
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.generate_content(model=MODEL, contents="Hi")
    assert raised.value.code == 429
    span = otel.only_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "google.genai.errors.ClientError"
    assert span.attributes[sc.PROMPTPULSE_ERROR_CATEGORY] == "rate_limit"
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 429


def test_stream_error_on_first_iteration(
    instrumented: Any, client: genai.Client, fake: FakeProvider, otel: Any
) -> None:
    fake.fail_next(1, 500)
    with pytest.raises(genai_errors.ServerError):
        for _chunk in client.models.generate_content_stream(model=MODEL, contents="Hi"):
            pass
    attrs = otel.only_span().attributes
    assert attrs[sc.PROMPTPULSE_STREAM_STATE] == "error"
    assert attrs[sc.PROMPTPULSE_ERROR_CATEGORY] == "model_error"


def test_embed_content(instrumented: Any, client: genai.Client, otel: Any) -> None:
    client.models.embed_content(model="gemini-embedding-001", contents=["first text", "second"])
    attrs = otel.only_span().attributes
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == INPUT
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs  # the spec defines only input for embeddings
    assert attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == SCENARIO.embedding_dims
    # gcp.gemini,gemini-embedding-001,0.15 per MTok; the cache count of the chat scenario does not apply.
    assert attrs[sc.PROMPTPULSE_COST_USD] == pytest.approx(INPUT * 0.15 / 1e6, rel=1e-12)


def test_vertex_ai_mode(instrumented: Any, fake: FakeProvider, otel: Any) -> None:
    client = genai.Client(
        vertexai=True,
        project="proj",
        location="us-central1",
        credentials=Credentials(token="fake-token"),
        http_options=types.HttpOptions(base_url=fake.gemini_base_url),
    )
    client.models.generate_content(model=MODEL, contents="Hi")
    client.models.embed_content(model="text-embedding-005", contents=["a", "bb"])
    chat, embed = otel.spans()
    assert chat.attributes[sc.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    otel.assert_usage(chat.attributes, **USAGE)  # priced by model name
    assert embed.attributes[sc.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert embed.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 2  # predict statistics: 1 + 1 fake tokens
    assert fake.requests[0].path.startswith("/v1beta1/projects/proj/locations/us-central1/publishers/google/models/")


def test_uninstrument(client: genai.Client, otel: Any) -> None:
    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    instrumentor.uninstrument()
    client.models.generate_content(model=MODEL, contents="Hi")
    assert otel.spans() == []


def test_content_follows_the_genai_schemas(fake: FakeProvider, otel: Any) -> None:
    import json

    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, capture_content=True)
    client = genai.Client(api_key="fake-key", http_options=types.HttpOptions(base_url=fake.gemini_base_url))
    contents = [
        types.Content(role="user", parts=[types.Part(text="Where is order 7?")]),
        types.Content(
            role="model", parts=[types.Part(function_call=types.FunctionCall(id="c1", name="find", args={"n": 7}))]
        ),
        types.Content(
            role="user",
            parts=[types.Part(function_response=types.FunctionResponse(id="c1", name="find", response={"s": "ok"}))],
        ),
    ]
    config = types.GenerateContentConfig(system_instruction="Be brief.")
    try:
        response = client.models.generate_content(model=MODEL, contents=contents, config=config)
        streamed = "".join(c.text or "" for c in client.models.generate_content_stream(model=MODEL, contents="Hi"))
    finally:
        instrumentor.uninstrument()
    plain, stream = otel.spans()
    assert json.loads(plain.attributes[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(plain.attributes[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Where is order 7?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "find", "arguments": {"n": 7}}]},
        {"role": "user", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"s": "ok"}}]},
    ]
    (answer,) = json.loads(plain.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    reason = plain.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS][0]
    assert answer["parts"] == [{"type": "text", "content": response.text}]
    assert (answer["role"], answer["finish_reason"]) == ("assistant", reason)
    assert json.loads(stream.attributes[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}
    ]
    (answer,) = json.loads(stream.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    assert answer["parts"] == [{"type": "text", "content": streamed}]
