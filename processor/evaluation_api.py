"""Evaluation endpoints (docs/EVALUATION.md, docs/API.md): paged searches of calls and scores for the Python client,
the configured rules, and one evaluation pass on demand (`promptpulse eval run` through the running service).

Searches are keyset-paged: a page answers ``next_cursor`` (null on the last page); pass it back as ``cursor``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from . import analytics as an
from . import api_routes
from .api_json import JSONResponse, error

router = APIRouter(prefix="/api/evaluation", tags=["evaluation"], responses=api_routes.ERR)
MAX_PAGE = 10_000
_CURSOR = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6})\|([0-9A-Za-z_-]{0,64})\|([0-9A-Za-z_-]{0,64})"
                     r"(?:\|([\w.:/-]{0,100}))?$")
_SCORE_NAME = re.compile(r"^[\w.:/-]{1,100}$")


class _Filters(api_routes._Query):
    start: str | None = api_routes.START
    end: str | None = api_routes.END
    prompt_id: str | None = Field(None, description=an.FILTER_DOCS["prompt_id"])
    version: str | None = Field(None, description=an.FILTER_DOCS["version"])
    service: str | None = Field(None, description=an.FILTER_DOCS["service"])
    environment: str | None = Field(None, description=an.FILTER_DOCS["environment"])
    model: str | None = Field(None, description=an.FILTER_DOCS["model"])
    provider: str | None = Field(None, description=an.FILTER_DOCS["provider"])
    feature: str | None = Field(None, description=an.FILTER_DOCS["feature"])
    operation: str | None = Field(None, description=an.FILTER_DOCS["operation"])
    tag: str | None = Field(None, description=an.FILTER_DOCS["tag"])
    user_id: str | None = Field(None, description=an.FILTER_DOCS["user_id"])
    limit: int = Field(1000, ge=1, le=MAX_PAGE, description="rows per page")
    cursor: str | None = Field(None, description="next_cursor of the previous page")


class CallsQuery(_Filters):
    status: str | None = Field(None, description="ok or error")


class ScoresQuery(_Filters):
    name: str | None = Field(None, description="score name(s), comma-separated (a rule's scores carry its name)")
    rule: str | None = Field(None, description="rule name(s), comma-separated")
    metric: str | None = Field(None, description="metric(s), comma-separated")
    source: str | None = Field(None, description="source(s): evaluation, api, otlp, ...")
    guardrail: str | None = Field(None, description="guardrail type(s); 'any' = every guardrail result")
    trace_id: str | None = Field(None, description="one trace")


def _cursor(value: str | None) -> tuple[str, str, str, str] | None:
    if value is None:
        return None
    m = _CURSOR.match(value)
    if not m:
        raise an.BadRequest("bad cursor: pass back next_cursor as it was given")
    return m.group(1), m.group(2), m.group(3), m.group(4) or ""


def search_calls(store: Any, params: dict[str, str]) -> dict[str, Any]:
    limit = int(params.pop("limit", "1000"))
    cur = _cursor(params.pop("cursor", None))
    _fmt, _limit, sql, p = an.export_plan({**params, "format": "jsonl"})
    after = {"after_ts": cur[0], "after_id": cur[2]} if cur else {"after_ts": "1970-01-01 00:00:00.000000",
                                                                  "after_id": ""}
    rows = store.query(sql, {**p, **after, "page": limit}).dicts()
    nxt = f"{an.ts(rows[-1]['timestamp'])}|{rows[-1]['trace_id']}|{rows[-1]['span_id']}" \
        if len(rows) == limit else None
    return {"rows": rows, "next_cursor": nxt}


_SCORE_COLS = ("s.timestamp AS timestamp, s.trace_id AS trace_id, s.span_id AS span_id, s.name AS name, "
               "s.value AS value, s.label AS label, s.comment AS reason, s.source AS source, s.rule AS rule, "
               "s.metric AS metric, s.guardrail AS guardrail, s.judge_model AS judge_model, "
               "s.judge_cost_usd AS judge_cost_usd, c.prompt_name AS prompt_name, c.prompt_version AS prompt_version, "
               "c.model AS model, c.provider AS provider, c.service AS service, c.environment AS environment, "
               "c.feature AS feature, c.operation AS operation")


def search_scores(store: Any, params: dict[str, str]) -> dict[str, Any]:
    """Score rows with their call's dimensions (a call-level score; a trace-level one keeps them empty)."""
    limit = int(params.pop("limit", "1000"))
    cur = _cursor(params.pop("cursor", None))
    start, end = an.time_range(params, 7 * 86400)
    w = an.filters(params)
    cond = ["s.timestamp >= {start:DateTime64(6, 'UTC')}", "s.timestamp < {end:DateTime64(6, 'UTC')}"]
    p: dict[str, Any] = {**w.params, "start": an.ts(start), "end": an.ts(end)}
    for key in ("name", "rule", "metric", "source", "guardrail"):
        v = params.get(key)
        if v is None:
            continue
        values = [x.strip() for x in v.split(",") if x.strip()]
        if not values or not all(_SCORE_NAME.match(x) for x in values):
            raise an.BadRequest(f"{key}: names of letters, digits and _.:/-, comma-separated")
        if key == "guardrail" and values == ["any"]:
            cond.append("s.guardrail != ''")
            continue
        cond.append(f"s.{key} IN {{s_{key}:Array(String)}}")
        p[f"s_{key}"] = values
    if params.get("trace_id") is not None:
        if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", params["trace_id"]):
            raise an.BadRequest("trace_id must be 1-64 characters of [0-9A-Za-z_-]")
        cond.append("s.trace_id = {s_trace:String}")
        p["s_trace"] = params["trace_id"]
    cond += [f"c.{c}" if c.split(" ")[0] in an.FILTERS.values() else c for c in w.rollup]
    cond += [c.replace("has(tags", "has(c.tags").replace("user_id =", "c.user_id =") for c in w.raw]
    if cur:
        cond.append("(s.timestamp, s.trace_id, s.span_id, s.name) > ({a_ts:DateTime64(6, 'UTC')}, {a_trace:String}, "
                    "{a_span:String}, {a_name:String})")
        p.update(a_ts=cur[0], a_trace=cur[1], a_span=cur[2], a_name=cur[3])
    sql = (f"SELECT {_SCORE_COLS} FROM llm_scores AS s LEFT JOIN (SELECT trace_id, span_id, prompt_name, "
           f"prompt_version, {an.RAW_MODEL} AS model, provider, service, environment, feature, operation, tags, "
           "user_id FROM llm_calls "
           "WHERE trace_id IN (SELECT trace_id FROM llm_scores WHERE timestamp >= {start:DateTime64(6, 'UTC')} AND "
           "timestamp < {end:DateTime64(6, 'UTC')})) AS c ON c.trace_id = s.trace_id AND c.span_id = s.span_id "
           f"WHERE {' AND '.join(cond)} ORDER BY s.timestamp, s.trace_id, s.span_id, s.name LIMIT {limit}")
    rows = store.query(sql, p).dicts()
    for r in rows:
        if r["judge_cost_usd"] is not None and r["judge_cost_usd"] != r["judge_cost_usd"]:
            r["judge_cost_usd"] = None
    last = rows[-1] if rows else None
    nxt = f"{an.ts(last['timestamp'])}|{last['trace_id']}|{last['span_id']}|{last['name']}" \
        if last is not None and len(rows) == limit else None
    return {"rows": rows, "next_cursor": nxt}


