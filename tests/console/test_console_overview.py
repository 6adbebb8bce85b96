"""Overview KPIs in a real browser: the numbers shown are the API's (the dashboards' panel SQL) and the seed's,
presets change them, thresholds colour them as the seed says, unknown usage is counted, and auth is enforced."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from console_page import TOKEN, Page
from console_seed import HOUR, NO_USAGE, totals

pytestmark = pytest.mark.slow


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def get(base: str, path: str, params: dict[str, Any] | None = None, token: str | None = TOKEN) -> tuple[int, Any]:
    url = base + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_last_hour_kpis_equal_the_api_and_the_seed(page: Page) -> None:
    pg = page.open("?range=1h")
    want = totals(HOUR)
    assert want["requests"] == 60 and want["errors"] == 2 and want["calls_without_usage"] == NO_USAGE
    assert page.kpi("Requests") == "60"
    assert page.kpi("Success rate") == "96.67 %"
    assert "green" in pg.get_attribute('#overview [data-kpi="Success rate"]', "class")
    assert page.kpi("Error rate") == "3.33 %"
    assert page.value("Input") == want["input_tokens"] == 35 * 100 + 20 * 1000
    assert page.kpi("Input") == "23.5 K"
    assert page.value("Output") == want["output_tokens"] == 35 * 20 + 20 * 200
    assert page.kpi("Calls without usage") == "5"
    assert "5 call(s) without usage not counted" in pg.inner_text('#overview [data-kpi="Input"] .note')
    assert page.value("Total cost") == pytest.approx(float(want["cost"]), rel=1e-9)
    assert page.kpi("Total cost") == f"${float(want['cost']):.4f}"
    # cost per request divides by the 55 calls with a known cost, never by 60
    assert page.value("Cost per request") == pytest.approx(float(want["cost"]) / 55, rel=1e-9)
    # the page shows what the API answers for the same range
    start, end = pg.evaluate("range().map((d) => d.toISOString())")
    code, doc = get(page.base, "/api/panels/data", {"keys": "requests,success_rate,latency_stats", "start": start,
                                                     "end": end})
    assert code == 200, doc
    assert doc["panels"]["requests"]["rows"] == [[60]]
    assert doc["panels"]["success_rate"]["rows"][0][0] == pytest.approx(100 * 58 / 60)
    p50, p95, p99 = doc["panels"]["latency_stats"]["rows"][0]
    assert page.kpi("p95") == f"{p95:,.0f} ms"
    assert page.kpi("p50") == f"{p50:,.0f} ms"
    assert page.kpi("p99") == f"{p99:,.0f} ms"
    page.shot("overview-1h")


def test_presets_change_the_numbers_and_colours(page: Page) -> None:
    pg = page.open("?range=1h")
    assert page.kpi("Requests") == "60"
    pg.click('[data-preset="24h"]')
    page.wait_loaded(2)
    want = totals(24 * HOUR)
    assert want["requests"] == 160 and want["errors"] == 22
    assert page.kpi("Requests") == "160"
    assert page.kpi("Success rate") == "86.25 %"
    assert "red" in pg.get_attribute('#overview [data-kpi="Success rate"]', "class")  # < 90 %: critical
    pg.click('[data-preset="7d"]')
    page.wait_loaded(3)
    assert page.kpi("Requests") == "360"
    assert "range=7d" in pg.url
    page.shot("overview-7d")


def test_filters_change_the_numbers(page: Page) -> None:
    pg = page.open("?range=1h")
    pg.select_option('[data-filter="service"]', "docs-bot")
    page.wait_loaded(2)
    assert page.kpi("Requests") == "20"
    assert page.kpi("Success rate") == "100.00 %"
    assert "service=docs-bot" in pg.url
    pg.select_option('[data-filter="service"]', "")
    page.wait_loaded(3)
    assert page.kpi("Requests") == "60"
    pg.select_option('[data-filter="feature"]', "chat")
    page.wait_loaded(4)
    assert page.kpi("Requests") == "40"
    assert pg.locator('[data-filter="feature"] option').all_inner_texts() == ["all features", "chat", "docs"]


def test_the_tag_filter_changes_the_numbers(page: Page) -> None:
    """One tag at a time (a call with two tags is under both); the Overview's requests are the tagged calls', the
    choice is kept in the URL, and Quality says the tag does not narrow it."""
    from console_seed import CALLS, in_last

    tagged = lambda t: [c for c in CALLS if t in c["tags"] and in_last(c, HOUR)]  # noqa: E731
    assert (len(tagged("web")), len(tagged("beta"))) == (15, 10)
    pg = page.open("?range=1h")
    assert page.kpi("Requests") == "60"
    assert pg.locator('[data-filter="tag"] option').all_inner_texts() == ["all tags", "beta", "web"]
    assert pg.locator("#quality [data-note=tag]").count() == 0
    pg.select_option('[data-filter="tag"]', "web")
    page.wait_loaded(2)
    assert page.kpi("Requests") == "15"
    assert page.kpi("Success rate") == "100.00 %"  # the two 429s (support calls 5 and 25) carry no tag
    assert "tag=web" in pg.url
    assert "does not apply" in pg.inner_text("#quality [data-note=tag]")
    pg.select_option('[data-filter="tag"]', "beta")
    page.wait_loaded(3)
    assert page.kpi("Requests") == "10"
    pg.reload()
    page.wait_loaded()
    assert page.kpi("Requests") == "10" and pg.input_value('[data-filter="tag"]') == "beta"
    pg.select_option('[data-filter="tag"]', "")
    page.wait_loaded(2)
    assert page.kpi("Requests") == "60" and "tag=" not in pg.url
    # the API takes one tag: two would count a call carrying both twice
    code, doc = get(page.base, "/api/panels/data", {"keys": "requests", "tag": ["web", "beta"]})
    assert code == 400 and "takes one value" in doc["error"], doc
    code, doc = get(page.base, "/api/panels/options", {"tag": ["web", "beta"]})
    assert code == 400, doc


def test_empty_range_says_what_to_do(page: Page) -> None:
    pg = page.open("?range=1h&service=no-such-service")
    text = pg.inner_text("#overview")
    assert "No LLM calls in this range" in text and "OTEL_EXPORTER_OTLP_ENDPOINT" in text
    assert pg.locator("#overview .tile").count() == 0


def test_token_is_asked_for_and_nothing_leaks_without_it(page: Page) -> None:
    pg = page.page
    pg.goto(f"{page.base}/console/")
    pg.wait_for_selector("#auth-form", state="visible")
    assert pg.locator(".tile").count() == 0
    pg.fill("#auth-token", "wrong")
    pg.click("#auth-form button")
    pg.wait_for_selector("#auth-error", state="visible")
    assert pg.locator(".tile").count() == 0
    for path in ("/api/panels", "/api/panels/data?keys=requests", "/api/panels/requests", "/api/panels/options"):
        code, _ = get(page.base, path, token=None)
        assert code == 401, path
        code, _ = get(page.base, path, token="wrong")
        assert code == 401, path
    page.errors.clear()  # the refused requests log 401s in the page's console; those are the point here
    pg.fill("#auth-token", TOKEN)
    pg.click("#auth-form button")
    page.wait_loaded()
    assert pg.locator(".tile").count() > 0


def test_open_server_needs_no_token(browser: Any, open_server: Any) -> None:
    p = Page(browser, open_server.url)
    p.open("?range=1h", token=None)
    assert p.kpi("Requests") == "60"
    p.close()


def test_panel_parameters_are_bound_never_pasted(page: Page) -> None:
    """Filter values travel as query parameters: a quote in a value is a value, not SQL; bad parameters are 400."""
    from promptpulse.processor.console import panels

    now = utcnow()
    sql, params = panels.bind(panels.catalog()["requests"].sql, panels.PanelParams(
        now - HOUR, now, {"service": ["x' OR '1'='1"]}))
    assert "x' OR" not in sql and "{v_service_0:String}" in sql and params == {"v_service_0": "x' OR '1'='1"}
    code, doc = get(page.base, "/api/panels/requests", {"service": "x' OR '1'='1"})
    assert code == 200 and doc["rows"] == [[0]]
    code, doc = get(page.base, "/api/panels/requests", {"service": ["support-bot", "docs-bot"],
                                                        "start": (now - HOUR).isoformat(), "end": now.isoformat()})
    assert code == 200 and doc["rows"] == [[60]]
    for params, message in (({"keys": "requests,nope"}, "unknown panel(s): nope"),
                            ({"keys": "requests", "start": now.isoformat(), "end": (now - HOUR).isoformat()},
                             "start must be before end"),
                            ({"keys": "error_budget", "slo_target": "abc"}, "slo_target must be a number"),
                            ({"keys": "compare_table", "compare_by": "model"}, "compare_by must be one of"),
                            ({"keys": "trace_calls"}, "panel needs values for 'trace_id'")):
        code, doc = get(page.base, "/api/panels/data", params)
        assert code == 400 and message in doc["error"], (params, doc)
    # the drill-down panel of one trace takes the trace id as a bound parameter (pasted in capitals, as Grafana's)
    code, doc = get(page.base, "/api/panels/data", {"keys": "slowest_calls"})
    slowest = doc["panels"]["slowest_calls"]
    trace_id = slowest["rows"][0][slowest["columns"].index("trace_id")]
    code, doc = get(page.base, "/api/panels/trace_calls", {"trace_id": trace_id.upper()})
    assert code == 200, doc
    calls = get(page.base, f"/api/calls/{trace_id}")[1]["calls"]
    assert len(doc["rows"]) == len(calls) >= 1
    assert {r[doc["columns"].index("span_id")] for r in doc["rows"]} == {c["span_id"] for c in calls}
    code, doc = get(page.base, "/api/panels/trace_calls", {"trace_id": "x' OR '1'='1"})
    assert code == 400 and "trace_id" in doc["error"], doc
    assert get(page.base, "/api/panels/nope")[0] == 404
