"""Every PromptPulse dashboard, panel and its SQL, defined once. ``python -m promptpulse.dashboards.build`` renders
them to dashboards/*.json; the tests run every query here on chDB."""

from __future__ import annotations

import dataclasses
from typing import Any

from . import queries as q
from .grafana import BLUE, GREEN, RED, YELLOW, Annotation, Dashboard, Link, Panel, Row, Variable

FROM, TO, RANGE_S, STEP_S = q.FROM, q.TO, q.RANGE_S, q.STEP_S

# --- variables --------------------------------------------------------------------------------------------------
TAG_DESCRIPTION = ("One tag (promptpulse.tags) or All: the call panels read the tag rollups (schemas/021), the "
                   "drill-downs the calls that carry it. One value only: a call with two chosen tags would be "
                   "counted twice. Quality scores, guardrails and evaluation cost are not narrowed by tag (their "
                   "rollups keep no tags).")
FILTER_VARIABLES = (
    Variable("service", "Service", "query", q.variable_query("service", depends=())),
    Variable("environment", "Environment", "query", q.variable_query("environment", depends=("service",))),
    Variable("prompt", "Prompt (compare up to 3)", "query",
             q.variable_query("prompt_name", depends=("service", "environment"))),
    Variable("version", "Version", "query",
             q.variable_query("prompt_version", depends=("service", "environment", "prompt"))),
    Variable("model", "Model", "query",
             q.variable_query("model", depends=("service", "environment", "prompt", "version"))),
    Variable("provider", "Provider", "query",
             q.variable_query("provider", depends=("service", "environment", "prompt", "version", "model"))),
    Variable("feature", "Feature", "query", q.variable_query("feature", depends=("service", "environment"))),
    Variable(q.TAG_VAR, "Tag", "query",
             q.variable_query("tag", depends=("service", "environment"), table="llm_calls_tags_1h"),
             multi=False, description=TAG_DESCRIPTION),
)
COMPARE_BY = Variable("compare_by", "Compare", "custom", "prompt, version", default="prompt")
SLO_TARGET = Variable("slo_target", "Availability SLO %", "textbox", default="99.9")
DAILY_BUDGET = Variable("daily_budget", "Daily budget USD", "textbox", default="100")
SCORE_NAME = Variable("score_name", "Score", "query",
                      "SELECT DISTINCT name FROM llm_scores WHERE timestamp >= $__fromTime AND timestamp < $__toTime "
                      "ORDER BY name")

INTERVAL = Variable("interval", "Interval", "interval", "1m,5m,15m,30m,1h,6h,1d",
                    description="Time step of the time series (auto: about 200 points over the range, at least the "
                                "rollup resolution).")
TRACE_ID = Variable("trace_id", "Trace id", "textbox",
                    description="A trace id (32 hex digits): the 'Calls of a trace' panel shows its calls.")
# Where "Open in trace backend" links go: the trace id is appended (Jaeger's UI by default; for Tempo use
# <grafana>/explore?left=... or your Tempo UI). `promptpulse dashboards export --trace-url URL` sets it.
DEFAULT_TRACE_URL = "http://localhost:16686/trace/"
TRACE_URL = Variable("trace_url", "Trace backend URL", "constant", DEFAULT_TRACE_URL)
# Ad-hoc filters on the raw-call drill-down tables (keys: the columns of this query, values: their distinct values)
ADHOC_QUERY = Variable("clickhouse_adhoc_query", "Ad-hoc keys", "constant",
                       "SELECT user_id, error_type, error_category, status, request_model, response_model, operation, "
                       "http_status, cost_source, prompt_fingerprint FROM llm_calls LIMIT 10000")
ADHOC = Variable("filters", "Raw-call filters", "adhoc",
                 description="Filters on raw llm_calls columns (user, error type, ...) for the drill-down tables.")

SLO = "(toFloat64OrZero('${slo_target}') / 100)"


def columns(units: dict[str, str], *extra: tuple[str, dict[str, Any]]) -> tuple[tuple[str, dict[str, Any]], ...]:
    """Field overrides: each named column's unit, merged with ``extra`` properties of the same columns."""
    merged: dict[str, dict[str, Any]] = {name: {"unit": unit} for name, unit in units.items()}
    for name, props in extra:
        merged.setdefault(name, {}).update(props)
    return tuple(merged.items())


COLOR_TEXT = {"custom.cellOptions": {"type": "color-text"}}

# --- drill-down links ------------------------------------------------------------------------------------------
# keep the time range, the data source and the service / environment selection; set prompt (and version)
_KEEP = "${__url_time_range}&${datasource:queryparam}&${service:queryparam}&${environment:queryparam}"
PERFORMANCE_URL = "/d/promptpulse-performance?" + _KEEP


def perf_link(version: bool = True) -> Link:
    url = PERFORMANCE_URL + "&var-prompt=${__data.fields.prompt:percentencode}"
    if version:
        url += "&var-version=${__data.fields.version:percentencode}"
    return Link("Performance of this prompt" + (" version" if version else ""), url)


PROMPT_LINKS = (("prompt", (perf_link(),)), ("version", (perf_link(),)))
TRACE_LINKS = (("trace_id", (
    Link("Calls of this trace", "/d/promptpulse-performance?${__url_time_range}&${datasource:queryparam}"
                                "&var-trace_id=${__value.raw}"),
    Link("Open in trace backend", "${trace_url}${__value.raw}", target_blank=True))),)
BUDGET = "toFloat64OrZero('${daily_budget}')"

SUCCESS_STEPS = ((RED, None), (YELLOW, q.SUCCESS_CRITICAL), (GREEN, q.SUCCESS_HEALTHY))
ERROR_STEPS = ((GREEN, None), (YELLOW, 100 - q.SUCCESS_HEALTHY), (RED, 100 - q.SUCCESS_CRITICAL))
MS_TARGETS = {"p50 ms": q.P50_TARGET_MS, "p95 ms": q.P95_TARGET_MS, "p99 ms": q.P99_TARGET_MS}
LATENCY_CELLS = tuple((name, {"thresholds": ((GREEN, None), (RED, target)), **COLOR_TEXT})
                      for name, target in MS_TARGETS.items())
FEEDBACK_STEPS = ((RED, None), (GREEN, 80))  # seed: customer satisfaction > 80 %
LATENCY_OVERRIDES = (
    ("p50", {"thresholds": ((GREEN, None), (RED, q.P50_TARGET_MS))}),
    ("p95", {"thresholds": ((GREEN, None), (RED, q.P95_TARGET_MS))}),
    ("p99", {"thresholds": ((GREEN, None), (RED, q.P99_TARGET_MS))}),
)
TS = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 10, "showPoints": "never", "spanNulls": True}
STACKED = {**TS, "fillOpacity": 60, "stacking": {"mode": "normal", "group": "A"}}
BARS = {**TS, "drawStyle": "bars", "fillOpacity": 80}
SUCCESS_TS = {**TS, "thresholdsStyle": {"mode": "line+area"}}
COLOR_CELLS = {"cellOptions": {"type": "color-background"}}

