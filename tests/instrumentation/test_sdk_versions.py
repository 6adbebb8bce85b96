"""The OpenAI and Anthropic instrumentation on every supported SDK version: this module uses only what the oldest
supported versions have, and CI runs it twice — here with today's SDKs, and in ``.venv-oldest`` with the minimums the
instrumentors declare (``.ci/run``). Plus: an SDK outside the declared range, or without a method we need, gets one
warning at instrument(), never silence."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from wrapt import FunctionWrapper

from promptpulse.instrumentation import patching, wrappers
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.anthropic import AnthropicInstrumentor
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.testing import FakeProvider, Scenario

MSGS = [{"role": "user", "content": "Where is order 123?"}]
# prices.csv: gpt-4o-mini 0.15 input, 0.60 output, 0.075 cached input; claude-haiku-4-5 1.00 input, 5.00 output.
OPENAI_USAGE = Scenario(input_tokens=1000, cached_tokens=400, output_tokens=200)
OPENAI_COST = (600 * 0.15 + 400 * 0.075 + 200 * 0.60) / 1_000_000
ANTHROPIC_USAGE = Scenario(input_tokens=40, output_tokens=12)
ANTHROPIC_COST = (40 * 1.00 + 12 * 5.00) / 1_000_000


def usage(span: Any) -> tuple[Any, Any, Any, Any]:
    a = span.attributes
    return (
        a.get(sc.GEN_AI_USAGE_INPUT_TOKENS),
        a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS),
        a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        a.get(sc.PROMPTPULSE_COST_USD),
    )


@pytest.fixture
def openai_client(otel: Any, fake_provider: FakeProvider) -> Iterator[openai.OpenAI]:
    fake_provider.set_scenario(OPENAI_USAGE)
    yield from otel.instrument(OpenAIInstrumentor())


@pytest.fixture
def anthropic_on(otel: Any, fake_provider: FakeProvider) -> Iterator[Any]:
    fake_provider.set_scenario(ANTHROPIC_USAGE)
    yield from otel.instrument(AnthropicInstrumentor())


def test_openai_chat_stream_raw_completions_embeddings(
    openai_client: Any, otel: Any, fake_provider: FakeProvider
) -> None:
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="sk-fake", max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS).parse()
    client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    client.embeddings.create(model="text-embedding-3-small", input="hi")
    spans = otel.spans()
    assert [s.name for s in spans] == [
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "text_completion gpt-3.5-turbo-instruct",
        "embeddings text-embedding-3-small",
    ]
    chat, stream, raw_span = spans[:3]
    assert usage(chat) == (1000, 200, 400, pytest.approx(OPENAI_COST, rel=1e-12))
    assert usage(stream) == (1000, 200, 400, pytest.approx(OPENAI_COST, rel=1e-12))
    assert usage(raw_span) == (1000, 200, 400, pytest.approx(OPENAI_COST, rel=1e-12))
    assert chat.attributes[sc.GEN_AI_RESPONSE_ID] == reply.id
    assert stream.attributes[sc.GEN_AI_RESPONSE_ID] == chunks[0].id
    assert raw_span.attributes[sc.GEN_AI_RESPONSE_ID] == raw.id
    assert spans[3].attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 200
    assert spans[4].attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    client.close()


async def test_openai_async_chat(openai_client: Any, otel: Any, fake_provider: FakeProvider) -> None:
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="sk-fake", max_retries=0)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    async for _ in stream:
        pass
    await client.close()
    assert [usage(s) for s in otel.spans()] == [(1000, 200, 400, pytest.approx(OPENAI_COST, rel=1e-12))] * 2


def test_anthropic_create_stream_and_helper(anthropic_on: Any, otel: Any, fake_provider: FakeProvider) -> None:
    client = anthropic.Anthropic(base_url=fake_provider.anthropic_base_url, api_key="k", max_retries=0)
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MSGS)
    events = list(client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MSGS, stream=True))
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MSGS) as helper:
        final = helper.get_final_message()
    spans = otel.spans()
    assert [s.name for s in spans] == ["chat claude-haiku-4-5"] * 3
    assert [usage(s) for s in spans] == [(40, 12, None, pytest.approx(ANTHROPIC_COST, rel=1e-12))] * 3
    assert [s.attributes[sc.GEN_AI_RESPONSE_ID] for s in spans] == [message.id, events[0].message.id, final.id]
    client.close()


async def test_anthropic_async_create(anthropic_on: Any, otel: Any, fake_provider: FakeProvider) -> None:
    client = anthropic.AsyncAnthropic(base_url=fake_provider.anthropic_base_url, api_key="k", max_retries=0)
    await client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MSGS)
    await client.close()
    assert [usage(s) for s in otel.spans()] == [(40, 12, None, pytest.approx(ANTHROPIC_COST, rel=1e-12))]


def test_declared_minimums() -> None:
    """The ranges .ci/run's oldest environment installs the bottom of (and this module passes there)."""
    assert tuple(OpenAIInstrumentor().instrumentation_dependencies()) == ("openai >= 1.50",)
    assert tuple(AnthropicInstrumentor().instrumentation_dependencies()) == ("anthropic >= 0.43",)


def _chat_create() -> Any:
    return vars(openai.resources.chat.completions.Completions)["create"]


class _NotYetReleased(OpenAIInstrumentor):
    _instance = None  # BaseInstrumentor's singleton slot: not OpenAIInstrumentor's
    _INSTRUMENTS = ("openai >= 999",)


class _WithAMethodThatIsGone(OpenAIInstrumentor):
    _instance = None
    def patches(self, telemetry: Any) -> list[patching.Patch]:
        gone = wrappers.sync_wrapper(telemetry, object())  # type: ignore[arg-type]
        return [*super().patches(telemetry), patching.Patch("openai.resources.embeddings", "Embeddings.gone", gone)]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_version_outside_the_range_gets_one_warning_and_no_patch(otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    instrumentor = _NotYetReleased()
    with caplog.at_level(logging.DEBUG):
        instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        assert _warnings(caplog) == [
            f"promptpulse: _NotYetReleased supports openai >= 999, but openai {openai.__version__} is installed: "
            "nothing is instrumented"
        ]
        assert not isinstance(_chat_create(), FunctionWrapper)
    finally:
        instrumentor.uninstrument()


def test_a_missing_method_gets_one_warning_naming_it(otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    instrumentor = _WithAMethodThatIsGone()
    with caplog.at_level(logging.DEBUG):
        instrumentor.instrument(tracer_provider=otel.tracer_provider)
        openai.OpenAI(api_key="k").embeddings  # noqa: B018 (openai 3 imports the module on first use)
    try:
        assert _warnings(caplog) == [
            "promptpulse: _WithAMethodThatIsGone: this SDK version has no "
            "openai.resources.embeddings.Embeddings.gone; those calls get no span"
        ]
        assert isinstance(_chat_create(), FunctionWrapper)  # the rest is patched
    finally:
        instrumentor.uninstrument()
    assert not isinstance(_chat_create(), FunctionWrapper)
