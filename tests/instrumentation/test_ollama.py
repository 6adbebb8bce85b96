"""OllamaInstrumentor with the real ollama SDK over loopback HTTP against the fake provider's Ollama wire."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ollama
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.ollama import OllamaInstrumentor
from promptpulse.testing import FakeProvider, Scenario

MSGS = [{"role": "system", "content": "You summarise tickets."}, {"role": "user", "content": "Ticket 42: printer"}]
USAGE = Scenario(input_tokens=321, output_tokens=45)


@pytest.fixture
def instrumented(otel: Any) -> Iterator[OllamaInstrumentor]:
    yield from otel.instrument(OllamaInstrumentor())


@pytest.fixture
def client(fake_provider: FakeProvider) -> Iterator[ollama.Client]:
    c = ollama.Client(host=fake_provider.ollama_host)
    yield c
    c.close()


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_chat_span_tokens_and_zero_cost(instrumented, otel, fake_provider, client) -> None:
    fake_provider.set_scenario(USAGE)
    client.chat(model="llama3.2", messages=MSGS, options={"temperature": 0.1, "num_predict": 100, "top_k": 40})
    span = otel.only_span()
    assert span.name == "chat llama3.2"
    assert span.kind is SpanKind.CLIENT
    assert attrs(span) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "ollama",
        sc.GEN_AI_REQUEST_MODEL: "llama3.2",
        sc.SERVER_ADDRESS: "127.0.0.1",
        sc.SERVER_PORT: fake_provider.port,
        sc.PROMPTPULSE_PROMPT_FINGERPRINT: fp.fingerprint("You summarise tickets."),
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.1,
        sc.GEN_AI_REQUEST_MAX_TOKENS: 100,
        sc.GEN_AI_REQUEST_TOP_K: 40,
        sc.GEN_AI_RESPONSE_MODEL: "llama3.2",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 321,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 45,
        sc.PROMPTPULSE_COST_USD: 0.0,  # local models: priced 0 by the `ollama,*` row, recorded rather than missing
    }


def test_module_level_chat_is_instrumented(instrumented, otel, fake_provider, monkeypatch) -> None:
    fake_provider.set_scenario(USAGE)
    default = ollama.Client(host=fake_provider.ollama_host)
    monkeypatch.setattr(ollama, "_client", default)
    monkeypatch.setattr(ollama, "chat", default.chat)
    instrumented._uninstrument()  # re-bind with this default client in place
    instrumented._instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    ollama.chat("llama3.2", MSGS)
    assert attrs(otel.only_span())[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 45


def test_chat_stream_usage_from_done_chunk(instrumented, otel, fake_provider, client) -> None:
    fake_provider.set_scenario(USAGE)
    stream = client.chat(model="llama3.2", messages=MSGS, stream=True)
    pieces = [chunk.message.content for chunk in stream]
    assert "".join(pieces).startswith("Hello")
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 321 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 45
    assert a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert a[sc.PROMPTPULSE_COST_USD] == 0.0


def test_generate_and_length_finish(instrumented, otel, fake_provider, client) -> None:
    fake_provider.set_scenario(USAGE)
    client.generate(model="qwen2.5:7b", prompt="Write a haiku", system="You are a poet.", options={"num_predict": 10})
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert a[sc.PROMPTPULSE_PROMPT_FINGERPRINT] == fp.fingerprint("You are a poet.")
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("length",)
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 10  # capped by num_predict


async def test_async_chat_stream_and_embed(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE)
    aclient = ollama.AsyncClient(host=fake_provider.ollama_host)
    stream = await aclient.generate(model="llama3.2", prompt="hi", stream=True)
    async for _ in stream:
        pass
    await aclient.embed(model="nomic-embed-text", input=["a", "b"])
    await aclient.close()
    gen, emb = otel.spans()
    assert attrs(gen)[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 45
    assert attrs(gen)[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert attrs(emb)[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs(emb)[sc.GEN_AI_USAGE_INPUT_TOKENS] == 321
    assert attrs(emb)[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 16


async def test_async_stream_closed_early(instrumented, otel, fake_provider) -> None:
    aclient = ollama.AsyncClient(host=fake_provider.ollama_host)
    stream = await aclient.chat(model="llama3.2", messages=MSGS, stream=True)
    await stream.__anext__()
    await stream.aclose()
    await aclient.close()
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "closed"
    assert a[sc.PROMPTPULSE_USAGE_MISSING] is True


def test_model_not_found_error(instrumented, otel, fake_provider, client) -> None:
    fake_provider.fail_next(1, 404)
    with pytest.raises(ollama.ResponseError):
        client.chat(model="nope", messages=MSGS)
    span = otel.only_span()
    a = attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert a[sc.ERROR_TYPE] == "ollama._types.ResponseError"
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 404
    assert a[sc.PROMPTPULSE_ERROR_CATEGORY] == "validation"


def test_stream_error_surfaces_from_iteration(instrumented, otel, fake_provider, client) -> None:
    fake_provider.fail_next(1, 500)
    stream = client.chat(model="llama3.2", messages=MSGS, stream=True)
    with pytest.raises(ollama.ResponseError):
        list(stream)
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "error"
    assert a[sc.PROMPTPULSE_ERROR_CATEGORY] == "model_error"


def test_uninstrument_restores(otel, fake_provider, client) -> None:
    inst = OllamaInstrumentor()
    inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    inst.uninstrument()
    client.chat(model="llama3.2", messages=MSGS)
    assert otel.spans() == []
