"""Periodic reports: `promptpulse report --period daily|weekly|monthly --format markdown|html|json [--send ...]`,
and the same report on a schedule inside `promptpulse serve`.

A report covers the last complete period (UTC): daily = yesterday, weekly = the 7 days before today, monthly = the
previous calendar month; it is compared with the period just before it. Contents: key metrics and their change,
top prompts by cost, alerts fired (alert_events), and recommendations:

- the costliest prompt (its share of spend);
- a prompt version that regressed: per prompt, the newest version (latest first call) with traffic this period
  against the busiest older version, both over both periods with /api/compare's method (latency and cost per request
  over successful calls) — p95 latency or cost per request up >= 20%, or success rate down >= 2 points (the seed's
  version-degradation rule), and only where compare's test finds that difference significant;
- a prompt whose tokens per call grew >= 20% over the previous period.

Numbers come from the hourly rollup (periods are whole days) through processor/analytics.py, the same SQL as the
API. Sending reuses the alert channels of processor/alerts/channels.py (webhook and email configuration, timeouts,
secret scrubbing): a webhook gets ``{"type": "promptpulse.report", "period", "report", "text"}``, email gets the
Markdown text with the HTML as an alternative part.

Scheduling, in the TOML config::

    [reports]
    schedule = "daily"        # daily | weekly | monthly | off
    time = "08:00"            # UTC time of day
    weekday = "monday"        # weekly reports
    format = "html"           # markdown | html | json (what is sent or written)
    send = "email"            # email | webhook (optional)
    channel = "team-mail"     # a channel of [reports.channels] or [alerts.channels]; default: the first of that type
    output_dir = "./reports"  # also write each report there (optional)
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import logging
import re
import smtplib
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from . import analytics as an
from . import timerange as tr

log = logging.getLogger("promptpulse.reports")
UTC = dt.timezone.utc
PERIODS = ("daily", "weekly", "monthly")
FORMATS = ("markdown", "html", "json")
MIN_CALLS = 10  # calls a version / prompt needs in a period to be judged
REGRESSION_PCT = 20.0
SUCCESS_DROP_PTS = 2.0
TOKENS_GROWTH_PCT = 20.0


@dataclass(frozen=True)
class Bounds:
    """A report's range [start, end) and the range it is compared with; ``partial`` when it ends at now."""
    name: str
    start: dt.datetime
    end: dt.datetime
    pstart: dt.datetime
    pend: dt.datetime
    partial: bool = False


