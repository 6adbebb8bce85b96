"""No invented zeros (issue 12 §2, schemas/013): a call whose span reports no token usage, or whose model has no
price, is stored flagged (usage_known, cost_source 'unknown' / 'unpriced'), never as a free call; sums stay sums over
the calls whose numbers are known, and the rollups count the others."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptpulse.instrumentation import pricing
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.processor.receiver.decode import decode_protobuf
from promptpulse.processor.store.base import Store
from promptpulse.testing import FakeProvider, Scenario

pytest.importorskip("chdb")

UTC = dt.timezone.utc
HOUR = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
PRICE = pricing.default_table().lookup("openai", "gpt-4o")
# (attributes, expected (input, output, usage_known, cost_source, cost))
KNOWN = {"gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": "200"}
CASES: list[tuple[dict[str, str], tuple]] = [
    (KNOWN, (1000, 200, True, "model_prices",
             (1000 * PRICE.input_per_mtok + 200 * PRICE.output_per_mtok) / 1_000_000)),
    ({"gen_ai.usage.input_tokens": "0", "gen_ai.usage.output_tokens": "0"}, (0, 0, True, "model_prices", 0)),
    ({"gen_ai.usage.prompt_tokens": "30"}, (30, 0, True, "model_prices", 30 * PRICE.input_per_mtok / 1_000_000)),
    ({"gen_ai.request.stream": "true", "promptpulse.usage.missing": "true"}, (0, 0, False, "unknown", 0)),
    ({"gen_ai.usage.input_tokens": "not a number"}, (0, 0, False, "unknown", 0)),
    ({"promptpulse.cost.usd": "0.5"}, (0, 0, False, "span", Decimal("0.5"))),  # cost known, usage not
    ({"gen_ai.request.model": "no-such-model-x", **KNOWN}, (1000, 200, True, "unpriced", 0)),
    ({"gen_ai.request.model": "no-such-model-x"}, (0, 0, False, "unknown", 0)),
]


def span(i: int, attrs: dict[str, str], service: str = "usage") -> list:
    a = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", **attrs}
    ns = int((HOUR + dt.timedelta(seconds=i)).timestamp() * 1e9)
    return [ns, uuid.uuid4().hex, uuid.uuid4().hex[:16], "", "", "chat", "Client", service, {"service.name": service},
            "scope", "1", a, 400_000_000, "Ok", "", [], [], [], [], [], [], []]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    from promptpulse.processor.store.embedded import EmbeddedStore

    s = EmbeddedStore(str(tmp_path_factory.mktemp("usage")))
    s.apply_schema()
    s.insert_otel_traces([span(i, attrs) for i, (attrs, _) in enumerate(CASES)], dedup_token=uuid.uuid4().hex)
    try:
        yield s
    finally:
        s.close()


def test_calls_store_usage_known_and_cost_source(store: Store) -> None:
    rows = store.query("SELECT input_tokens, output_tokens, usage_known, cost_source, cost_usd FROM llm_calls "
                       "WHERE service = 'usage' ORDER BY timestamp").rows
    assert rows == [expected for _, expected in CASES]
    known = store.query("SELECT groupArray(cost_known) FROM (SELECT cost_known FROM llm_calls "
                        "WHERE service = 'usage' ORDER BY timestamp)").scalar()
    assert known == [True, True, True, False, False, True, False, False]


@pytest.mark.parametrize("table", ["llm_calls_1m", "llm_calls_1h", "llm_calls_1d"])
def test_rollups_count_calls_without_usage_and_unpriced(store: Store, table: str) -> None:
    got = store.query(f"SELECT sum(calls), sum(calls_without_usage), sum(calls_unpriced), sum(calls_without_cost), "
                      f"sum(input_tokens), sum(output_tokens), sum(cost_usd) FROM {table} "
                      f"WHERE service = 'usage'").rows
    cost = sum(Decimal(e[4]) for _, e in CASES)
    # without usage: the stream, the unparseable count, the span-cost call, the unknown model without tokens;
    # without cost: the stream, the unparseable count, the unpriced model (with and without tokens)
    assert got == [(8, 4, 1, 4, 1000 + 0 + 30 + 1000, 200 + 200, cost)]


def test_openai_stream_without_include_usage_is_flagged_end_to_end(store: Store) -> None:
    """The real openai SDK streaming without include_usage against the fake provider: the span carries no usage, and
    llm_calls holds the call as without usage — not as 0 tokens and $0 'model_prices'."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "usage-e2e"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with FakeProvider(Scenario(input_tokens=1200, output_tokens=300)) as fake:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
            for usage in (False, True):
                extra = {"stream_options": {"include_usage": True}} if usage else {}
                for _ in client.chat.completions.create(model="gpt-4o-mini", stream=True, **extra,
                                                        messages=[{"role": "user", "content": "hi"}]):
                    pass
    finally:
        instrumentor.uninstrument()
    spans = [s for s in exporter.get_finished_spans() if s.name == "chat gpt-4o-mini"]
    assert len(spans) == 2 and sc.GEN_AI_USAGE_INPUT_TOKENS not in spans[0].attributes
    decoded = decode_protobuf(encode_spans(spans).SerializeToString())
    assert decoded.rejected == 0
    store.insert_otel_traces(decoded.rows, dedup_token=uuid.uuid4().hex)
    rows = store.query("SELECT is_stream, usage_known, cost_source, input_tokens, output_tokens, cost_known "
                       "FROM llm_calls WHERE service = 'usage-e2e' ORDER BY timestamp").rows
    assert rows == [(True, False, "unknown", 0, 0, False), (True, True, "span", 1200, 300, True)]
    assert store.query("SELECT sum(calls), sum(calls_without_usage), sum(calls_without_cost), sum(input_tokens) "
                       "FROM llm_calls_1m WHERE service = 'usage-e2e'").rows == [(2, 1, 1, 1200)]


