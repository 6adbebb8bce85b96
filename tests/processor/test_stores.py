"""Both stores, through the whole schema: otel_traces -> llm_calls -> llm_calls_1m / llm_calls_1h.

EmbeddedStore runs over chDB; ServerStore runs over a loopback ClickHouse-HTTP server on the same chDB engine
(chDB allows one engine path per process), or a real server when PROMPTPULSE_TEST_CLICKHOUSE_URL is set.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from promptpulse.instrumentation import pricing
from promptpulse.processor.store import Store, schema
from promptpulse.processor.store.base import OTEL_TRACES_COLUMNS

pytest.importorskip("chdb")

REAL_URL = os.environ.get("PROMPTPULSE_TEST_CLICKHOUSE_URL")
Q12 = Decimal("1e-12")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Store]]:
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions
    from promptpulse.processor.store.server import ServerStore
    from promptpulse.testing.clickhouse_http import ClickHouseHTTPServer

    data_dir = str(tmp_path_factory.mktemp("chdb"))
    embedded = EmbeddedStore(data_dir, schema_options=SchemaOptions(database="pp_embedded"))
    server = None
    if REAL_URL:
        remote = ServerStore(REAL_URL)
    else:
        server = ClickHouseHTTPServer(data_dir).start()
        remote = ServerStore(f"{server.url}/pp_server?compress=false")
    try:
        for store in (embedded, remote):
            store.apply_schema()
            store.apply_schema()  # idempotent
        yield {"embedded": embedded, "server": remote}
    finally:
        remote.close()
        if server is not None:
            server.stop()
        embedded.close()


@pytest.fixture(params=["embedded", "server"])
def store(request: pytest.FixtureRequest, stores: dict[str, Store]) -> Store:
    return stores[request.param]


def _span(service: str, attrs: dict[str, str], *, ts: int, duration_ns: int, status: str = "Ok",
          events: list[tuple[int, str, dict[str, str]]] = (), resource: dict[str, str] | None = None) -> list:
    return [ts, uuid.uuid4().hex, uuid.uuid4().hex[:16], "", "", "chat x", "Client", service,
            resource or {"service.name": service, "deployment.environment.name": "prod"}, "scope", "1", attrs,
            duration_ns, status, "", [e[0] for e in events], [e[1] for e in events], [e[2] for e in events],
            [], [], [], []]


MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-sonnet-4-5-20250929"),
          ("azure.ai.openai", "gpt-4.1"), ("openai", "text-embedding-3-small")]
ERRORS = [({"http.response.status_code": "429", "error.type": "RateLimitError"}, "rate_limit"),
          ({"error.type": "APITimeoutError"}, "timeout"),
          ({"http.response.status_code": "401", "error.type": "AuthenticationError"}, "auth"),
          ({"http.response.status_code": "400", "error.type": "BadRequestError"}, "validation"),
          ({"http.response.status_code": "529", "error.type": "OverloadedError"}, "model_error"),
          ({"error.type": "ConnectionResetError"}, "system"),
          ({"error.type": "SomethingOdd", "promptpulse.error.category": "timeout"}, "timeout")]


def make_calls(service: str, n: int, seed: int) -> tuple[list[list], dict]:
    """n LLM spans (current, legacy and foreign names mixed) plus non-LLM spans, and what they must add up to."""
    rng = random.Random(seed)
    table = pricing.PriceTable(pricing.load_prices())
    now = time.time_ns()
    rows, exp = [], {"calls": 0, "input": 0, "output": 0, "cache_read": 0, "cache_creation": 0, "cost": Decimal(0),
                     "errors": {}, "latency": [], "ttft": [], "users": set(), "http_5xx": 0, "retries": 0,
                     "retried_calls": 0, "stream_latency": 0.0}
    for i in range(n):
        provider, model = MODELS[i % len(MODELS)]
        inp, out = rng.randint(1, 20000), rng.randint(0, 3000)
        cread = rng.randint(0, inp // 2) if i % 3 == 0 else 0
        ccreate = rng.randint(0, inp - cread) if provider == "anthropic" and i % 4 == 0 else 0
        style = i % 4
        attrs: dict[str, str] = {"gen_ai.request.model": model}
        if style == 0:  # PromptPulse / current semconv, with our own cost
            attrs.update({"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                          "gen_ai.usage.input_tokens": str(inp), "gen_ai.usage.output_tokens": str(out),
                          "gen_ai.usage.cache_read.input_tokens": str(cread),
                          "gen_ai.usage.cache_creation.input_tokens": str(ccreate),
                          "gen_ai.prompt.name": "support_reply", "gen_ai.prompt.version": "2.1.0",
                          "promptpulse.tags": json.dumps(["beta", f"t{i % 3}"]), "user.id": f"u{i % 17}",
                          "promptpulse.feature": "support"})
            cost = table.cost(provider, model, input_tokens=inp, output_tokens=out, cache_read_tokens=cread,
                              cache_write_tokens=ccreate)
            attrs["promptpulse.cost.usd"] = repr(cost)
            span_cost = Decimal(repr(cost)).quantize(Q12)
        elif style == 1:  # legacy names, cost from model_prices
            attrs.update({"gen_ai.system": provider, "gen_ai.operation.name": "chat",
                          "gen_ai.usage.prompt_tokens": str(inp), "gen_ai.usage.completion_tokens": str(out),
                          "gen_ai.usage.cache_read.input_tokens": str(cread),
                          "gen_ai.usage.cache_write.input_tokens": str(ccreate),
                          "traceloop.prompt.key": "support_reply", "traceloop.prompt.version": "3"})
            span_cost = None
        elif style == 2:  # OpenLIT-ish: its own cost
            attrs.update({"gen_ai.system": provider, "gen_ai.operation.name": "chat",
                          "gen_ai.usage.input_tokens": str(inp), "gen_ai.usage.output_tokens": str(out),
                          "gen_ai.usage.cost": "0.0125"})
            cread = ccreate = 0
            span_cost = Decimal("0.0125")
        else:  # current semconv without cost: priced in SQL, streaming with TTFT
            attrs.update({"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                          "gen_ai.usage.input_tokens": str(inp), "gen_ai.usage.output_tokens": str(out),
                          "gen_ai.usage.cache_read.input_tokens": str(cread), "gen_ai.request.stream": "true",
                          "gen_ai.response.time_to_first_chunk": f"{rng.uniform(0.05, 3):.6f}", "user.id": "u-x"})
            ccreate = 0
            span_cost = None
        if span_cost is None:
            c = table.cost(provider, model, input_tokens=inp, output_tokens=out, cache_read_tokens=cread,
                           cache_write_tokens=ccreate)
            span_cost = Decimal(repr(c or 0.0))
        if i % 5 == 1:
            attrs["promptpulse.retry.count"] = str(i % 4)
            exp["retries"] += i % 4
            exp["retried_calls"] += i % 4 > 0
        status = "Ok"
        category = ""
        if i % 9 == 5:
            err_attrs, category = ERRORS[(i // 9) % len(ERRORS)]
            attrs.update(err_attrs)
            status = "Error"
            exp["errors"][category] = exp["errors"].get(category, 0) + 1
            exp["http_5xx"] += 500 <= int(err_attrs.get("http.response.status_code", "0")) <= 599
        duration = int(rng.lognormvariate(math.log(800), 0.8) * 1e6) + 1
        rows.append(_span(service, attrs, ts=now - rng.randint(0, 7200) * 10**9, duration_ns=duration,
                          status=status))
        exp["calls"] += 1
        exp["input"] += inp
        exp["output"] += out
        exp["cache_read"] += cread
        exp["cache_creation"] += ccreate
        exp["cost"] += span_cost
        exp["latency"].append(duration / 1e6)
        if "gen_ai.response.time_to_first_chunk" in attrs:
            exp["ttft"].append(float(attrs["gen_ai.response.time_to_first_chunk"]) * 1000)
            exp["stream_latency"] += duration / 1e6
        if attrs.get("user.id"):
            exp["users"].add(attrs["user.id"])
    # spans that are not LLM calls: an HTTP span, a tool execution, an agent invocation
    rows.append(_span(service, {"http.request.method": "GET"}, ts=now, duration_ns=10**6))
    rows.append(_span(service, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x"}, ts=now,
                      duration_ns=10**6))
    rows.append(_span(service, {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": "999"},
                      ts=now, duration_ns=10**6))
    rng.shuffle(rows)
    return rows, exp


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_schema_applied_and_recorded(store: Store) -> None:
    tables = {r[0] for r in store.query("SELECT name FROM system.tables WHERE database = {db:String}",
                                        {"db": store.database}).rows}
    assert {"otel_traces", "llm_calls", "llm_calls_1m", "llm_calls_1h", "llm_scores", "model_prices",
            "alert_events", "schema_migrations", "llm_calls_mv", "llm_calls_1m_mv", "llm_calls_1h_mv",
            "llm_scores_1m", "llm_scores_1h", "llm_scores_1m_mv", "llm_scores_1h_mv", "llm_calls_tags_1m",
            "llm_calls_tags_1h", "llm_calls_tags_1m_mv", "llm_calls_tags_1h_mv"} <= tables
    versions = [r[0] for r in store.query("SELECT DISTINCT version FROM schema_migrations ORDER BY 1").rows]
    assert versions == [int(p.name[:3]) for p in sorted((Path(__file__).parents[2] / "schemas").glob("*.sql"))]


def test_model_prices_equal_the_csv(store: Store) -> None:
    from promptpulse.processor.store.schema import PRICE_COLUMNS, _price_row

    rows = store.query(f"SELECT {', '.join(PRICE_COLUMNS)} FROM model_prices FINAL ORDER BY 1, 2, 3, 4, 5").rows
    expected = sorted(_price_row(p) for p in pricing.load_prices())
    assert len(rows) == len(expected) > 100

    def norm(row: Any) -> list[Any]:
        return [Decimal(v) if isinstance(v, (Decimal, float)) else v for v in row]

    assert [norm(r) for r in rows] == [norm(r) for r in expected]
    assert all(r[11].startswith("https://") for r in rows if r[0] != "ollama")  # every row names its source


def test_sql_prices_a_snapshot_by_its_own_row_as_python_does(store: Store) -> None:
    """Spans without their own cost (another instrumentation's) are priced in SQL by the rows Python uses for the
    standard tier: the snapshot's own row, else its family's (the family's row, or its newest snapshot row)."""
    service = f"svc-{uuid.uuid4().hex[:8]}"
    now = time.time_ns()
    cases = {  # model → (provider, expected row model)
        "gpt-4o-2024-05-13": ("openai", "gpt-4o-2024-05-13"),
        "openai/gpt-4o-2024-05-13": ("openrouter", "gpt-4o-2024-05-13"),
        "gpt-4o-2024-08-06": ("openai", "gpt-4o"),
        "gpt-3.5-turbo-1106": ("openai", "gpt-3.5-turbo-1106"),
        "gpt-3.5-turbo-0125": ("openai", "gpt-3.5-turbo"),
        "chatgpt-4o-latest": ("openai", "chatgpt-4o-latest"),
        "gemini-embedding-001": ("gcp.gemini", "gemini-embedding-001"),
        "text-embedding-ada-002": ("openai", "text-embedding-ada-002"),
        "claude-sonnet-4-5-20250929": ("anthropic", "claude-sonnet-4-5"),
    }
    spans = []
    for i, (model, (provider, _)) in enumerate(cases.items()):
        spans.append(_span(service, {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                                     "gen_ai.request.model": model, "gen_ai.usage.input_tokens": str(1000 + i),
                                     "gen_ai.usage.output_tokens": "300", "openai.response.service_tier": "priority"},
                           ts=now + i, duration_ns=10**6))
    store.insert_otel_traces(spans)
    got = {r[0]: (Decimal(r[1]), r[2]) for r in store.query(
        "SELECT request_model, cost_usd, cost_source FROM llm_calls WHERE service = {s:String}", {"s": service}).rows}
    table = pricing.default_table()
    for i, (model, (provider, row_model)) in enumerate(cases.items()):
        price = table.lookup(provider, model)
        assert price is not None and price.model == row_model, model
        # 300 output tokens, no cache: tiers and long-context rates are the instrumentation's (its spans carry
        # their cost); SQL prices the standard tier
        want = (Decimal(1000 + i) * price.input_per_mtok + Decimal(300) * price.output_per_mtok) / 1_000_000
        assert got[model] == (want, "model_prices"), model
    assert got["gpt-4o-2024-05-13"][0] == Decimal("0.0095")  # 1000 * 5.00 + 300 * 15.00 per Mtok


def test_model_normalisation_matches_python(store: Store) -> None:
    from promptpulse.processor.store.schema import sql_string

    names = ["gpt-4o-2024-08-06", "openai/gpt-4o", "models/gemini-2.0-flash", "claude-3-5-sonnet-20241022",
             "GPT-4o-mini-latest", " gemini@20240101 ", "anthropic.claude-3-haiku-v1:0", "a/b/c-v2",
             "o3-mini-2025-01-31-latest", "plain"]
    sql = (f"SELECT arrayMap(m -> replaceRegexpOne(replaceRegexpOne(lower(trimBoth(m)), "
           f"{sql_string(pricing.MODEL_PREFIX_PATTERN)}, ''), {sql_string(pricing.MODEL_SUFFIX_PATTERN)}, ''), "
           f"{{names:Array(String)}})")
    assert list(store.query(sql, {"names": names}).scalar()) == [pricing.normalize_model(n) for n in names]


def test_calls_and_rollups_add_up(store: Store) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    rows, exp = make_calls(service, 420, seed=7)
    for i in range(0, len(rows), 100):
        store.insert_otel_traces(rows[i:i + 100], dedup_token=f"{service}-{i}")
    p = {"s": service}
    assert store.query("SELECT count() FROM otel_traces WHERE ServiceName = {s:String}", p).scalar() == len(rows)
    got = store.query(
        "SELECT count(), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_creation_tokens),"
        " sum(cost_usd), countIf(status = 'error'), uniqExactIf(user_id, user_id != '') FROM llm_calls"
        " WHERE service = {s:String}", p).rows[0]
    assert got[:5] == (exp["calls"], exp["input"], exp["output"], exp["cache_read"], exp["cache_creation"])
    assert abs(Decimal(got[5]) - exp["cost"]) < Decimal("1e-9")
    assert got[6] == sum(exp["errors"].values())
    assert got[7] == len(exp["users"])
    cats = dict(store.query("SELECT error_category, count() FROM llm_calls WHERE service = {s:String}"
                            " AND status = 'error' GROUP BY 1", p).rows)
    assert cats == exp["errors"]
    for table in ("llm_calls_1m", "llm_calls_1h"):
        r = store.query(
            f"SELECT sum(calls), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),"
            f" sum(cache_creation_tokens), sum(cost_usd), sum(errors), sum(errors_rate_limit), sum(errors_timeout),"
            f" sum(errors_auth), sum(errors_validation), sum(errors_model_error), sum(errors_system),"
            f" uniqMerge(users), sum(ttft_count),"
            f" promptpulse_hist_quantiles(sumMap(latency_hist), [0.5, 0.95, 0.99]),"
            f" promptpulse_hist_quantiles(sumMap(ttft_hist), [0.5, 0.95, 0.99])"
            f" FROM {table} WHERE service = {{s:String}}", p).rows[0]
        assert r[:5] == (exp["calls"], exp["input"], exp["output"], exp["cache_read"], exp["cache_creation"])
        assert abs(Decimal(r[5]) - exp["cost"]) < Decimal("1e-9"), table
        assert r[6] == sum(exp["errors"].values())
        assert list(r[7:13]) == [exp["errors"].get(c, 0) for c in ("rate_limit", "timeout", "auth", "validation",
                                                                    "model_error", "system")]
        assert r[13] == len(exp["users"])
        assert r[14] == len(exp["ttft"])
        for series, got_q in ((exp["latency"], r[15]), (exp["ttft"], r[16])):
            for q, value in zip((0.5, 0.95, 0.99), got_q, strict=False):
                want = _nearest_rank(series, q)
                assert abs(value - want) <= 0.0101 * want + 1e-6, (table, q, value, want)
    # the 5xx/retry/stream counters, in both rollups (1h is fed from 1m) vs the raw rows and vs what was sent
    assert exp["http_5xx"] > 0 and exp["retried_calls"] > 0 and exp["stream_latency"] > 0
    raw = store.query("SELECT countIf(http_status BETWEEN 500 AND 599), sum(retry_count), countIf(retry_count > 0),"
                      " sumIf(toFloat64(latency_ms), ttft_ms IS NOT NULL), sum(toFloat64(latency_ms)),"
                      " sum(toFloat64(ifNull(ttft_ms, 0))) FROM llm_calls WHERE service = {s:String}", p).rows[0]
    assert raw[:3] == (exp["http_5xx"], exp["retries"], exp["retried_calls"])
    # latency is rounded to 12 mantissa bits (schemas/003): each value within 1.2e-4 of the span's duration
    assert raw[3] == pytest.approx(exp["stream_latency"], rel=1.25e-4)
    for table in ("llm_calls_1m", "llm_calls_1h"):
        r = store.query(f"SELECT sum(http_5xx), sum(retries), sum(retried_calls), sum(stream_latency_ms_sum),"
                        f" sum(latency_ms_sum), sum(ttft_ms_sum) FROM {table} WHERE service = {{s:String}}", p).rows[0]
        assert r[:3] == raw[:3], table
        assert list(r[3:]) == pytest.approx(list(raw[3:]), rel=1e-12), table  # float sums: summation order only


def test_score_rollups_attribute_scores_to_their_calls(store: Store) -> None:
    """llm_scores_1m / llm_scores_1h (007): each score lands on its call's dimensions, looked up at insert time;
    trace-level scores on the trace's first call; scores of unknown calls stay unattributed."""
    import datetime as dt

    service = f"svc-{uuid.uuid4().hex[:8]}"
    rows, _ = make_calls(service, 90, seed=11)
    store.insert_otel_traces(rows, dedup_token=f"{service}-calls")
    calls = store.query("SELECT trace_id, span_id, prompt_version, if(request_model != '', request_model, "
                        "response_model) FROM llm_calls WHERE service = {s:String} ORDER BY timestamp",
                        {"s": service}).rows
    ts = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    name = f"quality-{service}"  # this test's own score name: its orphan row is told apart from other tests'
    scores, want = [], {}
    for i, (trace_id, span_id, version, model) in enumerate(calls[:40]):
        value = round((i * 37 % 100) / 100, 2)
        scores.append((ts, trace_id, span_id if i % 4 else "", name, value, "", "", "test"))
        key = (name, service, version, model)
        n, total, pos, hist, lo, hi = want.get(key, (0, 0.0, 0, {}, 9.0, -9.0))
        bucket = int(value * 10 + 1e-9)
        want[key] = (n + 1, total + value, pos + (value >= 0.5), {**hist, bucket: hist.get(bucket, 0) + 1},
                     min(lo, value), max(hi, value))
    scores.append((ts, "f" * 32, "e" * 16, name, 0.25, "", "", "test"))  # no such call
    store.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment",
                                     "source"), scores, dedup_token=f"{service}-scores")
    store.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment",
                                     "source"), scores, dedup_token=f"{service}-scores")  # a retried batch
    traces = [c[0] for c in calls[:40]] + ["f" * 32]
    for table in ("llm_scores_1m", "llm_scores_1h"):
        got = store.query(
            f"SELECT name, service, prompt_version, model, sum(scores), sum(value_sum), sum(positives),"
            f" sumMap(value_hist), min(value_min), max(value_max), sum(unattributed), uniqMerge(scored_calls)"
            f" FROM {table} WHERE name = {{n:String}}"
            f" GROUP BY ALL ORDER BY ALL", {"n": name}).rows
        attributed = {tuple(r[:4]): r for r in got if r[1] == service}
        assert set(attributed) == set(want), table
        for key, (n, total, pos, hist, lo, hi) in want.items():
            r = attributed[key]
            assert (r[4], r[6], dict(r[7]), r[8], r[9], r[10]) == (n, pos, hist, lo, hi, 0), (table, key)
            assert r[5] == pytest.approx(total, rel=1e-12)
        assert sum(r[11] for r in attributed.values()) == 40
        orphans = [r for r in got if r[1] == ""]
        assert [(r[4], r[10]) for r in orphans] == [(1, 1)], table  # the one score of an unknown call, once
    # the rollups agree with the same attribution done on raw rows at query time
    raw = store.query(
        "SELECT c.prompt_version, count(), sum(s.value) FROM llm_scores AS s"
        " INNER JOIN (SELECT trace_id, argMin(span_id, timestamp) AS first_span FROM llm_calls"
        "             WHERE service = {s:String} GROUP BY trace_id) AS f ON s.trace_id = f.trace_id"
        " INNER JOIN (SELECT trace_id, span_id, prompt_version FROM llm_calls WHERE service = {s:String}) AS c"
        "   ON c.trace_id = s.trace_id AND c.span_id = if(s.span_id = '', f.first_span, s.span_id)"
        " WHERE s.trace_id IN {t:Array(String)} GROUP BY 1 ORDER BY 1", {"s": service, "t": traces}).rows
    for table in ("llm_scores_1m", "llm_scores_1h"):
        roll = store.query(f"SELECT prompt_version, sum(scores), sum(value_sum) FROM {table}"
                           f" WHERE service = {{s:String}} GROUP BY 1 ORDER BY 1", {"s": service}).rows
        assert [r[:2] for r in roll] == [r[:2] for r in raw], table
        assert [r[2] for r in roll] == pytest.approx([r[2] for r in raw], rel=1e-12)


