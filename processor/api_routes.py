"""The analytics endpoints of the HTTP API, as one routing table: api.py dispatches to it, and the OpenAPI document
(GET /api/openapi.json) is generated from the same table, so the two cannot drift.

The endpoints api.py serves itself (/healthz, /readyz, /metrics, /api/metrics, /api/query) are described in
``BUILTIN`` so the document lists every path; tests/processor/test_api_analytics.py checks that each path api.py
matches appears in the document.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from . import analytics as an
from .http_limits import HTTPError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    type: str = "string"  # string | number | integer | boolean
    enum: tuple[str, ...] = ()
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    handler: Callable[..., Any] | None  # (store, params) -> JSON document; None: served by api.py itself
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None  # JSON schema of the request body
    stream: bool = False  # handler(handler_obj, store, params) writes the response itself
    responses: dict[str, str] = field(default_factory=lambda: {"200": "OK"})
    tag: str = "analytics"


RANGE = (Param("start", "range start: ISO date or datetime (UTC unless an offset is given)"),
         Param("end", "range end (exclusive; a date means the end of that day); default now"))
FILTER_PARAMS = tuple(Param(name, doc) for name, doc in an.FILTER_DOCS.items())
ERR = {"400": "bad parameters (JSON: {error})", "401": "missing or invalid bearer token",
       "503": "store unavailable"}


def _get(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda store, params: fn(store, params)


def _report(store: Any, params: dict[str, str]) -> Any:
    from . import reports

    period = an._choice(params, "period", reports.PERIODS, "daily")
    fmt = an._choice(params, "format", reports.FORMATS, "json")
    doc = reports.build_report(store, period, **{k: params[k] for k in ("date", "start", "end") if params.get(k)})
    return doc if fmt == "json" else reports.render(doc, fmt)


def _openapi(_store: Any, _params: dict[str, str]) -> Any:
    return openapi()


def _export(h: Any, store: Any, params: dict[str, str]) -> None:
    fmt, limit, sql, p = an.export_plan(params)
    rows = an.export_rows(store, sql, p, limit)
    first = next(rows, None)  # the first page runs before the headers: a store error is still a clean 503
    h.send_response(200)
    h.send_header("Content-Type", "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson")
    h.send_header("Content-Disposition", f'attachment; filename="llm_calls.{fmt}"')
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()

    def chunk(data: bytes) -> None:
        if data:
            h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(an.EXPORT_COLUMNS)
    n = 0
    it = rows if first is None else _chain(first, rows)
    for r in it:
        if fmt == "csv":
            writer.writerow([_csv_cell(r[c]) for c in an.EXPORT_COLUMNS])
        else:
            buf.write(json.dumps({c: _json_cell(r[c]) for c in an.EXPORT_COLUMNS}) + "\n")
        n += 1
        if buf.tell() > 64 * 1024:
            chunk(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
    chunk(buf.getvalue().encode())
    h.wfile.write(b"0\r\n\r\n")
    log.debug("export: %d call(s)", n)


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest


def _json_cell(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return an.iso(v)
    if isinstance(v, tuple):
        return list(v)
    return v


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        return an.iso(v)
    if isinstance(v, list | tuple):
        return json.dumps(list(v))
    return v


SCORE_SCHEMA = {
    "type": "object", "required": ["trace_id", "name", "value"], "additionalProperties": False,
    "properties": {
        "trace_id": {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,64}$"},
        "span_id": {"type": "string", "description": "the scored LLM call; empty or absent: the whole trace"},
        "name": {"type": "string", "pattern": r"^[\w.:/-]{1,100}$"},
        "value": {"type": "number"}, "label": {"type": "string", "maxLength": 100},
        "comment": {"type": "string", "maxLength": 4000}, "source": {"type": "string", "maxLength": 50},
        "timestamp": {"type": "string", "format": "date-time"},
    },
}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/compare", "Compare 2-3 prompts (prompts=a,b) or versions of one prompt "
          "(prompt_id=X&versions=1.0,2.0): requests and success rate over all calls; p50/p95/p99, avg tokens and cost "
          "per request over successful calls; significance tests per pair and a winner only when the differences "
          "are significant (else how many more calls are needed). " + an.COMPARE_METHOD, _get(an.compare),
          (Param("prompts", "2-3 prompt names, comma-separated"),
           Param("versions", "2-3 versions of prompt_id, comma-separated"),
           Param("alpha", "significance level (split over the pairs)", "number", default=0.05), *RANGE,
           *FILTER_PARAMS),
          responses={"200": "comparison", "404": "unknown prompt or version (JSON: {error} naming it)", **ERR}),
    Route("GET", "/api/timeseries", "A metric over time from the rollup that fits the interval (1m rollup below an "
          "hour, 1h rollup from an hour up); empty buckets are 0 for counts and null for rates",
          _get(an.timeseries),
          (Param("metric", "the metric", enum=tuple(an.TIMESERIES_METRICS), required=True),
           Param("interval", "bucket width", enum=tuple(an.INTERVALS), default="1h"),
           Param("group_by", "one series per value of", enum=tuple(an.GROUP_BY)), *RANGE, *FILTER_PARAMS),
          responses={"200": "series of points", **ERR}),
    Route("GET", "/api/cohorts", "Metrics per cohort: prompt version, new vs returning users (user_type), feature, "
          "tag (a call with two tags is in both), model, or time (hour, day, week)", _get(an.cohorts),
          (Param("by", "cohort", enum=tuple(an.COHORTS), required=True),
           Param("limit", "at most this many cohorts", "integer", default=100), *RANGE, *FILTER_PARAMS),
          responses={"200": "cohorts", **ERR}),
    Route("GET", "/api/anomalies", "Series whose latest complete window deviates from a robust baseline. "
          + an.ANOMALY_METHOD, _get(an.anomalies),
          (Param("metric", "comma-separated metrics (default all)", enum=tuple(an.ANOMALY_METRICS)),
           Param("window", "window length (15m, 1h, 1d)", default="1h"),
           Param("baseline", "baseline windows", enum=("hour_of_week", "previous"), default="hour_of_week"),
           Param("periods", "number of baseline windows", "integer"),
           Param("threshold", "robust z-score threshold", "number", default=3.0),
           Param("min_calls", "calls a window needs for error_rate / p95", "integer", default=10),
           Param("min_periods", "baseline values needed", "integer", default=3),
           Param("by", "series labels, comma-separated", enum=tuple(an.ANOMALY_SERIES), default="prompt,model"),
           Param("end", "evaluate as of this time (default now)"), *FILTER_PARAMS),
          responses={"200": "anomalies", **ERR}),
    Route("GET", "/api/sla", "SLA status: availability and p95 against targets, error budget (total, consumed, "
          "remaining) and burn rates over 1h, 6h and 24h", _get(an.sla),
          (Param("target_success", "availability target, percent", "number", default=99.5),
           Param("target_p95_ms", "p95 latency target, ms", "number", default=2000),
           Param("window", "SLA window (30d, 7d, 24h)", default="30d"),
           Param("end", "as of this time (default now)"), *FILTER_PARAMS),
          responses={"200": "SLA status", **ERR}),
    Route("GET", "/api/errors", "Error groups by error type, category and normalised status message (numbers, ids "
          "and quoted strings replaced), with counts, first/last seen and sample trace ids", _get(an.errors),
          (*RANGE, Param("limit", "at most this many groups", "integer", default=100),
           Param("samples", "sample trace ids per group", "integer", default=3), *FILTER_PARAMS),
          responses={"200": "error groups", **ERR}),
    Route("POST", "/api/scores", "Record quality scores / user feedback for a call (or a list of up to 1000); "
          "inserted into llm_scores", None, body={"oneOf": [SCORE_SCHEMA, {"type": "array", "items": SCORE_SCHEMA,
                                                                            "maxItems": an.MAX_SCORES}]},
          responses={"201": "inserted ({inserted: n})", **ERR}),
    Route("GET", "/api/scores", "Score summaries per score name: count, average, min/max/median, distribution, "
          "labels and averages by prompt version", _get(an.get_scores),
          (Param("name", "score name(s), comma-separated"), *RANGE,
           Param("bins", "distribution bins", "integer", default=10),
           *(p for p in FILTER_PARAMS if p.name not in an.RAW_FILTERS)),
          responses={"200": "score summaries", **ERR}),
    Route("GET", "/api/export", "Calls from llm_calls in time order as CSV or JSON lines, streamed (chunked)",
          None, (Param("format", "output format", enum=an.EXPORT_FORMATS, default="csv"),
                 Param("limit", "at most this many calls", "integer", default=10_000),
                 Param("status", "only ok or error calls", enum=("ok", "error")), *RANGE, *FILTER_PARAMS),
          stream=True, responses={"200": "text/csv or application/x-ndjson", **ERR}),
    Route("GET", "/api/report", "The periodic report (see `promptpulse report`): key metrics and change vs the "
          "previous period, top prompts by cost, alerts fired, recommendations", _report,
          (Param("period", "report period", enum=("daily", "weekly", "monthly"), default="daily"),
           Param("date", "the period holding this UTC date (YYYY-MM-DD, today, yesterday, -3d); so far if not over"),
           Param("start", "or a range: start (ISO date or datetime, now, today, -7d)"),
           Param("end", "range end (exclusive; default now)"),
           Param("format", "json document or rendered text", enum=("json", "markdown", "html"), default="json")),
          responses={"200": "report", **ERR}),
    Route("GET", "/api/openapi.json", "This OpenAPI 3.1 document", _openapi, tag="meta"),
)

BUILTIN: tuple[Route, ...] = (
    Route("GET", "/healthz", "Liveness (no auth)", None, tag="meta"),
    Route("GET", "/readyz", "Readiness: the store answers", None, responses={"200": "ready", "503": "not ready"},
          tag="meta"),
    Route("GET", "/metrics", "Prometheus metrics of the processor", None, tag="meta"),
    Route("GET", "/api/metrics", "Summary metrics of a prompt over a range (the seed's /api/metrics shape)", None,
          (Param("prompt_id", "prompt name"), *RANGE, Param("version", "prompt version"),
           Param("service", "service"), Param("environment", "environment"), Param("model", "model")),
          responses={"200": "metrics", **ERR}),
    Route("GET", "/api/alerts", "Built-in alert evaluator: rules and their states (404 when it is not running)",
          None, (Param("dry_run", "evaluate now without writing or notifying", "boolean"),),
          responses={"200": "rules", "404": "evaluator not running"}),
    Route("POST", "/api/query", "One read-only SQL statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)", None,
          body={"type": "object", "required": ["sql"], "properties": {"sql": {"type": "string"}}},
          responses={"200": "{columns, rows, elapsed_ms}", **ERR}),
)

_BY_KEY = {(r.method, r.path): r for r in ROUTES}


def find(method: str, path: str) -> Route | None:
    return _BY_KEY.get((method, path))


def dispatch(h: Any, method: str, path: str, query: str) -> bool:
    """Serve ``method path`` on the api.py handler ``h`` when it is one of ROUTES; False when it is not."""
    route = _BY_KEY.get((method, path))
    if route is None:
        return False
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    try:
        store = h.service.get_store() if route.path != "/api/openapi.json" else None
        if route.method == "POST":
            try:
                raw = h.read_body(8 << 20, length_required=False)  # strict framing, as /api/query (http_limits)
            except HTTPError as e:
                h.close_connection = True
                h._send(e.status, {"error": "body too large" if e.status == 413 else e.message})
                return True
            try:
                body = json.loads(raw or b"null")
            except ValueError as e:
                raise an.BadRequest(f"body is not JSON: {e}")
            h._send(201, an.post_scores(store, body))
        elif route.stream:
            _export(h, store, params)
        else:
            doc = route.handler(store, params)  # type: ignore[misc]
            if isinstance(doc, str):
                ctype = "text/html; charset=utf-8" if doc.lstrip().startswith("<") else "text/markdown; charset=utf-8"
                h._send(200, doc.encode(), ctype)
            else:
                h._send(200, doc)
    except an.BadRequest as e:
        h._send(400, {"error": str(e), "path": path})
    except an.NotFound as e:
        h._send(404, {"error": str(e), "path": path})
    except Exception as e:
        log.exception("%s %s failed", method, path)
        h._send(503, {"error": f"store: {str(e)[:500]}", "path": path})
    return True


def _schema(p: Param) -> dict[str, Any]:
    s: dict[str, Any] = {"type": p.type}
    if p.enum:
        s["enum"] = list(p.enum)
    if p.default is not None:
        s["default"] = p.default
    return s


def openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for r in (*BUILTIN, *ROUTES):
        op: dict[str, Any] = {
            "summary": r.summary.split(". ")[0][:120], "description": r.summary, "tags": [r.tag],
            "operationId": (r.method.lower() + r.path.replace("/", "_").replace(".", "_")).strip("_"),
            "parameters": [{"name": p.name, "in": "query", "required": p.required, "description": p.description,
                            "schema": _schema(p)} for p in r.params],
            "responses": {code: {"description": d} for code, d in r.responses.items()},
        }
        if r.path == "/healthz":
            op["security"] = []
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": r.body}}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "PromptPulse API", "version": "0.1.0",
                 "description": "LLM observability: metrics, comparisons, cohorts, anomalies, SLA, errors, scores, "
                                "export. Errors are JSON {error}; all SQL is parameterised."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
