"""The demo's closing overview, queried from the store: per-prompt KPIs (from the 1-minute rollups, percentiles from
the merged latency histograms), the version comparison with its winner (/api/compare's method), the alerts that
fired.

Numbers are printed so that they can be checked against the store exactly: counts as integers, costs in USD with 6
decimals (``format_usd``: the stored Decimal sum, rounded half-even), latencies in whole milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

SECONDS_PER_MONTH = 30 * 86400

KPI_SQL = """
SELECT {group} AS name, sum(calls) AS requests, sum(errors) AS errors,
    promptpulse_hist_quantiles(sumMap(latency_hist), [0.5, 0.95, 0.99]) AS q,
    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost,
    uniqMerge(users) AS users,
    [sum(errors_timeout), sum(errors_rate_limit), sum(errors_model_error), sum(errors_validation), sum(errors_auth),
     sum(errors_system)] AS by_category
FROM llm_calls_1m
WHERE service = {{service:String}} AND bucket >= {{start:DateTime('UTC')}} AND bucket <= {{end:DateTime('UTC')}}
GROUP BY name
ORDER BY cost DESC, name
"""

VERSIONS_SQL = """
SELECT prompt_name, prompt_version, sum(calls) AS requests, sum(errors) AS errors,
    promptpulse_hist_quantiles(sumMap(latency_hist), [0.5, 0.95]) AS q,
    sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost
FROM llm_calls_1m
WHERE service = {service:String} AND bucket >= {start:DateTime('UTC')} AND bucket <= {end:DateTime('UTC')}
GROUP BY prompt_name, prompt_version
ORDER BY prompt_name, prompt_version
"""

# Scores arrive as `gen_ai.evaluation {name}` spans whose parent is the scored call.
SCORES_SQL = """
SELECT c.prompt_name AS prompt_name, c.prompt_version AS prompt_version, s.name AS name, avg(s.value) AS value,
    count() AS n