# --- panels (each defined once; a panel may appear on several dashboards) ----------------------------------------
REQUESTS = Panel("requests", "Requests", "stat", q.totals([(q.CALLS, "Requests")]), w=4, h=4, unit="short",
                 description="Calls in the range.", thresholds=((BLUE, None),))
RPM = Panel("rpm", "Requests per minute", "stat",
            q.totals([(f"{q.CALLS} / ({RANGE_S} / 60)", "RPM")]), w=4, h=4, decimals=2, unit="reqpm",
            description="Average calls per minute over the range.", thresholds=((BLUE, None),))
PEAK_RPM = Panel(
    "peak_rpm", "Peak RPM", "stat",
    f"SELECT max(per_minute) AS `Peak RPM`\nFROM (\n{q.by_minute('sum(calls) AS per_minute')}\n)",
    w=4, h=4, unit="reqpm", description="Busiest minute in the range (always read at 1-minute resolution).",
    thresholds=((BLUE, None),))
TREND = Panel(
    "trend", "Traffic trend", "stat",
    f"SELECT\n    (SELECT sum(calls) FROM {q.rollup()}) AS current,\n"
    f"    (SELECT sum(calls) FROM {q.rollup(f'({FROM} - {RANGE_S})', FROM)}) AS previous,\n"
    "    if(previous = 0, nan, 100 * (current - previous) / previous) AS `Change %`,\n"
    "    multiIf(previous = 0, 'no history', `Change %` > 10, 'increasing', `Change %` < -10, 'decreasing', "
    "'stable') AS Trend",
    w=4, h=4, decimals=1, unit="percent",
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^(Change %|Trend)$/",
                                                    "values": False}},
    description="Calls in the range vs the previous range of the same length: >+10% increasing, <-10% decreasing.",
    thresholds=((BLUE, None),))
SUCCESS_RATE = Panel("success_rate", "Success rate", "stat", q.totals([(q.SUCCESS_PCT, "Success rate")]), w=4, h=4,
                     unit="percent", decimals=2, thresholds=SUCCESS_STEPS,
                     description="Green >95% healthy, yellow 90-95% warning, red <90% critical.")
ERROR_RATE = Panel("error_rate", "Error rate", "stat", q.totals([(q.ERROR_PCT, "Error rate")]), w=4, h=4,
                   unit="percent", decimals=2, thresholds=ERROR_STEPS,
                   description="Failed calls / calls. Alert: >5% for 5 minutes.")
LATENCY_STATS = Panel("latency_stats", "Latency vs targets", "stat",
                      q.totals([(q.P50, "p50"), (q.P95, "p95"), (q.P99, "p99")]), w=8, h=4, unit="ms",
                      decimals=0, overrides=LATENCY_OVERRIDES,
                      description="Targets: p50 <1000 ms, p95 <2000 ms, p99 <5000 ms (red when missed).")
TOKENS_UNIT = "short"  # token counts, SI-scaled (23.5 K) as Grafana's "short"; the column names say tokens
# Calls without usage / cost (schemas/013) add nothing to the sums; the panels say how many, and per-request figures
# divide by the calls whose numbers are known.
TOKENS = Panel("tokens", "Tokens", "stat",
               q.totals([("sum(input_tokens)", "Input"), ("sum(output_tokens)", "Output"), (q.TOKENS, "Total"),
                         (q.AVG_TOKENS, "Avg per request"), (q.CALLS_WITHOUT_USAGE, "Calls without usage")]),
               w=8, h=4, unit=TOKENS_UNIT, decimals=0, thresholds=((BLUE, None),),
               overrides=(("Calls without usage", {"unit": "short"}),),
               description="Sums over the calls that report usage; avg per request = tokens / those calls. Calls "
                           "without usage (e.g. streams without include_usage) are counted, not summed as 0.")
TOKENS_TS = Panel("tokens_ts", "Tokens over time", "timeseries",
                  q.timeseries([("sum(input_tokens)", "input"), ("sum(output_tokens)", "output"),
                                (q.CALLS_WITHOUT_USAGE, "calls without usage")]),
                  format="time_series", w=12, h=8, unit="short", custom={**STACKED, "drawStyle": "bars"},
                  overrides=(("calls without usage", {"custom.stacking": {"mode": "none"},
                                                      "custom.drawStyle": "line"}),),
                  description="Stacked input and output tokens of the calls that report usage; the line counts "
                              "the calls without usage (their tokens are unknown, not 0).")
COUNT_OVERRIDE = {"unit": "short", "decimals": 0}
COST_STATS = Panel("cost_stats", "Cost", "stat",
                   q.totals([(q.COST, "Total cost"), (q.COST_PER_REQ, "Cost per request"),
                             (f"{q.COST} / {RANGE_S} * 30 * 86400", "Projected monthly"),
                             (q.CALLS_WITHOUT_USAGE, "Calls without usage"), (q.CALLS_UNPRICED, "Calls unpriced")]),
                   w=8, h=4, unit="currencyUSD", decimals=4, thresholds=((BLUE, None),),
                   overrides=(("Calls without usage", COUNT_OVERRIDE), ("Calls unpriced", COUNT_OVERRIDE)),
                   description="Projected monthly = cost per second over the range x 30 days. Cost is summed over "
                               "the calls with a known cost; cost per request divides by those calls. Calls without "
                               "usage and calls of a model with no price (unpriced) are counted, never priced at $0.")
RPM_BY_PROMPT = Panel("rpm_by_prompt", "Requests per minute by prompt", "timeseries",
                      q.timeseries([(f"{q.CALLS} / ({STEP_S} / 60)", "rpm")], group="prompt_name"),
                      format="time_series", w=12, h=8, unit="reqpm", custom=TS)
RPM_BY_MODEL = Panel("rpm_by_model", "Throughput by model", "timeseries",
                     q.timeseries([(f"{q.CALLS} / ({STEP_S} / 60)", "rpm")], group="model"),
                     format="time_series", w=12, h=8, unit="reqpm", custom=TS)
SUCCESS_TS = Panel("success_ts", "Success rate over time", "timeseries",
                   q.timeseries([(q.SUCCESS_PCT, "success rate")]), format="time_series", w=12, h=8,
                   unit="percent", thresholds=SUCCESS_STEPS, custom=SUCCESS_TS,
                   options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}})
LATENCY_TS = Panel("latency_ts", "Latency percentiles", "timeseries",
                   q.timeseries([(q.P50, "p50"), (q.P95, "p95"), (q.P99, "p99")]), format="time_series",
                   w=12, h=8, unit="ms", thresholds=((GREEN, None), (RED, q.P95_TARGET_MS)),
                   custom={**TS, "thresholdsStyle": {"mode": "dashed"}},
                   description="From merged log-bucket histograms (within 1%); dashed line: p95 target 2 s.")
TTFT_TS = Panel("ttft_ts", "Time to first token (streams)", "timeseries",
                q.timeseries([(q.quantile(0.5, "ttft_hist"), "ttft p50"), (q.quantile(0.95, "ttft_hist"), "ttft p95"),
                              ("if(sum(ttft_count) = 0, nan, sum(ttft_ms_sum) / sum(ttft_count))", "ttft mean")]),
                format="time_series", w=12, h=8, unit="ms", custom=TS)