def test_normalised_columns(store: Store) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    now = time.time_ns()
    legacy = _span(service, {"gen_ai.system": "Anthropic", "gen_ai.request.model": "claude-3-5-haiku-20241022",
                             "gen_ai.usage.prompt_tokens": "1000", "gen_ai.usage.completion_tokens": "100",
                             "gen_ai.usage.cache_write.input_tokens": "200", "traceloop.prompt.key": "summarise",
                             "traceloop.prompt.version": "4", "gen_ai.response.finish_reasons": "end_turn"},
                   ts=now, duration_ns=2_000_000_000, resource={"deployment.environment": "staging"})
    failed = _span(service, {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": "10"},
                   ts=now, duration_ns=1_000_000, status="Error",
                   events=[(now, "exception", {"exception.type": "openai.RateLimitError"})])
    store.insert_otel_traces([legacy, failed])
    rows = store.query("SELECT provider, operation, prompt_name, prompt_version, input_tokens, output_tokens,"
                       " cache_creation_tokens, cost_usd, cost_source, environment, finish_reasons, latency_ms,"
                       " status, error_type, error_category FROM llm_calls WHERE service = {s:String}"
                       " ORDER BY input_tokens DESC", {"s": service}).rows
    assert len(rows) == 2
    a, b = rows
    # claude-3-5-haiku: 800 uncached * 0.80 + 200 cache write * 1.00 + 100 out * 4.00 per Mtok
    assert a[:7] == ("anthropic", "", "summarise", "4", 1000, 100, 200)
    assert Decimal(a[7]) == Decimal("0.00124") and a[8] == "model_prices"
    assert a[9] == "staging" and list(a[10]) == ["end_turn"] and a[11] == pytest.approx(2000.0)
    assert a[12] == "ok" and a[14] == ""
    assert b[12:] == ("error", "openai.RateLimitError", "rate_limit")


def test_dedup_token_prevents_double_counting(store: Store) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    rows, exp = make_calls(service, 60, seed=3)
    store.insert_otel_traces(rows, dedup_token=f"batch-{service}")
    store.insert_otel_traces(rows, dedup_token=f"batch-{service}")  # a retried batch
    counts = [store.query(f"SELECT {expr} FROM {t} WHERE {col} = {{s:String}}", {"s": service}).scalar()
              for t, col, expr in (("otel_traces", "ServiceName", "count()"), ("llm_calls", "service", "count()"),
                                   ("llm_calls_1m", "service", "sum(calls)"),
                                   ("llm_calls_1h", "service", "sum(calls)"))]
    assert counts == [len(rows), exp["calls"], exp["calls"], exp["calls"]]
    store.insert_otel_traces(rows, dedup_token=f"other-{service}")  # a different batch with equal content
    assert store.query("SELECT sum(calls) FROM llm_calls_1h WHERE service = {s:String}",
                       {"s": service}).scalar() == 2 * exp["calls"]


def test_insert_rows_scores_and_alerts(store: Store) -> None:
    import datetime as dt

    ts = dt.datetime.now(dt.timezone.utc)
    store.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source"),
                      [(ts, "t" * 32, "s" * 16, "helpfulness", 0.75, "good", "", "user")], dedup_token="score-1")
    store.insert_rows("alert_events", ("timestamp", "rule", "severity", "state", "labels", "value", "threshold",
                                       "message"),
                      [(ts, "p95_latency", "warning", "firing", {"prompt": "x"}, 1234.5, 1000.0, "p95 high")])
    assert store.query("SELECT value FROM llm_scores WHERE trace_id = {t:String}", {"t": "t" * 32}).scalar() == 0.75
    assert store.query("SELECT state FROM alert_events WHERE rule = 'p95_latency'").rows[-1][0] == "firing"
    assert store.ping()


