"""Contract 1 meets contract 2: a real instrumented SDK call and a promptpulse.score() go through the OTLP encoding,
the processor's decoder and the store; llm_calls and llm_scores hold exactly what the spans said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import promptpulse
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.processor.receiver.decode import decode_protobuf
from promptpulse.processor.store.base import Store
from promptpulse.testing import FakeProvider, Scenario


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    from promptpulse.processor.store.embedded import EmbeddedStore

    s = EmbeddedStore(str(tmp_path_factory.mktemp("contract")))
    s.apply_schema()
    try:
        yield s
    finally:
        s.close()


def test_instrumented_call_and_score_land_in_llm_calls_and_llm_scores(store: Store, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "contract-e2e"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with FakeProvider(Scenario(input_tokens=1200, output_tokens=300, cached_tokens=200)) as fake:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
            with promptpulse.prompt("support_reply", "2.1.0", user_id="u-7", feature="inbox", tags=["vip", "eu"]):
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "system", "content": "You help."}, {"role": "user", "content": "hi"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                for _ in stream:
                    pass
            assert promptpulse.score("helpfulness", 0.75, label="good", comment="ok", tracer_provider=provider)
    finally:
        instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    call_span = next(s for s in spans if s.name == "chat gpt-4o-mini")
    body = encode_spans(spans).SerializeToString()
    decoded = decode_protobuf(body)
    assert decoded.rejected == 0
    store.insert_otel_traces(decoded.rows, dedup_token="contract-e2e")

    a = call_span.attributes
    row = store.query(
        "SELECT service, provider, operation, request_model, prompt_name, prompt_version, user_id, feature, tags,"
        " input_tokens, output_tokens, cache_read_tokens, toFloat64(cost_usd), cost_source, is_stream,"
        " status, ttft_ms, latency_ms, span_id FROM llm_calls WHERE service = 'contract-e2e'"
    ).rows
    assert len(row) == 1
    (service, prov, op, model, name, version, user, feature, tags, inp, out, cached, cost, cost_source, is_stream,
     status, ttft_ms, latency_ms, span_id) = row[0]
    assert (service, prov, op, model) == ("contract-e2e", "openai", "chat", "gpt-4o-mini")
    assert (name, version, user, feature, list(tags)) == ("support_reply", "2.1.0", "u-7", "inbox", ["vip", "eu"])
    assert (inp, out, cached) == (1200, 300, 200) == (
        a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS], a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS])
    # gpt-4o-mini: 1000 uncached * 0.15 + 200 cached * 0.075 + 300 out * 0.60 per million = 0.000345
    assert cost == pytest.approx(0.000345, abs=1e-12) == a[sc.PROMPTPULSE_COST_USD]
    assert cost_source == "span" and is_stream and status == "ok"
    assert ttft_ms == pytest.approx(a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] * 1000, rel=1e-3)
    assert latency_ms == pytest.approx((call_span.end_time - call_span.start_time) / 1e6, rel=1e-3)
    assert span_id == format(call_span.context.span_id, "016x")

    scores = store.query(
        "SELECT trace_id, span_id, name, value, label, comment, source FROM llm_scores WHERE name = 'helpfulness'"
    ).rows
    assert scores == [(format(call_span.context.trace_id, "032x"), span_id, "helpfulness", 0.75, "good", "ok", "otlp")]
    rolled = store.query(
        "SELECT prompt_version, sum(scores), sum(value_sum), sum(unattributed) FROM llm_scores_1m"
        " WHERE name = 'helpfulness' GROUP BY 1"
    ).rows
    assert rolled == [("2.1.0", 1, 0.75, 0)]