ERROR_RATE_TS = Panel("error_rate_ts", "Error rate over time", "timeseries",
                      q.timeseries([(q.ERROR_PCT, "error rate")]), format="time_series", w=12, h=8,
                      unit="percent", thresholds=ERROR_STEPS, custom={**TS, "thresholdsStyle": {"mode": "line"}})
ERRORS_BY_CATEGORY = Panel(
    "errors_by_category", "Errors by category", "timeseries",
    q.timeseries([(f"sum(errors_{c})", c) for c in q.ERROR_CATEGORIES]), format="time_series", w=12, h=8,
    unit="short", custom=STACKED, description="Stacked: timeout, rate limit, model (LLM/5xx), validation (4xx), "
                                              "auth, system (crashes, network).")
LATENCY_TABLE = Panel(
    "latency_table", "Latency by prompt and model", "table",
    q.breakdown([("prompt_name", "prompt"), ("prompt_version", "version"), ("model", "model")],
                [(q.CALLS, "requests"), (q.MEAN_LATENCY, "mean ms"), (q.P50, "p50 ms"), (q.P95, "p95 ms"),
                 (q.P99, "p99 ms"), (q.quantile(0.95, "ttft_hist"), "ttft p95 ms")],
                order="`p95 ms` DESC", limit=50),
    w=12, h=8, decimals=0,
    overrides=columns({"requests": "short", "mean ms": "ms", "p50 ms": "ms", "p95 ms": "ms", "p99 ms": "ms",
                       "ttft p95 ms": "ms"}, *LATENCY_CELLS), links=PROMPT_LINKS)
LATENCY_BREAKDOWN = Panel(
    "latency_breakdown", "Latency breakdown by model", "table",
    q.breakdown([("model", "model")],
                [(q.CALLS, "requests"), (q.MEAN_LATENCY, "mean ms"),
                 ("if(sum(ttft_count) = 0, nan, sum(ttft_ms_sum) / sum(ttft_count))",
                  "first token ms (queue + prefill)"),
                 ("if(sum(ttft_count) = 0, nan, (sum(stream_latency_ms_sum) - sum(ttft_ms_sum)) / sum(ttft_count))",
                  "generation ms"),
                 ("if(sum(calls) = 0, nan, 100 * sum(retried_calls) / sum(calls))", "retried %"),
                 ("if(sum(calls) = 0, nan, sum(retries) / sum(calls))", "avg retries")],
                order="`mean ms` DESC"),
    w=12, h=8, decimals=1,
    overrides=columns({"requests": "short", "mean ms": "ms", "first token ms (queue + prefill)": "ms",
                       "generation ms": "ms", "retried %": "percent", "avg retries": "short"}),
    description="Where the span says: time to first token (queue + server prefill) vs generation for streams "
                "with a first token, and retries (promptpulse.retry.count). Network time is not measured by "
                "contract 1.")
SLOWEST = Panel(
    "slowest_calls", "Slowest calls (drill-down)", "table",
    f"SELECT\n    timestamp, service, prompt_name AS prompt, prompt_version AS version, {q.RAW_MODEL} AS model,\n"
    "    latency_ms, ttft_ms, status, error_category, input_tokens, output_tokens, trace_id, span_id\n"
    f"FROM {q.raw_calls()}\nORDER BY latency_ms DESC\nLIMIT 20\n{q.ADHOC_RAW}",
    w=24, h=8, raw=True,
    overrides=columns({"latency_ms": "ms", "ttft_ms": "ms", "input_tokens": TOKENS_UNIT, "output_tokens": TOKENS_UNIT},
                      ("latency_ms", {"thresholds": ((GREEN, None), (RED, q.P95_TARGET_MS)), **COLOR_TEXT})),
    links=TRACE_LINKS)
TRACE_CALLS = Panel(
    "trace_calls", "Calls of a trace (drill-down)", "table",
    f"SELECT\n    timestamp, service, prompt_name AS prompt, prompt_version AS version, {q.RAW_MODEL} AS model,\n"
    "    status, error_type, latency_ms, ttft_ms, input_tokens, output_tokens, toFloat64(cost_usd) AS cost_usd,\n"
    "    user_id, trace_id, span_id\n"
    f"FROM llm_calls WHERE timestamp >= ({FROM} - INTERVAL 1 DAY) AND timestamp < ({TO} + INTERVAL 1 DAY)\n"
    "  AND trace_id = lower(trim(${trace_id:singlequote}))\nORDER BY timestamp\nLIMIT 200",
    w=24, h=6, raw=True, links=TRACE_LINKS,
    overrides=columns({"latency_ms": "ms", "ttft_ms": "ms", "input_tokens": TOKENS_UNIT, "output_tokens": TOKENS_UNIT,
                       "cost_usd": "currencyUSD"}),
    description="The calls of the trace in the trace_id variable (a day either side of the range); trace ids in "
                "the other tables link here and to the trace backend (trace_url).")
LATENCY_PER_PROMPT = Panel(
    "latency_per_prompt_ts", "Latency: $prompt", "timeseries",
    q.timeseries([(q.P50, "p50"), (q.P95, "p95"), (q.P99, "p99")],
                 source=q.rollup(daily=f"{STEP_S} % 86400 = 0", skip=("prompt",),
                                 extra="prompt_name IN (${prompt:singlequote})")),
    format="time_series", w=8, h=7, unit="ms", repeat="prompt", thresholds=((GREEN, None), (RED, q.P95_TARGET_MS)),
    custom={**TS, "thresholdsStyle": {"mode": "dashed"}},
    description="One panel per selected prompt (Grafana repeats it over the prompt variable).")
FAILED = q.raw_calls(extra="status = 'error'")
FAILED_CALLS = Panel(
    "failed_calls", "Failed calls (drill-down)", "table",
    f"SELECT\n    timestamp, service, prompt_name AS prompt, prompt_version AS version, {q.RAW_MODEL} AS model,\n"
    "    latency_ms, error_type, error_category, http_status, trace_id, span_id\n"
    f"FROM {FAILED}\nORDER BY timestamp DESC\nLIMIT 20\n{q.ADHOC_RAW}",
    w=24, h=8, raw=True, links=TRACE_LINKS, overrides=columns({"latency_ms": "ms", "http_status": "none"}))
