"""OTLP/HTTP receiver: POST /v1/traces, application/x-protobuf or application/json, optional gzip.

Answers (OTLP/HTTP spec; docs/PROCESSOR.md):
200 ExportTraceServiceResponse (partial_success.rejected_spans + error_message when spans were rejected or
clamped) · 400 malformed body (google.rpc.Status) · 401 missing/wrong bearer token · 404 other paths · 405 other
methods · 411 no Content-Length · 413 body (compressed or decompressed) over max_body_bytes · 415 other content
types or encodings · 429 + Retry-After when the queue is full · 503 + Retry-After when the store is down and the
spool is full. Responses use the request's content type.

Server: the stdlib ThreadingHTTPServer with HTTP/1.1 keep-alive. Request handling is dominated by decoding
(~15 µs/span, ~7 ms per 512-span request) so per-request server overhead (~0.1 ms) does not matter and no
dependency is needed.
"""

from __future__ import annotations

import hmac
import json
import logging
import ssl
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ..writer import QueueFull, StoreUnavailable, Writer
from . import decode, engine_decode

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
        self.counters = {"requests": 0, "received_spans": 0, "accepted_spans": 0, "rejected_spans": 0,
                         "bad_requests": 0, "unauthorized": 0, "throttled": 0, "unavailable": 0}

    def count(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                self.counters[k] += v

    def authorized(self, header: str | None) -> bool:
        if not self.auth_token:
            return True
        expected = ("Bearer " + self.auth_token).encode()
        ok = hmac.compare_digest((header or "").encode("utf-8", "replace"), expected)
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


def response_for(res: decode.DecodeResult) -> ExportTraceServiceResponse:
    out = ExportTraceServiceResponse()
    if res.rejected or res.warnings:
        out.partial_success.rejected_spans = res.rejected
        out.partial_success.error_message = res.error_message
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
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

    def do_GET(self) -> None:
        self._status(405 if self.path.split("?")[0] == "/v1/traces" else 404, 12, "use POST /v1/traces", PROTOBUF)

    def do_POST(self) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        rtype = JSON if ctype == JSON else PROTOBUF
        length_h = self.headers.get("Content-Length")
        if self.path.split("?")[0] != "/v1/traces":
            return self._status(404, 5, "not found; OTLP traces go to /v1/traces", rtype, drain=True)
        if not self.ingest.authorized(self.headers.get("Authorization")):
            return self._status(401, 16, "missing or invalid bearer token", rtype,
                                {"WWW-Authenticate": "Bearer"}, drain=True)
        if ctype not in (PROTOBUF, JSON):
            return self._status(415, 3, f"unsupported content type {ctype!r}; use {PROTOBUF} or {JSON}",
                                PROTOBUF, drain=True)
        enc = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if enc not in ("identity", "gzip"):
            return self._status(415, 3, f"unsupported content encoding {enc!r}", rtype, drain=True)
        if length_h is None:
            return self._status(411, 3, "Content-Length required", rtype, drain=True)
        try:
            length = int(length_h)
        except ValueError:
            return self._status(400, 3, "bad Content-Length", rtype, drain=True)
        if length > self.max_body:
            if length <= 4 * self.max_body:  # read it away so the client sees the 413 instead of a broken pipe
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
            return self._status(413, 8, f"body over {self.max_body} bytes", rtype, drain=True)
        body = self.rfile.read(length)
        if enc == "gzip":
            try:
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                body = d.decompress(body, self.max_body + 1)
                if len(body) > self.max_body or d.unconsumed_tail:
                    return self._status(413, 8, f"decompressed body over {self.max_body} bytes", rtype)
            except zlib.error as e:
                return self._status(400, 3, f"bad gzip body: {e}", rtype)
        try:
            res = self.ingest.export(body, is_json=ctype == JSON)
        except decode.DecodeError as e:
            return self._status(400, 3, str(e)[:1000], rtype)
        except QueueFull:
            return self._status(429, 8, "queue full, retry later", rtype,
                                {"Retry-After": str(self.ingest.retry_after_s)})
        except StoreUnavailable:
            return self._status(503, 14, "store unavailable and spool full, retry later", rtype,
                                {"Retry-After": str(self.ingest.retry_after_s)})
        except Exception:
            log.exception("export failed")
            return self._status(500, 13, "internal error", rtype)
        resp = response_for(res)
        if ctype == JSON:
            out = json_format.MessageToDict(resp)
            if "partialSuccess" in out and "rejectedSpans" in out["partialSuccess"]:
                out["partialSuccess"]["rejectedSpans"] = str(out["partialSuccess"]["rejectedSpans"])
            self._send(200, json.dumps(out).encode(), JSON)
        else:
            self._send(200, resp.SerializeToString(), PROTOBUF)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def make_server(host: str, port: int, ingest: Ingest, *, max_body_bytes: int,
                tls: tuple[str, str] | None = None) -> ThreadingHTTPServer:
    handler = type("OTLPHandler", (_Handler,), {"ingest": ingest, "max_body": max_body_bytes})
    srv = _Server((host, port), handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    return srv
