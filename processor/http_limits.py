"""HTTP/1.1 request edges of the stdlib OTLP/HTTP receiver: strict body framing, deadlines, a connection cap, bounded
gunzip; and the bearer parsing every server shares (the API on uvicorn keeps its own edges: processor/api_server.py).
docs/PROCESSOR.md ("HTTP edges") has the answers as a table.

Deadlines are total, not per recv: a reaper thread per server shuts the read side of a connection whose deadline
has passed, which wakes the handler thread blocked in recv (it then sees EOF, answers 408 when it still can and
closes). One thread and one O(1) attribute write per request phase, so the hot path stays as it was; a per-recv
``settimeout`` alone would let a client that sends 1 byte every (timeout - 1) s hold a thread for ever.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import socket
import ssl
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

_DIGITS = re.compile(r"[0-9]{1,18}")  # 1*DIGIT (RFC 9110 §8.6); 18 digits fit an int64, more is no real body
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")  # chunk-size; 15 hex digits are 2^60, far beyond any limit
_OWS = " \t"
_MAX_LINE = 4096  # chunk-size line (with extensions) and trailer lines
_MAX_TRAILERS = 32
_DRAIN_FACTOR = 4  # an over-limit body up to 4x the limit is read away so the client sees the 413, not a reset
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float = 10.0  # from accept (or first byte of a kept-alive request) to the end of the headers
    body_timeout_s: float = 60.0  # the whole body: 32 MiB needs >= 0.6 MB/s
    idle_timeout_s: float = 60.0  # a kept-alive connection waiting for its next request
    max_connections: int = 1024  # open connections (one thread each); beyond: 503 + Retry-After and close
    retry_after_s: int = 2

    @classmethod
    def from_settings(cls, s: Any) -> Limits:
        d = cls()
        return cls(header_timeout_s=float(getattr(s, "http_header_timeout_s", d.header_timeout_s)),
                   body_timeout_s=float(getattr(s, "http_body_timeout_s", d.body_timeout_s)),
                   idle_timeout_s=float(getattr(s, "http_idle_timeout_s", d.idle_timeout_s)),
                   max_connections=int(getattr(s, "http_max_connections", d.max_connections)),
                   retry_after_s=int(getattr(s, "retry_after_s", d.retry_after_s)))


class HTTPError(Exception):
    """A request the server refuses; the connection is closed after the answer (its framing is not trusted)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_content_length(values: list[str]) -> int:
    """The one Content-Length of a request. Refuses repeats (even equal ones), signs, inner spaces, 0x, 1_0, and
    the whitespace int() would take (\\v, \\f, NBSP); only OWS (SP, HTAB) around the value is dropped, as RFC 9110
    §5.5 says it is not part of the value."""
    if len(values) != 1:
        raise HTTPError(400, "more than one Content-Length")
    v = values[0].strip(_OWS)
    if not _DIGITS.fullmatch(v):
        raise HTTPError(400, f"bad Content-Length {values[0][:40]!r}")
    return int(v)


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; the scheme is case-insensitive (RFC 9110 §11.1) and OWS
    around the field and the 1*SP after the scheme are tolerated. None for other schemes or no token."""
    if not header:
        return None
    scheme, _, token = header.strip(_OWS).partition(" ")
    token = token.strip(_OWS)
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time, and over digests so the compare does not reveal the expected token's length either."""
    a = hashlib.sha256((given or "").encode("utf-8", "surrogateescape")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "surrogateescape")).digest()
    return hmac.compare_digest(a, b) and given is not None


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body (one or more members, RFC 1952) to at most ``limit`` bytes. HTTPError 413 when the
    output would exceed it (a bomb stops at limit + 1 bytes), 400 when the stream is truncated (no end-of-member:
    a cut body must not pass as a shorter export) or followed by bytes that are not another member."""
    out: list[bytes] = []
    left = limit
    data = body
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(data, left + 1)
        except zlib.error as e:
            raise HTTPError(400, f"bad gzip body: {e}") from None
        if len(chunk) > left or d.unconsumed_tail:
            raise HTTPError(413, f"decompressed body over {limit} bytes")
        if not d.eof:
            raise HTTPError(400, "bad gzip body: truncated (no end of stream)")
        out.append(chunk)
        left -= len(chunk)
        data = d.unused_data
        if not data:
            break
        if not data.startswith(_GZIP_MAGIC):
            raise HTTPError(400, f"bad gzip body: {len(data)} byte(s) of trailing garbage")
    return out[0] if len(out) == 1 else b"".join(out)


class _Conn:
    """One open connection as the reaper sees it: the socket and the deadline of what it is waiting for."""

    __slots__ = ("deadline", "expired", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.expired = False


class _Reaper:
    """Shuts the read side of connections past their deadline; ticks at a tenth of the shortest timeout."""

    def __init__(self, tick_s: float) -> None:
        self.tick_s = tick_s
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, sock: socket.socket, timeout_s: float) -> _Conn:
        c = _Conn(sock, time.monotonic() + timeout_s)
        with self._lock:
            self._conns.add(c)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-reaper", daemon=True)
                self._thread.start()
        return c

    def remove(self, c: _Conn) -> None:
        with self._lock:
            self._conns.discard(c)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            with self._lock:
                due = [c for c in self._conns if c.deadline <= now]
            for c in due:
                c.expired = True
                c.deadline = math.inf
                # The C-level shutdown (SSLSocket.shutdown would unwrap first). Plain TCP: the read side only, so a
                # 408 can still be written; TLS: both, OpenSSL 3 treats the EOF as fatal and nothing can be written.
                how = socket.SHUT_RDWR if isinstance(c.sock, ssl.SSLSocket) else socket.SHUT_RD
                try:
                    socket.socket.shutdown(c.sock, how)
                except OSError:
                    pass


class GuardedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a connection cap, deadlines (via the handler) and TLS handshakes in the connection's
    own thread (wrapping the listening socket did them in accept(): one silent client stopped the whole server)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], handler: type[GuardedHandler], *, limits: Limits,
                 ssl_context: ssl.SSLContext | None = None, busy: bytes | None = None) -> None:
        super().__init__(addr, handler)
        self.limits = limits
        self.ssl_context = ssl_context
        self.busy = busy or busy_response(limits.retry_after_s, b"connection limit reached, retry later\n",
                                          "text/plain")
        self.active = 0
        self.refused = 0
        self._active_lock = threading.Lock()
        self._last_refusal_log = 0.0
        self.reaper = _Reaper(min(1.0, max(0.05, min(limits.header_timeout_s, limits.body_timeout_s,
                                                     limits.idle_timeout_s) / 10)))

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            over = self.active >= self.limits.max_connections
            if not over:
                self.active += 1
        if over:
            return self._refuse(request, client_address)
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started (e.g. cannot start new thread): give the slot back
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._active_lock:
            self.active -= 1

    def _refuse(self, sock: socket.socket, client_address: Any) -> None:
        # Answered from the accept thread, so never blocking: one non-blocking send of a prebuilt 503, then close.
        # Over TLS no handshake is done here (it could stall the accept loop), the client just sees a close.
        self.refused += 1
        now = time.monotonic()
        if now - self._last_refusal_log > 10:
            self._last_refusal_log = now
            log.warning("%s: %d connections open (max_connections): refusing new ones with 503 (%d so far)",
                        self.server_address[1], self.active, self.refused)
        if self.ssl_context is None:
            try:
                sock.setblocking(False)
                sock.send(self.busy)
            except OSError:
                pass
        self.shutdown_request(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a client that went away is routine: one debug line.
        exc = sys.exc_info()[1]
        peer = client_address[0] if isinstance(client_address, tuple) else client_address
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            log.debug("%s: connection dropped: %s: %s", peer, type(exc).__name__, exc)
        else:
            log.exception("error handling a request from %s", peer)

    def server_close(self) -> None:
        self.reaper.stop()
        super().server_close()


def busy_response(retry_after_s: int, body: bytes, ctype: str) -> bytes:
    """The bytes a GuardedServer sends a connection over max_connections (503, Retry-After, close)."""
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"Retry-After: {retry_after_s}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


class GuardedHandler(BaseHTTPRequestHandler):
    """Arms the connection's deadline per phase: idle (waiting for a kept-alive request), header (first byte to end
    of headers; from accept for the first request), body (``read_body``); disarmed while the request is handled."""

    protocol_version = "HTTP/1.1"
    server: GuardedServer
    _conn: _Conn
    _served = 0

    def setup(self) -> None:
        srv = self.server
        lim = srv.limits
        # per-op socket timeout: a backstop behind the reaper, mainly for writes to a client that does not read
        self.timeout = 2 * max(lim.header_timeout_s, lim.body_timeout_s, lim.idle_timeout_s)
        self._conn = srv.reaper.add(self.request, lim.header_timeout_s)
        if srv.ssl_context is not None:
            try:
                self.request.settimeout(lim.header_timeout_s)
                self.request = srv.ssl_context.wrap_socket(self.request, server_side=True,
                                                           do_handshake_on_connect=False)
                self._conn.sock = self.request
                self.request.do_handshake()
            except BaseException:
                srv.reaper.remove(self._conn)
                self.request.close()
                raise
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.reaper.remove(self._conn)
            if self.server.ssl_context is not None:
                self.request.close()

    def handle_one_request(self) -> None:
        lim = self.server.limits
        c = self._conn
        if self._served:
            c.deadline = time.monotonic() + lim.idle_timeout_s
        try:
            first = self.rfile.peek(1)
        except OSError:  # includes TimeoutError, reset
            first = b""
        if not first or c.expired:  # closed by the client, or idle too long: nothing to answer
            self.close_connection = True
            return
        if self._served:
            c.deadline = time.monotonic() + lim.header_timeout_s
        self._served += 1
        super().handle_one_request()
        c.deadline = math.inf

    def parse_request(self) -> bool:
        if self._conn.expired:
            self._timed_out("request headers")
            return False
        ok = super().parse_request()
        if self._conn.expired:  # the headers were cut by the deadline: what was parsed is not the request
            if ok:
                self._timed_out("request headers")
            self.close_connection = True
            return False
        self._conn.deadline = math.inf
        return ok

    def _timed_out(self, what: str) -> None:
        self.close_connection = True
        if self.server.ssl_context is not None:  # the reaper closed both directions: no answer possible
            return
        if not hasattr(self, "requestline"):  # cut inside the request line: parse_request never ran
            self.command, self.requestline = None, ""
            self.request_version = "HTTP/1.1"  # the HTTP/0.9 default would make send_error write nothing
        try:
            self.send_error(408, f"{what} not received within the deadline")
        except OSError:
            pass

    def read_body(self, max_body: int, *, length_required: bool = True) -> bytes:
        """The request body, framed by exactly one valid Content-Length or by ``Transfer-Encoding: chunked``
        (RFC 9112 §6), read under the body deadline and never past ``max_body``. Raises HTTPError (400 bad framing,
        408 deadline, 411 no length when required, 413 over the limit, 501 other transfer codings)."""
        te = self.headers.get_all("Transfer-Encoding")
        cl = self.headers.get_all("Content-Length")
        c = self._conn
        if te:
            if cl:  # RFC 9112 §6.1: a smuggling vector; refuse rather than pick one
                raise HTTPError(400, "Content-Length together with Transfer-Encoding")
            codings = [t.strip(_OWS).lower() for v in te for t in v.split(",")]
            if codings[-1] != "chunked" or "chunked" in codings[:-1] or self.request_version == "HTTP/1.0":
                raise HTTPError(400, f"bad Transfer-Encoding {', '.join(te)[:60]!r}")
            if len(codings) > 1:
                raise HTTPError(501, f"unsupported transfer coding {codings[0][:40]!r}")
            c.deadline = time.monotonic() + self.server.limits.body_timeout_s
            try:
                return self._read_chunked(max_body)
            except TimeoutError:
                raise HTTPError(408, "request body not received within the deadline") from None
            finally:
                c.deadline = math.inf
        if not cl:
            if length_required:
                raise HTTPError(411, "Content-Length or Transfer-Encoding: chunked required")
            return b""
        n = parse_content_length(cl)
        c.deadline = time.monotonic() + self.server.limits.body_timeout_s
        try:
            if n > max_body:
                if n <= _DRAIN_FACTOR * max_body:
                    self._discard(n)
                raise HTTPError(413, f"body over {max_body} bytes")
            body = self.rfile.read(n)  # one C loop of recv_into; the reaper bounds its total time
            if len(body) < n:
                raise self._short("body shorter than its Content-Length")
            return body
        except TimeoutError:
            raise HTTPError(408, "request body not received within the deadline") from None
        finally:
            c.deadline = math.inf

    def _short(self, what: str) -> HTTPError:
        if self._conn.expired:
            return HTTPError(408, "request body not received within the deadline")
        return HTTPError(400, what)

    def _discard(self, n: int) -> None:
        while n > 0:
            k = len(self.rfile.read(min(n, 1 << 20)))
            if not k:
                return
            n -= k

    def _line(self) -> bytes:
        line = self.rfile.readline(_MAX_LINE + 1)
        if not line.endswith(b"\r\n"):  # no bare LF either: lenient line ends are a smuggling vector
            if len(line) > _MAX_LINE:
                raise HTTPError(400, "malformed chunked body: line too long")
            raise self._short("malformed chunked body: line not ended by CRLF")
        return line

    def _read_chunked(self, max_body: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        over = False
        try:
            while True:
                size_s = self._line()[:-2].split(b";", 1)[0].rstrip(b" \t")  # extensions are ignored
                if not _HEX.fullmatch(size_s):
                    raise HTTPError(400, f"malformed chunked body: chunk size {size_s[:20]!r}")
                size = int(size_s, 16)
                if size == 0:
                    break
                total += size
                if total > max_body:
                    if total > _DRAIN_FACTOR * max_body:
                        raise HTTPError(413, f"body over {max_body} bytes")
                    over = True
                    parts.clear()
                if over:
                    self._discard(size)
                else:
                    data = self.rfile.read(size)
                    if len(data) < size:
                        raise self._short("chunked body cut inside a chunk")
                    parts.append(data)
                if self.rfile.read(2) != b"\r\n":
                    raise self._short("malformed chunked body: chunk data not followed by CRLF")
            for _ in range(_MAX_TRAILERS):  # trailer section: read and ignored
                if self._line() == b"\r\n":
                    break
            else:
                raise HTTPError(400, "malformed chunked body: too many trailer lines")
        except HTTPError as e:
            if over and e.status != 408:
                raise HTTPError(413, f"body over {max_body} bytes") from None
            raise
        if over:
            raise HTTPError(413, f"body over {max_body} bytes")
        return parts[0] if len(parts) == 1 else b"".join(parts)