PROMPT_BREAKDOWN = Panel(
    "prompt_breakdown", "Prompt breakdown", "table",
    q.breakdown([("prompt_name", "prompt"), ("prompt_version", "version")],
                [(q.CALLS, "requests"), (q.SUCCESS_PCT, "success %"), (q.P50, "p50 ms"), (q.P95, "p95 ms"),
                 (q.P99, "p99 ms"), (q.AVG_TOKENS, "avg tokens"), (q.COST, "cost"),
                 (q.COST_PER_REQ, "cost per request"), (q.CALLS_WITHOUT_USAGE, "calls without usage")],
                order="requests DESC, prompt, version", limit=200),
    w=24, h=8, decimals=2, overrides=(
        ("success %", {"unit": "percent", "thresholds": SUCCESS_STEPS, "custom.cellOptions": {"type": "color-text"}}),
        ("p50 ms", {"unit": "ms", "decimals": 0, "thresholds": ((GREEN, None), (RED, q.P50_TARGET_MS)),
                    "custom.cellOptions": {"type": "color-text"}}),
        ("p95 ms", {"unit": "ms", "decimals": 0, "thresholds": ((GREEN, None), (RED, q.P95_TARGET_MS)),
                    "custom.cellOptions": {"type": "color-text"}}),
        ("p99 ms", {"unit": "ms", "decimals": 0, "thresholds": ((GREEN, None), (RED, q.P99_TARGET_MS)),
                    "custom.cellOptions": {"type": "color-text"}}),
        ("requests", {"unit": "short", "decimals": 0}), ("calls without usage", {"unit": "short", "decimals": 0}),
        ("avg tokens", {"unit": TOKENS_UNIT, "decimals": 1}),
        ("cost", {"unit": "currencyUSD", "decimals": 4}), ("cost per request", {"unit": "currencyUSD", "decimals": 6})),
    links=PROMPT_LINKS,
    description="One row per prompt and version. Avg tokens and cost per request divide by the calls whose usage / "
                "cost is known; calls without usage are counted.")
TOP_CATEGORY = ("if(sum(errors) = 0, '', arrayElement(" + str(list(q.ERROR_CATEGORIES)).replace('"', "'")
                + ", indexOf([" + ", ".join(f"sum(errors_{c})" for c in q.ERROR_CATEGORIES) + "], arrayMax(["
                + ", ".join(f"sum(errors_{c})" for c in q.ERROR_CATEGORIES) + "]))))")
TOP_ISSUES = Panel(
    "top_issues", "Top issues", "table",
    q.breakdown([("service", "service"), ("prompt_name", "prompt"), ("prompt_version", "version"), ("model", "model")],
                [(q.CALLS, "requests"), (q.SUCCESS_PCT, "success %"), (q.P95, "p95 ms"), (q.P99, "p99 ms"),
                 (TOP_CATEGORY, "top error"),
                 ("arrayStringConcat(arrayFilter(x -> x != '', ["
                  f"multiIf(`success %` < {q.SUCCESS_CRITICAL}, 'success rate critical', "
                  f"`success %` < {q.SUCCESS_HEALTHY}, 'success rate warning', ''), "
                  f"if(`p95 ms` > {q.P95_TARGET_MS}, 'p95 over 2 s', ''), "
                  f"if(`p99 ms` > {q.P99_TARGET_MS}, 'p99 over 5 s', '')]), ', ')", "issues")],
                having="issues != ''", order="`success %` ASC, `p95 ms` DESC", limit=20),
    w=24, h=7, decimals=1,
    overrides=columns({"requests": "short", "success %": "percent", "p95 ms": "ms", "p99 ms": "ms"},
                      ("success %", {"thresholds": SUCCESS_STEPS, "custom.cellOptions": {"type": "color-background"}}),
                      *LATENCY_CELLS[1:]), links=PROMPT_LINKS,
    description="Series missing a target: success <95% (warning) / <90% (critical), p95 >2 s, p99 >5 s.")

# cost
COST_BY = {
    col: Panel(f"cost_by_{col}", f"Cost by {label}", "timeseries", q.timeseries([(q.COST, "cost")], group=col),
               format="time_series", w=8, h=8, unit="currencyUSD", custom=STACKED)
    for col, label in (("prompt_name", "prompt"), ("model", "model"), ("provider", "provider"))
}
COST_PER_REQ_TS = Panel("cost_per_request_ts", "Cost per request", "timeseries",
                        q.timeseries([(q.COST_PER_REQ, "cost per request")], group="prompt_name"),
                        format="time_series", w=12, h=8, unit="currencyUSD", custom=TS)
COST_PIE = Panel("cost_pie", "Cost share by prompt", "piechart",
                 q.breakdown([("prompt_name", "prompt")], [(q.COST, "cost")], order="cost DESC"),
                 w=12, h=8, unit="currencyUSD", decimals=2)
# Day and month boundaries are UTC, as in the API, reports and alerts ($__toTime is a DateTime in the server's zone)
TODAY = f"toStartOfDay({TO}, 'UTC')"
MONTH = f"toDateTime(toStartOfMonth(toDateTime({TO}, 'UTC')), 'UTC')"
BUDGET_TODAY = Panel(
    "budget_today", "Daily budget", "stat",
    q.totals([(q.COST, "Spent today"), (BUDGET, "Budget"), (f"if({BUDGET} = 0, nan, 100 * {q.COST} / {BUDGET})",
                                                            "Used %")],
             source=q.rollup(TODAY, TO, length=f"({TO} - {TODAY})")),
    w=8, h=4, decimals=2, overrides=(("Used %", {"unit": "percent", "thresholds": (
        (GREEN, None), (YELLOW, 80), (RED, 110))}), ("Spent today", {"unit": "currencyUSD"}),
                                     ("Budget", {"unit": "currencyUSD"})),
    description="Today (from midnight to the end of the range) vs the daily_budget variable; alert at 110%.")
MONTH_PROJECTION = Panel(
    "month_projection", "Month to date and projection", "stat",
    q.totals([(q.COST, "Month to date"),
              (f"{q.COST} / greatest({TO} - {MONTH}, 1) * (toDateTime(addMonths({MONTH}, 1)) - {MONTH})",
               "Projected month"),
              (f"{BUDGET} * toDayOfMonth(toLastDayOfMonth({MONTH}))", "Monthly budget")],
             source=q.rollup(MONTH, TO, length=f"({TO} - {MONTH})")),
    w=8, h=4, unit="currencyUSD", decimals=2, thresholds=((BLUE, None),),
    description="Spend since the 1st, projected at the month's rate so far.")
DAILY_SPEND = Panel(
    "daily_spend", "Daily spend vs budget", "timeseries",
    f"SELECT\n    toStartOfDay(bucket, 'UTC') AS time,\n    {q.COST} AS spend,\n    any({BUDGET}) AS budget\n"
    f"FROM {q.rollup()}\nGROUP BY time\nORDER BY time",
    format="time_series", w=12, h=8, unit="currencyUSD",
    custom=BARS, overrides=(("budget", {"custom.drawStyle": "line", "custom.lineStyle": {"fill": "dash",
                                                                                          "dash": [10, 10]}}),))
COST_TABLE = Panel(
    "cost_table", "Spend by prompt and model", "table",
    q.breakdown([("prompt_name", "prompt"), ("model", "model"), ("provider", "provider")],
                [(q.CALLS, "requests"), ("sum(input_tokens)", "input tokens"), ("sum(output_tokens)", "output tokens"),
                 (q.COST, "cost"), (q.COST_PER_REQ, "cost per request"),
                 (f"100 * {q.COST} / sum({q.COST}) OVER ()", "share %"),
                 (q.CALLS_WITHOUT_USAGE, "calls without usage"), (q.CALLS_UNPRICED, "calls unpriced")],
                order="cost DESC", limit=50),
    w=12, h=8, decimals=4,
    overrides=columns({"requests": "short", "input tokens": TOKENS_UNIT, "output tokens": TOKENS_UNIT,
                       "cost": "currencyUSD", "cost per request": "currencyUSD", "share %": "percent",
                       "calls without usage": "short", "calls unpriced": "short"}),
    links=(("prompt", (perf_link(version=False),)),))

