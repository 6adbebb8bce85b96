"""The HTTP API as a FastAPI app: ``create_app(service)``. The running service is ``app.state.service``; bearer
auth covers every /api/* path (and /readyz, /metrics) in one middleware, so a router included later under /api is
protected without doing anything. The OpenAPI document is FastAPI's, at /api/openapi.json (behind the token like
the rest of /api); the Swagger UI is off: it loads its assets from a CDN and the product works offline.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from . import api, api_routes, console, evaluation_api
from .api_json import JSONResponse, error
from .api_middleware import BearerAuth, BodyLimits

VERSION = "0.1.0"
OPENAPI_URL = "/api/openapi.json"


class MetricsQuery(api_routes._Query):
    prompt_id: str | None = Field(None, description="prompt name")
    start: str | None = api_routes.START
    end: str | None = api_routes.END
    version: str | None = Field(None, description="prompt version")
    service: str | None = Field(None, description="service")
    environment: str | None = Field(None, description="environment")
    model: str | None = Field(None, description="model (requested or answering)")


class AlertsQuery(api_routes._Query):
    dry_run: bool = Field(False, description="evaluate now without writing or notifying")


builtin = APIRouter()


@builtin.get("/healthz", tags=["meta"], summary="Liveness (no auth)", openapi_extra={"security": []})
def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@builtin.get("/readyz", tags=["meta"], summary="Readiness: the store answers and the writer moves",
             responses={503: {"description": "not ready"}})
def readyz(request: Request) -> Response:
    ok, doc = api.readiness(request.app.state.service)
    return JSONResponse(doc, status_code=200 if ok else 503)


@builtin.get("/metrics", tags=["meta"], summary="Prometheus metrics of the processor",
             responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    return Response(api.prometheus(request.app.state.service), media_type="text/plain; version=0.0.4")


@builtin.get("/api/metrics", tags=["analytics"], responses=api_routes.ERR,
             summary="Summary metrics of a prompt over a range (the seed's /api/metrics shape)")
def api_metrics(request: Request, q: Annotated[MetricsQuery, Query()]) -> Response:
    def run(store: Any) -> Any:
        try:
            return api.get_metrics(store, api_routes.params(q))
        except ValueError as e:  # parse_time
            raise api_routes.an.BadRequest(str(e))

    return api_routes.answer(request, run)


@builtin.get("/api/alerts", tags=["alerts"], summary="Built-in alert evaluator: rules and their states",
             responses={404: {"description": "the evaluator is not running"}})
def api_alerts(request: Request, q: Annotated[AlertsQuery, Query()]) -> Response:
    alerts = getattr(request.app.state.service, "alerts", None)
    if alerts is None:
        return error(404, "the alert evaluator is not running ([alerts] enabled = false)")
    ev = alerts.evaluator
    if q.dry_run:
        return JSONResponse({"would": [t.__dict__ for t in ev.evaluate_once(dry_run=True)],
                             "errors": ev.dry_run_errors})
    return JSONResponse({"rules": ev.status()})


_QUERY_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["sql"], "properties": {"sql": {"type": "string"}}}}}}}


@builtin.post("/api/query", tags=["query"], openapi_extra=_QUERY_BODY, responses=api_routes.ERR,
              summary="One read-only SQL statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)",
              description="Checked by the engine's parser (processor/sql_guard.py): only the project's tables, no "
                          "table functions or settings; run with readonly = 1 and row, time and memory limits. "
                          "Answers {columns, rows, elapsed_ms}; a refusal is a 400 naming what was refused.")
async def api_query(request: Request) -> Response:
    raw = await request.body()  # at most 1 MiB: api_middleware.BodyLimits

    def run() -> Response:
        import json

        try:
            sql = json.loads(raw or b"{}")["sql"]
            t0 = time.perf_counter()
            cols, rows = api.run_read_only(request.app.state.service.get_store(), sql)
        except (ValueError, KeyError, TypeError) as e:
            return error(400, str(e))
        except Exception as e:
            return error(400, str(e)[:2000])
        return JSONResponse({"columns": cols, "rows": rows,
                             "elapsed_ms": round((time.perf_counter() - t0) * 1e3, 2)})

    return await run_in_threadpool(run)


def _validation_message(exc: RequestValidationError) -> str:
    out = []
    for e in exc.errors():
        name = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
        if e.get("type") == "missing":
            out.append(f"{name} is required")
        else:
            out.append(f"bad {name} {e.get('input')!r}: {e.get('msg')}")
    return "; ".join(out) or "bad request"


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        doc["paths"][OPENAPI_URL] = {"get": {"tags": ["meta"], "summary": "This OpenAPI 3.1 document",
                                             "operationId": "openapi", "responses": {"200": {"description": "OK"}}}}
        app.openapi_schema = doc
    return app.openapi_schema


def create_app(service: Any, *, body_timeout_s: float = 60.0) -> FastAPI:
    """The API over ``service`` (``get_store()``, ``ingest.authorized``, ``settings``, ``writer``, ``alerts``)."""
    app = FastAPI(title="PromptPulse API", version=VERSION, openapi_url=OPENAPI_URL, docs_url=None, redoc_url=None,
                  default_response_class=JSONResponse,
                  description="LLM observability: metrics, comparisons, cohorts, anomalies, SLA, errors, scores, "
                              "export. Errors are JSON {error}; all SQL is parameterised.")
    app.state.service = service
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def bad_params(request: Request, exc: RequestValidationError) -> Response:
        return error(400, _validation_message(exc), request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        msg = "not found" if exc.status_code == 404 else str(exc.detail).lower()
        return error(exc.status_code, msg, request.url.path, headers=getattr(exc, "headers", None))

    app.include_router(builtin)
    app.include_router(api_routes.router)
    app.include_router(evaluation_api.router)  # /api/evaluation/*: calls and scores searches, rules, run
    console.install(app)  # the web console: its /api/panels, /api/calls router and the page at /console/
    app.add_middleware(BodyLimits, body_timeout_s=body_timeout_s)  # inner: auth runs before a body is read
    app.add_middleware(BearerAuth, service=service)
    return app
