"""What a span's cost is priced by — a snapshot's own row, the service tier that served the call, long-context rates,
1-hour cache writes — with the real openai and anthropic SDKs over the fake provider. Costs computed by hand."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import anthropic
import openai
import pytest

from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.anthropic import AnthropicInstrumentor
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.testing import FakeProvider, Scenario

MSGS = [{"role": "user", "content": "hi"}]


def usd(micro_dollars: str) -> float:
    return float(Fraction(micro_dollars) / 1_000_000)


@pytest.fixture
def instrumented(otel: Any) -> Iterator[None]:
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for i in instrumentors:
        i.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    yield
    for i in instrumentors:
        i.uninstrument()


def cost_of(otel: Any) -> float:
    (span,) = otel.spans()
    otel.clear()
    assert sc.PROMPTPULSE_USAGE_MISSING not in span.attributes
    return span.attributes[sc.PROMPTPULSE_COST_USD]


def test_openai_service_tier_prices_the_call(otel: Any, instrumented: None) -> None:
    # gpt-5, 1000 input of which 100 cached, 500 output
    with FakeProvider(Scenario(input_tokens=1000, cached_tokens=100, output_tokens=500)) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
        expected = {
            "flex": "3068.75",  # 900*0.625 + 100*0.0625 + 500*5.00
            "priority": "12275",  # 900*2.50 + 100*0.25 + 500*20.00
            "auto": "6137.5",  # answered "default": 900*1.25 + 100*0.125 + 500*10.00
        }
        for tier, micro in expected.items():
            client.chat.completions.create(model="gpt-5", messages=MSGS, service_tier=tier)
            assert cost_of(otel) == usd(micro), tier
            stream = client.chat.completions.create(
                model="gpt-5", messages=MSGS, service_tier=tier, stream=True, stream_options={"include_usage": True}
            )
            for _ in stream:
                pass
            assert cost_of(otel) == usd(micro), f"{tier} stream"
            client.responses.create(model="gpt-5", input="hi", service_tier=tier)
            assert cost_of(otel) == usd(micro), f"{tier} responses"
            with client.responses.stream(model="gpt-5", input="hi", service_tier=tier) as events:
                for _ in events:
                    pass
            assert cost_of(otel) == usd(micro), f"{tier} responses stream"
        client.close()


def test_openai_snapshot_answered_for_a_family_request_is_priced_by_its_own_row(otel: Any, instrumented: None) -> None:
    scenario = Scenario(input_tokens=1000, cached_tokens=200, output_tokens=100,
                        response_models={"gpt-4o": "gpt-4o-2024-05-13", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"})
    with FakeProvider(scenario) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
        (span,) = otel.spans()
        assert span.attributes[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-05-13"
        assert cost_of(otel) == usd("6500")  # 1000*5.00 (no cached rate for this snapshot) + 100*15.00
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert cost_of(otel) == usd("195")  # family row: 800*0.15 + 200*0.075 + 100*0.60
        client.close()


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_long_context_and_one_hour_cache_writes(otel: Any, instrumented: None, stream: bool) -> None:
    def scenario(input_tokens: int) -> Scenario:
        return Scenario(input_tokens=input_tokens, cached_tokens=50_000, cache_creation_tokens=20_000,
                        cache_creation_1h_tokens=5_000, output_tokens=1000)

    expected = {
        # 130k uncached*3 + 50k read*0.30 + 15k 5-minute writes*3.75 + 5k 1-hour writes*6 + 1000 out*15
        200_000: "506250",
        # above 200k input, every token at the long-context rates: 180k*6 + 50k*0.60 + 15k*7.50 + 5k*12 + 1000*22.50
        250_000: "1305000",
    }
    for input_tokens, micro in expected.items():
        with FakeProvider(scenario(input_tokens)) as fake:
            client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="k", max_retries=0)
            if stream:
                with client.messages.stream(model="claude-sonnet-4-5", max_tokens=2000, messages=MSGS) as events:
                    for _ in events:
                        pass
            else:
                client.messages.create(model="claude-sonnet-4-5", max_tokens=2000, messages=MSGS)
            (span,) = otel.spans()
            assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == input_tokens
            assert cost_of(otel) == usd(micro), input_tokens
            client.close()