FROM (
    SELECT TraceId AS trace_id, ParentSpanId AS span_id, SpanAttributes['gen_ai.evaluation.name'] AS name,
        toFloat64OrZero(SpanAttributes['gen_ai.evaluation.score.value']) AS value
    FROM otel_traces
    WHERE ServiceName = {service:String} AND SpanName LIKE 'gen_ai.evaluation %'
      AND Timestamp >= {start:DateTime('UTC')}
) AS s
INNER JOIN (
    SELECT trace_id, span_id, prompt_name, prompt_version FROM llm_calls
    WHERE service = {service:String} AND timestamp >= {start:DateTime('UTC')}
) AS c ON s.trace_id = c.trace_id AND s.span_id = c.span_id
GROUP BY prompt_name, prompt_version, name
"""


def format_usd(value: Any) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN))


def _ms(v: Any) -> int | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else round(f)  # NaN: no data


@dataclass
class Kpi:
    name: str
    requests: int
    errors: int
    p50: int | None
    p95: int | None
    p99: int | None
    input_tokens: int
    output_tokens: int
    cost: Decimal
    users: int
    errors_by_category: dict[str, int] = field(default_factory=dict)

    @property
    def success_pct(self) -> float:
        return 100.0 * (self.requests - self.errors) / self.requests if self.requests else 0.0


ERROR_CATEGORIES = ("timeout", "rate_limit", "model_error", "validation", "auth", "system")


@dataclass
class VersionRow:
    prompt: str
    version: str
    requests: int
    errors: int
    p50: int | None
    p95: int | None
    output_tokens: int
    cost: Decimal
    scores: dict[str, tuple[float, int]] = field(default_factory=dict)

    @property
    def success_pct(self) -> float:
        return 100.0 * (self.requests - self.errors) / self.requests if self.requests else 0.0

    @property
    def cost_per_call(self) -> Decimal:
        return self.cost / self.requests if self.requests else Decimal(0)


@dataclass
class Winner:
    version: str
    points: dict[str, str]  # criterion -> significantly best version ("" = none)
    note: str


@dataclass
class Fired:
    rule: str
    severity: str
    labels: dict[str, str]
    value: float
    threshold: float
    title: str = ""
    below: bool = False  # the rule fires when the value is *below* the threshold


@dataclass
class Overview:
    prompts: list[Kpi]
    total: Kpi
    versions: dict[str, list[VersionRow]]
    winners: dict[str, Winner]
    alerts: list[Fired]
    alerts_at: dt.datetime | None
    alerts_source: str
    traffic_seconds: float


def window_params(service: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    floor = start.replace(second=0, microsecond=0)
    return {"service": service, "start": floor.replace(tzinfo=None), "end": end.replace(tzinfo=None)}


def _kpi(row: Sequence[Any]) -> Kpi:
    name, requests, errors, q, inp, out, cost, users, by_category = row
    q = list(q or [None, None, None])
    return Kpi(str(name), int(requests), int(errors), _ms(q[0]), _ms(q[1]), _ms(q[2]), int(inp), int(out),
               Decimal(str(cost)), int(users), {c: int(n) for c, n in zip(ERROR_CATEGORIES, by_category, strict=True)
                                                if n})


def query_kpis(store: Any, params: dict[str, Any]) -> tuple[list[Kpi], Kpi]:
    prompts = [_kpi(r) for r in store.query(KPI_SQL.format(group="prompt_name"), params).rows]
    total_rows = store.query(KPI_SQL.format(group="'TOTAL'"), params).rows
    total = _kpi(total_rows[0]) if total_rows else Kpi("TOTAL", 0, 0, None, None, None, 0, 0, Decimal(0), 0)
    return prompts, total


def query_versions(store: Any, params: dict[str, Any]) -> dict[str, list[VersionRow]]:
    out: dict[str, list[VersionRow]] = {}
    for prompt, version, requests, errors, q, output_tokens, cost in store.query(VERSIONS_SQL, params).rows:
        q = list(q or [None, None])
        out.setdefault(str(prompt), []).append(VersionRow(str(prompt), str(version), int(requests), int(errors),
                                                          _ms(q[0]), _ms(q[1]), int(output_tokens),
                                                          Decimal(str(cost))))
    try:
        for prompt, version, name, value, n in store.query(SCORES_SQL, params).rows:
            for row in out.get(str(prompt), []):
                if row.version == str(version):
                    row.scores[str(name)] = (float(value), int(n))
    except Exception:  # scores are a garnish; never lose the overview over them
        pass
    return {k: v for k, v in out.items() if len(v) > 1}


def pick_winner(store: Any, prompt: str, rows: Sequence[VersionRow], params: dict[str, Any]) -> Winner:
    """The version /api/compare crowns (success rate first, then p95 latency and cost per successful call; named
    only when the difference is significant), over the demo's window. More than 3 versions: the 3 busiest."""
    from .. import analytics as an

    versions = [r.version for r in sorted(rows, key=lambda r: (-r.requests, r.version))[:an.COMPARE_MAX]]
    start = params["start"].replace(tzinfo=dt.timezone.utc)
    end = params["end"].replace(tzinfo=dt.timezone.utc, second=0, microsecond=0) + dt.timedelta(minutes=1)
    doc = an.compare(store, {"prompt_id": prompt, "versions": ",".join(versions), "service": params["service"],
                             "start": start.isoformat(), "end": end.isoformat()})
    points = {m.replace("_ms", "").replace("_", " "): v or "" for m, v in doc["winners"].items()}
    return Winner(doc["winner"] or "none", points, doc["verdict"])


def build(store: Any, *, service: str, start: dt.datetime, end: dt.datetime, traffic_seconds: float,
          alerts: list[Fired], alerts_at: dt.datetime | None, alerts_source: str) -> Overview:
    params = window_params(service, start, end)
    prompts, total = query_kpis(store, params)
    versions = query_versions(store, params)
    winners = {p: pick_winner(store, p, rows, params) for p, rows in versions.items()}
    return Overview(prompts, total, versions, winners, alerts, alerts_at, alerts_source, traffic_seconds)


