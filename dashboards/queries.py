"""SQL builders shared by every dashboard panel: filters from the dashboard variables, the rollup source at the
resolution that fits the time range, and the metric expressions. A panel's SQL is composed here, never typed twice.

Resolution: ranges up to ``SWITCH_S`` (48 h) read ``llm_calls_1m``, longer ones ``llm_calls_1h`` — and of those, every
whole UTC day inside the range comes from ``llm_calls_1d`` (only the partial first and last day from the hourly
table) whenever the panel does not need finer time steps than a day. The branches of the UNION ALL carry constant
guards on ``$__toTime - $__fromTime`` (and the step), so ClickHouse reads only the tables that apply; days + edge
hours sum to exactly what the hourly rows of the same range give. Raw ``llm_calls`` is read only by drill-down
tables. Quality panels read the score rollups (``llm_scores_1m`` /
``llm_scores_1h``) the same way.

Tag (the single-valued ``tag`` variable, schemas/021): when it is All, the untagged branches above are read, exactly
as without it; when a tag is chosen they are off and the same ranges come from ``llm_calls_tags_1m`` /
``llm_calls_tags_1h`` (``tag IN (...)``; no daily tagged table, so whole days are read from the tagged hours). The
two sets of branches carry constant guards from ``$__conditionalAll(0, $tag)``, which the plugin turns into ``1=1``
when the tag is All and leaves ``0`` otherwise. The score rollups and guardrail views keep no tags: quality panels are
never narrowed by tag.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from promptpulse.instrumentation.semconv import EVALUATION_FEATURE

SWITCH_S = 2 * 86400
FROM, TO = "$__fromTime", "$__toTime"
RANGE_S = f"({TO} - {FROM})"
RES_S = f"if({RANGE_S} <= {SWITCH_S}, 60, 3600)"
STEP_S = f"greatest($__interval_s, {RES_S})"

# dashboard variable -> rollup column
FILTER_VARS: tuple[tuple[str, str], ...] = (
    ("service", "service"), ("environment", "environment"), ("prompt", "prompt_name"),
    ("version", "prompt_version"), ("model", "model"), ("provider", "provider"), ("feature", "feature"),
)
# The tag variable (single-valued: a call with two chosen tags would be counted twice). Not in FILTER_VARS: tags are
# no column of the untagged rollups, and score rollups / guardrail views cannot be narrowed by them.
TAG_VAR = "tag"
# Every variable rollup() / raw_calls() read (all of them All: the numbers without any filter)
VARIABLES: tuple[str, ...] = (*(v for v, _ in FILTER_VARS), TAG_VAR)
NO_TAG = "$__conditionalAll(0, $tag)"  # 1=1 when the tag is All, else 0: the untagged branches
BY_TAG = "NOT ($__conditionalAll(0, $tag)) AND $__conditionalAll(tag IN (${tag:singlequote}), $tag)"
RAW_TAG = "$__conditionalAll(has(tags, ${tag:singlequote}), $tag)"
RAW_MODEL = "if(request_model != '', request_model, response_model)"
# The app's own calls: an in-app judge's LLM calls (feature promptpulse.evaluation) are evaluation cost, never app
# traffic. The rollups skip them (schemas/018, the same constant); every reader of raw llm_calls that computes the
# app's numbers adds this condition, so a raw answer and a rollup answer agree. Only the evaluation cost (the
# evaluation_cost view) and the calls of one trace show them.
APP_CALLS = "feature != '" + EVALUATION_FEATURE.replace("\\", "\\\\").replace("'", "\\'") + "'"

# Seed thresholds (production-metrics-dashboard.md)
SUCCESS_HEALTHY, SUCCESS_CRITICAL = 95, 90
P50_TARGET_MS, P95_TARGET_MS, P99_TARGET_MS = 1000, 2000, 5000


def filters(*, model_col: str = "model", skip: Sequence[str] = ()) -> str:
    """The variable filters; each is dropped by $__conditionalAll when its variable is All."""
    parts = []
    for var, col in FILTER_VARS:
        if var in skip:
            continue
        column = model_col if col == "model" else col
        parts.append(f"$__conditionalAll({column} IN (${{{var}:singlequote}}), ${var})")
    return " AND ".join(parts)


def whole_days(start: str, end: str) -> tuple[str, str]:
    """[first, last) whole UTC days inside the hourly range [toStartOfHour(start), end): the first midnight at or
    after the start's hour, and the midnight of the end's day (empty when first >= last)."""
    return (f"toStartOfDay(toStartOfHour({start}) + INTERVAL 23 HOUR, 'UTC')", f"toStartOfDay({end}, 'UTC')")


def _union(branches: Sequence[str]) -> str:
    return "(\n    " + "\n    UNION ALL\n    ".join(branches) + "\n)"


def _minute_branches(start: str, end: str, where: str, cond: str, by_tag: bool) -> list[str]:
    """llm_calls_1m rows of [start, end) under ``cond`` (and the tag guard), and with ``by_tag`` the tag rollup's."""
    guard = f"{NO_TAG} AND " if by_tag else ""
    branches = [f"SELECT *, 60 AS res_s FROM llm_calls_1m\n"
                f"    WHERE {guard}{cond} AND bucket >= toStartOfMinute({start}) AND bucket < {end}\n      AND {where}"]
    if by_tag:
        branches.append(f"SELECT * EXCEPT tag, 60 AS res_s FROM llm_calls_tags_1m\n"
                        f"    WHERE {BY_TAG}\n      AND {cond}"
                        f" AND bucket >= toStartOfMinute({start}) AND bucket < {end}\n      AND {where}")
    return branches


