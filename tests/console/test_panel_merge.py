"""One-row panels over one source run as one statement (panels.merge_totals): each panel keeps its own column
expressions, so its answer is the one it gives alone, and the Overview reads the rollups three times, not nine."""

from __future__ import annotations

import datetime as dt
from typing import Any

from console_seed import DAY, NOW

from promptpulse.dashboards import queries as q
from promptpulse.processor.console import panels

OVERVIEW = ["requests", "rpm", "peak_rpm", "trend", "success_rate", "error_rate", "latency_stats", "tokens",
            "cost_stats"]


def test_split_totals_gives_back_what_totals_wrote() -> None:
    split = [k for k, p in panels.catalog().items() if q.split_totals(p.sql)]
    assert {"requests", "rpm", "success_rate", "error_rate", "latency_stats", "tokens", "cost_stats", "sla_stats",
            "error_budget"} <= set(split)
    for k in split:
        columns, source = q.split_totals(panels.catalog()[k].sql)
        assert q.totals(columns, source=source) == panels.catalog()[k].sql
    # any other shape is left alone
    assert q.split_totals(panels.catalog()["peak_rpm"].sql) is None
    assert q.split_totals(q.totals([("sum(calls)", "n")]) + "\nLIMIT 1") is None
    assert q.split_totals(q.breakdown([("model", "model")], [(q.CALLS, "n")], order="n")) is None


def test_overview_runs_as_three_statements() -> None:
    assert panels.merge_totals(OVERVIEW) == [
        ["requests", "rpm", "success_rate", "error_rate", "latency_stats", "tokens", "cost_stats"],
        ["peak_rpm"], ["trend"]]


def test_a_column_name_with_two_expressions_keeps_panels_apart(monkeypatch: Any) -> None:
    catalog = dict(panels.catalog())
    a = catalog["requests"]
    catalog["same_name"] = type(a)("same_name", "Same name", "stat", q.totals([(q.ERRORS, "Requests")]))
    monkeypatch.setattr(panels, "catalog", lambda: catalog)
    assert panels.merge_totals(["requests", "same_name", "error_rate"]) == [["requests", "error_rate"],
                                                                           ["same_name"]]


def test_merged_answers_are_each_panels_own(store: Any) -> None:
    p = panels.PanelParams(NOW - DAY, NOW + dt.timedelta(minutes=1))
    merged = panels.run_many(store, OVERVIEW, p)
    for k in OVERVIEW:
        alone = panels.run(store, k, p)
        assert merged[k]["columns"] == alone["columns"], k
        assert merged[k]["rows"] == alone["rows"], k
    n, inp = store.query("SELECT count(), sum(input_tokens) FROM llm_calls WHERE timestamp >= {s:DateTime64(3)} "
                         "AND timestamp < {e:DateTime64(3)}", {"s": p.start, "e": p.end}).rows[0]
    assert n > 100 and merged["requests"]["rows"] == [[n]]
    assert merged["tokens"]["rows"][0][0] == inp
    assert merged["tokens"]["columns"][-1] == merged["cost_stats"]["columns"][3] == "Calls without usage"
