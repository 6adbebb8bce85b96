"""Data dirs whose llm_calls has an earlier layout (schemas/003 as it was, kept in tests/processor/data): before the
compact layout (µs timestamps, String ids, Float32 latency_ms / ttft_ms, series + time order) and before the byte
ids (main 89460c6). Applying today's schema over them must not fail (llm_calls_mv's SELECT must fit the old table
too: ClickHouse checks it even when the view exists), and the readers answer exactly as on a new data dir, both for
calls written before the upgrade and after it (old dirs keep their own llm_calls_mv; the latencies here are exact
in every layout)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from old_schema import apply_before

from promptpulse.dashboards import definitions, macros, queries
from promptpulse.instrumentation import pricing
from promptpulse.processor import analytics as an
from promptpulse.processor.store import schema

pytest.importorskip("chdb")

DATA = Path(__file__).parent / "data"
BEFORE = {"before_compact_layout": DATA / "003_llm_calls_before_compact_layout.sql",
          "before_byte_ids": DATA / "003_llm_calls_before_byte_ids.sql"}
NOW = dt.datetime.now(dt.timezone.utc)
T0 = time.time_ns() - 3_600_000_000_000  # an hour ago
USAGE_KNOWN = 13  # schemas/013_usage_known.sql


def _spans(first: int, count: int) -> list[list]:
    rows = []
    for i in range(first, first + count):
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                 "gen_ai.usage.input_tokens": str(100 + 37 * i), "gen_ai.usage.output_tokens": str(20 + 11 * i)}
        if i % 2:
            attrs["gen_ai.response.time_to_first_chunk"] = str(0.25 + i / 100)
        rows.append([T0 + i * 60_000_000_000, f"{i + 1:032x}", f"{i + 1:016x}", "", "", "chat gpt-4o", "Client",
                     "upgrade", {"service.name": "upgrade"}, "scope", "1", attrs, (500 + 100 * i) * 1_000_000, "Ok",
                     "", [], [], [], [], [], [], []])
    return rows


def _answers(data_dir: Path, before: Path | None) -> tuple[str, list[Any]]:
    from promptpulse.processor.store.embedded import EmbeddedStore

    store = EmbeddedStore(str(data_dir))
    try:
        if before is not None:  # the whole schema as it was: today's files before 013 with the earlier 003
            apply_before(store, USAGE_KNOWN, texts={"llm_calls": before.read_text(encoding="utf-8")})
        else:
            store.apply_schema()
        store.insert_otel_traces(_spans(0, 3), dedup_token=uuid.uuid4().hex)  # written before the upgrade
        store.apply_schema()
        store.apply_schema()
        kind = store.query("SELECT concat(type, ' ', default_kind) FROM system.columns WHERE database = 'promptpulse' "
                           "AND table = 'llm_calls' AND name = 'latency_ms'").scalar()
        store.insert_otel_traces(_spans(3, 3), dedup_token=uuid.uuid4().hex)  # and after it
        start, end = NOW - dt.timedelta(hours=3), NOW
        variables = {v: macros.ALL for v in queries.VARIABLES}  # every filter variable the panels use
        slowest = macros.expand(definitions.all_panels()["slowest_calls"].sql, time_from=start, time_to=end,
                                variables=variables)
        _fmt, limit, sql, p = an.export_plan({"start": start.isoformat(), "end": end.isoformat()}, now=NOW)
        return kind, [
            store.query("SELECT trace_id, span_id, latency_ms, ttft_ms FROM llm_calls ORDER BY timestamp").rows,
            [r[-7:] for r in store.query(slowest).rows],
            [(r["trace_id"], r["latency_ms"], r["ttft_ms"]) for r in an.export_rows(store, sql, p, limit)],
            store.query("SELECT sum(calls), sum(latency_ms_sum), sum(ttft_count), sum(ttft_ms_sum), sum(cost_usd) "
                        "FROM llm_calls_1d").rows,
            store.query("SELECT sum(cost_usd), groupArray(cost_usd) FROM (SELECT cost_usd FROM llm_calls "
                        "ORDER BY timestamp)").rows,
            # the types readers see (stored or ALIAS alike)
            store.query("SELECT name, type FROM system.columns WHERE database = 'promptpulse' AND table = 'llm_calls' "
                        "AND name IN ('trace_id', 'span_id', 'latency_ms', 'ttft_ms', 'cost_usd', 'is_stream') "
                        "ORDER BY name").rows,
        ]
    finally:
        store.close()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Any]]:
    """The answers of a data dir created with today's schema."""
    return _answers(tmp_path_factory.mktemp("new"), None)


