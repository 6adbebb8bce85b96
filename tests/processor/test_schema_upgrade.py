"""A data dir whose llm_calls predates the compact layout (µs timestamps, Float32 latency_ms / ttft_ms, series + time
order: schemas/003 as it was, kept in tests/processor/data): applying today's schema must not fail (llm_calls_mv's
SELECT must fit the old table too: ClickHouse checks it even when the view exists), and the readers answer exactly as
on a new data dir (old dirs keep their own llm_calls_mv, so latency is not rounded there: the values here are exact
in both)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from promptpulse.dashboards import definitions, macros
from promptpulse.processor import analytics as an
from promptpulse.processor.store import schema

pytest.importorskip("chdb")

BEFORE = Path(__file__).parent / "data" / "003_llm_calls_before_compact_layout.sql"
NOW = dt.datetime.now(dt.timezone.utc)
T0 = time.time_ns() - 3_600_000_000_000  # an hour ago


def _spans() -> list[list]:
    rows = []
    for i in range(6):
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
        if i % 2:
            attrs["gen_ai.response.time_to_first_chunk"] = str(0.25 + i / 100)
        rows.append([T0 + i * 60_000_000_000, f"{i + 1:032x}", f"{i + 1:016x}", "", "", "chat gpt-4o", "Client",
                     "upgrade", {"service.name": "upgrade"}, "scope", "1", attrs, (500 + 100 * i) * 1_000_000, "Ok",
                     "", [], [], [], [], [], [], []])
    return rows


def _answers(data_dir: Path, *, previous_layout: bool) -> tuple[str, list[Any]]:
    from promptpulse.processor.store.embedded import EmbeddedStore

    store = EmbeddedStore(str(data_dir))
    try:
        if previous_layout:
            opts = schema.SchemaOptions()
            for m in schema.migrations()[:2]:
                for stmt in schema.render(m.sql, opts):
                    store.command(stmt)
            for stmt in schema.render(BEFORE.read_text(encoding="utf-8"), opts):
                store.command(stmt)
        store.apply_schema()
        store.apply_schema()
        kind = store.query("SELECT concat(type, ' ', default_kind) FROM system.columns WHERE database = 'promptpulse' "
                           "AND table = 'llm_calls' AND name = 'latency_ms'").scalar()
        store.insert_otel_traces(_spans(), dedup_token=uuid.uuid4().hex)
        start, end = NOW - dt.timedelta(hours=3), NOW
        variables = {v: macros.ALL for v in ("service", "environment", "prompt", "version", "model", "provider")}
        slowest = macros.expand(definitions.all_panels()["slowest_calls"].sql, time_from=start, time_to=end,
                                variables=variables)
        _fmt, limit, sql, p = an.export_plan({"start": start.isoformat(), "end": end.isoformat()}, now=NOW)
        return kind, [
            store.query("SELECT trace_id, span_id, latency_ms, ttft_ms FROM llm_calls ORDER BY timestamp").rows,
            [r[-7:] for r in store.query(slowest).rows],
            [(r["trace_id"], r["latency_ms"], r["ttft_ms"]) for r in an.export_rows(store, sql, p, limit)],
            store.query("SELECT sum(calls), sum(latency_ms_sum), sum(ttft_count), sum(ttft_ms_sum) FROM llm_calls_1d")
            .rows,
        ]
    finally:
        store.close()


def test_previous_llm_calls_layout_upgrades_and_reads_the_same(tmp_path: Path) -> None:
    old_kind, old = _answers(tmp_path / "old", previous_layout=True)
    new_kind, new = _answers(tmp_path / "new", previous_layout=False)
    assert (old_kind, new_kind) == ("Float32 ", "Float32 ")
    assert old == new
    assert [(r[0], r[2], r[3]) for r in new[0]] == [
        (f"{i + 1:032x}", 500 + 100 * i, pytest.approx(250 + 10 * i, abs=1e-3) if i % 2 else None) for i in range(6)]
