"""schemas/018: an in-app judge's calls (feature promptpulse.evaluation) stay out of the rollups (the service totals),
before and after the upgrade, while evaluation_cost counts exactly them."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from old_schema import apply_before

pytest.importorskip("chdb")

T0 = time.time_ns() - 3_600_000_000_000


def _span(n: int, judge: bool) -> list:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
             "gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": "300"}
    if judge:
        attrs["promptpulse.feature"] = "promptpulse.evaluation"
        attrs["promptpulse.cost.usd"] = "0.25"
    else:
        attrs["promptpulse.cost.usd"] = "1.5"
    return [T0 + n * 1_000_000_000, f"{n + 1:032x}", f"{n + 1:016x}", "", "", "chat", "Client", "app",
            {"service.name": "app"}, "scope", "1", attrs, 500_000_000, "Ok", "", [], [], [], [], [], [], []]


def test_judge_calls_stay_out_of_the_rollups_before_and_after_018(tmp_path: Path) -> None:
    from promptpulse.processor.store.embedded import EmbeddedStore

    store = EmbeddedStore(str(tmp_path / "old"))
    try:
        apply_before(store, 18)
        # before 018: 2 app calls and 1 judge call, all three in the rollups
        store.insert_otel_traces([_span(0, False), _span(1, False), _span(2, True)], dedup_token=uuid.uuid4().hex)
        assert store.query("SELECT sum(calls) FROM llm_calls_1d").scalar() == 3
        store.apply_schema()
        store.apply_schema()
        # after: 3 app calls and 2 judge calls more
        store.insert_otel_traces([_span(3 + i, i >= 3) for i in range(5)], dedup_token=uuid.uuid4().hex)
        assert store.query("SELECT count() FROM llm_calls").scalar() == 8
        for table in ("llm_calls_1m", "llm_calls_1h", "llm_calls_1d"):
            got = store.query(f"SELECT sum(calls), sum(input_tokens), sum(cost_usd), groupUniqArray(feature) "
                              f"FROM {table}").rows
            assert [(c, t, Decimal(v), f) for c, t, v, f in got] == [(5, 5000, Decimal("7.5"), [""])], table
        got = store.query("SELECT sum(calls), sum(cost_usd), sum(calls_without_cost) FROM evaluation_cost").rows
        assert [(c, Decimal(str(v)), w) for c, v, w in got] == [(3, Decimal("0.75"), 0)]
    finally:
        store.close()
