"""bench/bench_overhead.py's named setups are what their names and docs/BENCHMARKS.md say: the overhead figures of
issue 11 §5 are measured with SimpleSpanProcessor and no MeterProvider ("simple-nometrics")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_overhead


@pytest.mark.parametrize(
    ("name", "processor", "meter"),
    [
        ("simple", SimpleSpanProcessor, MeterProvider),
        ("simple-nometrics", SimpleSpanProcessor, metrics.NoOpMeterProvider),
        ("batch", BatchSpanProcessor, MeterProvider),
    ],
)
def test_setup_has_the_span_processor_and_meter_its_name_says(name: str, processor: type, meter: type) -> None:
    setup = bench_overhead.Setup(name)
    try:
        processors = setup.tracer_provider._active_span_processor._span_processors
        assert [type(p) for p in processors] == [processor]
        assert type(setup.meter_provider) is meter
        span = setup.tracer_provider.get_tracer("t").start_span("s")
        span.end()
        setup.tracer_provider.force_flush()
        assert len(setup.exporter.get_finished_spans()) == 1
    finally:
        setup.tracer_provider.shutdown()