RANGE = {"start": (HOUR - dt.timedelta(minutes=5)).isoformat(), "end": (HOUR + dt.timedelta(minutes=5)).isoformat()}
TOTAL_COST = sum(Decimal(e[4]) for _, e in CASES)


def test_api_metrics_reports_calls_without_usage_and_averages_over_known(store: Store) -> None:
    from promptpulse.processor import api

    m = api.get_metrics(store, {"service": "usage", **RANGE})["metrics"]
    assert (m["total_requests"], m["calls_without_usage"], m["calls_unpriced"], m["calls_without_cost"]) == (8, 4, 1, 4)
    assert (m["input_tokens"], m["output_tokens"]) == (2030, 400)
    assert m["avg_tokens"] == 2430 / 4  # the 4 calls with usage, not 2430 / 8
    assert m["cost_per_request"] == pytest.approx(float(TOTAL_COST) / 4, rel=1e-12)
    assert m["total_cost_usd"] == round(float(TOTAL_COST), 6)


def test_analytics_summary_and_cohorts_leave_unknown_calls_out_of_per_call_figures(store: Store) -> None:
    from promptpulse.processor import analytics as an

    by_model = {c["cohort"]: c for c in an.cohorts(store, {"by": "model", "service": "usage", **RANGE})["cohorts"]}
    known = by_model["gpt-4o"]
    assert (known["requests"], known["calls_without_usage"], known["calls_unpriced"],
            known["calls_without_cost"]) == (6, 3, 0, 2)
    assert known["avg_tokens"] == (1200 + 0 + 30) / 3
    assert known["cost_per_request"] == pytest.approx(float(TOTAL_COST) / 4, rel=1e-9)
    # the unknown model: counted as unpriced, its cost per request unknown (None), not $0
    unpriced = by_model["no-such-model-x"]
    assert (unpriced["requests"], unpriced["calls_without_usage"], unpriced["calls_unpriced"],
            unpriced["calls_without_cost"]) == (2, 1, 1, 2)
    assert unpriced["cost_per_request"] is None and unpriced["avg_tokens"] == 1200.0
    assert unpriced["total_cost_usd"] == 0  # a sum over no priced call
    series = an.timeseries(store, {"metric": "calls_without_usage", "interval": "1h", "service": "usage", **RANGE})
    assert sum(p["v"] for s in series["series"] for p in s["points"]) == 4