def test_column_order_constant_matches_table(store: Store) -> None:
    cols = [r[0] for r in store.query("SELECT name FROM system.columns WHERE database = {db:String}"
                                      " AND table = 'otel_traces' ORDER BY position", {"db": store.database}).rows]
    assert tuple(cols) == OTEL_TRACES_COLUMNS


def test_latency_and_ttft_bits_read_back_as_the_rounded_float32(store: Store) -> None:
    """latency_ms / ttft_ms (ALIAS over the stored bits, schemas/003) equal main's Float32 columns bit for bit —
    promptpulse_f32_round of the same input — for edge values too: TTFT 0 (not NULL), negative, tiny, huge, NaN."""
    service = f"svc-{uuid.uuid4().hex[:8]}"
    ttfts = ["0", "-0.25", "1e-9", "0.0123456", "3.5", "1e30", "nan", ""]
    durations = [0, 1, 999, 1_000_000, 12_345_678, 3_600_000_000_000, 2**40, 7]
    ts = time.time_ns()
    rows = []
    for i, (ttft, dur) in enumerate(zip(ttfts, durations, strict=True)):
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
        if ttft:
            attrs["gen_ai.response.time_to_first_chunk"] = ttft
        rows.append(_span(service, attrs, ts=ts + i * 1_000_000, duration_ns=dur))
    store.insert_otel_traces(rows)
    got = store.query(
        "SELECT reinterpretAsUInt32(c.latency_ms) = reinterpretAsUInt32(promptpulse_f32_round(toFloat32(t.Duration / "
        "1000000.))), c.ttft_ms IS NULL, reinterpretAsUInt32(ifNull(c.ttft_ms, 0)) = reinterpretAsUInt32(ifNull("
        "promptpulse_f32_round(toFloat32(toFloat64OrNull(t.SpanAttributes['gen_ai.response.time_to_first_chunk']) "
        "* 1000)), 0)), c.ttft_ms FROM llm_calls AS c JOIN otel_traces AS t ON c.span_id = t.SpanId "
        "WHERE c.service = {s:String} AND t.ServiceName = {s:String} ORDER BY c.timestamp", {"s": service}).rows
    assert [r[0] for r in got] == [True] * 8  # latency bit for bit
    assert [r[1] for r in got] == [False] * 7 + [True]  # only the missing TTFT is NULL; 0 is 0
    assert [r[2] for r in got] == [True] * 8  # TTFT bit for bit (NaN stays the same NaN)
    assert got[0][3] == 0.0 and got[1][3] == -250.0 and math.isnan(got[6][3])


