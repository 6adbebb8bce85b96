"""Seed data with known numbers for the dashboard and alert tests, and the Python reference aggregations."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

UTC = dt.timezone.utc


@dataclass
class Call:
    ts: dt.datetime
    service: str
    prompt: str
    version: str
    model: str
    provider: str
    latency_ms: float
    env: str = "prod"
    input_tokens: int = 100
    output_tokens: int = 50
    cost: float = 0.002
    error: str = ""  # error.type
    http: int = 0
    category: str = ""
    ttft_ms: float | None = None
    user: str = ""
    retries: int = 0
    ids: tuple[str, str] = field(default=("", ""))

    def __post_init__(self) -> None:
        if not self.ids[0]:
            h = hashlib.sha256(f"{self.ts.isoformat()}|{self.service}|{self.prompt}|{self.version}|"
                               f"{self.latency_ms}|{id(self)}".encode()).hexdigest()
            self.ids = (h[:32], h[32:48])

    @property
    def failed(self) -> bool:
        return bool(self.error)


def otel_row(c: Call) -> list:
    """The span of one call as an otel_traces row (contract-1 attributes)."""
    attrs = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": c.provider, "gen_ai.request.model": c.model,
        "gen_ai.response.model": c.model, "gen_ai.prompt.name": c.prompt, "gen_ai.prompt.version": c.version,
        "gen_ai.usage.input_tokens": str(c.input_tokens), "gen_ai.usage.output_tokens": str(c.output_tokens),
        "promptpulse.cost.usd": repr(c.cost),
    }
    if c.user:
        attrs["user.id"] = c.user
    if c.error:
        attrs["error.type"] = c.error
    if c.http:
        attrs["http.response.status_code"] = str(c.http)
    if c.category:
        attrs["promptpulse.error.category"] = c.category
    if c.ttft_ms is not None:
        attrs["gen_ai.request.stream"] = "true"
        attrs["gen_ai.response.time_to_first_chunk"] = repr(c.ttft_ms / 1000)
    if c.retries:
        attrs["promptpulse.retry.count"] = str(c.retries)
    resource = {"service.name": c.service, "deployment.environment.name": c.env}
    return [c.ts, c.ids[0], c.ids[1], "", "", f"chat {c.model}", "Client", c.service, resource, "promptpulse", "0.1",
            attrs, round(c.latency_ms * 1_000_000), "Error" if c.error else "Ok", "", [], [], [], [], [], [], []]


# What an INSERT into llm_calls writes (schemas/003): ids as sent, latency/TTFT in ms — EPHEMERAL inputs of the
# stored byte ids and Float32 bits, read back as trace_id, span_id, latency_ms, ttft_ms
LLM_CALLS_COLUMNS = ("timestamp", "trace_id_in", "span_id_in", "service", "environment", "operation", "provider",
                     "request_model", "response_model", "prompt_name", "prompt_version", "input_tokens",
                     "output_tokens", "cost_usd", "cost_source", "latency_in", "ttft_in", "is_stream", "status",
                     "error_type", "error_category", "http_status", "user_id", "retry_count")


def llm_calls_row(c: Call) -> tuple:
    """The typed llm_calls row of one call (for inserting weeks of history cheaply; the rollup MVs still run)."""
    from decimal import Decimal

    return (c.ts, c.ids[0], c.ids[1], c.service, c.env, "chat", c.provider, c.model,
            c.model, c.prompt, c.version,
            c.input_tokens, c.output_tokens, Decimal(repr(c.cost)), "span", c.latency_ms, c.ttft_ms,
            c.ttft_ms is not None, "error" if c.error else "ok", c.error, c.category, c.http, c.user, c.retries)


SCORE_COLUMNS = ("timestamp", "trace_id", "span_id", "name", "value", "label", "comment", "source")


def score_row(c: Call, name: str, value: float, delay_s: float = 1.0) -> tuple:
    return (c.ts + dt.timedelta(seconds=delay_s), c.ids[0], c.ids[1], name, value, "", "", "test")


# --- Python reference ---------------------------------------------------------------------------------------
def nearest_rank(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[max(1, math.ceil(q * len(s))) - 1]


def close(actual: float, expected: float, rel: float = 0.015) -> bool:
    return math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-9)


def group(calls: Iterable[Call], key) -> dict:
    out: dict = {}
    for c in calls:
        out.setdefault(key(c), []).append(c)
    return out


def minute(ts: dt.datetime) -> dt.datetime:
    return ts.replace(second=0, microsecond=0)


def as_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def dumps(rows) -> str:
    return json.dumps(rows, default=str)