@router.get("/calls", summary="LLM calls, filtered as everywhere in the API, a page at a time (time order)")
def calls(request: Request, q: Annotated[CallsQuery, Query()]) -> Response:
    return api_routes.answer(request, lambda store: search_calls(store, api_routes.params(q)))


@router.get("/scores", summary="Score rows (rule results and feedback) with their call's dimensions, paged",
            description="Filters: score name, rule, metric, source, guardrail, trace_id, the score time range and "
            "the call filters of the API (prompt_id, version, model, ...; they apply to call-level scores).")
def scores(request: Request, q: Annotated[ScoresQuery, Query()]) -> Response:
    return api_routes.answer(request, lambda store: search_scores(store, api_routes.params(q)))


def _config(request: Request) -> Any:
    from promptpulse.evaluation.rules import load_evaluation

    return load_evaluation(getattr(request.app.state.service.settings, "evaluation", None) or {})


@router.get("/rules", summary="The [evaluation] rules and the last processor pass")
def rules(request: Request) -> Response:
    sched = getattr(request.app.state.service, "evaluation", None)
    last = sched.evaluator.last.as_dict() if sched is not None and sched.evaluator.last else None
    return JSONResponse({"rules": [r.describe() for r in _config(request).rules], "last_pass": last,
                         "last_error": sched.evaluator.last_error if sched is not None else None})


@router.post("/run", summary="Evaluate the stored calls of a window with the processor rules now",
             description='Body {"since": ISO time, "until": ISO time (default now), "rules": [names] (default: the '
             'processor rules), "dry_run": bool}. Answers the pass report and, with dry_run, the results.',
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "required": ["since"], "properties": {
                     "since": {"type": "string"}, "until": {"type": "string"}, "dry_run": {"type": "boolean"},
                     "rules": {"type": "array", "items": {"type": "string"}}}}}}}})
async def run(request: Request) -> Response:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except ValueError as e:
        return error(400, f"body is not JSON: {e}", request.url.path)
    return await run_in_threadpool(api_routes.answer, request, lambda store: run_pass(store, _config(request), body))


def run_pass(store: Any, config: Any, body: Any) -> dict[str, Any]:
    from .evaluation import ProcessorEvaluator
    from .timerange import parse_time

    if not isinstance(body, dict) or set(body) - {"since", "until", "rules", "dry_run"}:
        raise an.BadRequest('body: {"since": ..., "until": ..., "rules": [...], "dry_run": false}')
    try:
        since = parse_time(str(body["since"]))
        until = parse_time(str(body["until"])) if body.get("until") else dt.datetime.now(dt.timezone.utc)
    except (KeyError, ValueError):
        raise an.BadRequest("since (required) and until are ISO times")
    rules = config.for_place("processor")
    names = body.get("rules")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise an.BadRequest("rules is a list of rule names")
        unknown = set(names) - {r.name for r in config.rules}
        if unknown:
            raise an.NotFound(f"no rule {', '.join(sorted(unknown))} in [evaluation]")
        rules = tuple(r for r in config.rules if r.name in names)
    dry = bool(body.get("dry_run", False))
    report = ProcessorEvaluator(store, config, rules=rules).run_pass(since, until, dry_run=dry)
    doc = report.as_dict()
    doc["dry_run"] = dry
    doc["results"] = [{"rule": o.rule.name, "trace_id": o.trace_id, "span_id": o.span_id, "value": o.result.value,
                       "label": o.result.label, "reason": o.result.reason, "error": o.result.error or None,
                       "judge_model": o.result.judge_model or None, "judge_cost_usd": o.result.judge_cost_usd}
                      for o in report.outcomes]
    return doc