def test_ids_and_latencies_round_trip(store: Store) -> None:
    """llm_calls keeps canonical ids as bytes and any other id as sent, latency/TTFT rounded to 12 mantissa bits and
    stored as the Float32's upper 21 bits (schemas/003): trace_id / span_id read back exactly what arrived, latency_ms
    / ttft_ms the rounded Float32; a trace_id filter uses the bloom-filter index."""
    import struct

    def f32_round(x: float) -> float:  # promptpulse_f32_round
        bits = struct.unpack("<I", struct.pack("<f", x))[0]
        return struct.unpack("<f", struct.pack("<I", (bits + 1024) & 0xFFFFF800))[0]

    service = f"svc-{uuid.uuid4().hex[:8]}"
    canonical = uuid.uuid4().hex
    ids = [(canonical, canonical[:16]), (canonical.upper(), canonical[:16].upper()), ("trace-1", "span-1"), ("", ""),
           ("0" * 32, "0" * 16), (canonical[:30], canonical[:15])]
    ts = time.time_ns()
    rows = []
    for i, (tid, sid) in enumerate(ids):
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
        if i == 0:
            attrs["gen_ai.response.time_to_first_chunk"] = "0.01234"  # 12.34 ms
        row = _span(service, attrs, ts=ts + i * 1_000_000, duration_ns=1_234_567_891 + i)  # 1 ms apart
        row[1], row[2] = tid, sid
        rows.append(row)
    store.insert_otel_traces(rows)
    got = store.query("SELECT trace_id, span_id, latency_ms, ttft_ms, trace_id_bin, span_id_bin, trace_id_raw, "
                      "span_id_raw, latency_bits, ttft_bits FROM llm_calls WHERE service = {s:String} "
                      "ORDER BY timestamp", {"s": service}).rows
    assert [(r[0], r[1]) for r in got] == ids
    # only the canonical ids went to the byte columns
    assert [(r[4], r[5]) for r in got] == [(bytes.fromhex(canonical), bytes.fromhex(canonical[:16]))] + [
        (b"\0" * 16, b"\0" * 8)] * (len(ids) - 1)
    assert [(r[6], r[7]) for r in got] == [("", ""), *ids[1:]]
    assert [r[2] for r in got] == [f32_round(1234.567891 + i * 1e-6) for i in range(len(ids))] == [1234.5] * 6
    assert [r[3] for r in got] == [f32_round(12.34)] + [None] * (len(ids) - 1)
    assert abs(got[0][3] - 12.34) <= 12.34 * 1.2e-4
    bits = struct.unpack("<II", struct.pack("<ff", 1234.5, f32_round(12.34)))
    assert [(r[8], r[9]) for r in got] == [(bits[0] >> 11, 1 + (bits[1] >> 11))] + [(bits[0] >> 11, 0)] * 5
    # the cluster's sharding key (over the stored columns) puts each call where its spans and scores go
    key = schema.SHARDING_KEYS["llm_calls"]
    hashes = store.query(f"SELECT {key}, cityHash64(trace_id) FROM llm_calls WHERE service = {{s:String}} "
                         "ORDER BY timestamp", {"s": service}).rows
    spans = store.query("SELECT cityHash64(TraceId) FROM otel_traces WHERE ServiceName = {s:String} "
                        "ORDER BY Timestamp", {"s": service}).rows
    assert [a for a, _b in hashes] == [b for _a, b in hashes] == [r[0] for r in spans]
    assert len(set(hashes)) == len(ids)
    p = {"t": canonical, "s": service}
    assert store.query("SELECT count() FROM llm_calls WHERE trace_id = {t:String} AND service = {s:String}",
                       p).scalar() == 1
    plan = "\n".join(r[0] for r in store.query("EXPLAIN indexes = 1 SELECT count() FROM llm_calls "
                                                "WHERE trace_id = {t:String}", p).rows)
    assert "idx_trace_id" in plan