def rollup(start: str = FROM, end: str = TO, *, length: str = RANGE_S, extra: str = "",
           minute_only: bool = False, daily: str = "1", skip: Sequence[str] = (), by_tag: bool = True) -> str:
    """Rollup rows of [start, end) at the dashboard's resolution, filtered by the variables.

    ``length`` decides the resolution (default: the dashboard range). ``minute_only`` always reads llm_calls_1m
    (panels that need minute resolution over any range, e.g. peak RPM or SLA downtime minutes). ``daily`` is the
    SQL condition under which whole days may come from llm_calls_1d (default always: totals and breakdowns; time
    series pass "the step is whole days"). ``by_tag``: a chosen tag reads the tag rollups instead (schemas/021);
    False reads all calls whatever the tag (beside panels that cannot be narrowed by tag)."""
    where = filters(skip=skip) + (f" AND {extra}" if extra else "")
    if minute_only:
        return _union(_minute_branches(start, end, where, "1", by_tag))
    guard = f"{NO_TAG} AND " if by_tag else ""
    first, last = whole_days(start, end)
    long = f"{length} > {SWITCH_S}"
    one_minute, *tag_minute = _minute_branches(start, end, where, f"{length} <= {SWITCH_S}", by_tag)
    one_hour = (f"SELECT *, 3600 AS res_s FROM llm_calls_1h\n"
                f"    WHERE {guard}{long} AND bucket >= toStartOfHour({start}) AND bucket < {end}\n"
                f"      AND NOT ({daily} AND bucket >= {first} AND bucket < {last})\n"
                f"      AND {where}")
    one_day = (f"SELECT *, 86400 AS res_s FROM llm_calls_1d\n"
               f"    WHERE {guard}{long} AND {daily} AND bucket >= {first} AND bucket < {last}\n"
               f"      AND {where}")
    branches = [one_minute, one_hour, one_day]
    if by_tag:
        branches += [*tag_minute, (f"SELECT * EXCEPT tag, 3600 AS res_s FROM llm_calls_tags_1h\n"
                                   f"    WHERE {BY_TAG}\n      AND {long} AND bucket >= toStartOfHour({start})"
                                   f" AND bucket < {end}\n      AND {where}")]
    return _union(branches)


def by_minute(columns: str, start: str = FROM, end: str = TO) -> str:
    """``SELECT bucket, {columns} … GROUP BY bucket`` over the minute rollup rows of [start, end) (``rollup`` with
    ``minute_only``), grouped inside each branch: only one branch reads rows (the tag guard), and a GROUP BY
    straight over llm_calls_1m lets ClickHouse answer ``sum(calls)`` per minute from its ``per_minute`` projection
    (schemas/022), which a GROUP BY over the UNION ALL does not."""
    return "\n  UNION ALL\n".join(f"  SELECT bucket, {columns}\n  FROM (\n    {branch}\n  )\n  GROUP BY bucket"
                                   for branch in _minute_branches(start, end, filters(), "1", True))


