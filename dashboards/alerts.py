"""Alert rules: one SQL query per rule, defined once here and rendered to dashboards/alerts/<name>.sql and to
Grafana alert-rule provisioning (dashboards/alerts/grafana-alert-rules.yaml).

Every query returns only the *firing* series, one row each, with label columns, ``value`` and ``threshold`` (plus
context such as ``baseline``). Thresholds and the evaluation time are ClickHouse query parameters
(``{name:Type}``); ``AlertRule.parameters(now=...)`` gives the defaults. Evaluation windows end at
``toStartOfMinute({now})``: only complete minutes count. Baselines (docs/ALERTS.md): the same window at the same
time of week (or day) over the previous N periods; median and MAD of those values, so one bad week or a holiday
does not move the baseline.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .grafana import DATASOURCE_UID, PLUGIN_MIN_VERSION

FOLDER = "PromptPulse"
NOW = "{now:DateTime64(3, 'UTC')}"
T_END = f"toStartOfMinute({NOW})"
_PARAM = re.compile(r"\{(\w+):([^{}]+)\}")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    doc: str


@dataclass(frozen=True)
class AlertRule:
    name: str
    title: str
    severity: str  # warning | critical | per-row (a `severity` column)
    summary: str
    labels: tuple[str, ...]
    params: tuple[Param, ...]
    sql: str
    pending: str = "0s"  # Grafana `for`: the query's window already spans the required duration

    def parameters(self, now: dt.datetime | str, **overrides: Any) -> dict[str, Any]:
        """Query parameters: the defaults, ``overrides`` and the evaluation time."""
        known = {p.name for p in self.params}
        unknown = set(overrides) - known
        if unknown:
            raise KeyError(f"{self.name}: unknown parameters {sorted(unknown)}")
        return {"now": now, **{p.name: p.default for p in self.params}, **overrides}

    def file_text(self) -> str:
        head = [f"-- {self.title}",
                f"-- rule: {self.name}; severity: {self.severity}; labels: {', '.join(self.labels)}",
                f"-- {self.summary}", "-- Returns the firing series only: labels, value, threshold (and context).",
                "-- Parameters (defaults):", "--   now DateTime64(3, 'UTC'): evaluation time (Grafana: now64(3))"]
        head += [f"--   {p.name} {p.type} = {p.default}: {p.doc}" for p in self.params]
        return "\n".join(head) + "\n" + self.sql.strip() + "\n"

    def literal_sql(self, **overrides: Any) -> str:
        """The SQL with parameters replaced by literals (defaults; evaluation time now64(3)), for Grafana."""
        values = {p.name: p.default for p in self.params} | overrides

        def sub(match: re.Match[str]) -> str:
            name, typ = match.group(1), match.group(2)
            if name == "now":
                return "now64(3)"
            value = values[name]
            if typ == "String":
                return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
            return f"to{typ}({value!r})" if not typ.startswith("Float") else repr(float(value))

        return _PARAM.sub(sub, self.sql)


def P(name: str, type_: str, default: Any, doc: str) -> Param:
    return Param(name, type_, default, doc)


def _labels(labels: Sequence[str]) -> str:
    return ", ".join(labels)


def _window_rule(labels: Sequence[str], metrics: str, having: str, *, table: str = "llm_calls_1m",
                 time_col: str = "bucket", extra_where: str = "", order: str = "value DESC") -> str:
    """Aggregate the last {window_s} seconds of complete minutes per series and keep the firing ones."""
    where = (f"{time_col} >= t_end - toIntervalSecond({{window_s:UInt32}}) AND {time_col} < t_end"
             + (f" AND {extra_where}" if extra_where else ""))
    return (f"WITH {T_END} AS t_end\nSELECT\n    {_labels(labels)},\n    {metrics}\nFROM {table}\nWHERE {where}\n"
            f"GROUP BY {_labels(labels)}\nHAVING {having}\nORDER BY {order}")


def seasonal_stats(labels: Sequence[str], value: str, count: str, *, source: str = "llm_calls_1m",
                   time_col: str = "bucket", period_s: int = 604800, periods_param: str = "weeks",
                   history_if: str = "") -> str:
    """Per series: the value of the current window [t_end - window_s, t_end) (k = 0) and of the same window one,
    two, ... N periods earlier (k = 1..N), with the baseline = median and mad = median absolute deviation of those
    earlier values. ``history_if`` keeps only some earlier windows (e.g. with enough calls)."""
    keep = "k > 0" + (f" AND {history_if}" if history_if else "")
    lab = _labels(labels)
    return (
        f"    SELECT {lab},\n"
        "        anyIf(v, k = 0) AS current, anyIf(c, k = 0) AS current_n,\n"
        f"        groupArrayIf(v, {keep}) AS history,\n"
        "        arrayReduce('quantileExactInclusive(0.5)', history) AS baseline,\n"
        "        arrayReduce('quantileExactInclusive(0.5)', arrayMap(x -> abs(x - baseline), history)) AS mad,\n"
        "        length(history) AS periods\n"
        "    FROM (\n"
        f"        SELECT {lab}, intDiv(dateDiff('second', {time_col}, t_end) - 1, {period_s}) AS k,\n"
        f"               {value} AS v, {count} AS c\n"
        f"        FROM {source}\n"
        f"        WHERE {time_col} >= t_end - toIntervalSecond({{{periods_param}:UInt16}} * {period_s} + "
        "{window_s:UInt32})\n"
        f"          AND {time_col} < t_end\n"
        f"          AND (dateDiff('second', {time_col}, t_end) - 1) % {period_s} < {{window_s:UInt32}}\n"
        f"        GROUP BY {lab}, k\n"
        "    )\n"
        f"    GROUP BY {lab}"
    )


def _seasonal_rule(labels: Sequence[str], value: str, count: str, condition: str, threshold: str, **kw: Any) -> str:
    lab = _labels(labels)
    return (f"WITH {T_END} AS t_end\n"
            f"SELECT {lab}, current AS value, {threshold} AS threshold, baseline, mad, current_n, periods, history\n"
            f"FROM (\n{seasonal_stats(labels, value, count, **kw)}\n)\n"
            f"WHERE periods >= {{min_periods:UInt16}} AND {condition}\nORDER BY value / greatest(threshold, 1e-9) DESC")


SERIES = ("service", "environment", "prompt_name", "model", "provider")
PROMPT_SERIES = ("service", "environment", "prompt_name")  # every rule keeps environment in its labels
P95 = "promptpulse_hist_quantile(sumMap(latency_hist), 0.95)"
MAD_SIGMA = 1.4826  # MAD x 1.4826 estimates the standard deviation of normal data
WINDOW = lambda s, doc="evaluation window in seconds (complete minutes ending at now)": P("window_s", "UInt32", s, doc)  # noqa: E731
MIN_CALLS = lambda n: P("min_calls", "UInt32", n, "ignore series with fewer calls in the window")  # noqa: E731
WEEKS = P("weeks", "UInt16", 4, "baseline: the same window in each of the previous N weeks")
MIN_PERIODS = P("min_periods", "UInt16", 2, "fire only with at least this many baseline periods of history")
MAD_K = P("mad_k", "Float64", 3.0, "and only when the change exceeds mad_k x 1.4826 x MAD of the history")


def _percentile_rule(q: float) -> str:
    return _window_rule(
        SERIES, f"sum(calls) AS n_calls,\n    promptpulse_hist_quantile(sumMap(latency_hist), {q}) AS value,\n"
                "    {threshold_ms:Float64} AS threshold",
        "n_calls >= {min_calls:UInt32} AND value > threshold")


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "error_rate", "Error rate above 5% for 5 minutes", "critical",
        "Failed calls / calls over the last 5 minutes, per service, prompt, model and provider.",
        SERIES, (WINDOW(300), P("max_error_pct", "Float64", 5.0, "error rate threshold, percent"), MIN_CALLS(10)),
        _window_rule(SERIES, "sum(calls) AS n_calls,\n    sum(errors) AS n_errors,\n"
                             "    100 * n_errors / n_calls AS value,\n    {max_error_pct:Float64} AS threshold",
                     "n_calls >= {min_calls:UInt32} AND value > threshold")),
    AlertRule(
        "http_5xx", "Any 5xx from a provider", "critical",
        "Calls answered with HTTP 500-599 in the window (the rollups' http_5xx counter).",
        SERIES, (WINDOW(300), P("max_5xx", "UInt32", 0, "fire when more 5xx than this")),
        _window_rule(SERIES, "sum(http_5xx) AS value,\n    {max_5xx:UInt32} AS threshold,\n"
                             "    sum(calls) AS n_calls,\n    sum(errors_model_error) AS n_model_errors",
                     "value > threshold")),
    AlertRule(
        "success_rate", "Success rate below 95% (warning) / 90% (critical)", "per-row",
        "Successful calls / calls over the last 5 minutes; severity critical below 90%, warning below 95%.",
        (*SERIES, "severity"),
        (WINDOW(300), P("warning_below", "Float64", 95.0, "warning when success % is below"),
         P("critical_below", "Float64", 90.0, "critical when success % is below"), MIN_CALLS(10)),
        _window_rule(SERIES, "sum(calls) AS n_calls,\n    sum(errors) AS n_errors,\n"
                             "    100 * (1 - n_errors / n_calls) AS value,\n"
                             "    if(value < {critical_below:Float64}, 'critical', 'warning') AS severity,\n"
                             "    if(severity = 'critical', {critical_below:Float64}, {warning_below:Float64}) "
                             "AS threshold",
                     "n_calls >= {min_calls:UInt32} AND value < {warning_below:Float64}", order="value ASC")),
    AlertRule("latency_p95", "p95 latency above 2 s", "warning",
              "p95 latency (ms) over the last 5 minutes, from the merged 1-minute histograms.", SERIES,
              (WINDOW(300), P("threshold_ms", "Float64", 2000.0, "p95 target, ms"), MIN_CALLS(10)),
              _percentile_rule(0.95)),
    AlertRule("latency_p99", "p99 latency above 5 s", "critical",
              "p99 latency (ms) over the last 2 minutes (seed: p99 > 5000 ms for 2 minutes).", SERIES,
              (WINDOW(120), P("threshold_ms", "Float64", 5000.0, "p99 target, ms"), MIN_CALLS(5)),
              _percentile_rule(0.99)),
    AlertRule(
        "daily_budget", "Daily spend above 110% of budget", "warning",
        "Spend since midnight UTC vs daily_budget_usd x budget_ratio (all services and environments).",
        ("scope", "environment"),
        (P("daily_budget_usd", "Float64", 100.0, "the daily budget in USD (set it)"),
         P("budget_ratio", "Float64", 1.1, "fire above this share of the budget")),
        f"WITH {NOW} AS t_now, toStartOfDay(toDateTime(t_now, 'UTC')) AS day_start\n"
        "SELECT 'total' AS scope, 'all' AS environment, toFloat64(sum(cost_usd)) AS value,\n"
        "    {daily_budget_usd:Float64} * {budget_ratio:Float64} AS threshold,\n"
        "    {daily_budget_usd:Float64} AS budget, toDate(day_start) AS day\n"
        "FROM llm_calls_1m\nWHERE bucket >= day_start AND bucket <= t_now\nHAVING value > threshold"),
    AlertRule(
        "cost_anomaly", "Cost above 1.5x expected", "warning",
        "Cost of the last hour vs the median cost of the same hour of the week over the previous weeks.",
        PROMPT_SERIES,
        (WINDOW(3600), WEEKS, P("ratio", "Float64", 1.5, "fire above ratio x expected"),
         P("min_cost_usd", "Float64", 0.01, "ignore windows cheaper than this"), MIN_PERIODS, MAD_K),
        _seasonal_rule(PROMPT_SERIES, "toFloat64(sum(cost_usd))", "sum(calls)",
                       f"current >= {{min_cost_usd:Float64}} AND current > {{ratio:Float64}} * baseline "
                       f"AND current - baseline > {{mad_k:Float64}} * {MAD_SIGMA} * mad",
                       "{ratio:Float64} * baseline")),
    AlertRule(
        "traffic_spike", "Traffic spike above 2x normal", "warning",
        "Calls in the last 15 minutes vs the median of the same 15 minutes of the week over the previous weeks.",
        PROMPT_SERIES,
        (WINDOW(900), WEEKS, P("ratio", "Float64", 2.0, "fire above ratio x baseline"), MIN_CALLS(20), MIN_PERIODS,
         MAD_K),
        _seasonal_rule(PROMPT_SERIES, "toFloat64(sum(calls))", "sum(calls)",
                       f"current >= {{min_calls:UInt32}} AND current > {{ratio:Float64}} * baseline "
                       f"AND current - baseline > {{mad_k:Float64}} * {MAD_SIGMA} * mad",
                       "{ratio:Float64} * baseline")),
    AlertRule(
        "traffic_drop", "Sudden traffic drop", "warning",
        "Calls in the last 15 minutes below half the seasonal baseline (also fires on silence).",
        PROMPT_SERIES,
        (WINDOW(900), WEEKS, P("ratio", "Float64", 0.5, "fire below ratio x baseline"),
         P("min_baseline_calls", "Float64", 20.0, "only series that normally have this many calls"), MIN_PERIODS,
         MAD_K),
        _seasonal_rule(PROMPT_SERIES, "toFloat64(sum(calls))", "sum(calls)",
                       f"baseline >= {{min_baseline_calls:Float64}} AND current < {{ratio:Float64}} * baseline "
                       f"AND baseline - current > {{mad_k:Float64}} * {MAD_SIGMA} * mad",
                       "{ratio:Float64} * baseline")),
    AlertRule(
        "latency_baseline", "p95 latency above 2x baseline", "warning",
        "p95 of the last 15 minutes vs the median p95 of the same 15 minutes of the week in previous weeks.",
        (*PROMPT_SERIES, "model"),
        (WINDOW(900), WEEKS, P("ratio", "Float64", 2.0, "fire above ratio x baseline p95"), MIN_CALLS(20),
         MIN_PERIODS, MAD_K),
        _seasonal_rule((*PROMPT_SERIES, "model"), P95, "sum(calls)",
                       f"current_n >= {{min_calls:UInt32}} AND current > {{ratio:Float64}} * baseline "
                       f"AND current - baseline > {{mad_k:Float64}} * {MAD_SIGMA} * mad",
                       "{ratio:Float64} * baseline", history_if="c >= {min_calls:UInt32}")),
    AlertRule(
        "quality_regression", "Quality score 5% below baseline", "warning",
        "Average score of each prompt version in the last 24 h vs the median of the prompt's daily averages of the "
        "previous days (all versions), per score name, i.e. per evaluation rule (llm_scores_1m: scores attributed "
        "to their calls at insert time; unattributed ones left out): catches a new version that scores lower.",
        ("score_name", *PROMPT_SERIES, "prompt_version"),
        (WINDOW(86400), P("days", "UInt16", 14, "baseline: the previous N days"),
         P("drop_pct", "Float64", 5.0, "fire when the average is this many percent below baseline"),
         P("min_scores", "UInt32", 10, "scores needed in a window"), MIN_PERIODS),
        f"WITH {T_END} AS t_end\n"
        "SELECT cur.score_name AS score_name, cur.service AS service, cur.environment AS environment,\n"
        "    cur.prompt_name AS prompt_name, cur.prompt_version AS prompt_version,\n"
        "    cur.v AS value, base.baseline * (1 - {drop_pct:Float64} / 100) AS threshold, base.baseline AS baseline,\n"
        "    base.mad AS mad, cur.n AS current_n, base.periods AS periods, base.history AS history\n"
        "FROM (\n"
        "    SELECT name AS score_name, service, environment, prompt_name, prompt_version,\n"
        "        sum(value_sum) / sum(scores) AS v, sum(scores) AS n\n"
        "    FROM llm_scores_1m\n"
        "    WHERE service != '' AND bucket >= t_end - toIntervalSecond({window_s:UInt32}) AND bucket < t_end\n"
        "    GROUP BY score_name, service, environment, prompt_name, prompt_version\n"
        ") AS cur\nINNER JOIN (\n"
        + seasonal_stats(("score_name", *PROMPT_SERIES), "sum(value_sum) / sum(scores)", "sum(scores)",
                         source="(\n            SELECT bucket, name AS score_name, service, environment, prompt_name,"
                                " scores, value_sum\n            FROM llm_scores_1m\n"
                                "            WHERE service != ''\n"
                                "        )",
                         period_s=86400, periods_param="days", history_if="c >= {min_scores:UInt32}")
        + "\n) AS base ON cur.score_name = base.score_name AND cur.service = base.service"
        " AND cur.environment = base.environment AND cur.prompt_name = base.prompt_name\n"
        "WHERE cur.n >= {min_scores:UInt32} AND base.periods >= {min_periods:UInt16} AND value < threshold\n"
        "ORDER BY value / greatest(threshold, 1e-9) ASC"),
    AlertRule(
        "guardrail_failure_rate", "Guardrail failure rate above 5%", "warning",
        "Failed guardrail checks / guardrail checks in the hours overlapping the last hour (the hourly view "
        "guardrail_failures, schemas/014), per guardrail type, rule, service, environment and prompt.",
        ("guardrail", "rule", *PROMPT_SERIES),
        (WINDOW(3600, "window in seconds: the hour buckets from toStartOfHour(now - window_s) up to now"),
         P("max_failure_pct", "Float64", 5.0, "failure rate threshold, percent"),
         P("min_checks", "UInt32", 20, "ignore series with fewer checks in the window")),
        f"WITH {T_END} AS t_end\n"
        "SELECT\n    guardrail, rule, service, environment, prompt_name,\n"
        "    sum(checks) AS n_checks,\n    sum(failures) AS n_failures,\n"
        "    100 * n_failures / n_checks AS value,\n    {max_failure_pct:Float64} AS threshold\n"
        "FROM guardrail_failures\n"
        "WHERE hour >= toStartOfHour(t_end - toIntervalSecond({window_s:UInt32})) AND hour < t_end\n"
        "GROUP BY guardrail, rule, service, environment, prompt_name\n"
        "HAVING n_checks >= {min_checks:UInt32} AND value > threshold\nORDER BY value DESC"),
    AlertRule(
        "version_latency_regression", "Prompt version latency 20% above baseline", "warning",
        "Median latency of each prompt version in the last hour vs the prompt's median latency in the same hour "
        "of the previous days (all versions): catches a new version that is slower.",
        (*PROMPT_SERIES, "prompt_version"),
        (WINDOW(3600), P("days", "UInt16", 7, "baseline: the same hour on each of the previous N days"),
         P("quantile", "Float64", 0.5, "latency quantile compared (0.5 = median)"),
         P("ratio", "Float64", 1.2, "fire above ratio x baseline"), MIN_CALLS(20), MIN_PERIODS),
        f"WITH {T_END} AS t_end\n"
        "SELECT cur.service AS service, cur.environment AS environment, cur.prompt_name AS prompt_name,\n"
        "    cur.prompt_version AS prompt_version,\n"
        "    cur.v AS value, base.baseline * {ratio:Float64} AS threshold, base.baseline AS baseline,\n"
        "    cur.n AS current_n, base.periods AS periods, base.history AS history\n"
        "FROM (\n"
        "    SELECT service, environment, prompt_name, prompt_version,\n"
        "        promptpulse_hist_quantile(sumMap(latency_hist), {quantile:Float64}) AS v, sum(calls) AS n\n"
        "    FROM llm_calls_1m\n"
        "    WHERE bucket >= t_end - toIntervalSecond({window_s:UInt32}) AND bucket < t_end\n"
        "    GROUP BY service, environment, prompt_name, prompt_version\n"
        ") AS cur\nINNER JOIN (\n"
        + seasonal_stats(PROMPT_SERIES,
                         "promptpulse_hist_quantile(sumMap(latency_hist), {quantile:Float64})", "sum(calls)",
                         period_s=86400, periods_param="days", history_if="c >= {min_calls:UInt32}")
        + "\n) AS base ON cur.service = base.service AND cur.environment = base.environment"
        " AND cur.prompt_name = base.prompt_name\n"
        "WHERE cur.n >= {min_calls:UInt32} AND base.periods >= {min_periods:UInt16} AND value > threshold\n"
        "ORDER BY value / threshold DESC"),
    AlertRule(
        "sla_burn_rate", "SLA error budget burning (multi-window)", "per-row",
        "Burn rate = error ratio / (1 - SLO). Critical when both 1h and 5m burn above 14.4x (2% of a 30-day budget "
        "in an hour); warning when both 6h and 30m burn above 6x.", ("service", "environment", "window", "severity"),
        (P("slo_target", "Float64", 0.999, "availability SLO (ratio)"),
         P("fast_long_s", "UInt32", 3600, "fast burn: long window"), P("fast_short_s", "UInt32", 300,
                                                                        "fast burn: short window"),
         P("fast_burn", "Float64", 14.4, "fast burn threshold"),
         P("slow_long_s", "UInt32", 21600, "slow burn: long window"), P("slow_short_s", "UInt32", 1800,
                                                                         "slow burn: short window"),
         P("slow_burn", "Float64", 6.0, "slow burn threshold"), MIN_CALLS(10)),
        f"WITH {T_END} AS t_end, 1 - {{slo_target:Float64}} AS budget\n"
        "SELECT service, environment, window, severity, least(burn_long, burn_short) AS value, threshold,"
        " burn_long, burn_short, n_calls\nFROM (\n"
        + "\n    UNION ALL\n".join(
            f"    SELECT service, environment, '{label}' AS window, '{sev}' AS severity,"
            f" {{{speed}_burn:Float64}} AS threshold,\n"
            f"        sumIf(errors, bucket >= t_end - toIntervalSecond({{{speed}_long_s:UInt32}})) / "
            f"sumIf(calls, bucket >= t_end - toIntervalSecond({{{speed}_long_s:UInt32}})) / budget AS burn_long,\n"
            f"        sumIf(errors, bucket >= t_end - toIntervalSecond({{{speed}_short_s:UInt32}})) / "
            f"sumIf(calls, bucket >= t_end - toIntervalSecond({{{speed}_short_s:UInt32}})) / budget AS burn_short,\n"
            f"        sumIf(calls, bucket >= t_end - toIntervalSecond({{{speed}_long_s:UInt32}})) AS n_calls\n"
            f"    FROM llm_calls_1m\n"
            f"    WHERE bucket >= t_end - toIntervalSecond({{{speed}_long_s:UInt32}}) AND bucket < t_end\n"
            f"    GROUP BY service, environment"
            for speed, label, sev in (("fast", "1h/5m", "critical"), ("slow", "6h/30m", "warning")))
        + "\n)\nWHERE n_calls >= {min_calls:UInt32} AND burn_long > threshold AND burn_short > threshold\n"
        "ORDER BY value DESC"),
)

RULES_BY_NAME: dict[str, AlertRule] = {r.name: r for r in RULES}


# --- Grafana alert-rule provisioning ---------------------------------------------------------------------------
# The panel each rule's notification links to (dashboardUid / panelId): where the firing series is seen
RULE_PANELS: dict[str, tuple[str, str]] = {
    "error_rate": ("promptpulse-overview", "error_rate_ts"),
    "http_5xx": ("promptpulse-performance", "errors_by_category"),
    "success_rate": ("promptpulse-overview", "success_ts"),
    "latency_p95": ("promptpulse-performance", "latency_ts"),
    "latency_p99": ("promptpulse-performance", "latency_ts"),
    "daily_budget": ("promptpulse-cost", "budget_today"),
    "cost_anomaly": ("promptpulse-cost", "cost_by_prompt_name"),
    "traffic_spike": ("promptpulse-overview", "rpm_by_prompt"),
    "traffic_drop": ("promptpulse-overview", "rpm_by_prompt"),
    "latency_baseline": ("promptpulse-performance", "latency_ts"),
    "quality_regression": ("promptpulse-quality", "quality_ts"),
    "guardrail_failure_rate": ("promptpulse-quality", "guardrail_rate_ts"),
    "version_latency_regression": ("promptpulse-compare", "compare_p95_ts"),
    "sla_burn_rate": ("promptpulse-sla", "burn_rate_ts"),
}
# keepFiringFor: how long an instance stays firing after its query stops returning it, so a series hovering at the
# threshold does not flap (the windowed rules re-evaluate every minute; the baseline rules move slowly)
KEEP_FIRING: dict[str, str] = {"daily_budget": "0s", "cost_anomaly": "15m", "traffic_spike": "15m",
                               "traffic_drop": "15m", "latency_baseline": "15m", "quality_regression": "1h",
                               "guardrail_failure_rate": "15m",
                               "version_latency_regression": "15m"}
DEFAULT_KEEP_FIRING = "5m"
# docs/ALERTS.md "Runbooks" has one section per rule; `export --runbook-url` points at where that file is published
DEFAULT_RUNBOOK_URL = "docs/ALERTS.md"


def runbook_url(rule: AlertRule, base: str = DEFAULT_RUNBOOK_URL) -> str:
    return f"{base}#runbook-{rule.name.replace('_', '-')}"

def grafana_query(rule: AlertRule) -> str:
    """What Grafana runs: the rule's SQL with literal defaults, reduced to label columns (strings) and ``value``
    (Grafana alerting turns each row of a table into one alert instance: string columns are labels, the one numeric
    column is the value)."""
    labels = label_names(rule)
    cols = ", ".join(f"CAST(toString({lab}) AS String) AS {lab}" for lab in labels)
    return f"SELECT {cols}, toFloat64(value) AS value\nFROM (\n{rule.literal_sql()}\n)"


def label_names(rule: AlertRule) -> list[str]:
    return [lab.split(" AS ")[-1] for lab in rule.labels]


def summary_template(rule: AlertRule) -> str:
    """The notification summary: the title, each label by name (``{{ $labels }}`` would print a Go map) and the
    value; severity is left out (it is the notification's own field)."""
    shown = [lab for lab in label_names(rule) if lab != "severity"]
    labels = ", ".join(f"{lab}={{{{ $labels.{lab} }}}}" for lab in shown)
    return f"{rule.title}: {labels}: value {{{{ printf \"%.4g\" $values.A.Value }}}}"


def _rule_doc(rule: AlertRule, panel_ids: Mapping[str, Mapping[str, int]], runbook_base: str) -> dict[str, Any]:
    thresholds = ", ".join(f"{p.name}={p.default}" for p in rule.params)
    dashboard_uid, panel_key = RULE_PANELS[rule.name]
    return {
        "uid": f"pp-{rule.name.replace('_', '-')}"[:40],
        "title": rule.title,
        "condition": "B",
        "dashboardUid": dashboard_uid,
        "panelId": panel_ids[dashboard_uid][panel_key],
        "data": [
            {"refId": "A", "relativeTimeRange": {"from": 600, "to": 0}, "datasourceUid": DATASOURCE_UID,
             "model": {"refId": "A", "pluginVersion": PLUGIN_MIN_VERSION, "editorType": "sql", "format": 1,
                       "queryType": "table",
                       "rawSql": grafana_query(rule), "intervalMs": 60000, "maxDataPoints": 43200}},
            {"refId": "B", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": "__expr__",
             "model": {"refId": "B", "type": "math", "expression": "$A == $A",
                       "datasource": {"type": "__expr__", "uid": "__expr__"}}},
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": rule.pending,
        "keepFiringFor": KEEP_FIRING.get(rule.name, DEFAULT_KEEP_FIRING),
        "labels": {"team": "promptpulse", "rule": rule.name}
        | ({} if rule.severity == "per-row" else {"severity": rule.severity}),
        "annotations": {"summary": summary_template(rule),
                        "description": rule.summary + f" Parameters: {thresholds}.",
                        "runbook_url": runbook_url(rule, runbook_base),
                        "sql_file": f"dashboards/alerts/{rule.name}.sql"},
        "isPaused": False,
    }


def yaml_text(value: Any) -> str:
    """``value`` as YAML (the subset the provisioning files need; strings JSON-quoted)."""
    return _yaml(value)


def _yaml(value: Any, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        lines = []
        for key, item in value.items():
            if isinstance(item, str) and "\n" in item:
                body = "\n".join(pad + "  " + line if line else "" for line in item.split("\n"))
                lines.append(f"{pad}{key}: |-\n{body}")
            elif isinstance(item, (Mapping, list)) and item:
                lines.append(f"{pad}{key}:\n{_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {_yaml(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]"
        out = []
        for item in value:
            text = _yaml(item, indent + 2) if isinstance(item, (Mapping, list)) else pad + "  " + _yaml(item)
            out.append(pad + "- " + text.lstrip())
        return "\n".join(out)
    return json.dumps(value)


def grafana_rules_yaml(runbook_base: str = DEFAULT_RUNBOOK_URL) -> str:
    from .definitions import DASHBOARDS  # the rules link to dashboard panels; the evaluator does not need them
    from .grafana import panel_ids

    ids = {d.uid: panel_ids(d) for d in DASHBOARDS}
    doc = {"apiVersion": 1, "groups": [{"orgId": 1, "name": "promptpulse", "folder": FOLDER, "interval": "1m",
                                        "rules": [_rule_doc(r, ids, runbook_base) for r in RULES]}]}
    return ("# Generated by `python -m promptpulse.dashboards.build` from promptpulse/dashboards/alerts.py; "
            "do not edit.\n"
            "# Grafana alert-rule provisioning; the data source uid is the one in "
            "provisioning/datasources/clickhouse.yaml.\n" + _yaml(doc) + "\n")