def test_select_star_on_llm_calls_shows_the_readable_columns(store: Store) -> None:
    """The stored byte ids and Float32 bits are MATERIALIZED (schemas/003), so SELECT * leaves them out; the store's
    queries and the read-only API path set asterisk_include_alias_columns, so trace_id, span_id, latency_ms and
    ttft_ms are there instead — what a user typing SELECT * expects."""
    from promptpulse.processor.api import run_read_only

    service = f"svc-{uuid.uuid4().hex[:8]}"
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
             "gen_ai.response.time_to_first_chunk": "0.25"}
    row = _span(service, attrs, ts=time.time_ns(), duration_ns=1_500_000_000)
    store.insert_otel_traces([row])
    sql = f"SELECT * FROM llm_calls WHERE service = '{service}'"
    result = store.query(sql)
    for cols, rows in ((list(result.column_names), result.rows), run_read_only(store, sql)):
        got = dict(zip(cols, rows[0], strict=True))
        assert not {"trace_id_bin", "span_id_bin", "trace_id_raw", "span_id_raw", "latency_bits", "ttft_bits",
                    "trace_id_in", "latency_in"} & set(cols)
        assert (got["trace_id"], got["span_id"], got["latency_ms"], got["ttft_ms"]) == (row[1], row[2], 1500.0, 250.0)


def test_a_cluster_store_joins_sharded_tables_shard_by_shard(stores: dict[str, Store]) -> None:
    """On a cluster, llm_scores x llm_calls (guardrail_failures, the score panels) is a join of two Distributed
    tables, refused by default; both shard by trace_id, so a cluster store asks for the shard-local join."""
    from promptpulse.processor import sql_guard
    from promptpulse.processor.store.server import ServerStore

    setting = "SELECT getSetting('distributed_product_mode')"
    url = stores["server"].url
    cluster = ServerStore(f"{url}{'&' if '?' in url else '?'}cluster=pp_cluster")
    try:
        assert cluster.schema_options.cluster == "pp_cluster"
        assert cluster.query(setting).rows == [("local",)]
        assert sql_guard.run(cluster, setting)[1] == [("local",)]  # user SQL (/api/query) too
    finally:
        cluster.close()
    for single in stores.values():
        assert single.query(setting).rows == [("deny",)]
