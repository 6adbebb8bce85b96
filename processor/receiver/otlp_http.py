"""OTLP/HTTP receiver: POST /v1/traces, /v1/metrics, /v1/logs, application/x-protobuf or application/json,
optional gzip. Metrics and logs (receiver.signals) take the same path as traces: the same framing checks, auth,
backpressure, spool and dedup; only their decoder and response differ.

Answers (OTLP/HTTP spec; docs/PROCESSOR.md):
200 Export{Trace,Metrics,Logs}ServiceResponse (partial_success.rejected_spans / rejected_data_points /
rejected_log_records + error_message when items were rejected or clamped) · 400 malformed body
(google.rpc.Status; also bad framing, truncated gzip, too deep nesting) · 401 missing/wrong bearer token · 404 other
paths · 405 other methods · 408 headers/body past their deadline · 411 neither Content-Length nor chunked · 413 body
(compressed or decompressed) over max_body_bytes · 415 other content types or encodings · 429 + Retry-After when
the queue is full · 501 transfer codings other than chunked · 503 + Retry-After when the store is down and the
spool is full, or over max_connections. Responses use the request's content type. Framing, deadlines and the
connection cap: processor/http_limits.py.

Server: the stdlib ThreadingHTTPServer (http_limits.GuardedServer) with HTTP/1.1 keep-alive. Kept when the API
moved to uvicorn: the same receiver as an ASGI app on uvicorn (bench/otlp_asgi_receiver.py) was ~20% slower on
its own and no faster end to end (docs/BENCHMARKS.md, "stdlib server vs uvicorn").
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from typing import Any

from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .. import http_limits
from ..http_limits import GuardedHandler, GuardedServer, HTTPError, Limits
from ..writer import QueueFull, StoreUnavailable, Writer
from . import decode, engine_decode, signals
from .decode_signal import SignalRows
from .signals import Signal

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class Ingest:
    """Shared by both receivers: decode, validate, hand to the writer, count."""

    def __init__(self, writer: Writer, *, auth_token: str | None = None, retry_after_s: int = 2) -> None:
        self.writer = writer
        self.auth_token = auth_token
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        # traces: requests, *_spans, bad_requests; unauthorized, throttled, unavailable: requests of any signal
        self.counters = {"requests": 0, "received_spans": 0, "accepted_spans": 0, "rejected_spans": 0,
                         "bad_requests": 0, "unauthorized": 0, "throttled": 0, "unavailable": 0}
        for sig in signals.SIGNALS:  # metrics_requests, metrics_accepted, metrics_rejected, metrics_bad_requests...
            self.counters.update(dict.fromkeys(
                (f"{sig.name}_requests", f"{sig.name}_accepted", f"{sig.name}_rejected", f"{sig.name}_bad_requests"),
                0))

    def count(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                self.counters[k] += v

    def authorized(self, header: str | None) -> bool:
        """``Bearer <token>`` with the scheme in any case (RFC 9110 §11.1), OWS tolerated; the token compared in
        constant time. Also the gRPC ``authorization`` metadata."""
        if not self.auth_token:
            return True
        ok = http_limits.token_matches(http_limits.bearer_token(header), self.auth_token)
        if not ok:
            self.count(unauthorized=1)
        return ok

    def export(self, body: bytes, *, is_json: bool) -> decode.DecodeResult:
        """Decode and durably accept. Raises decode.DecodeError, QueueFull, StoreUnavailable."""
        try:
            if is_json:
                res = decode.decode_json(body)
            elif self.writer.takes_request_bodies():
                res = engine_decode.decode_protobuf(body)
            else:
                res = decode.decode_protobuf(body)
        except decode.DecodeError:
            self.count(requests=1, bad_requests=1)
            raise
        n = len(res.rows)
        try:
            self.writer.submit(res.rows, body, is_json=is_json)
        except QueueFull:
            self.count(requests=1, throttled=1)
            raise
        except StoreUnavailable:
            self.count(requests=1, unavailable=1)
            raise
        self.count(requests=1, received_spans=n + res.rejected, accepted_spans=n, rejected_spans=res.rejected)
        return res

    def export_signal(self, sig: Signal, body: bytes, *, is_json: bool) -> SignalRows:
        """export() for metrics and logs. Raises decode.DecodeError, QueueFull, StoreUnavailable."""
        name = sig.name
        try:
            res = sig.decode(body, is_json=is_json)
        except decode.DecodeError:
            self.count(**{f"{name}_requests": 1, f"{name}_bad_requests": 1})
            raise
        try:
            self.writer.submit(res, body, is_json=is_json, signal=sig)
        except QueueFull:
            self.count(**{f"{name}_requests": 1}, throttled=1)
            raise
        except StoreUnavailable:
            self.count(**{f"{name}_requests": 1}, unavailable=1)
            raise
        self.count(**{f"{name}_requests": 1, f"{name}_accepted": len(res), f"{name}_rejected": res.rejected})
        return res

    def count_bad(self, path: str) -> None:
        """A malformed request (400) to ``path``, counted for its signal."""
        sig = signals.BY_PATH.get(path)
        if sig is None:
            self.count(requests=1, bad_requests=1)
        else:
            self.count(**{f"{sig.name}_requests": 1, f"{sig.name}_bad_requests": 1})


def response_for(res: decode.DecodeResult) -> ExportTraceServiceResponse:
    out = ExportTraceServiceResponse()
    if res.rejected or res.warnings:
        out.partial_success.rejected_spans = res.rejected
        out.partial_success.error_message = res.error_message
    return out


_PATHS = frozenset({"/v1/traces", *signals.BY_PATH})
# google.rpc.Code for the framing answers of http_limits
_GRPC_CODE = {400: 3, 408: 4, 411: 3, 413: 8, 501: 12}


class _Handler(GuardedHandler):
    server_version = "promptpulse"
    ingest: Ingest
    max_body: int

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _status(self, code: int, grpc_code: int, msg: str, ctype: str, headers: dict[str, str] | None = None,
                drain: bool = False) -> None:
        st = status_pb2.Status(code=grpc_code, message=msg)
        if ctype == JSON:
            body = json.dumps(json_format.MessageToDict(st)).encode()
        else:
            body, ctype = st.SerializeToString(), PROTOBUF
        if drain:
            self.close_connection = True
            headers = {**(headers or {}), "Connection": "close"}
        self._send(code, body, ctype, headers)

    def _count_refusal(self, e: HTTPError) -> None:
        if e.status == 400:  # requests_bad_total counts malformed requests, as for undecodable bodies
            self.ingest.count_bad(self.path.split("?")[0])

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self._status(405 if path in _PATHS else 404, 12, f"use POST {path if path in _PATHS else '/v1/traces'}",
                     PROTOBUF)

    def do_POST(self) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        rtype = JSON if ctype == JSON else PROTOBUF
        path = self.path.split("?")[0]
        if path not in _PATHS:
            return self._status(404, 5, "not found; OTLP goes to /v1/traces, /v1/metrics, /v1/logs", rtype,
                                drain=True)
        if not self.ingest.authorized(self.headers.get("Authorization")):
            return self._status(401, 16, "missing or invalid bearer token", rtype,
                                {"WWW-Authenticate": "Bearer"}, drain=True)
        if ctype not in (PROTOBUF, JSON):
            return self._status(415, 3, f"unsupported content type {ctype!r}; use {PROTOBUF} or {JSON}",
                                PROTOBUF, drain=True)
        enc = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if enc not in ("identity", "gzip"):
            return self._status(415, 3, f"unsupported content encoding {enc!r}", rtype, drain=True)
        try:
            body = self.read_body(self.max_body)
        except HTTPError as e:  # framing not trusted any more: answer and close
            self._count_refusal(e)
            return self._status(e.status, _GRPC_CODE.get(e.status, 3), e.message, rtype, drain=True)
        if enc == "gzip":
            try:
                body = http_limits.gunzip(body, self.max_body)
            except HTTPError as e:  # the body was read whole: the connection stays usable
                self._count_refusal(e)
                return self._status(e.status, _GRPC_CODE.get(e.status, 3), e.message, rtype)
        sig = signals.BY_PATH.get(path)
        try:
            if sig is not None:
                sres = self.ingest.export_signal(sig, body, is_json=ctype == JSON)
            else:
                res = self.ingest.export(body, is_json=ctype == JSON)
        except decode.DecodeError as e:
            return self._status(400, 3, str(e)[:1000], rtype)
        except RecursionError:  # belt and braces: decode turns deep nesting into DecodeError itself
            self.ingest.count_bad(path)
            return self._status(400, 3, "malformed body: nested too deeply", rtype)
        except QueueFull:
            return self._status(429, 8, "queue full, retry later", rtype,
                                {"Retry-After": str(self.ingest.retry_after_s)})
        except StoreUnavailable:
            return self._status(503, 14, "store unavailable and spool full, retry later", rtype,
                                {"Retry-After": str(self.ingest.retry_after_s)})
        except Exception:
            log.exception("export failed")
            return self._status(500, 13, "internal error", rtype)
        if sig is not None:
            sresp = sig.response_for(sres)
            if ctype == JSON:  # (int64 counts are JSON strings in MessageToDict, as OTLP/JSON has them)
                return self._send(200, json.dumps(json_format.MessageToDict(sresp)).encode(), JSON)
            return self._send(200, sresp.SerializeToString(), PROTOBUF)
        resp = response_for(res)
        if ctype == JSON:
            out = json_format.MessageToDict(resp)
            if "partialSuccess" in out and "rejectedSpans" in out["partialSuccess"]:
                out["partialSuccess"]["rejectedSpans"] = str(out["partialSuccess"]["rejectedSpans"])
            self._send(200, json.dumps(out).encode(), JSON)
        else:
            self._send(200, resp.SerializeToString(), PROTOBUF)


class _Server(GuardedServer):
    pass


def make_server(host: str, port: int, ingest: Ingest, *, max_body_bytes: int,
                tls: tuple[str, str] | None = None, limits: Limits | None = None) -> GuardedServer:
    """``limits`` (timeouts, max_connections): Limits.from_settings(settings); default: the Settings defaults."""
    limits = limits or Limits(retry_after_s=ingest.retry_after_s)
    handler = type("OTLPHandler", (_Handler,), {"ingest": ingest, "max_body": max_body_bytes})
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
    st = status_pb2.Status(code=14, message="connection limit reached, retry later").SerializeToString()
    return _Server((host, port), handler, limits=limits, ssl_context=ctx,
                   busy=http_limits.busy_response(limits.retry_after_s, st, PROTOBUF))