# --- rendering --------------------------------------------------------------------------------------------------
def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return indent + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(headers), indent + "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _monthly(cost: Decimal, seconds: float) -> str:
    if seconds <= 0:
        return "-"
    return f"{float(cost) / seconds * SECONDS_PER_MONTH:,.2f}"


def render(ov: Overview, *, color: bool = False) -> str:
    bold = (lambda s: f"\033[1m{s}\033[0m") if color else (lambda s: s)
    out: list[str] = []
    out.append(bold("Prompts") + "  (llm_calls_1m rollups; p50/p95/p99 from the merged latency histograms, ms;"
               " cost in USD)")
    headers = ("prompt", "requests", "success", "p50", "p95", "p99", "users", "in_tokens", "out_tokens", "cost_usd",
               "usd_per_month")
    rows = []
    for k in [*ov.prompts, ov.total]:
        rows.append((k.name, str(k.requests), f"{k.success_pct:.2f}%", _n(k.p50), _n(k.p95), _n(k.p99),
                     str(k.users), f"{k.input_tokens:,}", f"{k.output_tokens:,}", format_usd(k.cost),
                     _monthly(k.cost, ov.traffic_seconds)))
    table = _table(headers, rows, set(range(1, len(headers))))
    out.extend([*table[:-1], table[1], table[-1]])
    rate = ov.total.requests / max(ov.traffic_seconds, 1e-9)
    out.append(f"  usd_per_month: projected at this demo's rate ({rate:.1f} calls/s) for 30 days.")
    if ov.total.errors_by_category:
        cats = ", ".join(f"{c} {n}" for c, n in sorted(ov.total.errors_by_category.items(), key=lambda x: -x[1]))
        out.append(f"  failed calls by error category: {cats}.")
    out.append("")
    out.append(bold("Prompt versions") + "  (winner as /api/compare names it: success rate first, then p95 latency and"
               " cost per successful call; only when significant at alpha 0.05)")
    for prompt, vrows in ov.versions.items():
        headers = ("version", "requests", "success", "p50", "p95", "out_tok_per_call", "usd_per_call", "cost_usd",
                   "quality")
        rows = []
        for r in vrows:
            quality = ", ".join(f"{name} {v:.2f} (n={n})" for name, (v, n) in sorted(r.scores.items())) or "-"
            rows.append((r.version, str(r.requests), f"{r.success_pct:.2f}%", _n(r.p50), _n(r.p95),
                         f"{r.output_tokens / max(r.requests, 1):.0f}", f"{float(r.cost_per_call):.6f}",
                         format_usd(r.cost), quality))
        out.append(f"  {prompt}")
        out.extend(_table(headers, rows, {1, 2, 3, 4, 5, 6, 7}, indent="    "))
        w = ov.winners[prompt]
        detail = ", ".join(f"{m}: {v or 'no clear winner'}" for m, v in w.points.items())
        out.append(f"    winner {prompt} {w.version} ({w.note}; {detail})")
    if not ov.versions:
        out.append("  (no prompt had more than one version)")
    out.append("")
    when = ov.alerts_at.strftime("%H:%M:%S UTC") if ov.alerts_at else "-"
    out.append(bold("Alerts that fired") + f"  (rules of dashboards/alerts.py evaluated as of {when}, the end of the"
               f" traffic's last minute; {ov.alerts_source})")
    if not ov.alerts:
        out.append("  none")
    for a in ov.alerts:
        labels = " ".join(f"{k}={v}" for k, v in a.labels.items() if v != "")
        op = "<" if a.below else ">"
        out.append(f"  {a.severity.upper():<8} {a.rule:<14} {labels}  value {a.value:.4g} {op} threshold "
                   f"{a.threshold:.4g}")
    return "\n".join(out)