def score_rollup(start: str = FROM, end: str = TO) -> str:
    """Score rollup rows (llm_scores_1m / llm_scores_1h, schemas/007) of [start, end) at the dashboard's resolution,
    filtered by the variables and ``score_name``. Scores are bucketed by their own time and carry their call's
    dimensions (looked up when the score was inserted)."""
    where = filters() + " AND $__conditionalAll(name IN (${score_name:singlequote}), $score_name)"
    return (f"(\n    SELECT *, 60 AS res_s FROM llm_scores_1m\n"
            f"    WHERE {RANGE_S} <= {SWITCH_S} AND bucket >= toStartOfMinute({start}) AND bucket < {end}\n"
            f"      AND {where}\n    UNION ALL\n"
            f"    SELECT *, 3600 AS res_s FROM llm_scores_1h\n"
            f"    WHERE {RANGE_S} > {SWITCH_S} AND bucket >= toStartOfHour({start}) AND bucket < {end}\n"
            f"      AND {where}\n)")


# Ad-hoc filters (the `filters` variable) on raw llm_calls: the plugin's $__adHocFilters (4.13+) after SETTINGS
ADHOC_RAW = "SETTINGS $__adHocFilters('llm_calls')"


def raw_calls(start: str = FROM, end: str = TO, extra: str = "", by_tag: bool = True) -> str:
    """Raw llm_calls of [start, end), the app's calls only (APP_CALLS), filtered by the variables (drill-down
    only); ``by_tag``: and the chosen tag (``has(tags, ...)``)."""
    where = (f"timestamp >= {start} AND timestamp < {end} AND {APP_CALLS} AND " + filters(model_col=RAW_MODEL)
             + (f" AND {RAW_TAG}" if by_tag else ""))
    return f"llm_calls WHERE {where}" + (f" AND {extra}" if extra else "")


def time_bucket(col: str = "bucket") -> str:
    return f"toStartOfInterval({col}, INTERVAL {STEP_S} second)"


# --- metric expressions over rollup rows ------------------------------------------------------------------
CALLS = "sum(calls)"
ERRORS = "sum(errors)"
SUCCESS_PCT = "if(sum(calls) = 0, nan, 100 * (1 - sum(errors) / sum(calls)))"
ERROR_PCT = "if(sum(calls) = 0, nan, 100 * sum(errors) / sum(calls))"
COST = "toFloat64(sum(cost_usd))"
TOKENS = "sum(input_tokens) + sum(output_tokens)"
# No invented zeros (schemas/013): calls without usage / without a cost add 0 to the sums, so per-call figures divide
# by the calls whose numbers are known (NaN when none), and panels show how many calls were left out.
CALLS_WITHOUT_USAGE = "sum(calls_without_usage)"
CALLS_UNPRICED = "sum(calls_unpriced)"
CALLS_WITHOUT_COST = "sum(calls_without_cost)"
USAGE_CALLS = f"(sum(calls) - {CALLS_WITHOUT_USAGE})"
COST_CALLS = f"(sum(calls) - {CALLS_WITHOUT_COST})"
COST_PER_REQ = f"if({COST_CALLS} = 0, nan, {COST} / {COST_CALLS})"
AVG_TOKENS = f"if({USAGE_CALLS} = 0, nan, ({TOKENS}) / {USAGE_CALLS})"
MEAN_LATENCY = "if(sum(calls) = 0, nan, sum(latency_ms_sum) / sum(calls))"
ERROR_CATEGORIES = ("timeout", "rate_limit", "model_error", "validation", "auth", "system")