def test_fresh_data_dir_answers(fresh: tuple[str, list[Any]]) -> None:
    kind, answers = fresh
    assert kind == "Float32 ALIAS"
    assert [(r[0], r[1], r[2], r[3]) for r in answers[0]] == [
        (f"{i + 1:032x}", f"{i + 1:016x}", 500 + 100 * i, pytest.approx(250 + 10 * i, abs=1e-3) if i % 2 else None)
        for i in range(6)]
    assert len(answers[2]) == 6
    # gpt-4o from the bundled prices, in Decimal: the same exact costs in every layout and in the rollups
    price = pricing.default_table().lookup("openai", "gpt-4o")
    costs = [(Decimal(100 + 37 * i) * price.input_per_mtok + Decimal(20 + 11 * i) * price.output_per_mtok)
             / 1_000_000 for i in range(6)]
    assert answers[3] == [(6, sum(500 + 100 * i for i in range(6)), 3, pytest.approx(260 + 280 + 300, abs=1e-2),
                           sum(costs))]
    assert answers[4] == [(sum(costs), costs)] and min(costs) > 0


@pytest.mark.parametrize("layout", sorted(BEFORE))
def test_previous_llm_calls_layout_upgrades_and_reads_the_same(tmp_path: Path, layout: str,
                                                               fresh: tuple[str, list[Any]]) -> None:
    kind, answers = _answers(tmp_path / "old", BEFORE[layout])
    assert kind == "Float32 "
    assert answers == fresh[1]


def _usage_spans(first: int) -> list[list]:
    """Four calls: usage reported, usage reported as explicit zeros, no usage at all (a stream read without
    include_usage), and an unpriced model with usage."""
    kinds = [{"gen_ai.usage.input_tokens": "100", "gen_ai.usage.output_tokens": "20"},
             {"gen_ai.usage.input_tokens": "0", "gen_ai.usage.output_tokens": "0"},
             {"gen_ai.request.stream": "true"},
             {"gen_ai.request.model": "no-such-model-x", "gen_ai.usage.input_tokens": "7",
              "gen_ai.usage.output_tokens": "3"}]
    rows = []
    hour = T0 // 3_600_000_000_000 * 3_600_000_000_000  # one minute, hour and day row per series: no split rows
    for i, extra in enumerate(kinds):
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                 **extra}
        n = first + i
        rows.append([hour + n * 1_000_000_000, f"{n + 1:032x}", f"{n + 1:016x}", "", "", "chat", "Client", "upgrade",
                     {"service.name": "upgrade"}, "scope", "1", attrs, 500_000_000, "Ok", "", [], [], [], [], [], [],
                     []])
    return rows


