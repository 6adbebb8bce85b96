"""LangChainInstrumentor with real langchain-core / langchain-openai / langchain-anthropic over the fake provider.

The chat models call the real openai and anthropic SDKs, which the provider instrumentors span: one LLM span per
call, nested under the chain's span and carrying its names and the promptpulse tags.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import promptpulse
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.anthropic import AnthropicInstrumentor
from promptpulse.instrumentation.langchain import LangChainInstrumentor
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.testing import FakeProvider, Scenario

USAGE = Scenario(input_tokens=800, output_tokens=100)
COST_4O_MINI = (800 * 0.15 + 100 * 0.60) / 1_000_000  # by hand from prices.csv


@pytest.fixture
def instrumented(otel: Any) -> Iterator[LangChainInstrumentor]:
    insts = [LangChainInstrumentor(), OpenAIInstrumentor(), AnthropicInstrumentor()]
    for inst in insts:
        inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    yield insts[0]
    for inst in insts:
        inst.uninstrument()


@pytest.fixture
def model(fake_provider: FakeProvider) -> ChatOpenAI:
    # stream_usage: langchain-openai asks for stream usage by itself only with OpenAI's own base URL.
    return ChatOpenAI(
        model="gpt-4o-mini", base_url=fake_provider.openai_base_url, api_key="sk-fake", max_retries=0, stream_usage=True
    )


def chain_of(model: Any) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "You answer about {topic}."), ("user", "{question}")])
    return (prompt | model | StrOutputParser()).with_config(run_name="support_chain")


def llm_spans(otel: Any) -> list[Any]:
    return [s for s in otel.spans() if s.kind is SpanKind.CLIENT]


def by_name(otel: Any, name: str) -> Any:
    (span,) = [s for s in otel.spans() if s.name == name]
    return span


def test_invoke_in_chain_one_llm_span_nested_with_names_and_tags(instrumented, otel, fake_provider, model) -> None:
    fake_provider.set_scenario(USAGE)
    with promptpulse.prompt("support", version="1.2", feature="helpdesk"):
        answer = chain_of(model).invoke({"topic": "billing", "question": "Why two charges?"})
    assert answer.startswith("Hello")
    (llm,) = llm_spans(otel)  # no duplicate from LangChain's own LLM run
    chain = by_name(otel, "support_chain")
    assert llm.parent is not None and llm.parent.span_id == chain.context.span_id
    assert llm.context.trace_id == chain.context.trace_id
    a = dict(llm.attributes or {})
    assert llm.name == "chat gpt-4o-mini"
    assert a[sc.PROMPTPULSE_CHAIN_NAME] == "support_chain"
    assert a[sc.PROMPTPULSE_CHAIN_PATH] == ("support_chain",)
    assert a[sc.GEN_AI_PROMPT_NAME] == "support" and a[sc.GEN_AI_PROMPT_VERSION] == "1.2"
    assert a[sc.PROMPTPULSE_FEATURE] == "helpdesk"
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 800 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 100
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx(COST_4O_MINI)
    c = dict(chain.attributes or {})
    assert chain.kind is SpanKind.INTERNAL
    assert c[sc.PROMPTPULSE_RUN_TYPE] == "chain"
    assert not any(k.startswith("gen_ai.") for k in c)  # never counted as an LLM call


def test_stream_in_chain(instrumented, otel, fake_provider, model) -> None:
    fake_provider.set_scenario(USAGE)
    text = "".join(chain_of(model).stream({"topic": "billing", "question": "Why?"}))
    assert text.startswith("Hello")
    (llm,) = llm_spans(otel)
    chain = by_name(otel, "support_chain")
    a = dict(llm.attributes or {})
    assert llm.parent.span_id == chain.context.span_id
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.PROMPTPULSE_CHAIN_NAME] == "support_chain"
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 100
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx(COST_4O_MINI)


def test_nested_runs_and_agent_name_inside_the_apps_span(instrumented, otel, fake_provider, model) -> None:
    fake_provider.set_scenario(USAGE)
    inner = chain_of(model)
    outer = RunnableLambda(lambda x: inner.invoke(x)).with_config(
        run_name="triage_agent", metadata={"lc_agent_name": "triage"}
    )
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request_span:
        outer.invoke({"topic": "refunds", "question": "Can I?"})
    (llm,) = llm_spans(otel)
    a = dict(llm.attributes or {})
    assert a[sc.PROMPTPULSE_CHAIN_PATH] == ("triage_agent", "support_chain")
    assert a[sc.GEN_AI_AGENT_NAME] == "triage"
    agent = by_name(otel, "triage_agent")
    assert dict(agent.attributes or {})[sc.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert agent.parent.span_id == request_span.get_span_context().span_id
    assert by_name(otel, "support_chain").parent.span_id == agent.context.span_id
    assert llm.parent.span_id == by_name(otel, "support_chain").context.span_id


async def test_ainvoke_in_chain(instrumented, otel, fake_provider, model) -> None:
    fake_provider.set_scenario(USAGE)
    await chain_of(model).ainvoke({"topic": "billing", "question": "Why?"})
    (llm,) = llm_spans(otel)
    assert llm.parent.span_id == by_name(otel, "support_chain").context.span_id
    assert dict(llm.attributes or {})[sc.PROMPTPULSE_CHAIN_NAME] == "support_chain"


def test_error_marks_llm_and_chain_spans(instrumented, otel, fake_provider, model) -> None:
    fake_provider.fail_next(1, 500)
    with pytest.raises(openai.InternalServerError):
        chain_of(model).invoke({"topic": "billing", "question": "Why?"})
    (llm,) = llm_spans(otel)
    assert llm.status.status_code is StatusCode.ERROR
    assert dict(llm.attributes or {})[sc.PROMPTPULSE_ERROR_CATEGORY] == "model_error"
    assert by_name(otel, "support_chain").status.status_code is StatusCode.ERROR


def test_chat_anthropic_in_chain(instrumented, otel, fake_provider) -> None:
    langchain_anthropic = pytest.importorskip("langchain_anthropic")
    fake_provider.set_scenario(USAGE)
    claude = langchain_anthropic.ChatAnthropic(  # calls the SDK's messages.with_raw_response.create
        model="claude-haiku-4-5",
        base_url=fake_provider.anthropic_base_url,
        api_key="sk-ant-fake",
        max_retries=0,
    )
    chain_of(claude).invoke({"topic": "billing", "question": "Why?"})
    (llm,) = llm_spans(otel)
    a = dict(llm.attributes or {})
    assert a[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert a[sc.PROMPTPULSE_CHAIN_NAME] == "support_chain"
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx((800 * 1.00 + 100 * 5.00) / 1_000_000)


def _claude(fake_provider: FakeProvider) -> Any:
    langchain_anthropic = pytest.importorskip("langchain_anthropic")
    return langchain_anthropic.ChatAnthropic(  # messages.with_raw_response.create(stream=True).parse()
        model="claude-haiku-4-5", base_url=fake_provider.anthropic_base_url, api_key="sk-ant-fake", max_retries=0
    )


def _assert_claude_stream_span(otel: Any) -> None:
    (llm,) = llm_spans(otel)
    a = dict(llm.attributes or {})
    assert a[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.PROMPTPULSE_STREAM_STATE] == "complete"
    assert a[sc.GEN_AI_RESPONSE_ID].startswith("msg_")
    assert a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (800, 100)
    assert a[sc.PROMPTPULSE_COST_USD] == pytest.approx((800 * 1.00 + 100 * 5.00) / 1_000_000)
    assert a[sc.PROMPTPULSE_CHAIN_NAME] == "support_chain"


def test_chat_anthropic_stream(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE)
    text = "".join(chain_of(_claude(fake_provider)).stream({"topic": "billing", "question": "Why?"}))
    assert text.startswith("Hello")
    _assert_claude_stream_span(otel)


async def test_chat_anthropic_astream(instrumented, otel, fake_provider) -> None:
    fake_provider.set_scenario(USAGE)
    pieces = [p async for p in chain_of(_claude(fake_provider)).astream({"topic": "billing", "question": "Why?"})]
    assert "".join(pieces).startswith("Hello")
    _assert_claude_stream_span(otel)


def test_model_alone_and_after_uninstrument(otel, fake_provider, model) -> None:
    lc, oai = LangChainInstrumentor(), OpenAIInstrumentor()
    for inst in (lc, oai):
        inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    model.invoke("hi")
    (llm,) = otel.spans()  # no chain: a plain provider span, no run names
    assert sc.PROMPTPULSE_CHAIN_NAME not in dict(llm.attributes or {})
    lc.uninstrument()
    otel.clear()
    chain_of(model).invoke({"topic": "x", "question": "y"})
    (llm,) = otel.spans()  # the provider span only; no chain spans any more
    assert sc.PROMPTPULSE_CHAIN_NAME not in dict(llm.attributes or {})
    assert trace.get_current_span() is trace.INVALID_SPAN
    oai.uninstrument()
