"""Alerts, Cost, SLA and Quality in a real browser on known alert events and scores, and their empty states."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from console_page import Page
from console_seed import CALLS, DAY, NOW, totals
from test_console_overview import get

pytestmark = pytest.mark.slow

FIRED = NOW - 5 * DAY
EVENTS = [
    (FIRED, "error_rate", "critical", "firing", {"service": "support-bot", "model": "gpt-4o"}, 7.5, 5.0, "high"),
    (FIRED + dt.timedelta(minutes=10), "error_rate", "critical", "resolved", {"service": "support-bot",
                                                                             "model": "gpt-4o"}, 1.0, 5.0, "ok"),
    (NOW - 3 * DAY, "latency_p99", "warning", "firing", {"service": "docs-bot"}, 6100.0, 5000.0, "slow"),
]
SCORED = [c for c in CALLS if c["prompt"] == "classify"][:10]
# guardrail rule results on the scored calls: pii fails 2 of 4, format 1 of 2 (a failure is a value < 0.5)
GUARDRAIL_CHECKS = [*((SCORED[i], "no_pii", "pii", "pii", v) for i, v in enumerate((0.0, 0.0, 1.0, 1.0))),
                    (SCORED[0], "json_output", "valid_json", "format", 0.0),
                    (SCORED[1], "json_output", "valid_json", "format", 1.0)]


@pytest.fixture(scope="module", autouse=True)
def _alerts_and_scores(store: Any) -> None:
    store.insert_rows("alert_events", ("timestamp", "rule", "severity", "state", "labels", "value", "threshold",
                                       "message"), EVENTS, dedup_token=uuid.uuid4().hex)
    store.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source"),
                      [(c["t"] + dt.timedelta(seconds=1), c["trace_id"], c["span_id"], "helpfulness", (i + 1) / 10,
                        "", "", "test") for i, c in enumerate(SCORED)], dedup_token=uuid.uuid4().hex)
    store.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "source", "rule", "metric",
                                     "guardrail"),
                      [(c["t"] + dt.timedelta(seconds=2), c["trace_id"], c["span_id"], rule, value, "evaluation", rule,
                        metric, kind) for c, rule, metric, kind, value in GUARDRAIL_CHECKS],
                      dedup_token=uuid.uuid4().hex)


def test_empty_sections_say_what_to_do(page: Page) -> None:
    old = f"?range=custom&start={(NOW - 20 * DAY).isoformat()}&end={(NOW - 19 * DAY).isoformat()}".replace("+", "%2B")
    pg = page.open(old)
    assert "No alert fired or resolved in this range" in pg.inner_text("#alerts")
    assert "alert_events" in pg.inner_text("#alerts")
    for section in ("#performance", "#cost", "#sla"):
        assert "No LLM calls in this range" in pg.inner_text(section)
    pg = page.open("?range=1h")
    # firing since 3 days ago: still firing at the end of the last hour
    assert pg.locator('#alerts [data-panel="alerts_firing"] tbody tr').count() == 1
    quality = pg.inner_text("#quality")
    assert "No quality scores or feedback in this range" in quality and "promptpulse.score(" in quality
    assert pg.locator("#quality .tile").count() == 0


def test_alerts_firing_and_history_with_a_link_to_the_series(page: Page) -> None:
    pg = page.open("?range=7d")
    firing = pg.locator('#alerts [data-panel="alerts_firing"] tbody tr')
    assert firing.count() == 1
    assert firing.nth(0).locator('[data-col="rule"]').inner_text() == "latency_p99"
    assert firing.nth(0).locator('[data-col="labels"]').inner_text() == "service=docs-bot"
    assert firing.nth(0).locator('[data-col="value"]').inner_text() == "6,100.000"
    history = pg.locator('#alerts [data-panel="alert_history"] tbody tr')
    assert [history.nth(i).locator('[data-col="rule"]').inner_text() for i in range(3)] == [
        "latency_p99", "error_rate", "error_rate"]
    assert [history.nth(i).locator('[data-col="state"]').inner_text() for i in range(3)] == [
        "firing", "resolved", "firing"]
    page.shot("alerts-7d")
    # the link opens the series: its labels as filters, the hour before the alert
    firing.nth(0).locator("a.series-link").click()
    page.wait_loaded(2)
    assert "service=docs-bot" in pg.url and "range=custom" in pg.url
    assert pg.input_value('[data-filter="service"]') == "docs-bot"


def test_cost_section_equals_the_seed_and_follows_the_budget(page: Page) -> None:
    pg = page.open("?range=7d")
    want = totals(7 * DAY)
    assert page.value("Total cost", "cost") == pytest.approx(float(want["cost"]), rel=1e-9)
    assert page.value("Total cost", "cost") == page.value("Total cost")
    assert page.value("Budget", "cost") == 100
    slices = pg.locator('#cost [data-panel="cost_pie"] li')
    assert {slices.nth(i).get_attribute("data-slice") for i in range(slices.count())} == {
        "support", "summarize", "classify"}
    rows = pg.locator('#cost [data-panel="cost_table"] tbody tr')
    assert rows.count() == 3  # prompt x model x provider
    pg.fill('[data-setting="daily_budget"]', "50")
    pg.press('[data-setting="daily_budget"]', "Enter")
    page.wait_loaded(2)
    assert page.value("Budget", "cost") == 50 and "daily_budget=50" in pg.url
    page.shot("cost-7d")


def test_sla_section(page: Page) -> None:
    pg = page.open("?range=7d")
    want = totals(7 * DAY)
    assert page.value("Failed calls", "sla") == want["errors"] == 22
    assert page.value("Availability", "sla") == pytest.approx(want["success_rate"])
    assert page.value("Allowed failures", "sla") == pytest.approx(want["requests"] * 0.001)
    windows = pg.locator('#sla [data-panel="burn_rate"] tbody tr [data-col="window"]').all_inner_texts()
    assert windows == ["5m", "30m", "60m", "360m"]
    pg.fill('[data-setting="slo_target"]', "90")
    pg.press('[data-setting="slo_target"]', "Enter")
    page.wait_loaded(2)
    assert page.value("Allowed failures", "sla") == pytest.approx(want["requests"] * 0.1)
    code, doc = get(page.base, "/api/panels/error_budget", {"slo_target": "100"})
    assert code == 400 and "slo_target" in doc["error"]


def test_quality_section_on_scores(page: Page) -> None:
    pg = page.open("?range=7d")
    # 10 helpfulness scores 0.1 .. 1.0 and the 6 guardrail checks (3 of them 1.0)
    assert page.value("Scores", "quality") == 16
    assert page.value("Average score", "quality") == pytest.approx((5.5 + 3) / 16)
    assert page.value("Scored calls", "quality") == 10
    assert page.value("Failure rate", "quality") == pytest.approx(50.0)
    assert page.value("Failures", "quality") == 3 and page.value("Checks", "quality") == 6
    by_type = pg.locator('#quality [data-panel="guardrail_by_type"] tbody tr')
    assert [by_type.nth(i).locator('[data-col="type"]').inner_text() for i in range(by_type.count())] == ["pii",
                                                                                                         "format"]
    assert by_type.nth(0).locator('[data-col="failed"]').inner_text() == "2"
    assert by_type.nth(0).locator('[data-col="checked"]').inner_text() == "4"
    assert pg.locator('#quality [data-panel="guardrail_rate_ts"] canvas').count() == 1
    lowest = pg.locator('#quality [data-panel="lowest_scores"] tbody tr')
    assert lowest.count() == 16
    assert lowest.nth(0).locator('[data-col="trace_id"]').inner_text() == SCORED[0]["trace_id"]
    lowest.nth(0).click()
    pg.wait_for_selector("#call-dialog table.scores")
    assert "helpfulness" in pg.inner_text("#call-dialog table.scores")
    pg.click("#call-dialog form button")
    page.shot("quality-7d")


def test_full_page_screenshot(page: Page) -> None:
    page.open("?range=7d")
    page.shot("console-7d")
