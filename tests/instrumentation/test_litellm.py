"""LiteLLMInstrumentor with the real litellm over loopback HTTP against the fake provider.

litellm reaches the fake through the openai SDK (``openai/…``), its own Anthropic handler (``anthropic/…``) and its
own Ollama handler (``ollama_chat/…``); with the OpenAI instrumentor also on, each call still makes exactly one span.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of litellm's price map at import
litellm = pytest.importorskip("litellm")

from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

import promptpulse  # noqa: E402
from promptpulse.instrumentation import semconv as sc  # noqa: E402
from promptpulse.instrumentation.litellm import LiteLLMInstrumentor  # noqa: E402
from promptpulse.instrumentation.openai import OpenAIInstrumentor  # noqa: E402
from promptpulse.testing import FakeProvider, Scenario  # noqa: E402

MSGS = [{"role": "system", "content": "You route tickets."}, {"role": "user", "content": "My card was charged twice"}]
USAGE = Scenario(input_tokens=1000, cached_tokens=400, output_tokens=200)
# gpt-4o-mini per million tokens, copied by hand from prices.csv: input 0.15, cached input 0.075, output 0.60.
COST_4O_MINI = (600 * 0.15 + 400 * 0.075 + 200 * 0.60) / 1_000_000  # 0.00024


@pytest.fixture
def instrumented(otel: Any) -> Iterator[None]:
    """litellm's and openai's instrumentors both on: litellm calls the openai SDK underneath."""
    lite, oai = LiteLLMInstrumentor(), OpenAIInstrumentor()
    for inst in (lite, oai):
        inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    yield
    for inst in (lite, oai):
        inst.uninstrument()


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def openai_kwargs(fake: FakeProvider) -> dict[str, Any]:
    return {"base_url": fake.openai_base_url, "api_key": "sk-fake", "max_retries": 0}


def test_completion_through_openai_sdk_makes_one_span(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE.with_(response_models={"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}))
    with promptpulse.prompt("router", version="3"):
        result = litellm.completion(model="openai/gpt-4o-mini", messages=MSGS, temperature=0.5, **openai_kwargs(
            fake_provider
        ))
    span = otel.only_span()  # litellm's; the openai SDK call underneath passed through
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == "promptpulse.instrumentation.litellm"
    a = attrs(span)
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert a[sc.GEN_AI_RESPONSE_ID] == result.id
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1" and a[sc.SERVER_PORT] == fake_provider.port
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 400
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 200
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx(COST_4O_MINI)
    assert a[sc.GEN_AI_PROMPT_NAME] == "router" and a[sc.GEN_AI_PROMPT_VERSION] == "3"
    assert len(fake_provider.requests) == 1


def test_stream_with_usage(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE)
    stream = litellm.completion(
        model="openai/gpt-4o-mini",
        messages=MSGS,
        stream=True,
        stream_options={"include_usage": True},
        **openai_kwargs(fake_provider),
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("Hello")
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 200
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx(COST_4O_MINI)
    assert a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


async def test_acompletion_and_async_stream(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE)
    await litellm.acompletion(model="openai/gpt-4o-mini", messages=MSGS, **openai_kwargs(fake_provider))
    stream = await litellm.acompletion(
        model="openai/gpt-4o-mini", messages=MSGS, stream=True, **openai_kwargs(fake_provider)
    )
    async for _ in stream:
        pass
    plain, streamed = otel.spans()
    assert attrs(plain)[sc.PROMPTPULSE_COST_USD] == pytest.approx(COST_4O_MINI)
    assert attrs(streamed)[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert attrs(streamed)[sc.PROMPTPULSE_USAGE_MISSING] is True  # not asked for: never invented
    assert len(fake_provider.requests) == 2


def test_anthropic_through_litellms_own_handler(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(Scenario(input_tokens=500, output_tokens=100))
    litellm.completion(
        model="anthropic/claude-3-5-haiku-20241022",
        messages=MSGS,
        api_base=fake_provider.anthropic_base_url + "/v1/messages",
        api_key="sk-ant-fake",
        max_tokens=300,
    )
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 300
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 500 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 100
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx((500 * 0.80 + 100 * 4.00) / 1_000_000)


def test_ollama_provider_and_zero_cost(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(Scenario(input_tokens=30, output_tokens=12))
    litellm.completion(model="ollama_chat/llama3.2", messages=MSGS, api_base=fake_provider.ollama_host)
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_PROVIDER_NAME] == "ollama"
    assert a[sc.GEN_AI_REQUEST_MODEL] == "llama3.2"
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 30 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    assert a[sc.PROMPTPULSE_COST_USD] == 0.0


def test_rate_limit_error(instrumented, otel, fake_provider) -> None:
    fake_provider.fail_next(1, 429)
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(model="openai/gpt-4o-mini", messages=MSGS, **openai_kwargs(fake_provider))
    span = otel.only_span()
    a = attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert a[sc.ERROR_TYPE] == "litellm.exceptions.RateLimitError"
    assert a[sc.PROMPTPULSE_ERROR_CATEGORY] == "rate_limit"
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 429


def test_uninstrument_restores(otel, fake_provider) -> None:
    inst = LiteLLMInstrumentor()
    inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    inst.uninstrument()
    litellm.completion(model="openai/gpt-4o-mini", messages=MSGS, **openai_kwargs(fake_provider))
    assert otel.spans() == []


# --- n choices (Issue 11): one finish reason per choice, as the openai instrumentation reports them ----------------
def _choices_seen(stream: Any, stop_after_finish_of: int | None = None) -> list[tuple[int, str | None]]:
    """(index, finish_reason) of every choice litellm gave; with ``stop_after_finish_of``, break right after that
    choice's finish_reason."""
    seen = []
    for chunk in stream:
        seen += [(c.index, c.finish_reason) for c in chunk.choices]
        if any(c.index == stop_after_finish_of and c.finish_reason for c in chunk.choices):
            break
    return seen


