"""The analytics endpoints of the HTTP API as a FastAPI router: typed query parameters (one pydantic model per
endpoint, so FastAPI validates them and lists them in the generated OpenAPI document), handled by analytics.py.

Handlers are plain ``def``: FastAPI runs them in its thread pool, so a slow store query never blocks the event loop.
analytics.py keeps its own checks (ranges, comma lists, time expressions): it is also called from the CLI.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from starlette.concurrency import run_in_threadpool

from . import analytics as an
from .api_json import JSONResponse, error

log = logging.getLogger(__name__)

ERR: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad parameters (JSON: {error})"}, 401: {"description": "missing or invalid bearer token"},
    503: {"description": "store unavailable (JSON: {error})"}}


class _Query(BaseModel):
    """Query parameters: unknown ones are ignored, a blank value means "not given" (as before the move)."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data


def _filters(name: str, skip: tuple[str, ...] = ()) -> type[_Query]:
    fields: dict[str, Any] = {k: (str | None, Field(None, description=doc)) for k, doc in an.FILTER_DOCS.items()
                              if k not in skip}
    return create_model(name, __base__=_Query, **fields)


Filters = _filters("Filters")
ScoreFilters = _filters("ScoreFilters", tuple(an.RAW_FILTERS))
START = Field(None, description="range start: ISO date or datetime (UTC unless an offset is given), now, today, "
                                "yesterday or a relative time (-7d)")
END = Field(None, description="range end (exclusive; a date means the end of that day); default now")


def _one_of(values: Any) -> Any:
    return Literal[tuple(values)]  # an enum in the OpenAPI document, 400 for anything else


class CompareQuery(Filters):  # type: ignore[misc,valid-type]
    prompts: str | None = Field(None, description="2-3 prompt names, comma-separated")
    versions: str | None = Field(None, description="2-3 versions of prompt_id, comma-separated")
    alpha: float = Field(0.05, description="significance level (split over the pairs)")
    start: str | None = START
    end: str | None = END


class TimeseriesQuery(Filters):  # type: ignore[misc,valid-type]
    metric: _one_of(an.TIMESERIES_METRICS) = Field(description="the metric")  # type: ignore[valid-type]
    interval: _one_of(an.INTERVALS) = Field("1h", description="bucket width")  # type: ignore[valid-type]
    group_by: _one_of(an.GROUP_BY) | None = Field(None, description="one series per value of")  # type: ignore
    start: str | None = START
    end: str | None = END


class CohortsQuery(Filters):  # type: ignore[misc,valid-type]
    by: _one_of(an.COHORTS) = Field(description="cohort")  # type: ignore[valid-type]
    limit: int = Field(100, description="at most this many cohorts")
    start: str | None = START
    end: str | None = END


class AnomaliesQuery(Filters):  # type: ignore[misc,valid-type]
    metric: str | None = Field(None, description="comma-separated metrics (default all): "
                                                 + ", ".join(an.ANOMALY_METRICS))
    window: str = Field("1h", description="window length (15m, 1h, 1d)")
    baseline: Literal["hour_of_week", "previous"] = Field("hour_of_week", description="baseline windows")
    periods: int | None = Field(None, description="number of baseline windows")
    threshold: float = Field(3.0, description="robust z-score threshold")
    min_calls: int = Field(10, description="calls a window needs for error_rate / p95")
    min_periods: int = Field(3, description="baseline values needed")
    by: str = Field("prompt,model", description="series labels, comma-separated: " + ", ".join(an.ANOMALY_SERIES))
    end: str | None = Field(None, description="evaluate as of this time (default now)")


class SlaQuery(Filters):  # type: ignore[misc,valid-type]
    target_success: float = Field(99.5, description="availability target, percent")
    target_p95_ms: float = Field(2000, description="p95 latency target, ms")
    window: str = Field("30d", description="SLA window (30d, 7d, 24h)")
    end: str | None = Field(None, description="as of this time (default now)")


class ErrorsQuery(Filters):  # type: ignore[misc,valid-type]
    limit: int = Field(100, description="at most this many groups")
    samples: int = Field(3, description="sample trace ids per group")
    start: str | None = START
    end: str | None = END


