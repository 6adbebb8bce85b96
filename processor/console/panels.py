"""Run a dashboard panel's SQL (dashboards/definitions.py, the same text Grafana runs) for the console.

The panel text is never built from user input: dashboard variables become ClickHouse query parameters
(``{v_service_0:String}``), the time range and interval are validated numbers expanded by dashboards/macros.py. So a
number on the console and in Grafana come from one SQL string and cannot differ.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ...dashboards import definitions as defs
from ...dashboards import macros
from ...dashboards import queries as q
from ...dashboards.grafana import Panel, Variable

# Filter variables (query variables of the dashboards; multi-value but tag, which takes one) and single-value settings.
FILTER_VARIABLES: dict[str, Variable] = {v.name: v for v in defs.FILTER_VARIABLES}
SETTINGS: dict[str, Variable] = {v.name: v for v in (defs.COMPARE_BY, defs.SLO_TARGET, defs.DAILY_BUDGET)}
SCORE_VARIABLE = defs.SCORE_NAME
TRACE_VARIABLE = defs.TRACE_ID
MAX_RANGE = dt.timedelta(days=400)
# Panel steps: the smallest of these that gives at most ~200 points (Grafana's maxDataPoints does the same job).
STEPS_S = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 7 * 86400)
MAX_POINTS = 200

T, R = TypeVar("T"), TypeVar("R")
_QUOTED_VAR = re.compile(r"'\$\{(\w+)\}'")
_LIST_VAR = re.compile(r"\$\{(\w+):singlequote\}")
_ANY_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


class PanelError(ValueError):
    """Bad panel parameters (HTTP 400)."""


@dataclass(frozen=True)
class PanelParams:
    start: dt.datetime
    end: dt.datetime
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)  # variable -> values (empty: All)
    settings: Mapping[str, str] = field(default_factory=dict)  # compare_by, slo_target, daily_budget
    score_name: Sequence[str] = ()
    trace_id: str | None = None  # the trace_calls panel's textbox variable

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise PanelError("start and end need a time zone")
        if not self.start < self.end:
            raise PanelError("start must be before end")
        if self.end - self.start > MAX_RANGE:
            raise PanelError(f"the range is longer than {MAX_RANGE.days} days")
        for name, chosen in self.filters.items():
            if name not in FILTER_VARIABLES:
                raise PanelError(f"unknown filter {name!r}")
            if not FILTER_VARIABLES[name].multi and len(chosen) > 1:  # tag: two tags would count a call twice
                raise PanelError(f"filter {name!r} takes one value")

    @property
    def interval_s(self) -> int:
        span = (self.end - self.start).total_seconds()
        return next((s for s in STEPS_S if span / s <= MAX_POINTS), STEPS_S[-1])


def catalog() -> dict[str, Panel]:
    return defs.all_panels()


def _setting(name: str, settings: Mapping[str, str]) -> str:
    var = SETTINGS[name]
    value = settings.get(name, var.default)
    if var.kind == "custom":
        options = [o.strip() for o in var.query.split(",")]
        if value not in options:
            raise PanelError(f"{name} must be one of {', '.join(options)}")
    else:
        try:
            number = float(value)
        except ValueError:
            raise PanelError(f"{name} must be a number")
        if not math.isfinite(number) or number < 0 or (name == "slo_target" and not 0 < number < 100):
            raise PanelError(f"{name} is out of range")
    return value


def bind(sql: str, p: PanelParams) -> tuple[str, dict[str, Any]]:
    """The panel SQL with its variables as query parameters and its time macros expanded; and the parameters."""
    params: dict[str, Any] = {}
    values: dict[str, Sequence[str] | str] = {name: list(p.filters.get(name, ())) or macros.ALL
                                              for name in FILTER_VARIABLES}
    values[SCORE_VARIABLE.name] = list(p.score_name) or macros.ALL
    if p.trace_id:
        values[TRACE_VARIABLE.name] = [p.trace_id]
    sql = macros.apply_conditional_all(sql, values)

    def quoted(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in SETTINGS:
            raise PanelError(f"panel needs the unsupported setting {name!r}")
        params[f"v_{name}"] = _setting(name, p.settings)
        return f"{{v_{name}:String}}"

    def listed(m: re.Match[str]) -> str:
        name = m.group(1)
        chosen = values.get(name)
        if not isinstance(chosen, list):
            raise PanelError(f"panel needs values for {name!r}")
        for i, v in enumerate(chosen):
            params[f"v_{name}_{i}"] = v
        return ", ".join(f"{{v_{name}_{i}:String}}" for i in range(len(chosen)))

    sql = _LIST_VAR.sub(listed, _QUOTED_VAR.sub(quoted, sql))
    left = [m.group(1) or m.group(2) for m in _ANY_VAR.finditer(sql) if not (m.group(1) or m.group(2)).startswith("__")]
    if left:
        raise PanelError(f"panel uses variables the console does not bind: {', '.join(sorted(set(left)))}")
    return macros.expand_macros(sql, p.start, p.end, p.interval_s), params


def cell(v: Any) -> Any:
    """JSON-safe value: NaN/inf -> null (unknown, never 0), times -> epoch seconds, decimals -> float."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, decimal.Decimal):
        return float(v) if v.is_finite() else None
    if isinstance(v, dt.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)).timestamp()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list | tuple):
        return [cell(x) for x in v]
    if isinstance(v, dict):
        return {str(k): cell(x) for k, x in v.items()}
    return v