def test_completion_of_two_choices(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE)
    result = litellm.completion(model="openai/gpt-4o-mini", messages=MSGS, n=2, **openai_kwargs(fake_provider))
    assert [(c.index, c.finish_reason) for c in result.choices] == [(0, "stop"), (1, "stop")]
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_REQUEST_CHOICE_COUNT] == 2
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop", "stop")
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 200 and a[sc.PROMPTPULSE_COST_USD] == pytest.approx(COST_4O_MINI)


def test_stream_of_two_choices_exhausted(instrumented, otel, fake_provider) -> None:
    """litellm passes on only choice 0's finish_reason (its stream wrapper drops the others' finish chunks): the span
    still reports both, as the provider sent them."""
    fake_provider.set_scenario(USAGE)
    stream = litellm.completion(
        model="openai/gpt-4o-mini",
        messages=MSGS,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
        **openai_kwargs(fake_provider),
    )
    seen = _choices_seen(stream)
    assert {i for i, _ in seen} == {0, 1}
    assert [(i, r) for i, r in seen if r] == [(0, "stop")]  # what the app gets from litellm
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_REQUEST_CHOICE_COUNT] == 2
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop", "stop")
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 200


def test_stream_of_two_choices_broken_out_of_after_the_first_finished(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE)
    stream = litellm.completion(
        model="openai/gpt-4o-mini", messages=MSGS, n=2, stream=True, **openai_kwargs(fake_provider)
    )
    seen = _choices_seen(stream, stop_after_finish_of=0)
    assert seen[-1] == (0, "stop") and (1, None) in seen
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "interrupted"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop", "error")
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a and a[sc.PROMPTPULSE_USAGE_MISSING] is True


def test_stream_of_three_choices_closed_after_the_first_chunk(instrumented, otel, fake_provider) -> None:
    """Closed when only choice 0 has been seen: the request's n still says three choices, none finished."""
    stream = litellm.completion(
        model="openai/gpt-4o-mini", messages=MSGS, n=3, stream=True, **openai_kwargs(fake_provider)
    )
    assert [c.index for c in next(stream).choices] == [0]
    stream.close()
    a = attrs(otel.only_span())
    assert a[sc.GEN_AI_REQUEST_CHOICE_COUNT] == 3
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "closed"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("error", "error", "error")


def test_stream_of_two_choices_cut_by_an_error(instrumented, otel, fake_provider) -> None:
    # n=2, 4 pieces: 2 role chunks, 8 content chunks, then choice 0's finish (event 11) and choice 1's (event 12)
    from promptpulse.testing import Fault

    fake_provider.set_scenario(USAGE.with_(stream_chunks=4))
    fake_provider.inject(Fault.cut(after_chunks=11))
    seen: list[tuple[int, str | None]] = []
    with pytest.raises(Exception):  # noqa: B017 - whichever error litellm maps the cut to
        for chunk in litellm.completion(
            model="openai/gpt-4o-mini", messages=MSGS, n=2, stream=True, **openai_kwargs(fake_provider)
        ):
            seen += [(c.index, c.finish_reason) for c in chunk.choices]
    assert [(i, r) for i, r in seen if r] == [(0, "stop")]
    a = attrs(otel.only_span())
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "error"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop", "error")


async def test_acompletion_of_two_choices_plain_and_streamed(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE)
    await litellm.acompletion(model="openai/gpt-4o-mini", messages=MSGS, n=2, **openai_kwargs(fake_provider))
    stream = await litellm.acompletion(
        model="openai/gpt-4o-mini", messages=MSGS, n=2, stream=True, **openai_kwargs(fake_provider)
    )
    async for _ in stream:
        pass
    plain, streamed = otel.spans()
    for span in (plain, streamed):
        assert attrs(span)[sc.GEN_AI_REQUEST_CHOICE_COUNT] == 2
        assert attrs(span)[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop", "stop")
    assert attrs(streamed)[sc.PROMPTPULSE_STREAM_STATE] == "complete"


def test_stream_of_two_choices_content(otel, fake_provider) -> None:
    """Captured content of an n=2 stream: one output message per choice, each with its text and finish reason."""
    import json

    inst = LiteLLMInstrumentor()
    inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider, capture_content=True)
    try:
        stream = litellm.completion(
            model="openai/gpt-4o-mini", messages=MSGS, n=2, stream=True, **openai_kwargs(fake_provider)
        )
        texts: dict[int, str] = {}
        for chunk in stream:
            for c in chunk.choices:
                texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
    finally:
        inst.uninstrument()
    assert texts[0] == texts[1] != ""
    messages = json.loads(attrs(otel.only_span())[sc.GEN_AI_OUTPUT_MESSAGES])
    assert messages == [
        {"role": "assistant", "parts": [{"type": "text", "content": texts[i]}], "finish_reason": "stop"} for i in (0, 1)
    ]
