"""Analytics behind the HTTP API and the reports: compare, timeseries, cohorts, anomalies, SLA, error groups, scores
and export. Every function takes a store and a dict of (string) request parameters and returns plain data.

Sources. Aggregates read the rollups (``llm_calls_1m`` for ranges up to 48 h, ``llm_calls_1h`` beyond, the switch
the dashboards use; a caller that needs no finer time steps than a day passes ``daily=True`` and then reads the
range's whole UTC days from ``llm_calls_1d`` and only its edge hours from ``llm_calls_1h`` — the same numbers, far
fewer rows) with the metric expressions of :mod:`promptpulse.dashboards.queries`, so an API number and a
panel number are the same SQL. A request whose range starts before the 1-minute rollup's retention, or that needs a
column the rollups lack (``tag``/``user_id`` filters, the ``user_type`` and ``tag`` cohorts), reads ``llm_calls``
through :func:`raw_as_rollup`, which shapes raw rows like rollup rows (one call = one row with ``calls = 1`` and a
one-entry latency histogram) so the very same expressions apply. Rollup ranges are widened to whole buckets (the
start is floored to the resolution); the answer's ``resolution`` and ``start`` say what was read.

Percentiles come from the log-bucket histograms (within 1% of the exact value, see docs/SCHEMA.md).

SQL safety: user values only ever travel as ClickHouse query parameters (``{name:Type}``); identifiers (columns,
tables, intervals) come from the allow-lists in this module.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from promptpulse.dashboards import queries as dq

from .timerange import parse_time

UTC = dt.timezone.utc
TIME_HELP = "an ISO date or datetime, now, today or a relative time like -7d"
MINUTE_TTL_DAYS = 35  # SchemaOptions.ttl_1m_days default: older minutes are gone from llm_calls_1m
RAW_MODEL = dq.RAW_MODEL


class BadRequest(ValueError):
    """A request parameter is missing or invalid (HTTP 400)."""


# ------------------------------------------------------------------------------------------------ parameters
def _p(params: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    v = params.get(name)
    return default if v is None or v.strip() == "" else v.strip()


def _float(params: Mapping[str, str], name: str, default: float, lo: float | None = None,
           hi: float | None = None) -> float:
    raw = _p(params, name)
    if raw is None:
        return default
    try:
        v = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {raw!r}")
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise BadRequest(f"{name} must be between {lo} and {hi}, got {raw!r}")
    return v


def _int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = _p(params, name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw):
        raise BadRequest(f"{name} must be a whole number, got {raw!r}")
    v = int(raw)
    if not lo <= v <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}, got {v}")
    return v


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...] | Mapping[str, Any],
            default: str | None) -> str:
    v = _p(params, name, default)
    if v is None:
        raise BadRequest(f"{name} is required (one of {', '.join(allowed)})")
    if v not in allowed:
        raise BadRequest(f"unknown {name} {v!r}; expected one of {', '.join(allowed)}")
    return v


_DURATION = re.compile(r"^(\d+)\s*(m|h|d|w)$")
_DURATION_S = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(s: str, name: str) -> int:
    m = _DURATION.match(s.strip())
    if not m or int(m.group(1)) <= 0:
        raise BadRequest(f"{name} must look like 15m, 6h, 30d or 2w, got {s!r}")
    return int(m.group(1)) * _DURATION_S[m.group(2)]


def time_range(params: Mapping[str, str], default_s: int, *, now: dt.datetime | None = None,
               max_days: int = 800) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) from ISO ``start``/``end`` (dates or datetimes, UTC unless an offset is given)."""
    now = now or dt.datetime.now(UTC)
    try:
        end = parse_time(params["end"], end=True, now=now) if _p(params, "end") else now
    except ValueError:
        raise BadRequest(f"bad end {params.get('end')!r}: expected {TIME_HELP}")
    try:
        start = (parse_time(params["start"], now=now) if _p(params, "start")
                 else end - dt.timedelta(seconds=default_s))
    except ValueError:
        raise BadRequest(f"bad start {params.get('start')!r}: expected {TIME_HELP}")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if start >= end:
        raise BadRequest(f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
    if end - start > dt.timedelta(days=max_days):
        raise BadRequest(f"the range may span at most {max_days} days")
    return start, end


def ts(t: dt.datetime) -> str:
    """A DateTime64 parameter value."""
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def iso(t: dt.datetime) -> str:
    """ISO 8601 with the UTC offset (ClickHouse hands back naive datetimes of UTC columns)."""
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()


def sec(t: dt.datetime) -> str:
    """A DateTime parameter value (whole seconds)."""
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# Filters: request parameter -> rollup column. Comma-separated values mean "any of".
FILTERS: dict[str, str] = {
    "prompt_id": "prompt_name", "prompt": "prompt_name", "version": "prompt_version", "service": "service",
    "environment": "environment", "model": "model", "provider": "provider", "feature": "feature",
    "operation": "operation",
}
# Filters only raw rows can answer (llm_calls columns the rollups do not keep).
RAW_FILTERS: dict[str, str] = {"tag": "has(tags, {f_tag:String})", "user_id": "user_id = {f_user_id:String}"}
FILTER_DOCS = {
    "prompt_id": "prompt name(s), comma-separated", "prompt": "alias of prompt_id",
    "version": "prompt version(s)", "service": "service name(s)", "environment": "deployment environment(s)",
    "model": "model(s) (requested model, else the answering one)", "provider": "provider(s)",
    "feature": "feature cohort(s)", "operation": "operation(s) (chat, embeddings, ...)",
    "tag": "calls carrying this tag (reads raw calls)", "user_id": "calls of this user (reads raw calls)",
}


@dataclass
class Where:
    rollup: list[str]  # conditions on rollup-shaped rows
    raw: list[str]  # conditions only raw llm_calls can answer
    params: dict[str, Any]


def filters(params: Mapping[str, str], *, skip: tuple[str, ...] = ()) -> Where:
    conds: list[str] = []
    raw: list[str] = []
    p: dict[str, Any] = {}
    seen_cols: set[str] = set()
    for name, col in FILTERS.items():
        v = _p(params, name)
        if v is None or name in skip:
            continue
        if col in seen_cols:
            raise BadRequest("give either prompt_id or prompt, not both")
        seen_cols.add(col)
        values = [x.strip() for x in v.split(",") if x.strip()]
        conds.append(f"{col} IN {{f_{name}:Array(String)}}")
        p[f"f_{name}"] = values
    for name, cond in RAW_FILTERS.items():
        v = _p(params, name)
        if v is not None and name not in skip:
            raw.append(cond)
            p[f"f_{name}"] = v
    return Where(conds, raw, p)


# --------------------------------------------------------------------------------------------------- sources
RAW_ROW = (
    "SELECT timestamp, toStartOfMinute(timestamp) AS bucket, service, environment, prompt_name, prompt_version, "
    f"{RAW_MODEL} AS model, provider, operation, feature, toUInt64(1) AS calls, toUInt64(status = 'error') AS errors, "
    "toFloat64(latency_ms) AS latency_ms_sum, map(promptpulse_hist_bucket(latency_ms), toUInt64(1)) AS latency_hist, "
    "input_tokens, output_tokens, toDecimal128(cost_usd, 12) AS cost_usd, toUInt64(NOT usage_known) AS "
    "calls_without_usage, toUInt64(usage_known AND NOT cost_known) AS calls_unpriced, toUInt64(NOT cost_known) AS "
    "calls_without_cost, user_id, tags, error_category, trace_id, "
    f"span_id, status, error_type, http_status FROM llm_calls WHERE {dq.APP_CALLS}"
)  # the app's calls only: an in-app judge's calls are evaluation cost, skipped by the rollups too (schemas/018)


def raw_as_rollup(where: list[str]) -> str:
    """llm_calls rows shaped like rollup rows (plus timestamp, user_id, tags), filtered by ``where`` (which uses
    the rollup column names: model is the requested model, else the answering one)."""
    return f"(SELECT * FROM ({RAW_ROW}) WHERE {' AND '.join(where) or '1'})"


@dataclass
class Source:
    sql: str  # a FROM-able subquery of rollup-shaped rows inside [start, end) and the filters
    params: dict[str, Any]
    resolution: str  # 1m | 1h | raw
    start: dt.datetime  # effective start (floored to the resolution)
    end: dt.datetime


def source(params: Mapping[str, str], start: dt.datetime, end: dt.datetime, *, raw: bool = False,
           resolution: str | None = None, now: dt.datetime | None = None, skip: tuple[str, ...] = (),
           daily: bool = False) -> Source:
    """Rollup-shaped rows of [start, end): the rollup that fits the range, raw calls when needed. With ``daily``
    an hourly source takes the whole UTC days inside the range from llm_calls_1d (rows then hold a day or an hour:
    only for callers that aggregate the whole range or whole days)."""
    w = filters(params, skip=skip)
    now = now or dt.datetime.now(UTC)
    if w.raw:
        raw = True
    if raw:
        cond = ["timestamp >= {start:DateTime64(6, 'UTC')}", "timestamp < {end:DateTime64(6, 'UTC')}",
                *w.rollup, *w.raw]
        return Source(raw_as_rollup(cond), {**w.params, "start": ts(start), "end": ts(end)}, "raw", start, end)
    if resolution is None:
        minute_ok = start >= now - dt.timedelta(days=MINUTE_TTL_DAYS - 1)
        resolution = "1m" if (end - start).total_seconds() <= dq.SWITCH_S and minute_ok else "1h"
    table, step = ("llm_calls_1m", 60) if resolution == "1m" else ("llm_calls_1h", 3600)
    fstart = floor(start, step)
    cond = ["bucket >= {start:DateTime('UTC')}", "bucket < {end:DateTime('UTC')}", *w.rollup]
    sql = f"(SELECT * FROM {table} WHERE {' AND '.join(cond)})"
    if daily and resolution == "1h":
        first, last = ceil(fstart, 86400), floor(ceil(end, 1), 86400)
        if first < last:
            days = ["bucket >= {d_first:DateTime('UTC')}", "bucket < {d_last:DateTime('UTC')}"]
            sql = (f"(SELECT * FROM {table} WHERE {' AND '.join(cond)} AND NOT ({' AND '.join(days)}) UNION ALL "
                   f"SELECT * FROM llm_calls_1d WHERE {' AND '.join([*days, *w.rollup])})")
            w.params.update({"d_first": sec(first), "d_last": sec(last)})
    return Source(sql, {**w.params, "start": sec(fstart), "end": sec(ceil(end, 1))}, resolution, fstart, end)


def floor(t: dt.datetime, step_s: int) -> dt.datetime:
    e = int(t.timestamp())
    return dt.datetime.fromtimestamp(e - e % step_s, UTC)


def ceil(t: dt.datetime, step_s: int) -> dt.datetime:
    f = floor(t, step_s)
    return f if f == t else f + dt.timedelta(seconds=step_s)


# ---------------------------------------------------------------------------------------------------- metrics
_METRICS: tuple[tuple[str, str], ...] = (
    (dq.CALLS, "requests"), (dq.ERRORS, "errors"), (dq.SUCCESS_PCT, "success_rate"), (dq.ERROR_PCT, "error_rate"),
    (dq.MEAN_LATENCY, "avg_latency_ms"),
    ("promptpulse_hist_quantiles(sumMap(latency_hist), [0.5, 0.95, 0.99])", "latency_q"),
    ("sum(input_tokens)", "input_tokens"), ("sum(output_tokens)", "output_tokens"),
    (dq.AVG_TOKENS, "avg_tokens"), ("sum(cost_usd)", "total_cost_usd"), (dq.COST_PER_REQ, "cost_per_request"),
    (dq.CALLS_WITHOUT_USAGE, "calls_without_usage"), (dq.CALLS_UNPRICED, "calls_unpriced"),
    (dq.CALLS_WITHOUT_COST, "calls_without_cost"),
)
# aliased m_* so an alias never shadows the rollup column an expression sums
METRIC_COLUMNS = tuple((expr, f"m_{alias}") for expr, alias in _METRICS)


def clean(v: Any, digits: int | None = None) -> Any:
    """JSON-safe: NaN/inf -> None, Decimal -> float; rounded when asked."""
    if isinstance(v, Decimal):
        v = float(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return round(v, digits) if digits is not None else v
    return v


def metric_row(d: Mapping[str, Any]) -> dict[str, Any]:
    d = {k[2:] if k.startswith("m_") else k: v for k, v in d.items()}
    n = int(d["requests"] or 0)
    q = list(d["latency_q"] or []) if n else []
    q = [clean(float(x), 2) for x in q] if q else [None, None, None]
    return {
        "requests": n,
        "errors": int(d["errors"] or 0),
        "success_rate": clean(d["success_rate"], 4) if n else None,
        "error_rate": clean(d["error_rate"], 4) if n else None,
        "avg_latency_ms": clean(d["avg_latency_ms"], 3) if n else None,
        "p50_latency_ms": q[0], "p95_latency_ms": q[1], "p99_latency_ms": q[2],
        "input_tokens": int(d["input_tokens"] or 0), "output_tokens": int(d["output_tokens"] or 0),
        "total_tokens": int(d["input_tokens"] or 0) + int(d["output_tokens"] or 0),
        "avg_tokens": clean(d["avg_tokens"], 4) if n else None,  # over the calls with usage (None: none had it)
        "total_cost_usd": clean(Decimal(d["total_cost_usd"] or 0), 12),  # over the calls with a known cost
        "cost_per_request": clean(d["cost_per_request"], 12) if n else None,
        # tokens and cost of these calls are unknown, not 0: left out of the sums and of the per-call figures
        "calls_without_usage": int(d.get("calls_without_usage") or 0),
        "calls_unpriced": int(d.get("calls_unpriced") or 0),
        "calls_without_cost": int(d.get("calls_without_cost") or 0),
    }


def aggregate(store: Any, src: Source, keys: list[tuple[str, str]], *, order: str | None = None,
              limit: int | None = None, extra: tuple[tuple[str, str], ...] = ()) -> list[dict[str, Any]]:
    cols = [*keys, *METRIC_COLUMNS, *extra]
    group = f" GROUP BY {', '.join(f'`{a}`' for _, a in keys)}" if keys else ""
    sql = (f"SELECT {dq.select(cols)} FROM {src.sql}{group}"
           + (f" ORDER BY {order}" if order else "") + (f" LIMIT {int(limit)}" if limit else ""))
    return store.query(sql, src.params).dicts()


def _period(src: Source) -> dict[str, Any]:
    return {"start": src.start.isoformat(), "end": src.end.isoformat(), "resolution": src.resolution}


# ---------------------------------------------------------------------------------------------------- compare
COMPARE_MAX = 3
# Latency, tokens and cost per request are over successful calls: a failed call is fast, token-less and free, so
# counting it would reward the failing version. The rollups' histograms and sums mix both (they have no status
# dimension), so compare reads raw llm_calls of the compared items (docs/API.md has the cost at 10M calls).
BASIS = {"requests": "all calls", "success_rate": "all calls", "errors": "all calls",
         "latency": "successful calls", "avg_tokens": "successful calls", "cost_per_request": "successful calls",
         "total_cost_usd": "all calls", "input_tokens": "all calls", "output_tokens": "all calls"}
_OK = "status = 'ok'"
SUCCESS_COLUMNS: tuple[tuple[str, str], ...] = (
    (f"sumIf(calls, {_OK})", "s_calls"), (f"sumIf(latency_ms_sum, {_OK})", "s_latency_sum"),
    (f"sumMapIf(latency_hist, {_OK})", "s_hist"),
    (f"promptpulse_hist_quantiles(sumMapIf(latency_hist, {_OK}), [0.5, 0.95, 0.99])", "s_latency_q"),
    (f"sumIf(input_tokens + output_tokens, {_OK})", "s_tokens"), (f"sumIf(cost_usd, {_OK})", "s_cost"),
    # per-call tokens / cost over the successful calls whose usage / cost is known (raw rows: one call each)
    (f"sumIf(calls - calls_without_usage, {_OK})", "s_usage_calls"),
    (f"sumIf(calls - calls_without_cost, {_OK})", "s_cost_calls"),
    (f"avgIf(toFloat64(cost_usd), {_OK} AND calls_without_cost = 0)", "s_cost_mean"),
    (f"varSampStableIf(toFloat64(cost_usd), {_OK} AND calls_without_cost = 0)", "s_cost_var"),
)


class NotFound(LookupError):
    """A named prompt or version does not exist (HTTP 404)."""


def _items(v: str, what: str) -> list[str]:
    items = [x.strip() for x in v.split(",") if x.strip()]
    if not 2 <= len(items) <= COMPARE_MAX:
        raise BadRequest(f"compare takes 2 to {COMPARE_MAX} {what}, got {len(items)}")
    if len(set(items)) != len(items):
        raise BadRequest(f"{what} must be distinct")
    return items


def _check_known(store: Any, prompt: str | None, items: list[str]) -> None:
    """404 for a prompt or version the store has never seen (llm_calls_1d: one row per day and series)."""
    if prompt is None:
        known = {r[0] for r in store.query("SELECT DISTINCT prompt_name FROM llm_calls_1d WHERE prompt_name IN "
                                           "{items:Array(String)}", {"items": items}).rows}
        missing = [i for i in items if i not in known]
        if missing:
            raise NotFound(f"unknown prompt{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
        return
    known = {r[0] for r in store.query("SELECT DISTINCT prompt_version FROM llm_calls_1d WHERE prompt_name = "
                                       "{p:String}", {"p": prompt}).rows}
    if not known:
        raise NotFound(f"unknown prompt {prompt!r}")
    missing = [i for i in items if i not in known]
    if missing:
        raise NotFound(f"unknown version{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} of "
                       f"prompt {prompt!r}")


def success_row(d: Mapping[str, Any]) -> dict[str, Any]:
    """The compare fields of one item: metric_row over all calls, latency / tokens / cost per request replaced by
    their values over successful calls."""
    m = metric_row(d)
    ok = int(d.get("s_calls") or 0)
    n_usage, n_cost = int(d.get("s_usage_calls") or 0), int(d.get("s_cost_calls") or 0)
    q = [clean(float(x), 2) for x in d.get("s_latency_q") or []] if ok else [None, None, None]
    m.update({
        "successes": ok,
        "avg_latency_ms": clean(float(d["s_latency_sum"]) / ok, 3) if ok else None,
        "p50_latency_ms": q[0], "p95_latency_ms": q[1], "p99_latency_ms": q[2],
        "avg_tokens": clean(int(d["s_tokens"] or 0) / n_usage, 4) if n_usage else None,
        "cost_per_request": clean(float(Decimal(d["s_cost"] or 0)) / n_cost, 12) if n_cost else None,
    })
    return m


def compare(store: Any, params: Mapping[str, str], *, now: dt.datetime | None = None) -> dict[str, Any]:
    from . import winner as win

    start, end = time_range(params, 7 * 86400, now=now)
    if _p(params, "prompts") and _p(params, "versions"):
        raise BadRequest("give prompts=a,b[,c] or prompt_id=X&versions=v1,v2[,v3], not both")
    if _p(params, "prompts"):
        items, key, by = _items(params["prompts"], "prompts"), "prompt_name", "prompt"
        skip: tuple[str, ...] = ("prompt_id", "prompt")
        prompt = None
    elif _p(params, "versions"):
        prompt = _p(params, "prompt_id") or _p(params, "prompt")
        if not prompt or "," in prompt:
            raise BadRequest("versions=... needs exactly one prompt_id")
        items, key, by = _items(params["versions"], "versions"), "prompt_version", "version"
        skip = ("version",)
    else:
        raise BadRequest("give prompts=a,b[,c] or prompt_id=X&versions=v1,v2[,v3]")
    alpha = _float(params, "alpha", win.ALPHA, 1e-6, 0.5)
    _check_known(store, prompt, items)
    src = source(params, start, end, raw=True, now=now, skip=skip)
    src.sql = f"(SELECT * FROM {src.sql} WHERE {key} IN {{items:Array(String)}})"
    src.params = {**src.params, "items": items}
    got = {r["item"]: r for r in aggregate(store, src, [(key, "item")], extra=SUCCESS_COLUMNS)}
    table = [{"item": it, **success_row(got.get(it, _EMPTY))} for it in items]
    samples = [win.Sample(it, r["requests"], r.get("successes", 0),
                          sorted((float(_hist_value(k)), int(c)) for k, c in (got[it]["s_hist"] or {}).items())
                          if it in got else [],
                          clean(got[it]["s_cost_mean"]) if it in got else None,
                          clean(got[it]["s_cost_var"]) if it in got else None)
               for it, r in zip(items, table, strict=True)]
    v = win.decide(samples, alpha)
    winners = {m: _criterion_best(items, [t for t in v.tests if t.metric == m]) for m in win.CRITERIA}
    return {"by": by, "prompt_id": prompt, "period": _period(src), "basis": BASIS,
            "items": table, "criteria": list(win.CRITERIA), "alpha": alpha, "alpha_per_test": v.alpha_per_test,
            "tests": [t.doc() for t in v.tests], "winners": winners, "winner": v.winner, "verdict": v.reason,
            "more_calls_needed": v.more_calls, "method": COMPARE_METHOD}


def _criterion_best(items: list[str], tests: list[Any]) -> str | None:
    """The item significantly better than every other one on this criterion alone, else None."""
    for it in items:
        mine = [t for t in tests if it in (t.a, t.b)]
        if mine and all(t.better == it for t in mine):
            return it
    return None


def _hist_value(k: int) -> float:
    """Python twin of promptpulse_hist_value (schemas/004_rollups.sql)."""
    return 0.0 if k == 0 else 1.02 ** (k - 400) * 2 / 2.02


COMPARE_METHOD = (
    "Success rate is over all calls; latency, avg tokens and cost per request over successful calls only. Criteria "
    "in order: success rate (two-proportion z-test; Fisher's exact test when an expected count is below 5), p95 "
    "latency (exact bootstrap percentile interval of the p95 difference from the calls' log-bucket latency "
    "histograms: significant when it excludes 0; differences within one 2% bucket are not resolvable), cost per "
    "request (Welch's t-test). Each pairwise test runs at alpha / number of pairs (Bonferroni). a beats b when the "
    "first criterion with a significant difference favours a and no earlier, not yet significant criterion points "
    "to b; the winner beats every other item. Otherwise more_calls_needed = the extra calls (same proportions) at "
    "which the rule would name a winner if the observed effects held (statistics grow with sqrt(n): a test turns "
    "significant at f = (z_crit / z)^2 times the calls so far).")


_EMPTY = {"requests": 0, "errors": 0, "success_rate": None, "error_rate": None, "avg_latency_ms": None,
          "latency_q": [], "input_tokens": 0, "output_tokens": 0, "avg_tokens": None, "total_cost_usd": 0,
          "cost_per_request": None, "calls_without_usage": 0, "calls_unpriced": 0, "calls_without_cost": 0,
          "s_calls": 0}


# ------------------------------------------------------------------------------------------------- timeseries
TIMESERIES_METRICS: dict[str, str] = {
    "requests": dq.CALLS, "errors": dq.ERRORS, "error_rate": dq.ERROR_PCT, "success_rate": dq.SUCCESS_PCT,
    "p50_latency_ms": dq.P50, "p95_latency_ms": dq.P95, "p99_latency_ms": dq.P99,
    "avg_latency_ms": dq.MEAN_LATENCY, "cost": "sum(cost_usd)", "cost_per_request": dq.COST_PER_REQ,
    "tokens": dq.TOKENS, "input_tokens": "sum(input_tokens)", "output_tokens": "sum(output_tokens)",
    "calls_without_usage": dq.CALLS_WITHOUT_USAGE, "calls_unpriced": dq.CALLS_UNPRICED,
}
COUNT_METRICS = ("requests", "errors", "cost", "tokens", "input_tokens", "output_tokens", "calls_without_usage",
                 "calls_unpriced")  # 0 in empty buckets
INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}
GROUP_BY: dict[str, str] = {"prompt": "prompt_name", "version": "prompt_version", "model": "model",
                            "provider": "provider", "service": "service", "environment": "environment",
                            "feature": "feature", "operation": "operation"}
MAX_POINTS = 20_000


def timeseries(store: Any, params: Mapping[str, str], *, now: dt.datetime | None = None) -> dict[str, Any]:
    metric = _choice(params, "metric", TIMESERIES_METRICS, None)
    interval = _choice(params, "interval", INTERVALS, "1h")
    group = _p(params, "group_by")
    if group is not None and group not in GROUP_BY:
        raise BadRequest(f"unknown group_by {group!r}; expected one of {', '.join(GROUP_BY)}")
    step = INTERVALS[interval]
    start, end = time_range(params, 86400, now=now)
    start = floor(start, step)
    n_buckets = math.ceil((end - start).total_seconds() / step)
    if n_buckets > MAX_POINTS:
        raise BadRequest(f"{n_buckets} points of {interval} is too many (at most {MAX_POINTS}); widen the interval")
    # the coarsest rollup whose buckets tile the interval: 1m below an hour, 1h from an hour up
    now_ = now or dt.datetime.now(UTC)
    resolution = "1m" if step < 3600 else "1h"
    if resolution == "1m" and start < now_ - dt.timedelta(days=MINUTE_TTL_DAYS - 1):
        raise BadRequest(f"{interval} points are kept for {MINUTE_TTL_DAYS} days; use interval=1h for older ranges")
    src = source(params, start, end, resolution=resolution, now=now, daily=step % 86400 == 0)
    label = f", {GROUP_BY[group]} AS series" if group else ""
    sql = (f"SELECT toStartOfInterval(bucket, INTERVAL {step} second) AS t{label}, "
           f"{TIMESERIES_METRICS[metric]} AS v FROM {src.sql} GROUP BY t{', series' if group else ''} ORDER BY t")
    rows = store.query(sql, src.params).rows
    zero = 0 if metric in COUNT_METRICS else None
    grid = [start + dt.timedelta(seconds=step * i) for i in range(n_buckets)]
    series: dict[str, dict[dt.datetime, Any]] = {}
    for r in rows:
        t = r[0] if r[0].tzinfo else r[0].replace(tzinfo=UTC)
        name = str(r[1]) if group else metric
        series.setdefault(name, {})[t] = clean(r[-1], 12)
    out = []
    for name in sorted(series) or ([metric] if not group else []):
        got = series.get(name, {})
        out.append({"name": name, "points": [{"t": t.isoformat(), "v": got.get(t, zero)} for t in grid]})
    return {"metric": metric, "interval": interval, "group_by": group,
            "period": {"start": start.isoformat(), "end": end.isoformat(), "resolution": src.resolution},
            "series": out}


# ---------------------------------------------------------------------------------------------------- cohorts
COHORTS: dict[str, str] = {
    "prompt_version": "concat(prompt_name, ' v', prompt_version)", "version": "prompt_version",
    "prompt": "prompt_name", "feature": "feature", "model": "model", "provider": "provider",
    "environment": "environment", "hour": "toStartOfHour(bucket)", "day": "toStartOfDay(bucket)",
    "week": "toMonday(bucket)", "tag": "", "user_type": "",
}


def cohorts(store: Any, params: Mapping[str, str], *, now: dt.datetime | None = None) -> dict[str, Any]:
    by = _choice(params, "by", COHORTS, None)
    start, end = time_range(params, 7 * 86400, now=now)
    limit = _int(params, "limit", 100, 1, 10_000)
    extra: tuple[tuple[str, str], ...] = ()
    if by == "tag":
        src = source(params, start, end, raw=True, now=now)
        src.sql = f"(SELECT *, arrayJoin(if(empty(tags), [''], tags)) AS tag FROM {src.sql})"
        key = "tag"
    elif by == "user_type":
        src = source(params, start, end, raw=True, now=now)
        # new: the user's first call ever falls in the range; returning: they called before it; anonymous: no user
        src.sql = (f"(SELECT r.*, multiIf(r.user_id = '', 'anonymous', f.first_seen >= "
                   "{start:DateTime64(6, 'UTC')}, 'new', 'returning') AS user_type FROM "
                   f"{src.sql} AS r LEFT JOIN (SELECT user_id, min(timestamp) AS first_seen FROM llm_calls "
                   f"WHERE {dq.APP_CALLS} AND user_id != '' AND timestamp < {{end:DateTime64(6, 'UTC')}} "
                   "GROUP BY user_id) AS f "
                   "ON r.user_id = f.user_id)")
        key = "user_type"
        extra = (("uniqExactIf(user_id, user_id != '')", "users"),)
    else:
        src = source(params, start, end, now=now,
                     resolution="1h" if by in ("day", "week") and (end - start).total_seconds() > 3600 else None,
                     daily=by != "hour")
        key = COHORTS[by]
    rows = aggregate(store, src, [(key, "cohort")], order="`cohort`", limit=limit, extra=extra)
    out = []
    for r in rows:
        c = r["cohort"]
        if isinstance(c, dt.datetime) and c.tzinfo is None:
            c = c.replace(tzinfo=UTC)
        item = {"cohort": c.isoformat() if isinstance(c, dt.datetime | dt.date) else str(c), **metric_row(r)}
        if "users" in r:
            item["users"] = int(r["users"])
        out.append(item)
    return {"by": by, "period": _period(src), "cohorts": out}


# -------------------------------------------------------------------------------------------------- anomalies
ANOMALY_METRICS: dict[str, str] = {
    "requests": dq.CALLS, "error_rate": dq.ERROR_PCT, "p95_latency_ms": dq.P95, "cost": dq.COST,
}
ANOMALY_SERIES: dict[str, str] = {"prompt": "prompt_name", "model": "model", "service": "service",
                                  "version": "prompt_version", "provider": "provider", "feature": "feature"}
MAD_SIGMA = 1.4826
ANOMALY_METHOD = (
    "Each series' latest complete window is compared with a robust baseline built from the same metric in earlier "
    "windows: with baseline=hour_of_week, the same window of the week in each of the previous `periods` weeks "
    "(seasonality-aware); with baseline=previous, the `periods` windows just before it. baseline = median of those "
    "values, spread = 1.4826 x MAD (median absolute deviation; estimates the standard deviation of normal data, "
    "but one outlier week cannot move it), floored at 5% of the baseline so perfectly flat histories do not turn "
    "tiny changes into anomalies. score = (current - baseline) / spread; a series is anomalous when |score| >= "
    "threshold (default 3). Windows with no calls count as 0 requests and 0 cost; error_rate and p95 need at "
    "least min_calls calls in a window to be compared, and every metric needs min_periods baseline values.")


def anomalies(store: Any, params: Mapping[str, str], *, now: dt.datetime | None = None) -> dict[str, Any]:
    window = parse_duration(_p(params, "window", "1h") or "1h", "window")
    baseline = _choice(params, "baseline", ("hour_of_week", "previous"), "hour_of_week")
    periods = _int(params, "periods", 4 if baseline == "hour_of_week" else 24, 2, 52 if baseline == "hour_of_week"
                   else 1000)
    k = _float(params, "threshold", 3.0, 0.5, 100)
    min_calls = _int(params, "min_calls", 10, 0, 10**9)
    min_periods = _int(params, "min_periods", 3, 1, 1000)
    metrics = [x.strip() for x in (_p(params, "metric") or ",".join(ANOMALY_METRICS)).split(",") if x.strip()]
    for m in metrics:
        if m not in ANOMALY_METRICS:
            raise BadRequest(f"unknown metric {m!r}; expected one of {', '.join(ANOMALY_METRICS)}")
    series_keys = [x.strip() for x in (_p(params, "by") or "prompt,model").split(",") if x.strip()]
    for s in series_keys:
        if s not in ANOMALY_SERIES:
            raise BadRequest(f"unknown by {s!r}; expected any of {', '.join(ANOMALY_SERIES)}")
    step = 604800 if baseline == "hour_of_week" else window
    if window > step:
        raise BadRequest("with baseline=hour_of_week the window may be at most a week")
    res = 3600 if window % 3600 == 0 else 60
    if window % 60:
        raise BadRequest("window must be whole minutes")
    try:
        end = parse_time(params["end"], end=True) if _p(params, "end") else (now or dt.datetime.now(UTC))
    except ValueError:
        raise BadRequest(f"bad end {params.get('end')!r}: expected {TIME_HELP}")
    end = floor(end, res)  # the latest *complete* window
    oldest = end - dt.timedelta(seconds=periods * step + window)
    if res == 60 and oldest < (now or dt.datetime.now(UTC)) - dt.timedelta(days=MINUTE_TTL_DAYS - 1):
        raise BadRequest("that much history needs whole-hour windows (minutes are kept 35 days)")
    src = source(params, oldest, end, resolution="1m" if res == 60 else "1h", now=now)
    labels = [ANOMALY_SERIES[s] for s in series_keys]
    cols = ", ".join(f"{dq.select([(ANOMALY_METRICS[m], m)])}" for m in metrics)
    # its own parameter: a raw source (tag, user_id) passes `end` as a DateTime64 string, which DateTime rejects
    sql = (f"SELECT {', '.join(labels)}, k, {cols} FROM (SELECT *, "
           "intDiv(toUnixTimestamp({a_end:DateTime('UTC')}) - toUnixTimestamp(bucket) - 1, {step:UInt32}) AS k, "
           "(toUnixTimestamp({a_end:DateTime('UTC')}) - toUnixTimestamp(bucket) - 1) % {step:UInt32} AS off "
           f"FROM {src.sql}) WHERE off < {{window:UInt32}} AND k <= {{periods:UInt32}} "
           f"GROUP BY {', '.join(labels)}, k")
    counts_sql = None
    p = {**src.params, "a_end": sec(end), "step": step, "window": window, "periods": periods}
    rows = store.query(sql, p).dicts()
    need_calls = any(m in ("error_rate", "p95_latency_ms") for m in metrics)
    if need_calls and "requests" not in metrics:
        counts_sql = sql.replace(cols, f"{dq.CALLS} AS requests")
        calls = {tuple(r[c] for c in [*labels, "k"]): r["requests"] for r in store.query(counts_sql, p).dicts()}
    else:
        calls = {tuple(r[c] for c in [*labels, "k"]): r.get("requests") for r in rows}
    by_series: dict[tuple, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_series.setdefault(tuple(r[c] for c in labels), {})[int(r["k"])] = r
    found, checked = [], 0
    for skey, windows in sorted(by_series.items()):
        for m in metrics:
            checked += 1
            vals: dict[int, float | None] = {}
            for kk in range(periods + 1):
                r = windows.get(kk)
                n = int(calls.get((*skey, kk)) or 0)
                if m in ("requests", "cost"):
                    vals[kk] = float(clean(r[m]) or 0) if r else 0.0
                else:
                    vals[kk] = float(r[m]) if r and n >= max(min_calls, 1) and clean(r[m]) is not None else None
            cur = vals[0]
            hist = [v for kk, v in sorted(vals.items()) if kk > 0 and v is not None]
            # a series needs min_periods baseline windows with calls (a brand-new series is not an anomaly)
            if cur is None or sum(1 for kk in windows if kk > 0) < min_periods or len(hist) < min_periods:
                continue
            base = statistics.median(hist)
            mad = statistics.median([abs(x - base) for x in hist])
            spread = max(MAD_SIGMA * mad, 0.05 * abs(base), 1e-9)
            score = (cur - base) / spread
            if abs(score) >= k:
                found.append({"series": dict(zip(series_keys, skey, strict=True)), "metric": m,
                              "current": clean(cur, 6), "baseline": clean(base, 6), "mad": clean(mad, 6),
                              "score": clean(score, 3), "direction": "up" if score > 0 else "down",
                              "history": [clean(v, 6) for kk, v in sorted(vals.items()) if kk > 0]})
    found.sort(key=lambda a: -abs(a["score"]))
    return {"window": {"start": (end - dt.timedelta(seconds=window)).isoformat(), "end": end.isoformat()},
            "baseline": baseline, "periods": periods, "threshold": k, "method": ANOMALY_METHOD,
            "series_checked": checked, "anomalies": found}


# -------------------------------------------------------------------------------------------------------- SLA
BURN_WINDOWS = (("1h", 3600), ("6h", 21600), ("24h", 86400))


def sla(store: Any, params: Mapping[str, str], *, now: dt.datetime | None = None) -> dict[str, Any]:
    target = _float(params, "target_success", 99.5, 0, 99.9999)
    target_p95 = _float(params, "target_p95_ms", 2000.0, 0.001, 1e9)
    window = parse_duration(_p(params, "window", "30d") or "30d", "window")
    if window > 400 * 86400:
        raise BadRequest("window may be at most 400d")
    try:
        end = parse_time(params["end"], end=True) if _p(params, "end") else (now or dt.datetime.now(UTC))
    except ValueError:
        raise BadRequest(f"bad end {params.get('end')!r}: expected {TIME_HELP}")
    end = floor(end, 60)
    start = end - dt.timedelta(seconds=window)
    src = source(params, start, end, resolution="1h" if window > dq.SWITCH_S else None, now=now, daily=True)
    m = metric_row(aggregate(store, src, [])[0])
    allowed = 1 - target / 100
    budget = allowed * m["requests"]
    burn = {}
    for name, secs in BURN_WINDOWS:
        b = source(params, end - dt.timedelta(seconds=secs), end, resolution="1m", now=now)
        r = store.query(f"SELECT {dq.CALLS}, {dq.ERRORS} FROM {b.sql}", b.params).rows[0]
        n, e = int(r[0] or 0), int(r[1] or 0)
        burn[name] = {"requests": n, "errors": e,
                      "burn_rate": clean((e / n) / allowed, 4) if n and allowed > 0 else None}
    availability = m["success_rate"]
    p95 = m["p95_latency_ms"]
    return {
        "period": _period(src), "window": _p(params, "window", "30d"),
        "targets": {"success_rate": target, "p95_latency_ms": target_p95},
        "requests": m["requests"], "errors": m["errors"],
        "availability": availability,
        "p95_latency_ms": p95,
        "meeting": {"success_rate": availability is None or availability >= target,
                    "p95_latency_ms": p95 is None or p95 <= target_p95},
        "status": "meeting" if (availability is None or availability >= target)
        and (p95 is None or p95 <= target_p95) else "violating",
        "error_budget": {
            "total": clean(budget, 4), "consumed": m["errors"], "remaining": clean(budget - m["errors"], 4),
            "consumed_pct": clean(100.0 * m["errors"] / budget, 4) if budget > 0 else None,
            "remaining_pct": clean(100.0 * (budget - m["errors"]) / budget, 4) if budget > 0 else None,
        },
        "burn_rate": burn,
        "method": "availability = successful / all calls in the window; error budget = (1 - target) x calls; burn "
                  "rate = error rate of the last 1h/6h/24h / (1 - target): 1 spends the budget exactly over the "
                  "window, 14.4 over 1h exhausts a 30-day budget in ~2 days (multi-window burn-rate alerting).",
    }


# ----------------------------------------------------------------------------------------------------- errors
# Normalised message: numbers, hex ids, UUIDs and quoted strings become placeholders so one failure mode is one
# group (otel_traces.StatusMessage; the join is by trace and span id within the range).
NORMALISE = ("replaceRegexpAll(replaceRegexpAll(replaceRegexpAll(replaceRegexpAll(substring(msg, 1, 500), "
             "'[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}', '<uuid>'), "
             "'\\\\b(0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\\\\b|\\\\b[0-9a-fA-F]{16,}\\\\b', '<hex>'), "
             "'\\\\d+(\\\\.\\\\d+)?', '<n>'), '(\"[^\"]*\"|''[^'']*'')', '<str>')")


def normalise_message(msg: str) -> str:
    """Python twin of NORMALISE (for tests and documentation)."""
    s = msg[:500]
    s = re.sub(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<uuid>", s)
    s = re.sub(r"\b(0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b[0-9a-fA-F]{16,}\b", "<hex>", s)
    s = re.sub(r"\d+(\.\d+)?", "<n>", s)
    return re.sub(r"(\"[^\"]*\"|'[^']*')", "<str>", s)


def errors(store: Any, params: Mapping[str, str], *, now: dt.datetime | None = None) -> dict[str, Any]:
    start, end = time_range(params, 7 * 86400, now=now)
    limit = _int(params, "limit", 100, 1, 10_000)
    samples = _int(params, "samples", 3, 0, 20)
    w = filters(params)
    cond = ["c.timestamp >= {start:DateTime64(6, 'UTC')}", "c.timestamp < {end:DateTime64(6, 'UTC')}",
            "c.status = 'error'", *w.rollup, *w.raw]
    p = {**w.params, "start": ts(start), "end": ts(end), "samples": samples}
    inner = (f"SELECT c.*, m.msg AS msg FROM ({RAW_ROW}) AS c "
             "LEFT JOIN (SELECT TraceId, SpanId, any(StatusMessage) AS msg FROM otel_traces "
             "WHERE Timestamp >= {start:DateTime64(6, 'UTC')} - INTERVAL 1 HOUR "
             "AND Timestamp < {end:DateTime64(6, 'UTC')} AND StatusMessage != '' GROUP BY TraceId, SpanId) AS m "
             "ON c.trace_id = m.TraceId AND c.span_id = m.SpanId "
             f"WHERE {' AND '.join(cond)}")
    sql = (f"SELECT error_type, error_category, {NORMALISE} AS message, count() AS n, min(timestamp) AS first_seen, "
           "max(timestamp) AS last_seen, groupUniqArray({samples:UInt32})(trace_id) AS sample_trace_ids, "
           "groupUniqArray(5)(http_status) AS http_statuses, uniqExact(prompt_name) AS prompts "
           f"FROM ({inner}) GROUP BY error_type, error_category, message ORDER BY n DESC, error_type, message "
           f"LIMIT {limit}")
    rows = store.query(sql, p).dicts()
    by_cat = store.query(f"SELECT error_category, count() FROM ({RAW_ROW}) AS c WHERE {' AND '.join(cond)} "
                         "GROUP BY error_category ORDER BY error_category", p).rows
    groups = [{
        "error_type": r["error_type"], "error_category": r["error_category"], "message": r["message"] or None,
        "count": int(r["n"]), "first_seen": iso(r["first_seen"]), "last_seen": iso(r["last_seen"]),
        "sample_trace_ids": sorted(r["sample_trace_ids"]),
        "http_statuses": sorted(int(x) for x in r["http_statuses"] if x), "prompts": int(r["prompts"]),
    } for r in rows]
    return {"period": {"start": start.isoformat(), "end": end.isoformat(), "resolution": "raw"},
            "total_errors": sum(int(n) for _, n in by_cat), "by_category": {str(c): int(n) for c, n in by_cat},
            "groups": groups}


# ----------------------------------------------------------------------------------------------------- scores
SCORE_COLUMNS = ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source")
_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_NAME = re.compile(r"^[\w.:/-]{1,100}$")
MAX_SCORES = 1000


def validate_score(doc: Any, i: int = 0) -> tuple:
    where = f"score {i}: " if i else ""
    if not isinstance(doc, dict):
        raise BadRequest(f"{where}expected a JSON object")
    unknown = set(doc) - {"trace_id", "span_id", "name", "value", "label", "comment", "source", "timestamp"}
    if unknown:
        raise BadRequest(f"{where}unknown field(s) {', '.join(sorted(unknown))}")
    tid, sid, name = doc.get("trace_id"), doc.get("span_id", "") or "", doc.get("name")
    if not isinstance(tid, str) or not _ID.match(tid):
        raise BadRequest(f"{where}trace_id must be 1-64 characters of [0-9A-Za-z_-]")
    if not isinstance(sid, str) or (sid and not _ID.match(sid)):
        raise BadRequest(f"{where}span_id must be 1-64 characters of [0-9A-Za-z_-] (or empty for the whole trace)")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequest(f"{where}name must be 1-100 characters of letters, digits and _.:/-")
    value = doc.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise BadRequest(f"{where}value must be a finite number")
    label, comment = doc.get("label", "") or "", doc.get("comment", "") or ""
    source_ = doc.get("source", "api") or "api"
    if not isinstance(label, str) or len(label) > 100:
        raise BadRequest(f"{where}label must be a string of at most 100 characters")
    if not isinstance(comment, str) or len(comment) > 4000:
        raise BadRequest(f"{where}comment must be a string of at most 4000 characters")
    if not isinstance(source_, str) or len(source_) > 50:
        raise BadRequest(f"{where}source must be a string of at most 50 characters")
    t = doc.get("timestamp")
    try:
        when = parse_time(t) if isinstance(t, str) else dt.datetime.now(UTC)
    except ValueError:
        raise BadRequest(f"{where}bad timestamp {t!r}")
    return (when, tid, sid, name, float(value), label, comment, source_)


def post_scores(store: Any, body: Any) -> dict[str, Any]:
    docs = body if isinstance(body, list) else [body]
    if not docs or len(docs) > MAX_SCORES:
        raise BadRequest(f"send 1 to {MAX_SCORES} scores")
    rows = [validate_score(d, i + 1 if isinstance(body, list) else 0) for i, d in enumerate(docs)]
    store.insert_rows("llm_scores", SCORE_COLUMNS, rows)
    return {"inserted": len(rows)}


def get_scores(store: Any, params: Mapping[str, str], *, now: dt.datetime | None = None) -> dict[str, Any]:
    start, end = time_range(params, 30 * 86400, now=now)
    bins = _int(params, "bins", 10, 1, 100)
    p: dict[str, Any] = {"start": ts(start), "end": ts(end)}
    cond = ["timestamp >= {start:DateTime64(3, 'UTC')}", "timestamp < {end:DateTime64(3, 'UTC')}"]
    if _p(params, "name"):
        cond.append("name IN {names:Array(String)}")
        p["names"] = [x.strip() for x in params["name"].split(",") if x.strip()]
    w = filters(params, skip=("tag", "user_id"))
    # A score names its call by (trace_id, span_id), or the whole trace with span_id = '' (then the trace's first
    # LLM call gives prompt and version).
    scored = (f"SELECT s.name AS name, s.value AS value, s.label AS label, s.trace_id AS trace_id, "
              "if(s.span_id = '', c.calls[1], arrayFirst(x -> x.1 = s.span_id, c.calls)) AS call "
              f"FROM (SELECT * FROM llm_scores WHERE {' AND '.join(cond)}) AS s "
              "LEFT JOIN (SELECT trace_id, arraySort(x -> x.5, groupArray((span_id, prompt_name, prompt_version, "
              f"model, timestamp, service, environment, provider, feature, operation))) AS calls "
              f"FROM ({RAW_ROW}) "
              f"WHERE trace_id IN (SELECT trace_id FROM llm_scores WHERE {' AND '.join(cond)}) "
              "GROUP BY trace_id) AS c ON s.trace_id = c.trace_id")
    cols = {"prompt_name": "call.2", "prompt_version": "call.3", "model": "call.4", "service": "call.6",
            "environment": "call.7", "provider": "call.8", "feature": "call.9", "operation": "call.10"}
    view = (f"SELECT name, value, label, trace_id, {', '.join(f'{e} AS {c}' for c, e in cols.items())} "
            f"FROM ({scored})")
    where = " AND ".join(w.rollup) or "1"
    base = f"(SELECT * FROM ({view}) WHERE {where})"
    p.update(w.params)
    summary = store.query(
        f"SELECT name, count(), avg(value), min(value), max(value), quantileExact(0.5)(value), "
        f"groupArray(value) FROM {base} GROUP BY name ORDER BY name", p).rows
    labels = store.query(f"SELECT name, label, count() FROM {base} WHERE label != '' GROUP BY name, label "
                         "ORDER BY name, label", p).rows
    versions = store.query(f"SELECT name, prompt_name, prompt_version, count(), avg(value) FROM {base} "
                           "GROUP BY name, prompt_name, prompt_version ORDER BY name, prompt_name, prompt_version",
                           p).rows
    out = []
    for name, n, avg, lo, hi, med, values in summary:
        width = (hi - lo) / bins if hi > lo else 0
        hist = [0] * (bins if width else 1)
        for v in values:
            hist[min(int((v - lo) / width), bins - 1) if width else 0] += 1
        edges = [lo + width * i for i in range(len(hist) + 1)] if width else [lo, hi]
        out.append({
            "name": name, "count": int(n), "avg": clean(avg, 9), "min": clean(lo), "max": clean(hi),
            "median": clean(med),
            "distribution": [{"from": clean(edges[i], 9), "to": clean(edges[i + 1], 9), "count": c}
                             for i, c in enumerate(hist)],
            "labels": {lab: int(c) for nm, lab, c in labels if nm == name},
            "by_version": [{"prompt_id": pn or None, "version": pv or None, "count": int(c), "avg": clean(a, 9)}
                           for nm, pn, pv, c, a in versions if nm == name],
        })
    return {"period": {"start": start.isoformat(), "end": end.isoformat()}, "prompt_id": _p(params, "prompt_id"),
            "scores": out}


# ----------------------------------------------------------------------------------------------------- export
EXPORT_COLUMNS = ("timestamp", "trace_id", "span_id", "service", "environment", "operation", "provider",
                  "request_model", "response_model", "prompt_name", "prompt_version", "prompt_fingerprint",
                  "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "reasoning_tokens",
                  "cost_usd", "cost_source", "latency_ms", "ttft_ms", "is_stream", "status", "error_type",
                  "error_category", "http_status", "finish_reasons", "user_id", "session_id", "conversation_id",
                  "feature", "tags", "retry_count", "server_address")
EXPORT_FORMATS = ("csv", "jsonl")
EXPORT_MAX = 1_000_000
EXPORT_PAGE = 5000


def export_plan(params: Mapping[str, str], *, now: dt.datetime | None = None) -> tuple[str, int, str, dict]:
    """(format, limit, SQL of one page, parameters); validates everything before the first byte is sent."""
    fmt = _choice(params, "format", EXPORT_FORMATS, "csv")
    limit = _int(params, "limit", 10_000, 1, EXPORT_MAX)
    start, end = time_range(params, 86400, now=now)
    w = filters(params)
    conds = [c.replace("model IN", f"{RAW_MODEL} IN", 1) if c.startswith("model IN") else c for c in w.rollup]
    cond = ["timestamp >= {start:DateTime64(6, 'UTC')}", "timestamp < {end:DateTime64(6, 'UTC')}", *conds, *w.raw]
    if _p(params, "status"):
        cond.append("status = {f_status:String}")
        _choice(params, "status", ("ok", "error"), None)
    p = {**w.params, "start": ts(start), "end": ts(end), "f_status": _p(params, "status") or ""}
    # cost as exact decimal text (CSV keeps every digit; jsonl writes it as a number), NULL when unknown, never 0
    cols = ", ".join("if(cost_known, toString(cost_usd), NULL) AS cost_usd" if c == "cost_usd" else c
                     for c in EXPORT_COLUMNS)
    sql = (f"SELECT {cols} FROM llm_calls WHERE {' AND '.join(cond)} "
           "AND (timestamp, span_id) > ({after_ts:DateTime64(6, 'UTC')}, {after_id:String}) "
           "ORDER BY timestamp, span_id LIMIT {page:UInt32}")
    return fmt, limit, sql, p


def export_rows(store: Any, sql: str, p: dict[str, Any], limit: int) -> Iterator[dict[str, Any]]:
    """Calls in time order, a page at a time (keyset pagination: memory stays flat whatever the limit)."""
    after_ts, after_id, sent = "1970-01-01 00:00:00.000000", "", 0
    while sent < limit:
        page = min(EXPORT_PAGE, limit - sent)
        rows = store.query(sql, {**p, "after_ts": after_ts, "after_id": after_id, "page": page}).dicts()
        yield from rows
        sent += len(rows)
        if len(rows) < page:
            return
        after_ts, after_id = ts(rows[-1]["timestamp"]), rows[-1]["span_id"]
