"""The console's HTTP endpoints (FastAPI): dashboard panels by key, filter options, one call's details.

The app that includes this router (processor/api) puts bearer auth on every /api/* path and sets
``app.state.service`` (``get_store()``/``store`` and ``settings``). Every query is a dashboard definition's SQL with
its parameters bound (panels.py) or a fixed parameterised statement: nothing from the request becomes SQL text.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from ..api_json import error
from . import panels

log = logging.getLogger(__name__)
router = APIRouter(tags=["console"])

MAX_VALUES, MAX_VALUE_LEN = 20, 200
Values = Annotated[list[str], Query(max_length=MAX_VALUES)]
TRACE_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def store_of(request: Request) -> Any:
    svc = request.app.state.service
    get = getattr(svc, "get_store", None)
    return get() if callable(get) else svc.store


def _bad(message: str) -> Any:
    return error(400, message)


def _unavailable(e: Exception) -> Any:
    log.exception("console query failed")
    return error(503, f"store: {str(e)[:500]}")


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def params_of(start: dt.datetime | None, end: dt.datetime | None, filters: dict[str, list[str]],
              settings: dict[str, str | None], score_name: list[str], trace_id: str | None = None
              ) -> panels.PanelParams:
    end = _utc(end) if end else dt.datetime.now(dt.timezone.utc)
    start = _utc(start) if start else end - dt.timedelta(hours=24)
    for name, values in (*filters.items(), ("score_name", score_name)):
        for v in values:
            if not v or len(v) > MAX_VALUE_LEN:
                raise panels.PanelError(f"{name}: values must be 1 to {MAX_VALUE_LEN} characters")
    return panels.PanelParams(start, end, {k: v for k, v in filters.items() if v},
                              {k: v for k, v in settings.items() if v is not None}, score_name, trace_id)


class Common:
    """The query parameters every panel request takes (FastAPI dependency)."""

    def __init__(self, start: Annotated[dt.datetime | None, Query(description="range start (ISO 8601; default "
                                                                            "end - 24 h)")] = None,
                 end: Annotated[dt.datetime | None, Query(description="range end (ISO 8601; default now)")] = None,
                 service: Values = [], environment: Values = [], prompt: Values = [],  # noqa: B006
                 version: Values = [], model: Values = [], provider: Values = [], feature: Values = [],  # noqa: B006
                 tag: Annotated[list[str], Query(max_length=MAX_VALUES, description="one tag (two would count a "
                                                 "call carrying both twice: 400)")] = [],  # noqa: B006
                 compare_by: Annotated[str | None, Query(description="prompt or version (compare panels)")] = None,
                 slo_target: Annotated[str | None, Query(description="availability SLO percent (SLA panels; "
                                                                     "99.9)")] = None,
                 daily_budget: Annotated[str | None, Query(description="daily budget USD (cost panels; 100)")] = None,
                 score_name: Values = [],  # noqa: B006
                 trace_id: Annotated[str | None, Query(pattern=TRACE_ID.pattern,
                                                       description="a trace id (the trace_calls panel)")] = None,
                 ) -> None:
        self.args = (start, end, {"service": service, "environment": environment, "prompt": prompt,
                                  "version": version, "model": model, "provider": provider, "feature": feature,
                                  "tag": tag},
                     {"compare_by": compare_by, "slo_target": slo_target, "daily_budget": daily_budget}, score_name,
                     trace_id)

    def params(self) -> panels.PanelParams:
        return params_of(*self.args)


@router.get("/api/panels", summary="The dashboard panels the console can run: key, title, type, unit, thresholds")
def list_panels() -> dict[str, Any]:
    return {"panels": [panels.describe(p) for p in panels.catalog().values()],
            "filters": list(panels.FILTER_VARIABLES), "settings": {k: v.default for k, v in panels.SETTINGS.items()}}


@router.get("/api/panels/data", summary="Run several dashboard panels (keys=a,b) over one range and filter set")
def panels_data(request: Request, keys: Annotated[str, Query(description="panel keys, comma-separated")],
                common: Annotated[Common, Depends()]) -> Any:
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    known = panels.catalog()
    unknown = [k for k in wanted if k not in known]
    if not wanted or len(wanted) > 40 or unknown:
        return _bad(f"unknown panel(s): {', '.join(unknown)}" if unknown else "give 1 to 40 panel keys")
    try:
        p = common.params()
        for k in wanted:
            panels.bind(known[k].sql, p)  # every panel's parameters are valid before any runs
    except panels.PanelError as e:
        return _bad(str(e))
    try:
        store = store_of(request)
        return {"range": _range(p), "panels": panels.run_many(store, wanted, p)}
    except Exception as e:
        return _unavailable(e)


@router.get("/api/panels/options", summary="Values of each filter in the range (as the dashboards' variables)")
def panel_options(request: Request, common: Annotated[Common, Depends()]) -> Any:
    try:
        p = common.params()
    except panels.PanelError as e:
        return _bad(str(e))
    try:
        return {"range": _range(p), "options": panels.options(store_of(request), p)}
    except Exception as e:
        return _unavailable(e)


@router.get("/api/panels/{key}", summary="Run one dashboard panel's SQL (the Grafana dashboards' own text)")
def panel(request: Request, key: Annotated[str, Path(pattern=r"^[a-z0-9_]{1,64}$")],
          common: Annotated[Common, Depends()]) -> Any:
    definition = panels.catalog().get(key)
    if definition is None:
        return error(404, f"unknown panel {key!r}", request.url.path)
    try:
        p = common.params()
        panels.bind(definition.sql, p)
    except panels.PanelError as e:
        return _bad(str(e))
    try:
        return {"range": _range(p), "panel": panels.describe(definition), **panels.run(store_of(request), key, p)}
    except Exception as e:
        return _unavailable(e)


CALL_COLUMNS = ("timestamp", "trace_id", "span_id", "service", "environment", "operation", "provider",
                "request_model", "response_model", "prompt_name", "prompt_version", "input_tokens", "output_tokens",
                "usage_known", "cost_usd", "cost_known", "latency_ms", "ttft_ms", "is_stream", "status", "error_type",
                "error_category", "http_status", "user_id", "feature", "tags", "retry_count")


@router.get("/api/calls/{trace_id}", summary="The LLM calls of one trace with their span attributes and scores")
def call_detail(request: Request, trace_id: Annotated[str, Path(pattern=TRACE_ID.pattern)]) -> Any:
    try:
        store = store_of(request)
        calls = store.query(f"SELECT {', '.join(CALL_COLUMNS)} FROM llm_calls WHERE trace_id = {{t:String}} "
                            "ORDER BY timestamp LIMIT 100", {"t": trace_id}).dicts()
        spans = {r[0]: (r[1], r[2], r[3]) for r in store.query(
            "SELECT SpanId, SpanAttributes, ResourceAttributes, StatusMessage FROM otel_traces "
            "WHERE TraceId = {t:String} LIMIT 1000", {"t": trace_id}).rows}
        scores = store.query("SELECT timestamp, span_id, name, value, label, comment, source FROM llm_scores "
                             "WHERE trace_id = {t:String} ORDER BY timestamp LIMIT 1000", {"t": trace_id}).dicts()
    except Exception as e:
        return _unavailable(e)
    if not calls:
        return error(404, f"no LLM call with trace id {trace_id!r}", request.url.path)
    out = []
    for c in calls:
        attrs, resource, message = spans.get(c["span_id"], ({}, {}, ""))
        out.append({**{k: panels.cell(v) for k, v in c.items()}, "attributes": dict(attrs),
                    "resource": dict(resource), "status_message": message,
                    "scores": [{k: panels.cell(v) for k, v in s.items()} for s in scores
                               if s["span_id"] in ("", c["span_id"])]})
    return {"trace_id": trace_id, "calls": out}


def _range(p: panels.PanelParams) -> dict[str, Any]:
    return {"start": p.start.isoformat(), "end": p.end.isoformat(), "interval_s": p.interval_s}