def test_report_shows_calls_without_usage_and_unpriced(store: Store) -> None:
    from promptpulse.processor import reports

    now = dt.datetime.combine(HOUR.date() + dt.timedelta(days=1), dt.time(1), UTC)
    doc = reports.build_report(store, "daily", now=now)
    m = doc["metrics"]
    # the module's calls: 8 here, plus the two end-to-end streams when that test ran first (one without usage)
    assert m["calls_without_usage"]["value"] in (4, 5) and m["calls_unpriced"]["value"] == 1
    assert m["avg_tokens"]["value"] == pytest.approx(m["total_tokens"]["value"]
                                                     / (m["requests"]["value"] - m["calls_without_usage"]["value"]))
    text = reports.render(doc, "markdown")
    assert f"| Calls without usage | {m['calls_without_usage']['value']} |" in text
    assert "| Calls unpriced | 1 |" in text and "No usage / unpriced" in text


@pytest.mark.parametrize("hours", [1, 24 * 5])  # minute rollup; hourly + daily rollups
def test_dashboard_token_and_cost_panels_count_calls_without_usage(store: Store, hours: int) -> None:
    from promptpulse.dashboards import definitions, macros, queries

    variables = {v: macros.ALL for v in queries.VARIABLES}  # every filter variable the panels use
    variables["service"] = ["usage"]
    end = HOUR + dt.timedelta(minutes=30)
    panels = definitions.all_panels()

    def one(name: str) -> dict:
        sql = macros.expand(panels[name].sql, time_from=end - dt.timedelta(hours=hours), time_to=end,
                            variables=variables)
        return store.query(sql).dicts()[0]

    tokens = one("tokens")
    assert (tokens["Total"], tokens["Calls without usage"]) == (2430, 4)
    assert tokens["Avg per request"] == pytest.approx(2430 / 4)
    cost = one("cost_stats")
    assert (cost["Calls without usage"], cost["Calls unpriced"]) == (4, 1)
    assert cost["Cost per request"] == pytest.approx(float(TOTAL_COST) / 4)


def test_export_writes_an_unknown_cost_as_null_never_0(store: Store) -> None:
    from promptpulse.processor import analytics as an

    _fmt, limit, sql, p = an.export_plan({"format": "jsonl", "service": "usage", **RANGE})
    got = [r["cost_usd"] for r in an.export_rows(store, sql, p, limit)]
    want = [None if not known else str(cost) for (_, (*_, cost)), known in
            zip(CASES, [True, True, True, False, False, True, False, False], strict=True)]
    assert [None if g is None else Decimal(g) for g in got] == [None if w is None else Decimal(w) for w in want]
    assert got.count(None) == 4 and Decimal(got[0]) > 0


def test_anthropic_stream_cut_short_is_without_usage_and_cache_writes_count(store: Store) -> None:
    """The real anthropic SDK: one stream read to its end (its cache writes under the current name,
    gen_ai.usage.cache_write.input_tokens), one broken out of before message_delta. The cut one carries only the
    input it saw (promptpulse.usage.input_tokens_seen), so llm_calls holds it as without usage — not as a call with
    0 output tokens priced on its input alone."""
    import anthropic

    from promptpulse.instrumentation.anthropic import AnthropicInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "usage-cut"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        scenario = Scenario(input_tokens=40, cached_tokens=10, cache_creation_tokens=6, output_tokens=12)
        with FakeProvider(scenario) as fake:
            client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="k", max_retries=0)
            for cut in (False, True):
                stream = client.messages.create(model="claude-haiku-4-5", max_tokens=64, stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
                for _event in stream:
                    if cut:
                        break
    finally:
        instrumentor.uninstrument()
    full, cut_short = exporter.get_finished_spans()
    assert full.attributes[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 6
    assert sc.LEGACY_USAGE_CACHE_CREATION_INPUT_TOKENS not in full.attributes
    assert cut_short.attributes[sc.PROMPTPULSE_USAGE_INPUT_TOKENS_SEEN] == 40
    decoded = decode_protobuf(encode_spans([full, cut_short]).SerializeToString())
    store.insert_otel_traces(decoded.rows, dedup_token=uuid.uuid4().hex)
    rows = store.query("SELECT usage_known, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, "
                       "cost_known FROM llm_calls WHERE service = 'usage-cut' ORDER BY timestamp").rows
    assert rows == [(True, 40, 12, 10, 6, True), (False, 0, 0, 0, 0, False)]