# quality: the score rollups (scores carry their call's dimensions, so the dashboard variables apply); the
# drill-down joins raw scores to their calls
# only the scored calls are read from llm_calls (the join no longer scans every call of the range)
SCORED = f"trace_id IN (SELECT trace_id FROM llm_scores WHERE timestamp >= {FROM} AND timestamp < {TO})"
SCORED_CALLS = q.raw_calls(f"({FROM} - INTERVAL 1 DAY)", TO, extra=SCORED, by_tag=False)  # scores keep no tags
SCORES = (
    "(\n    SELECT s.timestamp AS timestamp, s.name AS name, s.value AS value, s.label AS label,\n"
    "           s.comment AS comment,"
    " s.trace_id AS trace_id, s.span_id AS span_id, c.service AS service,\n"
    "           c.prompt_name AS prompt_name,"
    " c.prompt_version AS prompt_version, c.model AS model, c.latency_ms AS latency_ms\n"
    "    FROM llm_scores AS s\n"
    f"    INNER JOIN (SELECT trace_id, span_id, service, prompt_name, prompt_version, {q.RAW_MODEL} AS model,\n"
    f"                       latency_ms FROM {SCORED_CALLS}) AS c\n"
    "      ON s.trace_id = c.trace_id AND s.span_id = c.span_id\n"
    f"    WHERE s.timestamp >= {FROM} AND s.timestamp < {TO}\n"
    "      AND $__conditionalAll(s.name IN (${score_name:singlequote}), $score_name)\n)"
)
SCORE_ROLLUP = q.score_rollup()
QUALITY_STATS = Panel("quality_stats", "Scores", "stat",
                      q.totals([(q.SCORE_AVG, "Average score"), (q.SCORES_N, "Scores"),
                                (q.SCORED_CALLS, "Scored calls")], source=SCORE_ROLLUP),
                      w=8, h=4, decimals=3, thresholds=((BLUE, None),), unit="short",
                      overrides=columns({"Average score": "none"}))
QUALITY_TS = Panel("quality_ts", "Average score over time", "timeseries",
                   q.timeseries([(q.SCORE_AVG, "score")], group="name", source=SCORE_ROLLUP),
                   format="time_series", w=16, h=8, unit="none", custom=TS)
QUALITY_DISTRIBUTION = Panel(
    "quality_distribution", "Score distribution", "barchart",
    "SELECT toString(step.1 / 10) AS score, step.2 AS scores\n"
    f"FROM (SELECT arrayJoin(arrayZip(mapKeys(h), mapValues(h))) AS step FROM (SELECT sumMap(value_hist) AS h "
    f"FROM {SCORE_ROLLUP}))\nORDER BY step.1", w=8, h=8, unit="short",
    description="Scores in steps of 0.1 (the rollup's value_hist: key = floor(value x 10)).")
FEEDBACK = Panel(
    "feedback_rates", "Feedback rates", "table",
    q.breakdown([("name", "name")],
                [(q.SCORES_N, "count"), (q.SCORED_CALLS, "scored calls"),
                 (f"(SELECT sum(calls) FROM {q.rollup(by_tag=False)})", "calls"),
                 ("100 * `scored calls` / calls", "scored % of calls"), (q.SCORE_AVG, "average"),
                 (q.SCORE_POSITIVE_PCT, "positive %")], order="name", source=SCORE_ROLLUP),
    w=8, h=8, decimals=2,
    overrides=columns({"count": "short", "scored calls": "short", "calls": "short", "scored % of calls": "percent",
                       "average": "none", "positive %": "percent"},
                      ("positive %", {"thresholds": FEEDBACK_STEPS, **COLOR_TEXT})),
    description="Positive = value >= 0.5 (thumbs up = 1, down = 0; 0..1 scores).")
QUALITY_BY_VERSION = Panel(
    "quality_by_version", "Scores by prompt version (A/B)", "table",
    q.breakdown([("prompt_name", "prompt"), ("prompt_version", "version"), ("name", "name")],
                [(q.SCORES_N, "count"), (q.SCORE_AVG, "average"), (q.SCORE_POSITIVE_PCT, "positive %"),
                 ("min(value_min)", "min")], order="prompt, name, version", source=SCORE_ROLLUP),
    w=8, h=8, decimals=3,
    overrides=columns({"count": "short", "average": "none", "positive %": "percent", "min": "none"},
                      ("positive %", {"thresholds": FEEDBACK_STEPS, **COLOR_TEXT})), links=PROMPT_LINKS)
LOWEST_SCORES = Panel(
    "lowest_scores", "Lowest-scoring calls (drill-down)", "table",
    f"SELECT timestamp, name, value, label, comment, service, prompt_name AS prompt, prompt_version AS version,\n"
    f"    model, latency_ms, trace_id, span_id\nFROM {SCORES}\nORDER BY value ASC, timestamp DESC\nLIMIT 20",
    w=24, h=8, raw=True, overrides=columns({"value": "none", "latency_ms": "ms"}), links=TRACE_LINKS)

# guardrails (schemas/014: guardrail_failures, hourly; rule = score name, so the score variable applies) and the
# judges' own calls (evaluation_cost, daily). The evaluation_cost view has no
# environment / prompt / version / feature (evaluation_cost): those filters do not apply to them.
GUARDRAILS = (
    "(\n    SELECT * FROM guardrail_failures\n"
    f"    WHERE hour >= toStartOfHour({FROM}) AND hour < {TO}\n"
    f"      AND {q.filters()}\n"
    "      AND $__conditionalAll(rule IN (${score_name:singlequote}), $score_name)\n)"
)
EVALUATION_COST = (
    "(\n    SELECT * FROM evaluation_cost\n"
    f"    WHERE day >= toDate({FROM}, 'UTC') AND day <= toDate({TO} - 1, 'UTC')\n"
    f"      AND {q.filters(skip=('environment', 'prompt', 'version', 'feature'))}\n)"
)
# judge_cost_usd of the results (scores and evaluation errors), processor-side judges included; NULL = unpriced,
# and none known is unknown (nan), never $0
# The filters apply to the scored call (from a day before the range, as SCORES), one raw lookup per filter that is
# set (All: none), over the traces that have results only.
IN_RANGE = f"timestamp >= {FROM} AND timestamp < {TO}"
RESULT_TRACES = (f"trace_id IN (SELECT trace_id FROM llm_scores WHERE {IN_RANGE} UNION ALL "
                 f"SELECT trace_id FROM llm_eval_errors WHERE {IN_RANGE})")
RESULT_FILTERS = " AND ".join(
    f"$__conditionalAll((trace_id, span_id) IN (SELECT trace_id, span_id FROM llm_calls WHERE timestamp >= "
    f"({FROM} - INTERVAL 1 DAY) AND timestamp < {TO} AND {RESULT_TRACES} AND "
    f"{q.RAW_MODEL if col == 'model' else col} IN (${{{var}:singlequote}})), ${var})" for var, col in q.FILTER_VARS)