class ScoresQuery(ScoreFilters):  # type: ignore[misc,valid-type]
    name: str | None = Field(None, description="score name(s), comma-separated")
    bins: int = Field(10, description="distribution bins")
    start: str | None = START
    end: str | None = END


class ExportQuery(Filters):  # type: ignore[misc,valid-type]
    format: _one_of(an.EXPORT_FORMATS) = Field("csv", description="output format")  # type: ignore[valid-type]
    limit: int = Field(10_000, description="at most this many calls")
    status: Literal["ok", "error"] | None = Field(None, description="only ok or error calls")
    start: str | None = START
    end: str | None = END


class ReportQuery(_Query):
    period: Literal["daily", "weekly", "monthly"] = Field("daily", description="report period")
    date: str | None = Field(None, description="the period holding this UTC date (YYYY-MM-DD, today, yesterday, "
                                               "-3d); so far if not over")
    start: str | None = Field(None, description="or a range: start (ISO date or datetime, now, today, -7d)")
    end: str | None = Field(None, description="range end (exclusive; default now)")
    format: Literal["json", "markdown", "html"] = Field("json", description="json document or rendered text")


def params(q: BaseModel) -> dict[str, str]:
    """What the client gave, validated, as the str mapping analytics.py takes (it applies its own defaults)."""
    return {k: str(v) for k, v in q.model_dump(exclude_unset=True, exclude_none=True).items()}


def answer(request: Request, fn: Callable[[Any], Any]) -> Response:
    """Run ``fn(store)``: a document is 200 JSON; BadRequest 400, NotFound 404, anything else 503, all JSON."""
    path = request.url.path
    try:
        doc = fn(request.app.state.service.get_store())
    except an.BadRequest as e:
        return error(400, str(e), path)
    except an.NotFound as e:
        return error(404, str(e), path)
    except Exception as e:
        log.exception("%s %s failed", request.method, path)
        return error(503, f"store: {str(e)[:500]}", path)
    return doc if isinstance(doc, Response) else JSONResponse(doc)


router = APIRouter(prefix="/api", tags=["analytics"], responses=ERR)


@router.get("/compare", summary="Compare 2-3 prompts or versions of one prompt",
            description="Compare 2-3 prompts (prompts=a,b) or versions of one prompt (prompt_id=X&versions=1.0,2.0): "
            "requests and success rate over all calls; p50/p95/p99, avg tokens and cost per request over successful "
            "calls; significance tests per pair and a winner only when the differences are significant (else how "
            "many more calls are needed). " + an.COMPARE_METHOD,
            responses={404: {"description": "unknown prompt or version (JSON: {error} naming it)"}})
def compare(request: Request, q: Annotated[CompareQuery, Query()]) -> Response:
    return answer(request, lambda store: an.compare(store, params(q)))


@router.get("/timeseries", summary="A metric over time",
            description="A metric over time from the rollup that fits the interval (1m rollup below an hour, 1h "
            "rollup from an hour up); empty buckets are 0 for counts and null for rates")
def timeseries(request: Request, q: Annotated[TimeseriesQuery, Query()]) -> Response:
    return answer(request, lambda store: an.timeseries(store, params(q)))


@router.get("/cohorts", summary="Metrics per cohort",
            description="Metrics per cohort: prompt version, new vs returning users (user_type), feature, tag (a call "
            "with two tags is in both), model, or time (hour, day, week)")
def cohorts(request: Request, q: Annotated[CohortsQuery, Query()]) -> Response:
    return answer(request, lambda store: an.cohorts(store, params(q)))


@router.get("/anomalies", summary="Series whose latest complete window deviates from a robust baseline",
            description="Series whose latest complete window deviates from a robust baseline. " + an.ANOMALY_METHOD)
def anomalies(request: Request, q: Annotated[AnomaliesQuery, Query()]) -> Response:
    return answer(request, lambda store: an.anomalies(store, params(q)))


@router.get("/sla", summary="SLA status: availability and p95 against targets, error budget, burn rates",
            description="SLA status: availability and p95 against targets, error budget (total, consumed, remaining) "
            "and burn rates over 1h, 6h and 24h")
