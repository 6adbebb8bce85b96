"""Metric exemplars link every GenAI metric point to its call's span: the real openai and anthropic SDKs over the
fake provider, the SDK's MeterProvider with the trace-based exemplar filter and an in-memory reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider, TraceBasedExemplarFilter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.anthropic import AnthropicInstrumentor
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.testing import FakeProvider, Scenario

MSGS = [{"role": "user", "content": "hi"}]
GENAI_METRICS = (sc.METRIC_OPERATION_DURATION, sc.METRIC_TOKEN_USAGE, sc.METRIC_TIME_TO_FIRST_CHUNK)


class Telemetry:
    def __init__(self, *, sampled: bool = True) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider() if sampled else TracerProvider(sampler=ALWAYS_OFF)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], exemplar_filter=TraceBasedExemplarFilter())
        self.instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]

    def __enter__(self) -> Telemetry:
        for i in self.instrumentors:
            i.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)
        return self

    def __exit__(self, *exc: Any) -> None:
        for i in self.instrumentors:
            i.uninstrument()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    def points(self) -> list[tuple[str, Any]]:
        """(metric name, data point) of the GenAI metrics; the reader's collection records what is pending first."""
        data = self.reader.get_metrics_data()
        return [
            (m.name, p)
            for rm in data.resource_metrics
            for scope in rm.scope_metrics
            for m in scope.metrics
            if m.name in GENAI_METRICS
            for p in m.data.data_points
        ]


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(Scenario(input_tokens=30, output_tokens=7)) as provider:
        yield provider


def _calls(fake: FakeProvider) -> None:
    """Six calls, each with a model of its own, so each metric point is one call's measurement."""
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    for _ in client.chat.completions.create(
        model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
    ):
        pass
    client.embeddings.create(model="text-embedding-3-small", input="hi")
    client.responses.create(model="gpt-4.1", input="hi")
    client.close()
    aclient = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="k", max_retries=0)
    aclient.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MSGS)
    with aclient.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=MSGS) as stream:
        for _ in stream:
            pass
    aclient.close()


def test_every_genai_metric_point_has_an_exemplar_of_its_span(fake: FakeProvider) -> None:
    with Telemetry() as t:
        _calls(fake)
        spans: dict[str, ReadableSpan] = {
            s.attributes[sc.GEN_AI_REQUEST_MODEL]: s for s in t.exporter.get_finished_spans()
        }
        points = t.points()
    assert len(spans) == 6
    # per call: duration and input tokens; output tokens but for the embeddings; time to first chunk for the 2 streams
    assert sorted(name for name, _ in points) == sorted(
        [sc.METRIC_OPERATION_DURATION] * 6 + [sc.METRIC_TOKEN_USAGE] * 11 + [sc.METRIC_TIME_TO_FIRST_CHUNK] * 2
    )
    for name, point in points:
        span = spans[point.attributes[sc.GEN_AI_REQUEST_MODEL]]
        assert point.count == 1, (name, point.attributes)
        (exemplar,) = point.exemplars
        assert (exemplar.trace_id, exemplar.span_id) == (span.context.trace_id, span.context.span_id), name
        assert exemplar.value == point.sum
        assert exemplar.filtered_attributes in (None, {})  # the point's attributes are the measurement's


def test_an_unsampled_span_gives_no_exemplar(fake: FakeProvider) -> None:
    """The trace-based filter keeps exemplars of sampled spans only; the points are still recorded."""
    with Telemetry(sampled=False) as t:
        _calls(fake)
        points = t.points()
    assert len(points) == 19
    assert all(p.exemplars == [] for _, p in points)