RESULTS_JUDGE_COST = (
    "(SELECT if(count(judge_cost_usd) = 0, nan, sum(assumeNotNull(judge_cost_usd))) FROM (\n"
    "        SELECT timestamp, trace_id, span_id, judge_cost_usd FROM llm_scores\n"
    "        UNION ALL SELECT timestamp, trace_id, span_id, judge_cost_usd FROM llm_eval_errors)\n"
    f"        WHERE timestamp >= {FROM} AND timestamp < {TO}\n          AND {RESULT_FILTERS})"
)
GUARDRAIL_STEPS = ((GREEN, None), (YELLOW, q.GUARDRAIL_WARN_PCT), (RED, q.GUARDRAIL_FAIL_PCT))
GUARDRAIL_RATE = Panel(
    "guardrail_rate", "Guardrail failure rate", "stat",
    q.totals([(q.GUARDRAIL_FAILURE_PCT, "Failure rate"), ("sum(failures)", "Failures"), ("sum(checks)", "Checks")],
             source=GUARDRAILS),
    w=8, h=4, decimals=2, unit="short", overrides=columns({"Failure rate": "percent"},
                                                          ("Failure rate", {"thresholds": GUARDRAIL_STEPS}),
                                                          ("Failures", COUNT_OVERRIDE), ("Checks", COUNT_OVERRIDE)),
    description="Guardrail checks that failed (value < 0.5) / guardrail checks, over the range (hourly buckets). "
                "Yellow at 1 %, red at 5 %.")
GUARDRAIL_TS = Panel(
    "guardrail_rate_ts", "Guardrail failure rate over time", "timeseries",
    f"SELECT\n    toStartOfInterval(hour, INTERVAL greatest($__interval_s, 3600) second) AS time,\n"
    f"    guardrail AS series,\n    {q.GUARDRAIL_FAILURE_PCT} AS `failure rate`\nFROM {GUARDRAILS}\n"
    "GROUP BY time, series\nORDER BY time, series",
    format="time_series", w=16, h=8, unit="percent", thresholds=GUARDRAIL_STEPS,
    custom={**TS, "thresholdsStyle": {"mode": "dashed"}},
    description="Per guardrail type, at least hourly steps.")
GUARDRAIL_BY_TYPE = Panel(
    "guardrail_by_type", "Guardrail failures by type", "table",
    q.breakdown([("guardrail", "type"), ("rule", "rule")],
                [("sum(failures)", "failed"), ("sum(checks)", "checked"), (q.GUARDRAIL_FAILURE_PCT, "failure %")],
                order="failed DESC, type, rule", source=GUARDRAILS),
    w=8, h=8, decimals=2,
    overrides=columns({"failure %": "percent"}, ("failed", COUNT_OVERRIDE), ("checked", COUNT_OVERRIDE),
                      ("failure %", {"thresholds": GUARDRAIL_STEPS, **COLOR_TEXT})),
    description="Failed and all checks per guardrail type (pii, format, topic, refusal, language ...) and rule.")
EVAL_COST = Panel(
    "evaluation_cost", "Evaluation cost", "stat",
    q.totals([("if(sum(calls) > 0 AND sum(calls) = sum(calls_without_cost), nan, toFloat64(sum(cost_usd)))",
               "Evaluation cost"), ("sum(calls)", "Judge calls"), ("sum(calls_without_cost)", "Calls without cost"),
              (RESULTS_JUDGE_COST, "Judge cost on results")], source=EVALUATION_COST),
    w=8, h=4, decimals=4, unit="short", thresholds=((BLUE, None),), raw=True,  # a filter looks up the scored calls
    overrides=columns({"Evaluation cost": "currencyUSD", "Judge cost on results": "currencyUSD"},
                      ("Judge calls", COUNT_OVERRIDE), ("Calls without cost", COUNT_OVERRIDE)),
    description="Evaluation cost: the in-app LLM judges' own calls (counted apart from the app's traffic), whole "
                "UTC days overlapping the range, filtered by the judge call's service, model and provider; unknown "
                "when no judge call has a price. Judge cost on results: the judge cost the rule results (scores and "
                "evaluation errors) carry, processor-side judges included, filtered by the scored call. An in-app "
                "judge is in both numbers: do not add them.")
# The tag filter cannot narrow scores, guardrail checks or judge calls (their rollups and views keep no tags): these
# panels show every call's numbers whatever the tag, and say so (the console shows the same note on the section).
NOT_BY_TAG = "Not narrowed by the tag filter: scores, guardrail checks and judge calls keep no tags."


def untagged(panel: Panel) -> Panel:
    return dataclasses.replace(panel, description=f"{panel.description} {NOT_BY_TAG}".strip())


(QUALITY_STATS, QUALITY_TS, QUALITY_DISTRIBUTION, FEEDBACK, QUALITY_BY_VERSION, LOWEST_SCORES, GUARDRAIL_RATE,
 GUARDRAIL_TS, GUARDRAIL_BY_TYPE, EVAL_COST) = (
    untagged(p) for p in (QUALITY_STATS, QUALITY_TS, QUALITY_DISTRIBUTION, FEEDBACK, QUALITY_BY_VERSION, LOWEST_SCORES,
                          GUARDRAIL_RATE, GUARDRAIL_TS, GUARDRAIL_BY_TYPE, EVAL_COST))

# comparison
COMPARE_TABLE = Panel("compare_table", "Side by side (winner row)", "table", q.compare_pivot(), w=12, h=9, raw=True,
                      description="Up to 3 of the selected prompts (or versions, see Compare) with the most "
                                  "requests. Latency, tokens and cost over successful calls. Winner: the best "
                                  "success rate when a two-proportion z-test against the runner-up says p < 0.05 "
                                  "(Bonferroni over pairs), as /api/compare; otherwise no winner here — "
                                  "/api/compare also tests p95 and cost.")
COMPARE_RANKED = Panel("compare_ranked", "Comparison (numbers and the success-rate test)", "table",
                       q.compare_ranked(), w=12, h=9, decimals=4, raw=True, unit="none",
                       overrides=columns({"requests": "short", "successes": "short", "success_rate": "percent",
                                          "p95_ms": "ms", "avg_tokens": TOKENS_UNIT,
                                          "cost_per_request": "currencyUSD", "s2": "short", "n2": "short",
                                          "pooled": "percentunit", "place": "short"},
                                         ("success_rate", {"thresholds": SUCCESS_STEPS, **COLOR_TEXT})),
                       links=(("series", (perf_link(),)),))
COMPARE_TS = {
    key: Panel(f"compare_{key}_ts", title, "timeseries", q.timeseries([(expr, key)], group=q.COMPARE_KEY),
               format="time_series", w=8, h=8, unit=unit, custom=TS)
    for key, title, expr, unit in (("p95", "p95 latency", q.P95, "ms"),
                                   ("success", "Success rate", q.SUCCESS_PCT, "percent"),
                                   ("cost_per_request", "Cost per request", q.COST_PER_REQ, "currencyUSD"))
}

