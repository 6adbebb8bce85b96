"""Test doubles for the processor: an in-memory Store, a GenAI span generator (real SDK spans) and helpers to
build odd OTLP requests around them."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


class FakeStore:
    """Keeps inserted rows; drops a repeated dedup token like ClickHouse; can be made to fail or block."""

    database = "promptpulse"

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.tokens: list[str] = []
        self.down = False
        self.gate = threading.Event()
        self.gate.set()
        self.attempts = 0

    def apply_schema(self) -> None:
        pass

    def insert_otel_traces(self, rows: Any, *, dedup_token: str | None = None) -> None:
        self.attempts += 1
        self.gate.wait()
        if self.down:
            raise ConnectionError("store down")
        if dedup_token in self.tokens:
            return
        self.tokens.append(dedup_token)
        self.rows.extend(rows)

    def ping(self) -> bool:
        return not self.down

    def close(self) -> None:
        pass


def genai_spans(n: int, seed: int = 1, service: str = "test-app") -> list:
    """n finished SDK spans of LLM calls with ~25 contract-1 attributes; every 10th is an error."""
    rnd = random.Random(seed)
    exp = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment.name": "test"}))
    tp.add_span_processor(SimpleSpanProcessor(exp))
    tr = tp.get_tracer("promptpulse.instrumentation.openai", "0.1.0")
    base = time.time_ns() - (n + 60) * 1_000_000_000  # recent: otel_traces has a TTL of days
    for i in range(n):
        model = ("gpt-4o", "gpt-4o-mini")[i % 2]
        start = base + i * 1_000_000_000
        s = tr.start_span(f"chat {model}", kind=SpanKind.CLIENT, start_time=start)
        s.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
            "gen_ai.response.model": model, "gen_ai.request.max_tokens": 512, "gen_ai.request.temperature": 0.5,
            "gen_ai.usage.input_tokens": 100 + i, "gen_ai.usage.output_tokens": 10 + i % 7,
            "gen_ai.prompt.name": f"p{i % 3}", "gen_ai.prompt.version": "1.0", "user.id": f"u{i % 5}",
            "gen_ai.response.finish_reasons": ["stop"], "server.address": "api.openai.com", "server.port": 443,
            "promptpulse.cost.usd": 0.001 * (1 + i % 4), "gen_ai.request.stream": False,
        })
        if i % 10 == 0:
            s.set_attribute("error.type", "RateLimitError")
            s.set_attribute("http.response.status_code", 429)
            s.set_status(Status(StatusCode.ERROR, "rate limited"))
        s.end(end_time=start + rnd.randint(100, 3000) * 1_000_000)
    return list(exp.get_finished_spans())


def kv(key: str, **value: object) -> KeyValue:
    """An OTLP attribute: ``kv("n", int_value=3)``; no value at all is an empty AnyValue."""
    return KeyValue(key=key, value=AnyValue(**value))


def add_plain_resource(req: ExportTraceServiceRequest, attributes: list[KeyValue], base: int) -> None:
    """A resource with ``attributes`` and two scopes ("other" without a version, "other2.0" with one) of three
    non-GenAI server spans each, starting at ``base`` ns."""
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(attributes)
    for v in ("", "2.0"):
        ss = rs.scope_spans.add()
        ss.scope.name = "other" + v
        if v:
            ss.scope.version = v
        for k in range(3):
            ss.spans.add(trace_id=uuid.uuid4().bytes, span_id=uuid.uuid4().bytes[:8],
                         parent_span_id=uuid.uuid4().bytes[:8], name=f"op{k}", kind=Span.SPAN_KIND_SERVER,
                         start_time_unix_nano=base + k, end_time_unix_nano=base + k + 1000)


def _unpiece(p: bytes) -> str:
    """A Native string piece (varint length + UTF-8) back to str."""
    n = s = i = 0
    while True:
        x = p[i]
        i += 1
        n |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            break
    assert len(p) == i + n, p
    return p[i:].decode()


def column_rows(cols: Any) -> list[list]:
    """The rows (decode.COLUMNS order) that a store.native.SpanColumns' pieces encode — what its Native block
    stores, unlike iterating it (which decodes the body again with the upb reader)."""
    def runs(rs: list) -> list:
        return [r[1:] for r in rs for _ in range(r[0])]

    res, scope = runs(cols.res), runs(cols.scope)
    assert len(res) == len(scope) == cols.n == len(cols.ts) == len(cols.alen), (len(res), len(scope), cols.n)
    out = []
    k = 0
    for i in range(cols.n):
        na = cols.alen[i]
        attrs = {_unpiece(a): _unpiece(v) for a, v in zip(cols.akeys[k:k + na], cols.avals[k:k + na], strict=True)}
        assert len(attrs) == na
        k += na
        service, rk, rv = res[i]
        sname, sver = scope[i]
        ev, lk = cols.ev[i], cols.lk[i]
        out.append([
            cols.ts[i], cols.tid[i].decode(), cols.sid[i].decode(), _unpiece(cols.pid[i]),
            _unpiece(cols.tstate[i]), _unpiece(cols.name[i]), _unpiece(cols.kind[i]), _unpiece(service),
            {_unpiece(a): _unpiece(v) for a, v in zip(rk, rv, strict=True)}, _unpiece(sname), _unpiece(sver), attrs,
            cols.dur[i], _unpiece(cols.scode[i]), _unpiece(cols.smsg[i]), [e[0] for e in ev], [e[1] for e in ev],
            [e[2] for e in ev], [x[0].hex() for x in lk], [x[1].hex() for x in lk], [x[2] for x in lk],
            [x[3] for x in lk],
        ])
    assert k == len(cols.akeys) == len(cols.avals)
    return out
