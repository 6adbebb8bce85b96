"""Fixtures for instrumentor tests: in-memory span exporter and metric reader behind real SDK providers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptpulse.instrumentation import metrics_buffer
from promptpulse.instrumentation import semconv as sc
from promptpulse.testing import FakeProvider


class Otel:
    """A tracer provider exporting to memory and a meter provider read in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self, name_prefix: str | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        if name_prefix is not None:
            spans = [s for s in spans if s.name.startswith(name_prefix)]
        return spans

    def only_span(self) -> ReadableSpan:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def instrument(self, instrumentor: Any) -> Iterator[Any]:
        """For an ``instrumented`` fixture (``yield from otel.instrument(X())``): on with this tracer and meter
        provider for the test, off after it."""
        instrumentor.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)
        yield instrumentor
        instrumentor.uninstrument()

    @staticmethod
    def assert_usage(
        attrs: Any,
        *,
        input_tokens: int,
        output_tokens: int,
        cost: float,
        cache_read: int | None = None,
        cache_write: int | None = None,
        reasoning: int | None = None,
    ) -> None:
        """A span's complete usage: token counts (the optional ones when given), the cost, no usage-missing flag."""
        assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == input_tokens
        assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == output_tokens
        if cache_read is not None:
            assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == cache_read
        if cache_write is not None:
            assert attrs[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == cache_write
        if reasoning is not None:
            assert attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == reasoning
        assert attrs[sc.PROMPTPULSE_COST_USD] == pytest.approx(cost, rel=1e-12)
        assert sc.PROMPTPULSE_USAGE_MISSING not in attrs

    def clear(self) -> None:
        self.exporter.clear()

    def histogram(self, name: str) -> list[HistogramDataPoint]:
        metrics_buffer.flush()  # histogram records are taken off the call path; record them now
        data = self.reader.get_metrics_data()
        points: list[HistogramDataPoint] = []
        for rm in data.resource_metrics if data else ():
            for scope in rm.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)  # type: ignore[arg-type]
        return points

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel()
    yield o
    o.shutdown()


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    """A fake provider serving the test module's ``SCENARIO``."""
    with FakeProvider(request.module.SCENARIO) as provider:
        yield provider