# SLA
SLA_STATS = Panel(
    "sla_stats", "SLA status", "stat",
    q.totals([(q.SUCCESS_PCT, "Availability"), (q.P95, "p95"), (q.SUCCESS_PCT, "Success")]), w=12, h=4,
    decimals=2, overrides=(
        ("Availability", {"unit": "percent", "thresholds": ((RED, None), (GREEN, 99.9))}),
        ("p95", {"unit": "ms", "thresholds": ((GREEN, None), (RED, q.P95_TARGET_MS))}),
        ("Success", {"unit": "percent", "thresholds": SUCCESS_STEPS})),
    description="Availability = successful calls / calls (target: slo_target, 99.9%); p95 target 2000 ms; "
                "success target 95%.")
ERROR_BUDGET = Panel(
    "error_budget", "Error budget (requests)", "stat",
    q.totals([(q.ERRORS, "Failed calls"), (f"{q.CALLS} * (1 - {SLO})", "Allowed failures"),
              (f"if({q.CALLS} = 0, nan, 100 * (1 - {q.ERRORS} / ({q.CALLS} * (1 - {SLO}))))", "Budget remaining %")]),
    w=6, h=4, decimals=1, unit="short", overrides=(("Budget remaining %", {"unit": "percent", "thresholds": (
        (RED, None), (YELLOW, 0), (GREEN, 25))}),))
DOWNTIME = Panel(
    "downtime", "Downtime budget (minutes)", "stat",
    f"SELECT\n    countIf(ok_pct < {q.SUCCESS_CRITICAL}) AS `Downtime minutes`,\n"
    f"    {RANGE_S} / 60 * (1 - {SLO}) AS `Allowed minutes`,\n"
    "    `Allowed minutes` - `Downtime minutes` AS `Remaining minutes`\n"
    f"FROM (\n{q.by_minute('100 * (1 - sum(errors) / sum(calls)) AS ok_pct')}\n)",
    w=6, h=4, decimals=1, thresholds=((BLUE, None),), unit="m",
    description="A minute is down when its success rate is below 90%; allowed = range x (1 - SLO) "
                "(99.9% of 30 days = 43 minutes).")
BURN_WINDOWS = ((300, 14.4), (1800, 6.0), (3600, 14.4), (21600, 6.0))
BURN_RATE = Panel(
    "burn_rate", "Burn rate (windows ending at the range end)", "table",
    "SELECT * FROM (\n" + "\nUNION ALL\n".join(
        f"SELECT '{w // 60}m' AS window, {w} AS seconds, sum(errors) / sum(calls) AS `error ratio`,\n"
        f"    `error ratio` / (1 - {SLO}) AS `burn rate`, {f} AS threshold,\n"
        "    if(`burn rate` > threshold, 'burning', 'ok') AS status\n"
        f"FROM {q.rollup(f'({TO} - {w})', TO, minute_only=True)}"
        for w, f in BURN_WINDOWS) + "\n)\nORDER BY seconds",
    w=12, h=6, decimals=3,
    overrides=columns({"seconds": "s", "error ratio": "percentunit", "burn rate": "suffix:×", "threshold": "suffix:×"},
                      ("burn rate", {"thresholds": ((GREEN, None), (YELLOW, 6), (RED, 14.4)), **COLOR_TEXT})),
    description="Burn rate = error ratio / (1 - SLO). Pages when 1h and 5m both burn >14.4x, "
                "tickets when 6h and 30m both burn >6x (alerts/sla_burn_rate.sql).")
BURN_TS = Panel("burn_rate_ts", "Burn rate over time", "timeseries",
                q.timeseries([(f"sum(errors) / sum(calls) / (1 - {SLO})", "burn rate")]), format="time_series",
                w=12, h=6, thresholds=((GREEN, None), (YELLOW, 6), (RED, 14.4)),
                custom={**TS, "thresholdsStyle": {"mode": "dashed"}})
SLA_DAILY = Panel(
    "sla_daily", "Daily compliance", "table",
    f"SELECT\n    toDate(bucket, 'UTC') AS day,\n    {q.CALLS} AS requests,\n    {q.SUCCESS_PCT} AS `availability %`,\n"
    f"    {q.P95} AS `p95 ms`,\n"
    f"    `availability %` >= 100 * {SLO} AND `p95 ms` < {q.P95_TARGET_MS} AND `availability %` >= "
    f"{q.SUCCESS_HEALTHY} AS meeting\n"
    f"FROM {q.rollup()}\nGROUP BY day\nORDER BY day DESC", w=12, h=8, decimals=2,
    overrides=columns({"requests": "short", "availability %": "percent", "p95 ms": "ms", "meeting": "bool_yes_no"},
                      ("p95 ms", {"thresholds": ((GREEN, None), (RED, q.P95_TARGET_MS)), **COLOR_TEXT})))
ALERT_HISTORY = Panel(
    "alert_history", "Alert history", "table",
    "SELECT timestamp, rule, severity, toString(state) AS state, toString(labels) AS labels, value, threshold, "
    f"message\nFROM alert_events\nWHERE timestamp >= {FROM} AND timestamp < {TO}\nORDER BY timestamp DESC\nLIMIT 200",
    w=24, h=8, decimals=3, unit="none")
ALERTS_FIRING = Panel(
    "alerts_firing", "Firing now", "table",
    "SELECT rule, any(severity) AS severity, any(labels) AS labels, max(timestamp) AS since,\n"
    "    argMax(value, timestamp) AS value, argMax(threshold, timestamp) AS threshold,\n"
    "    argMax(message, timestamp) AS message\n"
    f"FROM (SELECT *, toString(labels) AS series FROM alert_events WHERE timestamp < {TO})\nGROUP BY rule, series\n"
    "HAVING argMax(toString(state), timestamp) = 'firing'\nORDER BY since DESC\nLIMIT 100",
    w=24, h=6, decimals=3, unit="none",
    description="Each rule's series whose latest state change up to the range end is firing.")
ALERT_COUNTS = Panel(
    "alert_counts", "Alerts fired by rule", "bargauge",
    "SELECT rule, countIf(state = 'firing') AS fired\nFROM alert_events\n"
    f"WHERE timestamp >= {FROM} AND timestamp < {TO}\nGROUP BY rule\nORDER BY fired DESC",
    w=12, h=8, unit="short", thresholds=((BLUE, None),))

# --- annotations (on every time series panel) ---------------------------------------------------------------
ALERT_ANNOTATION = Annotation(
    "Alerts", "SELECT timestamp AS time,\n"
    "    concat(rule, ' ', toString(state), ' (', severity, '): ', message) AS text,\n"
    "    concat(rule, ',', severity, ',', toString(state)) AS tags\n"
    f"FROM alert_events\nWHERE timestamp >= {FROM} AND timestamp < {TO} AND state IN ('firing', 'resolved')\n"
    "ORDER BY time", "red")