def run(store: Any, key: str, p: PanelParams) -> dict[str, Any]:
    panel = catalog().get(key)
    if panel is None:
        raise KeyError(key)
    sql, params = bind(panel.sql, p)
    t0 = time.perf_counter()
    result = store.query(sql, params)
    return {"columns": list(result.column_names), "rows": [[cell(v) for v in r] for r in result.rows],
            "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1)}


def at_once(store: Any, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[work(i) for i in items]``, as many at once as the store runs queries at once (``query_concurrency``;
    EmbeddedStore: its read handles), in order."""
    workers = min(len(items), int(getattr(store, "query_concurrency", 1)))
    if workers <= 1:
        return [work(i) for i in items]
    with ThreadPoolExecutor(workers, thread_name_prefix="panels") as pool:
        return list(pool.map(work, items))


def merge_totals(keys: Sequence[str]) -> list[list[str]]:
    """The keys in groups to run as one statement each: one-row panels (``queries.totals``) over the same source
    share one (each panel's own column expressions, one read of the rollups instead of one per panel); a column
    name two panels give different expressions keeps them apart. Every other panel is a group of its own."""
    panels = catalog()
    groups: list[list[str]] = []
    open_groups: dict[str, list[tuple[list[str], dict[str, str]]]] = {}  # source -> (keys, alias -> expression)
    for key in keys:
        split = q.split_totals(panels[key].sql)
        if split is None:
            groups.append([key])
            continue
        columns, source = split
        for members, exprs in open_groups.get(source, []):
            if all(exprs.get(alias, expr) == expr for expr, alias in columns):
                members.append(key)
                exprs.update((alias, expr) for expr, alias in columns)
                break
        else:
            members = [key]
            open_groups.setdefault(source, []).append((members, {alias: expr for expr, alias in columns}))
            groups.append(members)
    return groups


def _run_group(store: Any, keys: Sequence[str], p: PanelParams) -> list[dict[str, Any]]:
    """A ``merge_totals`` group's answers: one panel as ``run``; several as one statement over their one source."""
    if len(keys) == 1:
        return [run(store, keys[0], p)]
    panels = catalog()
    columns = [_totals(panels[k])[0] for k in keys]
    source = _totals(panels[keys[0]])[1]
    merged = {alias: expr for cols in columns for expr, alias in cols}
    sql, params = bind(q.totals([(expr, alias) for alias, expr in merged.items()], source=source), p)
    t0 = time.perf_counter()
    result = store.query(sql, params)
    elapsed = round((time.perf_counter() - t0) * 1000, 1)
    (row,) = result.rows  # an aggregate without GROUP BY: always one row
    value = dict(zip(result.column_names, row, strict=True))
    return [{"columns": [a for _, a in cols], "rows": [[cell(value[a]) for _, a in cols]], "elapsed_ms": elapsed}
            for cols in columns]


def _totals(panel: Panel) -> tuple[list[tuple[str, str]], str]:
    split = q.split_totals(panel.sql)
    if split is None:
        raise ValueError(f"panel {panel.key!r} is not a one-row totals panel")
    return split


def run_many(store: Any, keys: Sequence[str], p: PanelParams) -> dict[str, dict[str, Any]]:
    """Each panel's answer, as ``run`` gives it; one-row panels over one source run as one statement
    (``merge_totals``), and the statements run at once (``at_once``)."""
    groups = merge_totals(keys)
    answers = {k: a for group, got in zip(groups, at_once(store, lambda g: _run_group(store, g, p), groups),
                                          strict=True) for k, a in zip(group, got, strict=True)}
    return {k: answers[k] for k in keys}


def describe(panel: Panel) -> dict[str, Any]:
    """What the page needs to draw a panel as Grafana does: type, unit, decimals, thresholds (from the same
    definition)."""
    return {"key": panel.key, "title": panel.title, "type": panel.type, "format": panel.format, "unit": panel.unit,
            "decimals": panel.decimals, "description": panel.description, "raw": panel.raw,
            "thresholds": [[c, v] for c, v in panel.thresholds],
            "stacked": bool(panel.custom.get("stacking")), "bars": panel.custom.get("drawStyle") == "bars",
            "fields": panel.options.get("reduceOptions", {}).get("fields", ""),
            "overrides": {name: {k: ([[c, v] for c, v in val] if k == "thresholds" else val)
                                 for k, val in props.items()} for name, props in panel.overrides}}


def options(store: Any, p: PanelParams) -> dict[str, list[str]]:
    """The values each filter variable offers in the range, narrowed by the filters before it (as Grafana)."""
    def values(name: str) -> list[str]:
        others = {k: v for k, v in p.filters.items() if k != name}
        sql, params = bind(FILTER_VARIABLES[name].query, PanelParams(p.start, p.end, others))
        return [str(r[0]) for r in store.query(sql, params).rows]

    names = list(FILTER_VARIABLES)
    return dict(zip(names, at_once(store, values, names), strict=True))
