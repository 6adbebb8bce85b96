"""Issue 15: an in-app judge's own LLM calls (feature promptpulse.evaluation) are never the app's traffic. The rollups
skip them (schemas/018); every reader of raw llm_calls that computes the app's numbers skips them too
(dashboards/queries.APP_CALLS): the analytics API on raw rows, /api/metrics, the error groups, the raw drill-down
panels and the prompt-change annotation, so a raw answer equals the rollup answer. The evaluation cost panel and the
calls of one trace still show them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from analytics_seed import UTC, call, row

from promptpulse.dashboards import alerts, definitions, macros
from promptpulse.instrumentation.semconv import EVALUATION_FEATURE

pytest.importorskip("chdb")

START = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
END = START + dt.timedelta(hours=1)
N, M = 12, 5  # app calls, judge calls
ALL_VARS = {v: macros.ALL for v in ("service", "environment", "prompt", "version", "model", "provider", "feature",
                                    "tag", "score_name")} | {"trace_id": "", "trace_url": definitions.DEFAULT_TRACE_URL}


def _calls() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # the judges run inside the app's call (same prompt, model and user) and are slower, costlier and fail more:
    # counted as app traffic they would move every number below
    app = [call(START + dt.timedelta(minutes=2 * i + 1), "support", "1", latency_ms=400 + 10 * i, cost="0.001",
                user="u1", tags=("web",), error=("RateLimitError", "429", "rate_limit") if i == 0 else None)
           for i in range(N)]
    judges = [call(START + dt.timedelta(minutes=2 * i + 2), "support", "1", latency_ms=5000 + i, cost="0.25",
                   user="u1", tags=("web",), feature=EVALUATION_FEATURE,
                   error=("JudgeTimeout", "", "timeout") if i < 2 else None)
              for i in range(M)]
    return app, judges


APP, JUDGES = _calls()
APP_COST = Decimal("0.001") * N  # 0.012; the judges' 5 x 0.25 = 1.25 never in it


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from promptpulse.processor.store.embedded import EmbeddedStore

    s = EmbeddedStore(str(tmp_path_factory.mktemp("judge")))
    try:
        s.apply_schema()
        rows = [row(c) for c in (*APP, *JUDGES)]
        for i, r in enumerate(rows):  # the app's prompt text and the judge's own (a prompt change if mixed)
            r[11]["promptpulse.prompt.fingerprint"] = ("a" if i < N else "b") * 16
        s.insert_otel_traces(rows, dedup_token=uuid.uuid4().hex)
        yield s
    finally:
        s.close()


def _range() -> dict[str, str]:
    return {"start": START.isoformat(), "end": END.isoformat()}


def test_the_seed(store) -> None:
    assert store.query("SELECT count(), countIf(feature = {f:String}) FROM llm_calls",
                       {"f": EVALUATION_FEATURE}).rows == [(N + M, M)]
    assert store.query("SELECT sum(calls), sum(errors), sum(cost_usd) FROM llm_calls_1m").rows == [
        (N, 1, APP_COST)]


@pytest.mark.parametrize("params", [
    {"by": "user_type"},  # raw rows (and the users' first calls)
    {"by": "tag"},  # raw rows
    {"by": "prompt", "user_id": "u1"},  # a raw-only filter
    {"by": "prompt"},  # the 1-minute rollup: the same numbers
])
def test_analytics_counts_the_app_calls_only(store, params: dict[str, str]) -> None:
    from promptpulse.processor import analytics as an

    got = an.cohorts(store, {**params, **_range()})
    assert [(c["cohort"], c["requests"], c["errors"], Decimal(str(c["total_cost_usd"])), c["p99_latency_ms"] < 600,
             c["total_tokens"]) for c in got["cohorts"]] == [
        ({"user_type": "new", "tag": "web"}.get(params["by"], "support"), N, 1, APP_COST, True, N * 120)]
    if params["by"] == "user_type":
        assert got["cohorts"][0]["users"] == 1


def test_error_groups_leave_out_the_judges_errors(store) -> None:
    from promptpulse.processor import analytics as an

    got = an.errors(store, _range())
    assert got["total_errors"] == 1 and got["by_category"] == {"rate_limit": 1}
    assert [(g["error_type"], g["count"]) for g in got["groups"]] == [("RateLimitError", 1)]


def test_api_metrics_counts_the_app_calls_only(store) -> None:
    from promptpulse.processor import api

    m = api.get_metrics(store, {"prompt_id": "support", **_range()})["metrics"]
    assert (m["total_requests"], m["errors"], m["total_cost_usd"], m["total_tokens"]) == (
        N, {"rate_limit": 1}, 0.012, N * 120)
    assert m["success_rate"] == round(100 * (N - 1) / N, 2) and m["p99_latency_ms"] == 510.0


def _panel(store, key: str, sql: str | None = None) -> list[dict[str, Any]]:
    sql = macros.expand(sql or definitions.all_panels()[key].sql, time_from=START, time_to=END, interval_s=60,
                        variables=ALL_VARS)
    return store.query(sql).dicts()


def test_raw_dashboard_panels_show_the_app_calls_only(store) -> None:
    slowest = _panel(store, "slowest_calls")
    assert len(slowest) == N and slowest[0]["latency_ms"] == 510  # the judges (5000 ms and more) are not listed
    failed = _panel(store, "failed_calls")
    assert [r["error_category"] for r in failed] == ["rate_limit"]
    assert _panel(store, "requests")[0]["Requests"] == N  # the rollup panel says the same
    # the judges' prompt (second fingerprint of support v1) is no prompt change of the app
    assert _panel(store, "", definitions.FINGERPRINT_ANNOTATION.sql) == []
    assert store.query("SELECT uniqExact(prompt_fingerprint) FROM llm_calls WHERE prompt_name = 'support'"
                       ).scalar() == 2


def test_the_trace_drill_down_and_the_evaluation_cost_still_show_the_judges(store) -> None:
    sql = definitions.all_panels()["trace_calls"].sql
    sql = macros.expand(sql, time_from=START, time_to=END, variables={**ALL_VARS, "trace_id": JUDGES[0]["trace_id"]})
    assert [r["latency_ms"] for r in store.query(sql).dicts()] == [5000]
    cost = store.query("SELECT sum(calls), sum(cost_usd) FROM evaluation_cost").rows
    assert [(c, Decimal(str(v))) for c, v in cost] == [(M, Decimal("1.25"))]


def test_an_alert_counts_the_app_calls_only(store) -> None:
    rule = alerts.RULES_BY_NAME["error_rate"]
    p = rule.parameters(now=END.replace(tzinfo=None), window_s=3600, min_calls=1, max_error_pct=0.0)
    rows = store.query(rule.sql, p).dicts()
    assert [(r["prompt_name"], r["n_calls"], r["n_errors"]) for r in rows] == [("support", N, 1)]
    assert rows[0]["value"] == pytest.approx(100 / N)