def sla(request: Request, q: Annotated[SlaQuery, Query()]) -> Response:
    return answer(request, lambda store: an.sla(store, params(q)))


@router.get("/errors", summary="Error groups by type, category and normalised message",
            description="Error groups by error type, category and normalised status message (numbers, ids and quoted "
            "strings replaced), with counts, first/last seen and sample trace ids")
def errors(request: Request, q: Annotated[ErrorsQuery, Query()]) -> Response:
    return answer(request, lambda store: an.errors(store, params(q)))


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
_SCORES_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
    SCORE_SCHEMA, {"type": "array", "items": SCORE_SCHEMA, "maxItems": an.MAX_SCORES}]}}}}}


@router.post("/scores", status_code=201, summary="Record quality scores / user feedback",
             description="Record quality scores / user feedback for a call (or a list of up to 1000); inserted into "
             "llm_scores. The body is checked by analytics.validate_score (400 naming the bad field).",
             openapi_extra=_SCORES_BODY, responses={201: {"description": "inserted ({inserted: n})"}})
async def post_scores(request: Request) -> Response:
    raw = await request.body()  # at most 8 MiB: api_server.BodyLimits
    try:
        body = json.loads(raw or b"null")
    except ValueError as e:
        return error(400, f"body is not JSON: {e}", request.url.path)
    resp = await run_in_threadpool(answer, request, lambda store: an.post_scores(store, body))
    if resp.status_code == 200:
        resp.status_code = 201
    return resp


@router.get("/scores", summary="Score summaries per score name",
            description="Score summaries per score name: count, average, min/max/median, distribution, labels and "
            "averages by prompt version")
def get_scores(request: Request, q: Annotated[ScoresQuery, Query()]) -> Response:
    return answer(request, lambda store: an.get_scores(store, params(q)))


@router.get("/export", summary="Calls from llm_calls in time order as CSV or JSON lines, streamed",
            responses={200: {"description": "text/csv or application/x-ndjson",
                             "content": {"text/csv": {}, "application/x-ndjson": {}}}})
def export(request: Request, q: Annotated[ExportQuery, Query()]) -> Response:
    return answer(request, lambda store: _export(store, params(q)))


@router.get("/report", summary="The periodic report (see `promptpulse report`)",
            description="The periodic report: key metrics and change vs the previous period, top prompts by cost, "
                        "alerts fired, recommendations; json, or rendered as markdown or html",
            responses={200: {"content": {"text/markdown": {}, "text/html": {}}}})
def report(request: Request, q: Annotated[ReportQuery, Query()]) -> Response:
    from . import reports

    def build(store: Any) -> Any:
        doc = reports.build_report(store, q.period, **{k: v for k, v in params(q).items()
                                                        if k in ("date", "start", "end")})
        if q.format == "json":
            return doc
        text = reports.render(doc, q.format)
        ctype = "text/html; charset=utf-8" if q.format == "html" else "text/markdown; charset=utf-8"
        return Response(text.encode(), media_type=ctype)

    return answer(request, build)


def _export(store: Any, p: dict[str, str]) -> StreamingResponse:
    fmt, limit, sql, qp = an.export_plan(p)
    rows = an.export_rows(store, sql, qp, limit)
    first = next(rows, None)  # the first page runs before the headers: a store error is still a clean 503
    ctype = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(_export_chunks(fmt, first, rows), media_type=ctype,
                             headers={"Content-Disposition": f'attachment; filename="llm_calls.{fmt}"'})


def _export_chunks(fmt: str, first: dict[str, Any] | None, rest: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(an.EXPORT_COLUMNS)
    n = 0
    it = rest if first is None else _chain(first, rest)
    for r in it:
        if fmt == "csv":
            writer.writerow([_csv_cell(r[c]) for c in an.EXPORT_COLUMNS])
        else:
            buf.write(json.dumps({c: _json_cell(r[c], c) for c in an.EXPORT_COLUMNS}) + "\n")
        n += 1
        if buf.tell() > 64 * 1024:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()
    log.debug("export: %d call(s)", n)


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest


def _json_cell(v: Any, column: str = "") -> Any:
    if column == "cost_usd" and v is not None:
        return float(v)  # a JSON number (the decimal text has at most 12 decimals: float keeps it)
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