# A version's first call ever: its first day from llm_calls_1d (all history, one row per day), the minute from
# llm_calls_1m (kept 35 days: older rollouts are not marked)
VERSION_ANNOTATION = Annotation(
    "Prompt versions",
    "SELECT m.first AS time,\n"
    "    concat(m.prompt_name, ' v', m.prompt_version, ': first call (', m.service, ')') AS text,\n"
    "    concat('rollout,', m.prompt_name) AS tags\n"
    "FROM (\n  SELECT service, prompt_name, prompt_version, min(bucket) AS first FROM llm_calls_1m\n"
    f"  WHERE bucket >= toStartOfDay({FROM}, 'UTC') AND bucket < {TO} AND prompt_version != ''\n"
    f"    AND {q.filters()}\n  GROUP BY service, prompt_name, prompt_version\n) AS m\n"
    "INNER JOIN (\n  SELECT service, prompt_name, prompt_version FROM llm_calls_1d\n"
    f"  WHERE prompt_version != '' AND {q.filters()}\n  GROUP BY service, prompt_name, prompt_version\n"
    f"  HAVING min(bucket) >= toStartOfDay({FROM}, 'UTC')\n) AS d\n"
    "ON m.service = d.service AND m.prompt_name = d.prompt_name AND m.prompt_version = d.prompt_version\n"
    f"WHERE m.first >= toStartOfMinute({FROM})\nORDER BY time", "purple")
# A version's prompt text changed: a fingerprint after the version's first one (raw llm_calls of the app, 7 days
# back: a judge's prompt is not the app's)
FINGERPRINT_ANNOTATION = Annotation(
    "Prompt changes",
    "SELECT time,\n"
    "    concat(prompt_name, ' v', prompt_version, ': prompt changed (fingerprint ', substring(prompt_fingerprint, 1, "
    "12), ')') AS text,\n    concat('rollout,fingerprint,', prompt_name) AS tags\n"
    "FROM (\n  SELECT service, prompt_name, prompt_version, prompt_fingerprint, min(timestamp) AS time,\n"
    "    row_number() OVER (PARTITION BY service, prompt_name, prompt_version ORDER BY min(timestamp)) AS nth\n"
    f"  FROM llm_calls WHERE timestamp >= ({FROM} - INTERVAL 7 DAY) AND timestamp < {TO}\n"
    f"    AND prompt_fingerprint != '' AND {q.APP_CALLS} AND {q.filters(model_col=q.RAW_MODEL)}\n"
    "  GROUP BY service, prompt_name, prompt_version, prompt_fingerprint\n)\n"
    f"WHERE nth > 1 AND time >= {FROM}\nORDER BY time", "orange")
ANNOTATIONS = (ALERT_ANNOTATION, VERSION_ANNOTATION, FINGERPRINT_ANNOTATION)
COMMON_VARIABLES = (*FILTER_VARIABLES, INTERVAL)


# --- dashboards ---------------------------------------------------------------------------------------------------
def dashboard(uid: str, title: str, description: str, rows: tuple[Row, ...], variables: tuple[Variable, ...],
              **kw: Any) -> Dashboard:
    """A dashboard of collapsible rows, with the interval variable and the annotations."""
    return Dashboard(uid, title, description, tuple(p for r in rows for p in r.panels), (*COMMON_VARIABLES, *variables),
                     rows=rows, annotations=ANNOTATIONS, timeseries_interval="$" + INTERVAL.name, **kw)


DASHBOARDS: tuple[Dashboard, ...] = (
    dashboard("promptpulse-overview", "PromptPulse / Overview",
              "Executive view: traffic, success, latency against targets, errors, tokens, cost and top issues.",
              (Row("Health", (REQUESTS, RPM, PEAK_RPM, TREND, SUCCESS_RATE, ERROR_RATE, LATENCY_STATS, TOKENS,
                              COST_STATS)),
               Row("Trends", (RPM_BY_PROMPT, SUCCESS_TS, LATENCY_TS, ERROR_RATE_TS)),
               Row("Top issues and prompts", (TOP_ISSUES, PROMPT_BREAKDOWN))), ()),
    dashboard("promptpulse-performance", "PromptPulse / Performance",
              "Latency percentiles, time to first token, throughput, errors by category, latency breakdown.",
              (Row("Latency", (LATENCY_STATS, SUCCESS_RATE, ERROR_RATE, RPM, LATENCY_TS, TTFT_TS)),
               Row("Latency per prompt", (LATENCY_PER_PROMPT,), collapsed=True),
               Row("Throughput and errors", (RPM_BY_MODEL, ERRORS_BY_CATEGORY, ERROR_RATE_TS, SUCCESS_TS)),
               Row("Breakdown", (LATENCY_TABLE, LATENCY_BREAKDOWN)),
               Row("Drill-down", (SLOWEST, FAILED_CALLS, TRACE_CALLS))),
              (TRACE_ID, TRACE_URL, ADHOC_QUERY, ADHOC)),
    dashboard("promptpulse-cost", "PromptPulse / Cost",
              "Spend by prompt, model and provider; cost per request; daily budget and monthly projection.",
              (Row("Spend", (COST_STATS, BUDGET_TODAY, MONTH_PROJECTION)),
               Row("Over time", (*COST_BY.values(), COST_PER_REQ_TS, DAILY_SPEND, TOKENS_TS)),
               Row("Breakdown", (COST_PIE, COST_TABLE, TOKENS))), (DAILY_BUDGET,)),
    dashboard("promptpulse-quality", "PromptPulse / Quality",
              "Quality scores and user feedback from llm_scores, attributed to prompts through their calls.",
              (Row("Scores", (QUALITY_STATS, QUALITY_TS, QUALITY_DISTRIBUTION, FEEDBACK, QUALITY_BY_VERSION)),
               Row("Guardrails and evaluation cost", (GUARDRAIL_RATE, EVAL_COST, GUARDRAIL_TS, GUARDRAIL_BY_TYPE)),
               Row("Drill-down", (LOWEST_SCORES,), collapsed=True)),
              (SCORE_NAME, TRACE_URL)),
    dashboard("promptpulse-compare", "PromptPulse / Prompt comparison",
              "Up to 3 prompts or versions side by side with a winner row.",
              (Row("Side by side", (COMPARE_TABLE, COMPARE_RANKED)),
               Row("Over time", tuple(COMPARE_TS.values()))), (COMPARE_BY,), time_from="now-7d"),
    dashboard("promptpulse-sla", "PromptPulse / SLA & alerts",
              "Availability, p95 and success against targets, error budget, burn rate and alert history.",
              (Row("SLA", (SLA_STATS, ERROR_BUDGET, DOWNTIME)),
               Row("Burn rate", (BURN_RATE, BURN_TS)),
               Row("Compliance and alerts", (SLA_DAILY, ALERTS_FIRING, ALERT_COUNTS, ALERT_HISTORY))),
              (SLO_TARGET,), time_from="now-30d"),
)


def all_panels() -> dict[str, Panel]:
    """Every distinct panel by key (a panel shown on two dashboards is one definition)."""
    out: dict[str, Panel] = {}
    for dash in DASHBOARDS:
        for panel in dash.panels:
            if out.setdefault(panel.key, panel) is not panel:
                raise ValueError(f"two different panels share the key {panel.key!r}")
    return out