def period_bounds(period: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime, dt.datetime, dt.datetime]:
    """(start, end, previous start, previous end) of the last complete period before ``now``."""
    today = tr.day_start(now)
    if period == "daily":
        end, days = today, 1
    elif period == "weekly":
        end, days = today, 7
    elif period == "monthly":
        end = tr.month_start(now)
        start = tr.add_months(end, -1)
        return start, end, tr.add_months(start, -1), start
    else:
        raise an.BadRequest(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")
    start = end - dt.timedelta(days=days)
    return start, end, start - dt.timedelta(days=days), start


def bounds(period: str, now: dt.datetime, *, date: str | None = None, start: str | None = None,
           end: str | None = None) -> Bounds:
    """The range a report covers (UTC). No ``date`` and no range: the last complete period. ``date`` (YYYY-MM-DD,
    ``today``, ``yesterday`` or ``-3d``): that day, the ISO week (Monday to Monday) or the calendar month holding it;
    when that period has not ended it runs to now ("so far") and is compared with the same stretch of the period
    before. ``start``/``end`` (any time processor/timerange.py accepts; ``end`` defaults to now): that range,
    compared with the equally long range just before it."""
    if period not in PERIODS:
        raise an.BadRequest(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")
    if date and (start or end):
        raise an.BadRequest("give a date or a range (from/to), not both")
    if start or end:
        if not start:
            raise an.BadRequest("a range needs its start (from)")
        try:
            t1 = tr.parse_time(end, end=True, now=now) if end else now
        except ValueError:
            raise an.BadRequest(f"bad end {end!r}: expected {tr.HELP}")
        try:
            t0 = tr.parse_time(start, now=now)
        except ValueError:
            raise an.BadRequest(f"bad start {start!r}: expected {tr.HELP}")
        t0, t1 = t0.astimezone(UTC), t1.astimezone(UTC)
        if t0 >= t1:
            raise an.BadRequest(f"start ({t0.isoformat()}) must be before end ({t1.isoformat()})")
        return Bounds("custom", t0, t1, t0 - (t1 - t0), t0, partial=t1 > now)
    if not date:
        return Bounds(period, *period_bounds(period, now))
    try:
        day = tr.parse_date(date, now=now)
    except ValueError:
        raise an.BadRequest(f"bad date {date!r}: expected YYYY-MM-DD, today, yesterday or a relative day like -3d")
    if period == "daily":
        t0, t1, p0 = day, day + dt.timedelta(days=1), day - dt.timedelta(days=1)
    elif period == "weekly":
        t0 = tr.week_start(day)
        t1, p0 = t0 + dt.timedelta(days=7), t0 - dt.timedelta(days=7)
    else:
        t0 = tr.month_start(day)
        t1, p0 = tr.add_months(t0, 1), tr.add_months(t0, -1)
    if t0 > now:
        raise an.BadRequest(f"the {period} period of {date} has not started yet")
    if t1 <= now:
        return Bounds(period, t0, t1, p0, t0)
    return Bounds(period, t0, now, p0, min(p0 + (now - t0), t0), partial=True)


def _src(start: dt.datetime, end: dt.datetime, where: str = "") -> an.Source:
    # whole hours come from the rollups (whole days from llm_calls_1d); a range cut mid-hour reads the calls
    aligned = start.timestamp() % 3600 == 0 and end.timestamp() % 3600 == 0
    s = an.source({}, start, end, resolution="1h", daily=True, raw=not aligned)  # whole-range aggregates
    if where:
        s.sql = f"(SELECT * FROM {s.sql} WHERE {where})"
    return s


def _metrics(store: Any, start: dt.datetime, end: dt.datetime, keys: list[tuple[str, str]] | None = None,
             **kw: Any) -> list[dict[str, Any]]:
    return [{**{a: r[a] for _, a in (keys or [])}, **an.metric_row(r)}
            for r in an.aggregate(store, _src(start, end), keys or [], **kw)]


def change(cur: Any, prev: Any) -> float | None:
    if cur is None or prev is None or prev == 0:
        return None
    return round((cur - prev) / abs(prev) * 100.0, 2)


KEY_METRICS = (("requests", "Requests"), ("success_rate", "Success rate %"), ("error_rate", "Error rate %"),
               ("avg_latency_ms", "Avg latency ms"), ("p50_latency_ms", "p50 latency ms"),
               ("p95_latency_ms", "p95 latency ms"), ("p99_latency_ms", "p99 latency ms"),
               ("total_tokens", "Tokens"), ("avg_tokens", "Tokens per call"), ("total_cost_usd", "Cost USD"),
               ("cost_per_request", "Cost per request USD"),
               # calls whose tokens / cost are unknown: left out of the sums and the per-call figures above
               ("calls_without_usage", "Calls without usage"), ("calls_unpriced", "Calls unpriced"))


def build_report(store: Any, period: str, *, now: dt.datetime | None = None, top: int = 5, date: str | None = None,
                 start: str | None = None, end: str | None = None) -> dict[str, Any]:
    """The report of ``bounds(period, now, date=, start=, end=)``."""
    now = now or dt.datetime.now(UTC)
    return _build(store, bounds(period, now, date=date, start=start, end=end), now, top)


def _build(store: Any, b: Bounds, now: dt.datetime, top: int) -> dict[str, Any]:
    start, end, pstart, pend = b.start, b.end, b.pstart, b.pend
    cur = _metrics(store, start, end)[0]
    prev = _metrics(store, pstart, pend)[0]
    metrics = {k: {"label": label, "value": cur[k], "previous": prev[k], "change_pct": change(cur[k], prev[k])}
               for k, label in KEY_METRICS}
    # top prompts by cost
    by_prompt = {r["prompt"]: r for r in _metrics(store, start, end, [("prompt_name", "prompt")])}
    prev_prompt = {r["prompt"]: r for r in _metrics(store, pstart, pend, [("prompt_name", "prompt")])}
    total_cost = cur["total_cost_usd"] or 0.0
    ranked = sorted(by_prompt.values(), key=lambda r: (-(r["total_cost_usd"] or 0), r["prompt"]))
    top_prompts = [{
        "prompt": r["prompt"] or "(untagged)", "requests": r["requests"], "total_cost_usd": r["total_cost_usd"],
        "share_pct": round(100.0 * r["total_cost_usd"] / total_cost, 2) if total_cost else None,
        "cost_per_request": r["cost_per_request"], "avg_tokens": r["avg_tokens"],
        "calls_without_usage": r["calls_without_usage"], "calls_unpriced": r["calls_unpriced"],
        "previous_cost_usd": prev_prompt.get(r["prompt"], {}).get("total_cost_usd"),
        "change_pct": change(r["total_cost_usd"], prev_prompt.get(r["prompt"], {}).get("total_cost_usd")),
    } for r in ranked[:top]]
    alerts = _alerts(store, start, end)
    recs = recommendations(store, start, end, pstart, by_prompt, prev_prompt, total_cost)
    return {
        "title": f"PromptPulse {b.name} report" if b.name != "custom" else "PromptPulse report",
        "period": {"name": b.name, "start": start.isoformat(), "end": end.isoformat(), "partial": b.partial},
        "previous_period": {"start": pstart.isoformat(), "end": pend.isoformat()},
        "generated_at": now.isoformat(),
        "metrics": metrics,
        "top_prompts_by_cost": top_prompts,
        "alerts": alerts,
        "recommendations": recs,
    }


def _alerts(store: Any, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    p = {"start": an.ts(start), "end": an.ts(end)}
    rows = store.query(
        "SELECT rule, severity, count() AS n, min(timestamp) AS first, max(timestamp) AS last, "
        "argMax(message, timestamp) AS message FROM alert_events WHERE state = 'firing' "
        "AND timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')} "
        "GROUP BY rule, severity ORDER BY n DESC, rule, severity", p).dicts()
    return {"fired": sum(int(r["n"]) for r in rows),
            "by_rule": [{"rule": r["rule"], "severity": r["severity"], "count": int(r["n"]),
                         "first": an.iso(r["first"]), "last": an.iso(r["last"]), "message": r["message"]}
                        for r in rows]}


def recommendations(store: Any, start: dt.datetime, end: dt.datetime, pstart: dt.datetime,
                    by_prompt: Mapping[str, dict[str, Any]], prev_prompt: Mapping[str, dict[str, Any]],
                    total_cost: float) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = []
    costly = sorted((r for r in by_prompt.values() if (r["total_cost_usd"] or 0) > 0),
                    key=lambda r: (-r["total_cost_usd"], r["prompt"]))
    if costly:
        r = costly[0]
        share = 100.0 * r["total_cost_usd"] / total_cost if total_cost else 0.0
        recs.append({
            "kind": "costliest_prompt", "prompt": r["prompt"], "total_cost_usd": r["total_cost_usd"],
            "share_pct": round(share, 2), "cost_per_request": r["cost_per_request"],
            "message": f"'{r['prompt'] or '(untagged)'}' is the costliest prompt: ${r['total_cost_usd']:.4f} "
                       f"({share:.1f}% of spend, ${r['cost_per_request']:.6f} per request). Review its token usage, "
                       "cache its prefix, or try a cheaper model.",
        })
    recs += version_regressions(store, start, end, pstart)
    growth = []
    for name, r in by_prompt.items():
        p = prev_prompt.get(name)
        if not p or r["requests"] < MIN_CALLS or p["requests"] < MIN_CALLS or not p["avg_tokens"]:
            continue
        g = change(r["avg_tokens"], p["avg_tokens"])
        if g is not None and g >= TOKENS_GROWTH_PCT:
            growth.append((g, name, r, p))
    for g, name, r, p in sorted(growth, key=lambda x: (-x[0], x[1])):
        recs.append({
            "kind": "tokens_growth", "prompt": name, "avg_tokens": r["avg_tokens"],
            "previous_avg_tokens": p["avg_tokens"], "change_pct": g,
            "message": f"Tokens per call of '{name or '(untagged)'}' grew {g:.1f}% "
                       f"({p['avg_tokens']:.0f} -> {r['avg_tokens']:.0f}): check for growing context, history or "
                       "retrieved documents in the prompt.",
        })
    return recs


def version_regressions(store: Any, start: dt.datetime, end: dt.datetime,
                        pstart: dt.datetime) -> list[dict[str, Any]]:
    keys = [("prompt_name", "prompt"), ("prompt_version", "version")]
    cur = {(r["prompt"], r["version"]): r for r in _metrics(store, start, end, keys)}
    both = {(r["prompt"], r["version"]): r for r in _metrics(store, pstart, end, keys)}
    first = {(p, v): t for p, v, t in store.query(
        "SELECT prompt_name, prompt_version, min(bucket) FROM llm_calls_1h WHERE bucket < {end:DateTime('UTC')} "
        "AND prompt_name != '' GROUP BY prompt_name, prompt_version", {"end": an.sec(end)}).rows}
    out = []
    for prompt in sorted({p for p, _ in cur if p}):
        live = [(first.get((p, v)), v) for (p, v), r in cur.items() if p == prompt and r["requests"] >= MIN_CALLS]
        if not live:
            continue
        newest_first, newest = max(live, key=lambda x: (x[0], x[1]))
        older = [(both[(p, v)]["requests"], v) for (p, v) in both
                 if p == prompt and v != newest and first.get((p, v)) is not None
                 and first[(p, v)] < newest_first and both[(p, v)]["requests"] >= MIN_CALLS]
        if not older:
            continue
        _, base_v = max(older)
        # the API's comparison over both periods: latency and cost over successful calls, and a regression only
        # when it is large enough to matter *and* significant (the tests of /api/compare)
        cmp = an.compare(store, {"prompt_id": prompt, "versions": f"{base_v},{newest}", "start": pstart.isoformat(),
                                 "end": end.isoformat()})
        base, new = cmp["items"]
        worse = {t["metric"]: t for t in cmp["tests"] if t["significant"] and t["better"] == base_v}
        found = []
        for m, label in (("p95_latency_ms", "p95 latency"), ("cost_per_request", "cost per request")):
            c = change(new[m], base[m])
            if c is not None and c >= REGRESSION_PCT and m in worse:
                found.append({"metric": m, "value": new[m], "baseline": base[m], "change_pct": c, "label": label,
                              "test": worse[m]["test"], "p_value": worse[m]["p_value"]})
        if new["success_rate"] is not None and base["success_rate"] is not None \
                and base["success_rate"] - new["success_rate"] >= SUCCESS_DROP_PTS and "success_rate" in worse:
            found.append({"metric": "success_rate", "value": new["success_rate"], "baseline": base["success_rate"],
                          "change_pts": round(new["success_rate"] - base["success_rate"], 4),
                          "label": "success rate", "test": worse["success_rate"]["test"],
                          "p_value": worse["success_rate"]["p_value"]})
        if found:
            what = ", ".join(f"{f['label']} {_delta(f)}" for f in found)
            out.append({"kind": "version_regression", "prompt": prompt, "version": newest,
                        "baseline_version": base_v, "regressions": [{k: v for k, v in f.items() if k != "label"}
                                                                    for f in found],
                        "alpha": cmp["alpha_per_test"],
                        "message": f"'{prompt}' v{newest} regressed against v{base_v}: {what} (significant at "
                                   f"alpha {cmp['alpha_per_test']:g}). Compare them "
                                   f"(/api/compare?prompt_id={prompt}&versions={base_v},{newest}) and consider "
                                   "rolling back."})
    return out


def _delta(f: Mapping[str, Any]) -> str:
    if "change_pct" in f:
        return f"+{f['change_pct']:.1f}%"
    return f"{f['change_pts']:.1f} pts"


# ---------------------------------------------------------------------------------------------------- render
def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "–"
    if key in ("requests", "total_tokens", "count") or key.startswith("calls_"):
        return f"{int(v):,}"
    if "cost" in key:
        return f"${v:,.6f}" if abs(v) < 1 else f"${v:,.2f}"
    if key in ("success_rate", "error_rate", "share_pct"):
        return f"{v:.2f}%"
    return f"{v:,.1f}"


def _chg(v: Any) -> str:
    return "–" if v is None else f"{v:+.1f}%"


def _sections(doc: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    m = doc["metrics"]
    key_rows = [[v["label"], _fmt(k, v["value"]), _fmt(k, v["previous"]), _chg(v["change_pct"])]
                for k, v in m.items()]
    top = [[t["prompt"], _fmt("requests", t["requests"]), _fmt("cost", t["total_cost_usd"]),
            _fmt("share_pct", t["share_pct"]), _fmt("cost", t["cost_per_request"]), _chg(t["change_pct"]),
            f"{t['calls_without_usage']:,} / {t['calls_unpriced']:,}"]
           for t in doc["top_prompts_by_cost"]]
    alerts = [[a["rule"], a["severity"], str(a["count"]), a["last"]] for a in doc["alerts"]["by_rule"]]
    return [("Key metrics", ["Metric", "This period", "Previous", "Change"], key_rows),
            ("Top prompts by cost", ["Prompt", "Requests", "Cost", "Share", "Cost/request", "Change",
                                     "No usage / unpriced"], top),
            (f"Alerts fired ({doc['alerts']['fired']})", ["Rule", "Severity", "Fired", "Last"], alerts)]


def span(p: Mapping[str, Any]) -> str:
    """'2026-11-23 to 2026-11-24' for whole days (the end is exclusive), else to the minute, in UTC."""
    t0, t1 = dt.datetime.fromisoformat(p["start"]), dt.datetime.fromisoformat(p["end"])
    if all(t.timestamp() % 86400 == 0 for t in (t0, t1)):
        text = f"{t0:%Y-%m-%d} to {t1:%Y-%m-%d}"
    else:
        text = f"{t0:%Y-%m-%d %H:%M} to {t1:%Y-%m-%d %H:%M} UTC"
    return text + (" (so far)" if p.get("partial") else "")


def render(doc: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, default=str)
    head = f"{doc['title']}: {span(doc['period'])}"
    prev = span(doc["previous_period"])
    recs = [r["message"] for r in doc["recommendations"]] or ["Nothing to flag this period."]
    if fmt == "markdown":
        out = [f"# {head}", "", f"Compared with {prev}.", ""]
        for title, cols, rows in _sections(doc):
            out += [f"## {title}", ""]
            if rows:
                out += ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
            else:
                out.append("None.")
            out.append("")
        out += ["## Recommendations", "", *[f"- {r}" for r in recs], ""]
        return "\n".join(out)
    if fmt == "html":
        e = html.escape
        out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{e(head)}</title>",
               "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
               "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}</style>",
               "</head><body>", f"<h1>{e(head)}</h1>",
               f"<p>Compared with {e(prev)}.</p>"]
        for title, cols, rows in _sections(doc):
            out.append(f"<h2>{e(title)}</h2>")
            if rows:
                out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
                out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
                out.append("</table>")
            else:
                out.append("<p>None.</p>")
        out += ["<h2>Recommendations</h2>", "<ul>", *[f"<li>{e(r)}</li>" for r in recs], "</ul>",
                "</body></html>"]
        return "\n".join(out) + "\n"
    raise an.BadRequest(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# ------------------------------------------------------------------------------------------------------ send
def channel_config(how: str, *, reports_cfg: Mapping[str, Any] | None = None,
                   alerts_cfg: Mapping[str, Any] | None = None, name: str | None = None) -> tuple[str, dict]:
    """(name, channel table) for sending: ``name`` from [reports.channels] or [alerts.channels], else the first
    channel of type ``how`` there."""
    from .alerts.rules import expand_env

    tables: dict[str, Any] = {}
    for cfg in (alerts_cfg or {}, reports_cfg or {}):
        chans = cfg.get("channels")
        if isinstance(chans, Mapping):
            tables.update(chans)
    if name:
        if name not in tables:
            raise ValueError(f"no channel {name!r} in [reports.channels] or [alerts.channels]")
        return name, expand_env(dict(tables[name]), where=f"channel {name!r}")
    for n, t in tables.items():
        if isinstance(t, Mapping) and t.get("type") == how:
            return n, expand_env(dict(t), where=f"channel {n!r}")
    raise ValueError(f"no {how} channel configured: add one to [reports.channels] (or [alerts.channels]), "
                     f"or pass --webhook-url / --smtp-host and --mail-to")


def send(doc: Mapping[str, Any], how: str, channel: Mapping[str, Any], *, fmt: str = "markdown",
         name: str = "report") -> None:
    """Deliver the report over an alert channel configuration (raises when delivery fails after retries)."""
    from .alerts.channels import EmailChannel, HttpChannel, make_channel

    ch = make_channel(name, dict(channel))
    if how == "webhook":
        if not isinstance(ch, HttpChannel):
            raise ValueError(f"channel {name!r} is not a webhook")
        body = {"type": "promptpulse.report", "period": doc["period"], "report": json.loads(render(doc, "json")),
                "text": render(doc, "markdown" if fmt == "json" else fmt)}
        _retry(ch, lambda: ch.post(body))
    elif how == "email":
        if not isinstance(ch, EmailChannel):
            raise ValueError(f"channel {name!r} is not an email channel")
        m = EmailMessage()
        m["Subject"] = f"{ch.subject_prefix} {doc['title']} {doc['period']['start'][:10]}"
        m["From"], m["To"] = ch.sender, ", ".join(ch.to)
        m.set_content(render(doc, "markdown"))
        m.add_alternative(render(doc, "html"), subtype="html")
        _retry(ch, lambda: _smtp(ch, m))
    else:
        raise ValueError(f"unknown send target {how!r}; expected email or webhook")


def _smtp(ch: Any, m: EmailMessage) -> None:
    ctx = ssl.create_default_context()
    cls = smtplib.SMTP_SSL if ch.ssl else smtplib.SMTP
    kw: dict[str, Any] = {"context": ctx} if ch.ssl else {}
    with cls(ch.host, ch.port, timeout=ch.timeout_s, **kw) as smtp:
        if ch.starttls:
            smtp.starttls(context=ctx)
        if ch.username:
            smtp.login(ch.username, ch.password or "")
        smtp.send_message(m)


def _retry(ch: Any, fn: Any) -> None:
    from .alerts.channels import PermanentError

    for attempt in range(1, ch.retries + 1):
        try:
            fn()
            log.info("report sent to %s channel %r", ch.type, ch.name)
            return
        except Exception as e:
            msg = ch.scrub(f"{type(e).__name__}: {e}")[:300]
            if isinstance(e, PermanentError) or attempt == ch.retries:
                raise RuntimeError(f"sending the report to {ch.type} channel {ch.name!r} failed: {msg}") from None
            ch._sleep(ch.backoff_s * 2 ** (attempt - 1))


# -------------------------------------------------------------------------------------------------- schedule
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def next_run(cfg: Mapping[str, Any], after: dt.datetime) -> dt.datetime:
    """The next scheduled time strictly after ``after`` for [reports] schedule/time/weekday (UTC)."""
    schedule = cfg.get("schedule", "off")
    hh, mm = (int(x) for x in str(cfg.get("time", "08:00")).split(":"))
    t = after.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if schedule == "daily":
        return t if t > after else t + dt.timedelta(days=1)
    if schedule == "weekly":
        wd = WEEKDAYS.index(str(cfg.get("weekday", "monday")).lower())
        t += dt.timedelta(days=(wd - t.weekday()) % 7)
        return t if t > after else t + dt.timedelta(days=7)
    if schedule == "monthly":
        t = t.replace(day=1)
        if t > after:
            return t
        y, mo = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
        return t.replace(year=y, month=mo)
    raise ValueError(f"[reports] schedule must be daily, weekly, monthly or off, not {schedule!r}")


def check_config(cfg: Mapping[str, Any]) -> None:
    unknown = set(cfg) - {"schedule", "time", "weekday", "format", "send", "channel", "channels", "output_dir",
                          "period"}
    if unknown:
        raise ValueError(f"[reports]: unknown key(s) {', '.join(sorted(unknown))}")
    if cfg.get("schedule", "off") not in ("off", *PERIODS):
        raise ValueError("[reports] schedule must be daily, weekly, monthly or off")
    if cfg.get("format", "markdown") not in FORMATS:
        raise ValueError(f"[reports] format must be one of {', '.join(FORMATS)}")
    if cfg.get("send") not in (None, "email", "webhook"):
        raise ValueError("[reports] send must be email or webhook")
    if cfg.get("period", cfg.get("schedule", "daily")) not in (*PERIODS, "off"):
        raise ValueError("[reports] period must be daily, weekly or monthly")
    try:
        hh, mm = (int(x) for x in str(cfg.get("time", "08:00")).split(":"))
        assert 0 <= hh < 24 and 0 <= mm < 60
    except (ValueError, AssertionError):
        raise ValueError("[reports] time must be HH:MM (UTC)")
    if str(cfg.get("weekday", "monday")).lower() not in WEEKDAYS:
        raise ValueError("[reports] weekday must be a day name")


def run_scheduled(store: Any, cfg: Mapping[str, Any], alerts_cfg: Mapping[str, Any] | None = None, *,
                  now: dt.datetime | None = None) -> dict[str, Any]:
    """Build, and send and/or write, the configured report once."""
    period = cfg.get("period", cfg.get("schedule", "daily"))
    fmt = cfg.get("format", "markdown")
    doc = build_report(store, period, now=now)
    if cfg.get("output_dir"):
        d = Path(cfg["output_dir"])
        d.mkdir(parents=True, exist_ok=True)
        ext = {"markdown": "md", "html": "html", "json": "json"}[fmt]
        (d / f"promptpulse-{period}-{doc['period']['start'][:10]}.{ext}").write_text(render(doc, fmt))
    if cfg.get("send"):
        name, ch = channel_config(cfg["send"], reports_cfg=cfg, alerts_cfg=alerts_cfg, name=cfg.get("channel"))
        send(doc, cfg["send"], ch, fmt=fmt, name=name)
    return doc


class ReportScheduler:
    """Runs the configured report at its scheduled times inside `promptpulse serve`."""

    def __init__(self, get_store: Any, cfg: Mapping[str, Any], alerts_cfg: Mapping[str, Any] | None = None,
                 clock: Any = None) -> None:
        check_config(cfg)
        self.get_store, self.cfg, self.alerts_cfg = get_store, dict(cfg), alerts_cfg
        self._clock = clock or (lambda: dt.datetime.now(UTC))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="promptpulse-reports", daemon=True)
        self.next = next_run(self.cfg, self._clock())
        self.runs = 0

    def start(self) -> ReportScheduler:
        log.info("reports: %s report at %s UTC, next %s", self.cfg.get("schedule"), self.cfg.get("time", "08:00"),
                 self.next.isoformat())
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            if now >= self.next:
                try:
                    run_scheduled(self.get_store(), self.cfg, self.alerts_cfg, now=now)
                    self.runs += 1
                except Exception as e:
                    log.warning("scheduled report failed: %s", str(e)[:300])
                self.next = next_run(self.cfg, now)
            self._stop.wait(min(30.0, max(0.05, (self.next - self._clock()).total_seconds())))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def start_scheduler(service: Any) -> ReportScheduler | None:
    """The [reports] schedule of the service's settings, started; None when off."""
    cfg = getattr(service.settings, "reports", None) or {}
    if cfg.get("schedule", "off") == "off":
        return None
    return ReportScheduler(service.get_store, cfg, getattr(service.settings, "alerts", None)).start()


# ------------------------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    # `--from -7d`: let a relative time be a value, as argparse already lets "-7" be one (it has no such option)
    p._negative_number_matcher = re.compile(r"^-\d+(?:\.\d+)?[smhdw]?$")  # type: ignore[attr-defined]
    p.add_argument("--period", choices=PERIODS, default="daily",
                   help="without --date or --from: the last complete day, 7 days or calendar month (UTC)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--date", help="the day, ISO week or month (per --period) holding this UTC date: YYYY-MM-DD, "
                                     "today, yesterday or -3d; a period not yet over is reported so far "
                                     "(--date today: today so far)")
    when.add_argument("--from", dest="start", metavar="FROM", help=f"range start: {tr.HELP}")
    p.add_argument("--to", dest="end", metavar="TO", help="range end (exclusive; default now), as --from")
    p.add_argument("--format", choices=FORMATS, default="markdown")
    p.add_argument("--send", choices=("email", "webhook"), help="also deliver it (channel from the config file, or "
                                                                "--webhook-url / --smtp-host --mail-to)")
    p.add_argument("--channel", help="channel name in [reports.channels] or [alerts.channels]")
    p.add_argument("--webhook-url", dest="webhook_url")
    p.add_argument("--smtp-host", dest="smtp_host")
    p.add_argument("--smtp-port", dest="smtp_port", type=int)
    p.add_argument("--mail-to", dest="mail_to", action="append", help="email recipient (repeatable)")
    p.add_argument("--mail-from", dest="sender", default="promptpulse@localhost", help="email sender")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.add_argument("--api", help="API URL of a running service (default: try http://127.0.0.1:<api_port>)")
    p.add_argument("--data-dir", dest="data_dir", help="open this data dir directly (no service may own it)")
    p.add_argument("--clickhouse-url", dest="clickhouse_url")
    p.add_argument("--auth-token", dest="auth_token")
    p.add_argument("--config")


def _from_api(url: str, params: Mapping[str, str], token: str | None) -> dict[str, Any]:
    query = urllib.parse.urlencode({**params, "format": "json"})
    req = urllib.request.Request(f"{url.rstrip('/')}/api/report?{query}")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"promptpulse report: {json.loads(e.read() or b'{}').get('error', e)}")


def run(args: argparse.Namespace) -> int:
    from .config import load

    s = load({"data_dir": args.data_dir, "clickhouse_url": args.clickhouse_url, "auth_token": args.auth_token},
             config_file=args.config)
    if args.end and not args.start:
        raise SystemExit("promptpulse report: --to needs --from")
    when = {k: v for k, v in (("date", args.date), ("start", args.start), ("end", args.end)) if v}
    doc = None
    if not args.data_dir and not args.clickhouse_url:
        urls = [args.api] if args.api else [f"http://{s.host}:{s.api_port}"]
        for url in urls:
            try:
                doc = _from_api(url, {"period": args.period, **when}, s.auth_token)
                break
            except (urllib.error.URLError, ConnectionError) as e:
                if args.api:
                    raise SystemExit(f"promptpulse report: cannot reach {url}: {e}")
    if doc is None:
        from .store import StoreError, open_store

        if not s.clickhouse_url and not Path(s.data_dir).is_dir():  # do not create an empty data dir
            raise SystemExit(f"promptpulse report: no service answers and there is no data dir at {s.data_dir}")
        store = open_store(data_dir=s.data_dir, clickhouse_url=s.clickhouse_url)
        try:
            doc = build_report(store, args.period, **when)
        except an.BadRequest as e:
            raise SystemExit(f"promptpulse report: {e}")
        except StoreError as e:
            raise SystemExit(f"promptpulse report: {str(e).splitlines()[0][:300]} (is {s.data_dir} a PromptPulse "
                             "data dir? `promptpulse schema apply --data-dir DIR` creates the tables)")
        finally:
            store.close()
    text = render(doc, args.format)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if args.send:
        reports_cfg = getattr(s, "reports", None) or {}
        if args.webhook_url or args.smtp_host:
            name = "cli"
            ch = ({"type": "webhook", "url": args.webhook_url} if args.send == "webhook" else
                  {"type": "email", "host": args.smtp_host or "localhost", "to": args.mail_to or [],
                   "from": args.sender,
                   **({"port": args.smtp_port} if args.smtp_port else {})})
        else:
            try:
                name, ch = channel_config(args.send, reports_cfg=reports_cfg,
                                          alerts_cfg=getattr(s, "alerts", None), name=args.channel)
            except ValueError as e:
                raise SystemExit(f"promptpulse report: {e}")
        try:
            send(doc, args.send, ch, fmt=args.format, name=name)
        except (ValueError, RuntimeError) as e:
            raise SystemExit(f"promptpulse report: {e}")
        print(f"report sent ({args.send})", file=sys.stderr)
    return 0


HELP = "periodic report: key metrics, change vs the previous period, top prompts, alerts, recommendations"