def test_data_dir_before_usage_known_upgrades_in_place(tmp_path: Path) -> None:
    """A data dir from before 013: its calls get usage_known from "some token count > 0" (an old 0-token call is
    counted as without usage, never as free), its rollup rows keep their sums; calls written after the upgrade are
    flagged exactly (explicit zeros are known usage)."""
    from promptpulse.processor.store.embedded import EmbeddedStore

    store = EmbeddedStore(str(tmp_path / "old"))
    try:
        apply_before(store, USAGE_KNOWN)
        store.insert_otel_traces(_usage_spans(0), dedup_token=uuid.uuid4().hex)
        store.apply_schema()
        store.apply_schema()
        store.insert_otel_traces(_usage_spans(10), dedup_token=uuid.uuid4().hex)
        rows = store.query("SELECT input_tokens, usage_known, cost_known, cost_source, cost_usd > 0 FROM llm_calls "
                           "ORDER BY timestamp").rows
        assert rows == [
            # before: cost_source as the old view wrote it; usage_known derived from the tokens
            (100, True, True, "model_prices", True), (0, False, False, "model_prices", False),
            (0, False, False, "model_prices", False), (7, True, False, "", False),
            # after
            (100, True, True, "model_prices", True), (0, True, True, "model_prices", False),
            (0, False, False, "unknown", False), (7, True, False, "unpriced", False)]
        cost = store.query("SELECT sum(cost_usd) FROM llm_calls").scalar()
        for table in ("llm_calls_1m", "llm_calls_1h", "llm_calls_1d"):
            got = store.query(f"SELECT sum(calls), sum(calls_without_usage), sum(calls_unpriced), "
                              f"sum(calls_without_cost), sum(input_tokens), sum(cost_usd) FROM {table}").rows
            # the old calls' series row mixes calls with and without tokens: it cannot be split (counted as known);
            # the unpriced model's old row has tokens (known usage) and no way to tell it was unpriced
            assert got == [(8, 1, 1, 2, 214, cost)], table
    finally:
        store.close()


PRICE_TIERS = 17  # schemas/017_model_price_tiers.sql


def test_model_prices_before_price_tiers_upgrade_in_place(tmp_path: Path) -> None:
    """A data dir from before 017: model_prices keyed by (provider, model, date) with family names only (the loader
    then cut snapshot dates off). The upgrade adds the tier, threshold, 1-hour and source columns to the table and its
    sorting key, replaces the rows by today's table, keeps the costs stored before it, and prices a snapshot by its
    own row after it."""
    import dataclasses

    from promptpulse.processor.store.embedded import EmbeddedStore

    store = EmbeddedStore(str(tmp_path / "old"))
    try:
        apply_before(store, PRICE_TIERS, prices=False)
        base = [p for p in pricing.load_prices() if not p.service_tier and not p.above_input_tokens]
        old_rows = {(p.provider, pricing.normalize_model(p.model), p.effective_date):
                    dataclasses.replace(p, model=pricing.normalize_model(p.model)) for p in base
                    if pricing.normalize_model(p.model) == p.model or p.model.startswith("gemini-embedding")}
        assert schema.load_model_prices(store, prices=list(old_rows.values())) == len(old_rows)
        assert store.query("SELECT count() FROM model_prices FINAL WHERE model = 'gemini-embedding'").scalar() == 1

        def span(n: int, model: str) -> list:
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
                     "gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": "300"}
            return [T0 + n * 1_000_000_000, f"{n + 1:032x}", f"{n + 1:016x}", "", "", "chat", "Client", "upgrade",
                    {"service.name": "upgrade"}, "scope", "1", attrs, 500_000_000, "Ok", "", [], [], [], [], [], [], []]

        store.insert_otel_traces([span(0, "gpt-4o-2024-05-13")], dedup_token=uuid.uuid4().hex)
        store.apply_schema()
        store.apply_schema()
        store.insert_otel_traces([span(1, "gpt-4o-2024-05-13")], dedup_token=uuid.uuid4().hex)
        key = store.query("SELECT sorting_key FROM system.tables WHERE database = 'promptpulse' "
                          "AND name = 'model_prices'").scalar()
        assert key == "provider, model, effective_date, service_tier, above_input_tokens"
        rows = store.query(f"SELECT {', '.join(schema.PRICE_COLUMNS)} FROM model_prices FINAL ORDER BY 1, 2, 3, 4, 5")
        assert [tuple(Decimal(v) if isinstance(v, Decimal | float) else v for v in r) for r in rows.rows] == sorted(
            tuple(Decimal(v) if isinstance(v, Decimal) else v for v in schema._price_row(p))
            for p in pricing.load_prices())
        costs = store.query("SELECT cost_usd, cost_source FROM llm_calls ORDER BY timestamp").rows
        # before: the family rate (1000 * 2.50 + 300 * 10.00 per Mtok); after: the snapshot's (1000 * 5 + 300 * 15)
        assert [(Decimal(c), s) for c, s in costs] == [(Decimal("0.0055"), "model_prices"),
                                                      (Decimal("0.0095"), "model_prices")]
    finally:
        store.close()