# over score rollup rows
SCORES_N = "sum(scores)"
SCORE_AVG = "if(sum(scores) = 0, nan, sum(value_sum) / sum(scores))"
SCORE_POSITIVE_PCT = "if(sum(scores) = 0, nan, 100 * sum(positives) / sum(scores))"
SCORED_CALLS = "uniqMerge(scored_calls)"
# over guardrail_failures rows (schemas/014)
GUARDRAIL_FAILURE_PCT = "if(sum(checks) = 0, nan, 100 * sum(failures) / sum(checks))"
# No seed numbers: warn at 1 %, red at 5 %
GUARDRAIL_WARN_PCT, GUARDRAIL_FAIL_PCT = 1, 5


def quantile(q: float, hist: str = "latency_hist") -> str:
    return f"promptpulse_hist_quantile(sumMap({hist}), {q})"


P50, P95, P99 = quantile(0.5), quantile(0.95), quantile(0.99)


def select(columns: Sequence[tuple[str, str]]) -> str:
    return ",\n    ".join(f"{expr} AS `{alias}`" for expr, alias in columns)


# --- query shapes -----------------------------------------------------------------------------------------
def totals(columns: Sequence[tuple[str, str]], *, source: str | None = None) -> str:
    """One row over the whole range."""
    return f"SELECT\n    {select(columns)}\nFROM {source or rollup()}"


_TOTALS = re.compile(r"SELECT\n    (?P<columns>[^\n]+(?:,\n    [^\n]+)*)\nFROM (?P<source>\(\n.*\n\))", re.S)
_COLUMN = re.compile(r"(?P<expr>.+) AS `(?P<alias>[^`]+)`")


def split_totals(sql: str) -> tuple[list[tuple[str, str]], str] | None:
    """The columns and source of SQL that ``totals`` wrote, or None for any other shape — so one-row panels over
    the same source can run as one statement (the console does) and still be each panel's own expressions. Only a
    text that ``totals`` gives back exactly counts."""
    m = _TOTALS.fullmatch(sql)
    if not m:
        return None
    columns = []
    for item in m["columns"].split(",\n    "):
        c = _COLUMN.fullmatch(item)
        if not c:
            return None
        columns.append((c["expr"], c["alias"]))
    return (columns, m["source"]) if totals(columns, source=m["source"]) == sql else None


def timeseries(columns: Sequence[tuple[str, str]], *, group: str | None = None, source: str | None = None) -> str:
    """Values per time step (the panel interval, at least the rollup resolution); ``group`` adds a series label
    column (long format: the plugin turns it into one series per value)."""
    label = f",\n    {group} AS series" if group else ""
    by = ", series" if group else ""
    source = source or rollup(daily=f"{STEP_S} % 86400 = 0")
    return (f"SELECT\n    {time_bucket()} AS time{label},\n    {select(columns)}\nFROM {source}\n"
            f"GROUP BY time{by}\nORDER BY time{by}")


def breakdown(keys: Sequence[tuple[str, str]], columns: Sequence[tuple[str, str]], *, order: str,
              limit: int | None = None, having: str = "", source: str | None = None) -> str:
    """One row per key (table / pie / bar)."""
    key_aliases = ", ".join(f"`{alias}`" for _, alias in keys)
    return (f"SELECT\n    {select([*keys, *columns])}\nFROM {source or rollup()}\nGROUP BY {key_aliases}\n"
            + (f"HAVING {having}\n" if having else "")
            + f"ORDER BY {order}" + (f"\nLIMIT {limit}" if limit else ""))


def variable_query(column: str, *, depends: Sequence[str], table: str = "llm_calls_1h") -> str:
    """Values of a filter variable seen in the range, narrowed by the variables before it."""
    deps = [(v, c) for v, c in FILTER_VARS if v in depends]
    where = " AND ".join([f"bucket >= toStartOfHour({FROM}) AND bucket < {TO}"]
                         + [f"$__conditionalAll({c} IN (${{{v}:singlequote}}), ${v})" for v, c in deps])
    return f"SELECT DISTINCT {column} FROM {table} WHERE {where} ORDER BY {column}"


