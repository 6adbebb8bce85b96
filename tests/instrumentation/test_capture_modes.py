"""OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT's official values, with the real openai SDK over the fake
provider: content on the span, in a gen_ai.client.inference.operation.details event through the app's
LoggerProvider, both, or neither."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import capture
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.instrumentation.spans import CAPTURE_CONTENT_ENV
from promptpulse.testing import FakeProvider, Scenario

MSGS = [{"role": "system", "content": "You are support agent 7."}, {"role": "user", "content": "Where is order 123?"}]
CONTENT_KEYS = (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(Scenario(input_tokens=30, output_tokens=5)) as provider:
        yield provider


@pytest.fixture
def logs() -> Iterator[tuple[LoggerProvider, InMemoryLogRecordExporter]]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _call(otel: Any, fake: FakeProvider, logger_provider: LoggerProvider, stream: bool = False) -> Any:
    inst = OpenAIInstrumentor()
    inst.instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider, logger_provider=logger_provider
    )
    try:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
        if stream:
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True):
                pass
        else:
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    finally:
        inst.uninstrument()
    return otel.only_span()


@pytest.mark.parametrize(
    ("value", "on_span", "in_event"),
    [
        ("true", True, False),
        ("SPAN_ONLY", True, False),
        ("event_only", False, True),
        ("span_and_event", True, True),
        ("false", False, False),
        ("no_content", False, False),
        ("bogus", False, False),
    ],
)
def test_modes(otel, fake, logs, monkeypatch, value: str, on_span: bool, in_event: bool) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, value)
    logger_provider, exporter = logs
    span = _call(otel, fake, logger_provider)
    attrs = dict(span.attributes)
    assert all((key in attrs) is on_span for key in CONTENT_KEYS)
    records = [r.log_record for r in exporter.get_finished_logs()]
    if not in_event:
        assert records == []
        return
    (record,) = records
    assert record.event_name == capture.EVENT_NAME
    # In the call span's context: a reader joins the event to its span.
    assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
    event = dict(record.attributes)
    assert event[sc.GEN_AI_OPERATION_NAME] == "chat" and event[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert (event[sc.GEN_AI_USAGE_INPUT_TOKENS], event[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (30, 5)
    assert event[sc.GEN_AI_RESPONSE_ID] == attrs[sc.GEN_AI_RESPONSE_ID]
    messages = json.loads(event[sc.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["parts"] == [{"type": "text", "content": "Where is order 123?"}]
    (answer,) = json.loads(event[sc.GEN_AI_OUTPUT_MESSAGES])
    assert answer["role"] == "assistant" and answer["finish_reason"] == "stop"
    if on_span:
        assert attrs[sc.GEN_AI_INPUT_MESSAGES] == event[sc.GEN_AI_INPUT_MESSAGES]


def test_event_for_a_stream(otel, fake, logs, monkeypatch) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "event_only")
    logger_provider, exporter = logs
    span = _call(otel, fake, logger_provider, stream=True)
    assert sc.GEN_AI_OUTPUT_MESSAGES not in span.attributes
    (record,) = [r.log_record for r in exporter.get_finished_logs()]
    (answer,) = json.loads(record.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    assert answer["parts"][0]["content"] == fake.scenario.text


def test_instrument_argument_overrides_the_environment(otel, fake, logs, monkeypatch) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "false")
    logger_provider, exporter = logs
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=otel.tracer_provider, logger_provider=logger_provider, capture_content="event_only")
    try:
        openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MSGS
        )
    finally:
        inst.uninstrument()
    assert len(exporter.get_finished_logs()) == 1
    assert sc.GEN_AI_INPUT_MESSAGES not in otel.only_span().attributes
