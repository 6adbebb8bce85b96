"""Known LLM calls for the API and report tests: otel_traces rows with contract-1 attributes (the materialized views
fill llm_calls and the rollups) and the same calls as plain dicts, for computing expectations independently."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

UTC = dt.timezone.utc


def call(t: dt.datetime, prompt: str, version: str, *, model: str = "gpt-4o", latency_ms: int = 500,
         inp: int = 100, out: int = 20, cost: str = "0.001", error: tuple[str, str, str] | None = None,
         user: str = "", feature: str = "", tags: tuple[str, ...] = (), message: str = "",
         service: str = "app") -> dict[str, Any]:
    """error = (error.type, http status or '', promptpulse.error.category or '')."""
    return {"t": t, "prompt": prompt, "version": version, "model": model, "latency_ms": latency_ms, "inp": inp,
            "out": out, "cost": Decimal(cost), "error": error, "user": user, "feature": feature, "tags": tags,
            "message": message, "service": service, "trace_id": uuid.uuid4().hex, "span_id": uuid.uuid4().hex[:16]}


def row(c: dict[str, Any]) -> list:
    a = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": c["model"],
         "gen_ai.response.model": c["model"], "gen_ai.usage.input_tokens": str(c["inp"]),
         "gen_ai.usage.output_tokens": str(c["out"]), "promptpulse.cost.usd": str(c["cost"])}
    if c["prompt"]:
        a["gen_ai.prompt.name"] = c["prompt"]
        a["gen_ai.prompt.version"] = c["version"]
    if c["user"]:
        a["user.id"] = c["user"]
    if c["feature"]:
        a["promptpulse.feature"] = c["feature"]
    if c["tags"]:
        a["promptpulse.tags"] = json.dumps(list(c["tags"]))
    status = "Ok"
    if c["error"]:
        etype, http, cat = c["error"]
        a["error.type"] = etype
        if http:
            a["http.response.status_code"] = http
        if cat:
            a["promptpulse.error.category"] = cat
        status = "Error"
    ns = int(c["t"].timestamp() * 1e9)
    return [ns, c["trace_id"], c["span_id"], "", "", f"chat {c['model']}", "Client", c["service"],
            {"service.name": c["service"], "deployment.environment.name": "prod"}, "promptpulse", "0.1", a,
            int(c["latency_ms"] * 1_000_000), status, c["message"], [], [], [], [], [], [], []]


def insert(store: Any, calls: list[dict[str, Any]]) -> None:
    for i in range(0, len(calls), 5000):
        store.insert_otel_traces([row(c) for c in calls[i:i + 5000]], dedup_token=uuid.uuid4().hex)


def nearest_rank(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[max(1, math.ceil(q * len(v))) - 1]


def summary(calls: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(calls)
    errors = sum(1 for c in calls if c["error"])
    lat = [c["latency_ms"] for c in calls]
    tokens = sum(c["inp"] + c["out"] for c in calls)
    cost = sum((c["cost"] for c in calls), Decimal(0))
    return {"requests": n, "errors": errors, "success_rate": 100 * (n - errors) / n if n else None,
            "avg_tokens": tokens / n if n else None, "total_tokens": tokens, "total_cost_usd": cost,
            "cost_per_request": float(cost) / n if n else None,
            "p50": nearest_rank(lat, 0.5) if n else None, "p95": nearest_rank(lat, 0.95) if n else None,
            "p99": nearest_rank(lat, 0.99) if n else None, "avg_latency_ms": sum(lat) / n if n else None}


def close(a: float | None, b: float | None, rel: float = 0.025) -> bool:
    """Histogram percentiles: within the 2% bucket width (plus rounding)."""
    return a is not None and b is not None and abs(a - b) <= rel * abs(b) + 0.01


def success_summary(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """summary() with latency, avg tokens and cost per request over the successful calls only (compare's basis);
    counts, success rate and totals stay over all calls."""
    s = summary(calls)
    ok = summary([c for c in calls if not c["error"]])
    n = ok["requests"]
    s.update({k: ok[k] for k in ("p50", "p95", "p99", "avg_latency_ms", "avg_tokens")})
    s["cost_per_request"] = float(ok["total_cost_usd"]) / n if n else None
    s["successes"] = n
    return s
