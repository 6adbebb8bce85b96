"""Performance charts, the prompt breakdown and its drill-down, the comparison and Live mode in a real browser,
against the API's answers for the same range."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from console_page import Page
from console_seed import CALLS, HOUR, NOW, in_last
from test_console_overview import get

pytestmark = pytest.mark.slow


def page_range(page: Page) -> dict[str, str]:
    start, end = page.page.evaluate("range().map((d) => d.toISOString())")
    return {"start": start, "end": end}


def test_performance_charts_show_the_series(page: Page) -> None:
    pg = page.open("?range=1h")
    for key in ("rpm_by_prompt", "success_ts", "latency_ts", "errors_by_category", "tokens_ts"):
        box = pg.locator(f'#performance [data-panel="{key}"]')
        assert int(box.get_attribute("data-points")) > 0, key
        box.locator("canvas").first.wait_for()
    assert set(pg.get_attribute('#performance [data-panel="rpm_by_prompt"]', "data-series").split("|")) == {
        "support", "summarize"}
    series = pg.get_attribute('#performance [data-panel="tokens_ts"]', "data-series")
    assert series == "input|output|calls without usage"
    # no streamed calls in the seed: the TTFT chart says so instead of drawing zeros
    assert "No streamed calls" in pg.inner_text('#performance [data-panel="ttft_ts"]')
    page.shot("performance-1h")


def test_breakdown_rows_equal_the_api(page: Page) -> None:
    pg = page.open("?range=24h")
    code, doc = get(page.base, "/api/panels/prompt_breakdown", page_range(page))
    assert code == 200, doc
    api_rows = [dict(zip(doc["columns"], r, strict=True)) for r in doc["rows"]]
    assert [(r["prompt"], r["version"], r["requests"]) for r in api_rows] == [
        ("support", "2.0", 100), ("support", "1.0", 40), ("summarize", "1", 20)]
    shown = pg.locator("#breakdown tbody tr")
    assert shown.count() == 3
    for i, r in enumerate(api_rows):
        cells = shown.nth(i)
        assert cells.locator('[data-col="prompt"]').inner_text() == r["prompt"]
        assert cells.locator('[data-col="version"]').inner_text() == r["version"]
        assert cells.locator('[data-col="requests"]').inner_text() == str(r["requests"])
        assert cells.locator('[data-col="success %"]').inner_text() == f"{r['success %']:.2f} %"
    # support 2.0: 80 % success, red; summarize: 100 %, green (the seed's thresholds)
    assert "red" in shown.nth(0).locator('[data-col="success %"]').get_attribute("class")
    assert "green" in shown.nth(2).locator('[data-col="success %"]').get_attribute("class")
    # calls without usage: counted on support 1.0's row
    assert shown.nth(1).locator('[data-col="calls without usage"]').inner_text() == "5"
    # sortable: requests ascending puts summarize first
    pg.click('#breakdown th:has-text("requests")')
    pg.click('#breakdown th:has-text("requests")')
    assert shown.nth(0).locator('[data-col="prompt"]').inner_text() == "summarize"


def test_drill_down_opens_a_prompt_with_its_slowest_and_failed_calls(page: Page) -> None:
    pg = page.open("?range=24h")
    pg.click('#breakdown tbody tr:has(td[data-col="version"]:text-is("1.0"))')
    pg.wait_for_selector('#drilldown:not([hidden]) [data-panel="failed_calls"] tbody tr')
    assert pg.inner_text("#drill-title") == "support v1.0"
    failed = [c for c in CALLS if c["prompt"] == "support" and c["version"] == "1.0" and c["error"]]
    shown = pg.locator('#drilldown [data-panel="failed_calls"] tbody tr')
    assert shown.count() == len(failed) == 2
    ids = {shown.nth(i).locator('[data-col="trace_id"]').inner_text() for i in range(2)}
    assert ids == {c["trace_id"] for c in failed}
    slowest = pg.locator('#drilldown [data-panel="slowest_calls"] tbody tr')
    assert slowest.count() == 20
    top = max((c for c in CALLS if c["prompt"] == "support" and c["version"] == "1.0"), key=lambda c: c["latency_ms"])
    assert slowest.nth(0).locator('[data-col="trace_id"]').inner_text() == top["trace_id"]
    # a call opens with its attributes
    shown.nth(0).click()
    pg.wait_for_selector("#call-dialog pre.attributes")
    text = pg.inner_text("#call-dialog")
    assert "gen_ai.request.model" in text and "RateLimitError" in text and "No scores for this call." in text
    page.shot("drilldown")
    pg.click("#call-dialog form button")


def test_call_dialog_shows_scores_and_unknown_usage(page: Page, store: Any) -> None:
    first = CALLS[0]  # reports no usage (console_seed.NO_USAGE)
    store.insert_rows("llm_scores", ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source"),
                      [(first["t"], first["trace_id"], first["span_id"], "helpfulness", 0.25, "meh", "too long",
                        "test")], dedup_token=uuid.uuid4().hex)
    pg = page.open("?range=1h")
    pg.evaluate(f"openCall({first['trace_id']!r})")
    pg.wait_for_selector("#call-dialog table.scores")
    assert "helpfulness" in pg.inner_text("#call-dialog table.scores")
    assert pg.inner_text('#call-dialog [data-field="input_tokens"]') == "unknown (no usage reported)"
    assert pg.inner_text('#call-dialog [data-field="cost_usd"]') == "unknown (no price)"
    code, doc = get(page.base, f"/api/calls/{first['trace_id']}")
    assert code == 200 and doc["calls"][0]["scores"][0]["value"] == 0.25
    assert get(page.base, "/api/calls/0123456789abcdef0123456789abcdef")[0] == 404
    assert get(page.base, "/api/calls/bad%20id")[0] == 400


def test_compare_shows_the_apis_winner(page: Page) -> None:
    pg = page.open("?range=7d&prompt=support&prompt=summarize&prompt=classify")
    r = page_range(page)
    code, doc = get(page.base, "/api/compare", {"prompts": "support,summarize,classify", **r})
    assert code == 200, doc
    # classify beats support on success rate and summarize (also never failing) on p95: ~200 ms against ~1.6 s
    assert doc["winner"] == "classify", doc["verdict"]
    pg.wait_for_selector("#compare table.compare")
    assert pg.get_attribute("#compare .verdict", "data-winner") == doc["winner"]
    assert pg.inner_text(f'#compare tr.winner td[data-item="{doc["winner"]}"]') == "Winner"
    assert pg.inner_text("#compare .verdict") == doc["verdict"]
    for item in doc["items"]:
        req = pg.locator(f'#compare tbody tr:has-text("Requests") td[data-item="{item["item"]}"]').inner_text()
        assert req == str(item["requests"])
        sr = pg.locator(f'#compare tbody tr:has-text("Success Rate") td[data-item="{item["item"]}"]').inner_text()
        assert sr == f"{item['success_rate']:.1f} %"
    week = [c for c in CALLS if in_last(c, 7 * 24 * HOUR)]
    assert {i["item"]: i["requests"] for i in doc["items"]} == {
        p: sum(1 for c in week if c["prompt"] == p) for p in ("support", "summarize", "classify")}
    # one latency chart per compared prompt (the Compare dashboard's repeated panel), each with that prompt's points
    charts = pg.locator('#compare [data-panel="latency_per_prompt_ts"]')
    assert charts.count() == 3
    for i, prompt in enumerate(("support", "summarize", "classify")):
        box = charts.nth(i)
        assert box.get_attribute("data-item") == prompt
        assert box.locator("h3").inner_text() == f"Latency: {prompt}"
        code, one = get(page.base, "/api/panels/latency_per_prompt_ts", {"prompt": prompt, **r})
        assert code == 200 and len(one["rows"]) >= 1
        assert int(box.get_attribute("data-points")) == len({row[0] for row in one["rows"]})
        assert box.get_attribute("data-series") == "p50|p95|p99"
    page.shot("compare-7d")


def test_compare_versions_of_one_prompt(page: Page) -> None:
    pg = page.open("?range=24h&prompt=support&compare_by=version")
    code, doc = get(page.base, "/api/compare", {"prompt_id": "support", "versions": "2.0,1.0", **page_range(page)})
    assert code == 200, doc
    pg.wait_for_selector("#compare table.compare")
    assert pg.get_attribute("#compare .verdict", "data-winner") == (doc["winner"] or "")
    assert pg.locator("#compare thead th").all_inner_texts()[1:] == ["support v2.0", "support v1.0"]
    titles = pg.locator('#compare [data-panel="latency_per_prompt_ts"] h3').all_inner_texts()
    assert titles == ["Latency: support v2.0", "Latency: support v1.0"]


def test_live_refreshes_every_30_seconds(browser: Any, server: Any, store: Any) -> None:
    from console_seed import call, row

    p = Page(browser, server.url)
    p.page.clock.install()
    pg = p.open("?range=30d&service=live-svc&live=1")
    assert "No LLM calls" in pg.inner_text("#overview")
    assert pg.is_checked("#live")
    store.insert_otel_traces([row(call(NOW - dt.timedelta(days=20), "live", "1", service="live-svc"))],
                             dedup_token=uuid.uuid4().hex)
    p.page.clock.fast_forward(31_000)
    p.wait_loaded(2)
    assert p.kpi("Requests") == "1"
    pg.uncheck("#live")
    p.page.clock.fast_forward(61_000)
    pg.wait_for_timeout(300)
    assert pg.evaluate("document.body.dataset.refreshes") == "2"
    p.close()
