"""ASGI middleware of the HTTP API: bearer auth by path, and request bodies read whole under a size limit and a
total deadline before any route sees them (issue 16's hardening, on uvicorn; docs/PROCESSOR.md "HTTP edges")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from .api_json import error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Paths that hold data: every /api/* route (those a router adds later too), readiness and Prometheus metrics.
# /healthz, the console's static files and unknown paths outside /api answer without a token.
_PROTECTED = ("/readyz", "/metrics")
_DRAIN_FACTOR = 4  # an over-limit body up to 4x the limit is read away so the client sees the 413, not a reset


def needs_token(path: str) -> bool:
    return path.startswith("/api/") or path == "/api" or path in _PROTECTED


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


class BearerAuth:
    """401 (JSON, ``WWW-Authenticate: Bearer``) unless ``service.ingest.authorized`` accepts the Authorization
    header: the OTLP receivers' check (scheme in any case, constant-time compare; always true without a token)."""

    def __init__(self, app: ASGIApp, service: Any) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and needs_token(scope["path"]) \
                and not self.service.ingest.authorized(_header(scope, b"authorization")):
            resp = error(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
            return await resp(scope, receive, send)
        return await self.app(scope, receive, send)


class BodyLimits:
    """Reads a request body whole before the app runs: 413 over the path's limit (declared Content-Length or the
    running total of a chunked body), 408 when the whole body has not arrived within ``body_timeout_s``; both close
    the connection. The app then gets the body as one message."""

    def __init__(self, app: ASGIApp, *, body_timeout_s: float, default: tuple[int, str] = (8 << 20, "body too large"),
                 per_path: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s
        self.default = default
        self.per_path = per_path if per_path is not None else {"/api/query": (1 << 20, "query too large")}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")  # h11 has checked it is one run of digits
        chunked = _header(scope, b"transfer-encoding") is not None  # h11 allows only "chunked"
        if declared is not None and chunked:  # h11 would go by the chunks; a smuggling vector: refuse and close
            return await self._refuse(scope, receive, send, 400, "Content-Length together with Transfer-Encoding")
        if declared in (None, "0") and not chunked:
            return await self.app(scope, receive, send)
        limit, what = self.per_path.get(scope["path"], self.default)
        chunks: list[bytes] = []
        total = 0
        over = declared is not None and int(declared) > limit
        try:
            with anyio.fail_after(self.body_timeout_s):
                if over and int(declared or 0) > _DRAIN_FACTOR * limit:
                    return await self._refuse(scope, receive, send, 413, what)
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        return None
                    data = msg.get("body", b"")
                    total += len(data)
                    if total > limit:
                        over = True
                        if total > _DRAIN_FACTOR * limit:
                            break
                    elif data:
                        chunks.append(data)
                    if not msg.get("more_body", False):
                        break
        except TimeoutError:
            return await self._refuse(scope, receive, send, 408, "request body not received within the deadline")
        if over:
            return await self._refuse(scope, receive, send, 413, what)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # what follows: http.disconnect

        return await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        await error(status, message, headers={"Connection": "close"})(scope, receive, send)
