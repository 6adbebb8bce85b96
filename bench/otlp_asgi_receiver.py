"""The OTLP/HTTP receiver as an ASGI app on uvicorn — the candidate bench/bench_ingest.py measures against the stdlib
receiver (processor/receiver/otlp_http.py), to decide whether the receiver moves as the API did.

The leanest ASGI form: one plain ASGI callable (no framework routing; FastAPI/Starlette would only add per-request
cost), served by processor/api_server.ApiServer (the same uvicorn + h11 protocol with the header deadline and the
connection cap as the API), the export (check, spool fsync, queue) in a worker thread so the event loop never waits
on it. Same answers as otlp_http for what the bench sends and for its errors (auth, 404/405, 415, 413, gzip, 429/503).

Run as the processor: ``python bench/otlp_asgi_receiver.py serve ...`` (``promptpulse serve`` with this receiver on
the OTLP/HTTP port).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from google.protobuf import json_format
from google.rpc import status_pb2

from promptpulse.processor import api_server, http_limits
from promptpulse.processor.http_limits import HTTPError, Limits
from promptpulse.processor.receiver import decode, otlp_http, signals
from promptpulse.processor.writer import QueueFull, StoreUnavailable

PROTOBUF, JSON = otlp_http.PROTOBUF, otlp_http.JSON
_PATHS = frozenset({"/v1/traces", *signals.BY_PATH})


def _status(code: int, grpc_code: int, msg: str, ctype: str, headers: dict[str, str] | None = None,
            close: bool = False) -> tuple[int, dict[str, str], bytes, str]:
    st = status_pb2.Status(code=grpc_code, message=msg)
    if ctype == JSON:
        body = json.dumps(json_format.MessageToDict(st)).encode()
    else:
        body, ctype = st.SerializeToString(), PROTOBUF
    h = dict(headers or {})
    if close:
        h["connection"] = "close"
    return code, h, body, ctype


def _export(ingest: otlp_http.Ingest, path: str, body: bytes, is_json: bool, rtype: str) -> tuple:
    sig = signals.BY_PATH.get(path)
    retry = {"Retry-After": str(ingest.retry_after_s)}
    try:
        if sig is not None:
            resp: Any = sig.response_for(ingest.export_signal(sig, body, is_json=is_json))
        else:
            resp = otlp_http.response_for(ingest.export(body, is_json=is_json))
    except decode.DecodeError as e:
        return _status(400, 3, str(e)[:1000], rtype)
    except RecursionError:
        ingest.count_bad(path)
        return _status(400, 3, "malformed body: nested too deeply", rtype)
    except QueueFull:
        return _status(429, 8, "queue full, retry later", rtype, retry)
    except StoreUnavailable:
        return _status(503, 14, "store unavailable and spool full, retry later", rtype, retry)
    if is_json:
        out = json_format.MessageToDict(resp)
        ps = out.get("partialSuccess", {})
        if "rejectedSpans" in ps:
            ps["rejectedSpans"] = str(ps["rejectedSpans"])
        return 200, {}, json.dumps(out).encode(), JSON
    return 200, {}, resp.SerializeToString(), PROTOBUF


def make_app(ingest: otlp_http.Ingest, max_body: int) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        hdr = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        ctype = hdr.get("content-type", "").split(";")[0].strip().lower()
        rtype = JSON if ctype == JSON else PROTOBUF
        if scope["method"] != "POST":
            known = path in _PATHS
            out = _status(405 if known else 404, 12, f"use POST {path if known else '/v1/traces'}", PROTOBUF)
        elif path not in _PATHS:
            out = _status(404, 5, "not found; OTLP goes to /v1/traces, /v1/metrics, /v1/logs", rtype, close=True)
        elif not ingest.authorized(hdr.get("authorization")):
            out = _status(401, 16, "missing or invalid bearer token", rtype, {"WWW-Authenticate": "Bearer"}, True)
        elif ctype not in (PROTOBUF, JSON):
            out = _status(415, 3, f"unsupported content type {ctype!r}", PROTOBUF, close=True)
        elif (enc := hdr.get("content-encoding", "identity").strip().lower()) not in ("identity", "gzip"):
            out = _status(415, 3, f"unsupported content encoding {enc!r}", rtype, close=True)
        elif int(hdr.get("content-length") or 0) > max_body:
            out = _status(413, 8, f"body over {max_body} bytes", rtype, close=True)
        else:
            chunks, total, more = [], 0, True
            while more:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                chunks.append(msg.get("body", b""))
                total += len(chunks[-1])
                more = msg.get("more_body", False)
                if total > max_body:
                    break
            body = b"".join(chunks)
            try:
                if total > max_body:
                    raise HTTPError(413, f"body over {max_body} bytes")
                if enc == "gzip":
                    body = http_limits.gunzip(body, max_body)
                out = await anyio.to_thread.run_sync(_export, ingest, path, body, ctype == JSON, rtype)
            except HTTPError as e:
                out = _status(e.status, 8 if e.status == 413 else 3, e.message, rtype, close=total > max_body)
        status, headers, payload, ct = out
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ct.encode()), (b"content-length", str(len(payload)).encode()),
                                *((k.encode(), v.encode()) for k, v in headers.items())]})
        await send({"type": "http.response.body", "body": payload})

    return app


def make_server(host: str, port: int, ingest: otlp_http.Ingest, *, max_body_bytes: int,
                tls: tuple[str, str] | None = None, limits: Limits | None = None) -> api_server.ApiServer:
    """otlp_http.make_server's signature, so `promptpulse serve` can take it as is."""
    limits = limits or Limits(retry_after_s=ingest.retry_after_s)
    return api_server.ApiServer(host, port, make_app(ingest, max_body_bytes), limits=limits, tls=tls)


if __name__ == "__main__":
    otlp_http.make_server = make_server  # type: ignore[assignment]  # what processor/service.py calls
    from promptpulse.processor.cli import main

    sys.exit(main(sys.argv[1:]))
