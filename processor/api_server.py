"""Serves the API app (processor/api_app.py) with uvicorn in a thread of `promptpulse serve`.

uvicorn's h11 protocol parses HTTP/1.1 (one Content-Length of digits or chunked; anything else is a 400). What
uvicorn has no setting for is added in a small subclass: a total deadline for the request headers (from accept, or
from the first byte of a later request on a kept-alive connection; 408 when some of a request came, a plain close
when nothing did) and the connection cap, refused at accept with a prebuilt 503 + Retry-After. The idle timeout is
uvicorn's timeout_keep_alive; body size and body deadline are api_middleware.BodyLimits. docs/PROCESSOR.md
("HTTP edges") maps each limit to where it is enforced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .http_limits import Limits, busy_response

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024  # request line + headers (h11_max_incomplete_event_size); http.server allowed 64 KiB
GRACEFUL_SHUTDOWN_S = 5  # requests in flight at shutdown get this long to finish


def _raw(status: int, reason: str, doc: dict[str, Any]) -> bytes:
    body = json.dumps(doc).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode("ascii") + body


_INVALID_400 = _raw(400, "Bad Request", {"error": "invalid HTTP request (framing, a header or its size)"})
_TIMEOUT_408 = _raw(408, "Request Timeout", {"error": "request headers not received within the deadline"})


class GuardedH11(H11Protocol):
    """H11Protocol with a header deadline and a connection cap (class attributes set by ``protocol``)."""

    limits: Limits
    busy: bytes
    stats: dict[str, int]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._started = False  # bytes of a not yet parsed request have arrived
        self._seen_cycle: Any = None
        if len(self.connections) > self.limits.max_connections:
            self.stats["refused"] += 1
            if self.stats["refused"] % 100 == 1:
                log.warning("API: %d connections open (max_connections): refusing new ones with 503 (%d so far)",
                            len(self.connections) - 1, self.stats["refused"])
            transport.write(self.busy)
            transport.close()
            return
        self._arm()

    def _waiting_for_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._header_deadline)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._waiting_for_request():
            if self._header_timer is None:  # the first byte of the next request on a kept-alive connection
                self._arm()
            self._started = True
        super().data_received(data)
        if self.cycle is not None and self.cycle is not self._seen_cycle:  # the headers are in: the app runs
            self._seen_cycle = self.cycle
            self._started = False
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms the idle timer, then parses a pipelined request if one is buffered
        if self.cycle is not self._seen_cycle:  # it was whole: its cycle runs
            self._seen_cycle = self.cycle
            self._started = False
            self._disarm()
        elif self._waiting_for_request() and self._header_timer is None and self.conn.trailing_data[0]:
            self._arm()  # part of a pipelined request is buffered: its headers get the deadline too
            self._started = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._waiting_for_request():
            return
        if self._started:  # part of a request came: say why it is refused
            self.transport.write(_TIMEOUT_408)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # h11 refused the request (bad framing, bad header, too large): a JSON body like every other error
        self.transport.write(_INVALID_400)
        self.transport.close()


def protocol(limits: Limits) -> type[GuardedH11]:
    busy = busy_response(limits.retry_after_s, b'{"error": "connection limit reached, retry later"}',
                         "application/json")
    return type("APIProtocol", (GuardedH11,), {"limits": limits, "busy": busy, "stats": {"refused": 0}})


def _bind(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections queue until the event loop accepts them
    except BaseException:
        sock.close()
        raise
    return sock


class ApiServer:
    """uvicorn on an already bound socket, so the port is known (and taken) before the thread starts; the
    ``serve_forever`` / ``shutdown`` / ``server_close`` / ``server_address`` of socketserver, for the callers."""

    def __init__(self, host: str, port: int, app: Any, *, limits: Limits,
                 tls: tuple[str, str] | None = None) -> None:
        self.limits = limits
        self._protocol = protocol(limits)
        config = uvicorn.Config(
            app, http=self._protocol, ws="none", lifespan="off", log_config=None, access_log=False,
            timeout_keep_alive=limits.idle_timeout_s,  # type: ignore[arg-type]  # a float works (call_later)
            h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            server_header=False, headers=[("server", "promptpulse")],
            ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None)
        self.server = uvicorn.Server(config)
        # uvicorn's INFO lines ("Uvicorn running on ... Press CTRL+C", "Started server process") describe a
        # standalone server; serve logs its own ports. Warnings (refused requests) still show unless set otherwise.
        quiet = logging.getLogger("uvicorn.error")
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
        self.sock = _bind(host, port)
        self.server_address: tuple[str, int] = self.sock.getsockname()[:2]
        self._running = threading.Event()
        self._done = threading.Event()
        self._done.set()

    @property
    def active(self) -> int:
        """Open connections."""
        return len(self.server.server_state.connections)

    @property
    def refused(self) -> int:
        return self._protocol.stats["refused"]

    def serve_forever(self, poll_interval: float = 0.5) -> None:  # poll_interval: socketserver's signature
        self._done.clear()
        self._running.set()
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self._done.set()

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="api-server", daemon=True)
        t.start()
        return t

    def shutdown(self, timeout: float = GRACEFUL_SHUTDOWN_S + 2) -> None:
        """Stop accepting, let requests in flight finish (up to GRACEFUL_SHUTDOWN_S), wait for the thread."""
        self.server.should_exit = True
        if self._running.is_set() and not self._done.wait(timeout):
            log.warning("API server did not stop within %.0f s", timeout)

    def server_close(self) -> None:
        self.sock.close()


def make_server(host: str, port: int, service: Any, *, tls: tuple[str, str] | None = None,
                limits: Limits | None = None) -> ApiServer:
    """The API on ``host:port`` (0: any free port); ``limits`` default to ``service.settings``' http_* settings."""
    from .api_app import create_app

    limits = limits or Limits.from_settings(getattr(service, "settings", None))
    return ApiServer(host, port, create_app(service, body_timeout_s=limits.body_timeout_s), limits=limits, tls=tls)