# --- comparison (up to 3 prompts or versions) ----------------------------------------------------------------
COMPARE_KEY = ("if('${compare_by}' = 'version', concat(prompt_name, ' v', prompt_version), prompt_name)")
_OK = "status != 'error'"
# Over successful calls (a failed call is fast, free and token-less: it must not flatter its version), as /api/compare
COMPARE_METRICS: tuple[tuple[str, str], ...] = (
    ("count()", "requests"), (f"countIf({_OK})", "successes"),
    ("if(count() = 0, nan, 100 * countIf(status != 'error') / count())", "success_rate"),
    (f"quantileExactIf(0.95)(latency_ms, {_OK})", "p95_ms"),
    (f"avgIf(input_tokens + output_tokens, {_OK} AND usage_known)", "avg_tokens"),
    (f"avgIf(toFloat64(cost_usd), {_OK} AND cost_known)", "cost_per_request"),
)
# two-sided z at alpha 0.05 / pairs (Bonferroni), as processor/winner.py: 2 items 1 pair, 3 items 3 pairs
_Z_CRIT = "if(count() OVER () >= 3, 2.3940, 1.9600)"


def compare_ranked() -> str:
    """The (up to) 3 busiest selected prompts or versions, success rate first, latency/tokens/cost over successful
    calls (raw llm_calls), and the success-rate test of processor/winner.py: the best success rate against the
    runner-up, pooled two-proportion z. ``place`` 1 is a winner only when ``significant``; otherwise the verdict is
    "no clear winner on success rate" and /api/compare (which also tests p95 and cost) has the rest."""
    # prompt and version: for the row's drill-down link (version is All when comparing prompts)
    link_columns = (("any(prompt_name)", "prompt"),
                    ("if('${compare_by}' = 'version', any(prompt_version), concat('$', '__all'))", "version"))
    ranked = breakdown([(COMPARE_KEY, "series")], [*COMPARE_METRICS, *link_columns], order="requests DESC, series",
                       limit=3, source=raw_calls())
    return (
        "SELECT *, row_number() OVER (ORDER BY success_rate DESC, requests DESC) AS place,\n"
        "    if(place = 1 AND z_vs_next > z_crit, 1, 0) AS significant\n"
        "FROM (\n"
        "  SELECT *,\n"
        "    leadInFrame(successes) OVER w AS s2, leadInFrame(requests) OVER w AS n2,\n"
        "    (successes + s2) / (requests + n2) AS pooled,\n"
        "    if(n2 = 0 OR pooled IN (0, 1), 0, (successes / requests - s2 / n2)\n"
        "       / sqrt(pooled * (1 - pooled) * (1 / requests + 1 / n2))) AS z_vs_next,\n"
        f"    {_Z_CRIT} AS z_crit\n"
        "  FROM (\n" + ranked + "\n  )\n"
        "  WINDOW w AS (ORDER BY success_rate DESC, requests DESC ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)\n"
        ")\nORDER BY place"
    )


def compare_pivot() -> str:
    """The seed's comparison table: one row per metric, one column per compared prompt, and a Winner row."""
    ordinal = ("multiIf(place = 1 AND significant = 1, 'winner (success rate, p < 0.05)', place = 1, "
               "'no clear winner on success rate: see /api/compare', '')")
    rows = [
        ("Prompt", "series"),
        ("Requests", "formatReadableQuantity(requests)"),
        ("Success Rate", "concat(toString(round(success_rate, 1)), '%')"),
        ("p95 Latency", "concat(toString(round(p95_ms)), ' ms')"),
        ("Avg Tokens", "toString(round(avg_tokens))"),
        ("Cost/Request", "concat('$', toString(round(cost_per_request, 4)))"),
        ("Successful calls", "formatReadableQuantity(successes)"),
        ("Winner", ordinal),
    ]
    metric_names = "[" + ", ".join(f"'{name}'" for name, _ in rows) + "]"
    values = "[" + ", ".join(expr for _, expr in rows) + "]"
    return (
        "SELECT metric, cells[1] AS `1`, cells[2] AS `2`, cells[3] AS `3`\n"
        "FROM (\n"
        f"  SELECT arrayJoin(arrayEnumerate({metric_names})) AS idx, {metric_names}[idx] AS metric,\n"
        f"         arrayMap(t -> t.2[idx], arraySort(t -> t.1, groupArray((place, {values})))) AS cells\n"
        f"  FROM ({compare_ranked()})\n"
        "  GROUP BY idx, metric\n"
        ")\nORDER BY idx"
    )
