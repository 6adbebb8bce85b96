"""HTTP edges of the stdlib servers (issue 16 §3): framing, limits, deadlines, connection cap, bearer parsing,
client disconnects. Raw sockets over loopback against the real OTLP/HTTP receiver (Writer + in-memory store) and
the real API server; after every refusal a valid request on a new connection must still be accepted and stored."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import FakeStore, genai_spans
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from promptpulse.processor import api as api_mod
from promptpulse.processor import api_server, http_limits
from promptpulse.processor.http_limits import Limits
from promptpulse.processor.receiver import decode, otlp_http
from promptpulse.processor.spool import Spool
from promptpulse.processor.writer import Writer

TOKEN = "s3cret-token"
MAX = 1 << 20  # receiver body limit in these tests (the 40 MiB case runs with the real 32 MiB)
FAST = Limits(header_timeout_s=1.0, body_timeout_s=1.0, idle_timeout_s=1.0, max_connections=200)
_BODIES: dict[tuple[int, int], bytes] = {}
_SEEDS = iter(range(1000, 10**9))


def otlp_body(n: int, seed: int = 0) -> bytes:
    if (n, seed) not in _BODIES:
        _BODIES[n, seed] = encode_spans(genai_spans(n, seed=seed or n)).SerializeToString()
    return _BODIES[n, seed]


def _wait(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Receiver:
    def __init__(self, tmp: Any, *, max_body: int = MAX, limits: Limits = FAST) -> None:
        self.store = FakeStore()
        self.writer = Writer(Spool(tmp / "spool", fsync=False), lambda: self.store, batch_max_age_s=0.02)
        self.writer.start()
        self.ingest = otlp_http.Ingest(self.writer, auth_token=TOKEN)
        self.srv = otlp_http.make_server("127.0.0.1", 0, self.ingest, max_body_bytes=max_body, limits=limits)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()
        self.writer.stop(timeout=2)

    def stored(self) -> int:
        return len(self.store.rows)

    def export_ok(self, n: int = 7) -> None:
        """A valid request on a new connection: 200 and exactly n more spans stored."""
        before = self.stored()
        # a fresh body each time: the writer's dedup token is a digest of the body (a repeat would be dropped)
        status, _, _ = send(self.port, request(otlp_body(n, next(_SEEDS))))
        assert status == 200
        _wait(lambda: self.stored() == before + n)
        time.sleep(0.05)
        assert self.stored() == before + n


@pytest.fixture
def recv(tmp_path: Any) -> Iterator[Receiver]:
    r = Receiver(tmp_path)
    yield r
    r.close()


def request(body: bytes | None, headers: list[tuple[str, str]] | None = None, *, path: str = "/v1/traces",
            ctype: str = "application/x-protobuf", token: str | None = TOKEN, length: bool = True) -> bytes:
    """Raw request bytes; ``headers`` come after the defaults, so they can add repeats; body None: headers only."""
    lines = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Type: {ctype}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if length and body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def chunked(body: bytes, size: int = 1000, ext: str = "", trailers: str = "") -> bytes:
    out = [b"%x%s\r\n%s\r\n" % (len(body[i:i + size]), ext.encode(), body[i:i + size])
           for i in range(0, len(body), size)]
    return b"".join(out) + b"0\r\n" + trailers.encode() + b"\r\n"


def read_response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    r = http.client.HTTPResponse(s)
    r.begin()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()


def send(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:  # the server may answer and close before it has all of an over-limit request
            pass
        return read_response(s)


# --- Content-Length -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["-1", "+5", "0x10", "1_0", "5 5", "\x0b5", "5\x0c", "abc", "", "5,5",
                                   "1" * 19])
def test_bad_content_length_is_400_and_closes(recv: Receiver, value: str) -> None:
    body = otlp_body(3)
    status, headers, _ = send(recv.port, request(body, [("Content-Length", value)], length=False))
    assert status == 400 and headers["connection"] == "close"
    assert recv.stored() == 0
    recv.export_ok()


@pytest.mark.parametrize("values", [["5", "5"], ["5", "6"]])
def test_repeated_content_length_is_400(recv: Receiver, values: list[str]) -> None:
    req = request(b"x" * 5, [("Content-Length", v) for v in values], length=False)
    assert send(recv.port, req)[0] == 400
    recv.export_ok()


def test_ows_around_content_length_is_not_part_of_the_value(recv: Receiver) -> None:
    # RFC 9110 §5.5: "Content-Length:  N \t" carries the value N; only OWS (SP, HTAB) is dropped
    body = otlp_body(4)
    assert send(recv.port, request(body, [("Content-Length", f" {len(body)} \t")], length=False))[0] == 200
    _wait(lambda: recv.stored() == 4)


def test_missing_length_is_411(recv: Receiver) -> None:
    assert send(recv.port, request(b"", length=False))[0] == 411
    recv.export_ok()


def test_minus_one_with_40_mib_body_is_refused(tmp_path: Any) -> None:
    r = Receiver(tmp_path, max_body=32 << 20)
    try:
        big = b"\x0a" * (40 << 20)
        status, _, _ = send(r.port, request(big, [("Content-Length", "-1")], length=False), timeout=30)
        assert status == 400
        assert r.ingest.counters["requests"] == 1 and r.stored() == 0
        r.export_ok(11)
    finally:
        r.close()


def test_over_limit_content_length_is_413(recv: Receiver) -> None:
    assert send(recv.port, request(b"\0" * (MAX + 1)))[0] == 413
    recv.export_ok()


def test_short_body_then_close_is_refused(recv: Receiver) -> None:
    # the client sends less than it announced and waits: the body deadline answers 408
    t0 = time.monotonic()
    status, _, _ = send(recv.port, request(b"\0" * 10, [("Content-Length", "100")], length=False))
    assert status == 408 and time.monotonic() - t0 < 3
    recv.export_ok()


# --- Transfer-Encoding ----------------------------------------------------------------------------------------

def test_content_length_with_transfer_encoding_is_400(recv: Receiver) -> None:
    body = chunked(otlp_body(3))
    req = request(body, [("Transfer-Encoding", "chunked"), ("Content-Length", str(len(body)))], length=False)
    assert send(recv.port, req)[0] == 400
    assert recv.stored() == 0
    recv.export_ok()


def test_chunked_is_decoded_and_stored(recv: Receiver) -> None:
    body = otlp_body(20)
    req = request(chunked(body, 777, ext=";name=value", trailers="X-Trailer: 1\r\n"),
                  [("Transfer-Encoding", "Chunked")], length=False)
    assert send(recv.port, req)[0] == 200
    _wait(lambda: recv.stored() == 20)
    recv.export_ok()


def test_chunked_gzip_keep_alive(recv: Receiver) -> None:
    # two chunked gzip requests on one connection: the framing leaves the connection usable
    with socket.create_connection(("127.0.0.1", recv.port), timeout=5) as s:
        for n in (5, 6):
            s.sendall(request(chunked(gzip.compress(otlp_body(n)), 100),
                              [("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")], length=False))
            assert read_response(s)[0] == 200
    _wait(lambda: recv.stored() == 11)


def test_chunked_over_limit_is_413(recv: Receiver) -> None:
    req = request(chunked(b"\0" * (MAX + 10), 64 << 10), [("Transfer-Encoding", "chunked")], length=False)
    status, headers, _ = send(recv.port, req)
    assert status == 413 and headers["connection"] == "close"
    assert recv.stored() == 0
    recv.export_ok()


@pytest.mark.parametrize("body", [
    b"zz\r\nabc\r\n0\r\n\r\n",  # not hex
    b"-3\r\nabc\r\n0\r\n\r\n",  # sign
    b"3\r\nabcdef\r\n0\r\n\r\n",  # data longer than the size
    b"3\nabc\r\n0\r\n\r\n",  # bare LF
    b"3\r\nabc\r\n0\r\n" + b"X: y\r\n" * 40 + b"\r\n",  # endless trailers
    b"1" * 5000 + b"\r\n",  # endless size line
    b"fffffffffffffffff\r\n",  # more hex digits than any size
])
def test_malformed_chunked_is_400(recv: Receiver, body: bytes) -> None:
    status, headers, _ = send(recv.port, request(body, [("Transfer-Encoding", "chunked")], length=False))
    assert status == 400 and headers["connection"] == "close"
    recv.export_ok()


@pytest.mark.parametrize(("te", "code"), [("gzip, chunked", 501), ("chunked, gzip", 400), ("chunked, chunked", 400),
                                          ("identity", 400), ("", 400)])
def test_other_transfer_codings(recv: Receiver, te: str, code: int) -> None:
    req = request(chunked(otlp_body(2)), [("Transfer-Encoding", te)], length=False)
    assert send(recv.port, req)[0] == code
    recv.export_ok()


# --- gzip and nesting -----------------------------------------------------------------------------------------

def test_truncated_gzip_is_400(recv: Receiver) -> None:
    gz = gzip.compress(otlp_body(30))
    for cut in (gz[:-8], gz[: len(gz) // 2], gz[:10]):  # no trailer; half; header only
        status, _, body = send(recv.port, request(cut, [("Content-Encoding", "gzip")]))
        assert status == 400, body
    assert recv.stored() == 0
    recv.export_ok()


def test_gzip_trailing_garbage_is_400_and_members_concatenate(recv: Receiver) -> None:
    gz = gzip.compress(otlp_body(3))
    assert send(recv.port, request(gz + b"garbage", [("Content-Encoding", "gzip")]))[0] == 400
    assert recv.stored() == 0
    # RFC 1952: a gzip file is a series of members; protobuf messages concatenate: 3 + 4 spans
    two = gz + gzip.compress(otlp_body(4))
    assert send(recv.port, request(two, [("Content-Encoding", "gzip")]))[0] == 200
    _wait(lambda: recv.stored() == 7)


def test_gzip_bomb_is_413(recv: Receiver) -> None:
    bomb = gzip.compress(b"\0" * (MAX * 8))
    assert len(bomb) < MAX
    assert send(recv.port, request(bomb, [("Content-Encoding", "gzip")]))[0] == 413
    recv.export_ok()


def test_deeply_nested_json_is_400(recv: Receiver) -> None:
    doc = b'{"resourceSpans": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    status, _, body = send(recv.port, request(doc, ctype="application/json"))
    assert status == 400
    assert "code" in json.loads(body)
    doc = b'{"resourceSpans": [{"scopeSpans": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}]}"
    assert send(recv.port, request(doc, ctype="application/json"))[0] == 400
    recv.export_ok()


def test_recursion_error_from_decode_is_400(recv: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    def deep(_body: bytes) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(decode, "decode_protobuf", deep)
    assert send(recv.port, request(otlp_body(2)))[0] == 400
    assert recv.ingest.counters["bad_requests"] == 1
    monkeypatch.undo()
    recv.export_ok()


# --- deadlines and the connection cap -------------------------------------------------------------------------

def _stalled(port: int, n: int, data: bytes) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if data:
            s.sendall(data)
        socks.append(s)
    return socks


def _closed_by_server(s: socket.socket) -> bytes:
    """What the server sent before closing (b"" for a plain close)."""
    out = b""
    while True:
        try:
            k = s.recv(65536)
        except ConnectionResetError:
            return out
        if not k:
            return out
        out += k


@pytest.mark.parametrize(("what", "data"), [
    ("nothing", b""),
    ("half a request line", b"POST /v1/tr"),
    ("headers, no body", request(b"\0" * 100, [("Content-Length", "1000")], length=False)),
    ("chunked, no end", request(b"10\r\n0123", [("Transfer-Encoding", "chunked")], length=False)),
])
def test_stalled_connections_are_closed_and_threads_released(recv: Receiver, what: str, data: bytes) -> None:
    recv.export_ok()
    _wait(lambda: recv.srv.active == 0)  # the thread of export_ok's connection is gone
    base = threading.active_count()
    t0 = time.monotonic()
    socks = _stalled(recv.port, 50, data)
    _wait(lambda: threading.active_count() >= base + 50)
    try:
        answers = [_closed_by_server(s) for s in socks]
    finally:
        for s in socks:
            s.close()
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 4, elapsed  # 1 s deadline, 0.1 s reaper tick
    if data:  # something was received: the client learns why
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:2]
    _wait(lambda: threading.active_count() <= base, 3)
    recv.export_ok()


def test_trickle_does_not_extend_the_deadline(recv: Receiver) -> None:
    # one header byte every 0.3 s: each recv is quick, the request never completes; the total deadline ends it
    with socket.create_connection(("127.0.0.1", recv.port), timeout=5) as s:
        t0 = time.monotonic()
        try:
            for b in request(otlp_body(1)):
                s.send(bytes([b]))
                time.sleep(0.3)
                if time.monotonic() - t0 > 5:
                    break
        except OSError:
            pass
        assert time.monotonic() - t0 < 2.5
        assert _closed_by_server(s).startswith(b"HTTP/1.1 408")


def test_idle_keep_alive_is_closed(recv: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", recv.port), timeout=5) as s:
        s.sendall(request(otlp_body(2)))
        assert read_response(s)[0] == 200
        t0 = time.monotonic()
        assert _closed_by_server(s) == b""  # idle: closed without an answer
        assert 0.9 < time.monotonic() - t0 < 2.5


def test_connection_limit_answers_503_and_recovers(tmp_path: Any) -> None:
    r = Receiver(tmp_path, limits=Limits(header_timeout_s=5, body_timeout_s=5, idle_timeout_s=5, max_connections=4,
                                         retry_after_s=3))
    try:
        held = _stalled(r.port, 4, b"")
        _wait(lambda: r.srv.active == 4)
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
            got = _closed_by_server(s)
        assert time.monotonic() - t0 < 1
        assert got.startswith(b"HTTP/1.1 503") and b"Retry-After: 3\r\n" in got and b"Connection: close" in got
        assert r.srv.refused == 1
        for s in held:
            s.close()
        _wait(lambda: r.srv.active == 0)
        r.export_ok()
    finally:
        r.close()


# --- bearer ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"  beArer   {TOKEN} \t"])
def test_bearer_scheme_is_case_insensitive(recv: Receiver, auth: str) -> None:
    assert send(recv.port, request(otlp_body(3), [("Authorization", auth)], token=None))[0] == 200
    _wait(lambda: recv.stored() == 3)


@pytest.mark.parametrize("auth", [f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer", "Bearer ", f"Bearer{TOKEN}",
                                  f"Bearer {TOKEN.upper()}", "Bearer é"])
def test_wrong_bearer_is_401(recv: Receiver, auth: str) -> None:
    status, headers, _ = send(recv.port, request(otlp_body(3), [("Authorization", auth)], token=None))
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert recv.ingest.counters["unauthorized"] == 1
    recv.export_ok()


def test_bearer_helpers() -> None:
    assert http_limits.bearer_token("bearer  abc ") == "abc"
    assert http_limits.bearer_token("Token abc") is None
    assert http_limits.token_matches("abc", "abc") and not http_limits.token_matches("abd", "abc")
    assert not http_limits.token_matches(None, "")


# --- client disconnects ---------------------------------------------------------------------------------------

def test_write_to_closed_connection_logs_one_line(recv: Receiver, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    entered = threading.Event()

    def slow_bad(_body: bytes) -> Any:
        entered.set()
        time.sleep(0.3)  # the client resets the connection meanwhile
        raise decode.DecodeError("bad")

    monkeypatch.setattr(decode, "decode_protobuf", slow_bad)
    caplog.set_level(logging.DEBUG, logger="promptpulse")
    s = socket.create_connection(("127.0.0.1", recv.port), timeout=5)
    s.sendall(request(otlp_body(2)))
    assert entered.wait(5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # close = RST
    s.close()
    _wait(lambda: any("connection dropped" in r.getMessage() for r in caplog.records))
    time.sleep(0.1)
    dropped = [r for r in caplog.records if "connection dropped" in r.getMessage()]
    assert len(dropped) == 1
    assert "BrokenPipeError" in dropped[0].getMessage() or "ConnectionResetError" in dropped[0].getMessage()
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    recv.export_ok()


# --- the API server (FastAPI on uvicorn: processor/api_server.py, processor/api_middleware.py) -------------------

API_LIMITS = Limits(header_timeout_s=1, body_timeout_s=1, idle_timeout_s=1, max_connections=20, retry_after_s=3)


def _api(monkeypatch: pytest.MonkeyPatch, limits: Limits = API_LIMITS, tls: tuple[str, str] | None = None) -> Any:
    seen: list[str] = []

    def run_read_only(_store: Any, sql: str) -> tuple[list[str], list[tuple]]:  # the SQL guard is not tested here
        seen.append(sql)
        return ["x"], [(1,)]

    monkeypatch.setattr(api_mod, "run_read_only", run_read_only)
    store = SimpleNamespace()
    ingest = otlp_http.Ingest(SimpleNamespace(), auth_token=TOKEN)  # type: ignore[arg-type]
    svc = SimpleNamespace(get_store=lambda: store, ingest=ingest, settings=None)
    srv = api_server.make_server("127.0.0.1", 0, svc, limits=limits, tls=tls)
    srv.start()
    return SimpleNamespace(port=srv.server_address[1], seen=seen, srv=srv)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    a = _api(monkeypatch)
    yield a
    a.srv.shutdown()
    a.srv.server_close()


def _query(body: bytes, headers: list[tuple[str, str]] | None = None, length: bool = True,
           auth: str = f"bearer {TOKEN}") -> bytes:
    return request(body, [("Authorization", auth), *(headers or [])], path="/api/query", ctype="application/json",
                   token=None, length=length)


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_api_query_framing(api: Any) -> None:
    q = json.dumps({"sql": "SELECT 1"}).encode()
    assert send(api.port, _query(q))[0] == 200
    status, headers, body = send(api.port, _query(q, [("Content-Length", "-1")], length=False))
    assert (status, headers["connection"]) == (400, "close") and json.loads(body)["error"].startswith("invalid HTTP")
    # a repeated Content-Length: the same value is one length (RFC 9112 §6.3, h11); two different ones are a 400
    assert send(api.port, _query(q, [("Content-Length", str(len(q) + 1))]))[0] == 400
    assert send(api.port, _query(q, [("Content-Length", str(len(q)))]))[0] == 200
    status, headers, body = send(api.port, _query(b"x" * ((1 << 20) + 1)))
    assert (status, json.loads(body), headers["connection"]) == (413, {"error": "query too large"}, "close")
    big = chunked(b"x" * ((1 << 20) + 1), 1 << 16)
    status, _, body = send(api.port, _query(big, [("Transfer-Encoding", "chunked")], length=False))
    assert (status, json.loads(body)) == (413, {"error": "query too large"})
    status, _, body = send(api.port, _query(chunked(q, 3), [("Transfer-Encoding", "chunked")], length=False))
    assert status == 200 and json.loads(body)["rows"] == [[1]]
    assert send(api.port, _query(q, [("Transfer-Encoding", "gzip, chunked")], length=False))[0] == 400
    status, headers, body = send(api.port, _query(chunked(q, 3), [("Transfer-Encoding", "chunked"),
                                                                 ("Content-Length", "5")], length=False))
    assert (status, headers["connection"], json.loads(body)) == (
        400, "close", {"error": "Content-Length together with Transfer-Encoding"})
    assert send(api.port, _query(q, auth=f"BEARER {TOKEN}"))[0] == 200
    status, headers, body = send(api.port, _query(q, auth="Bearer nope"))
    assert (status, headers["www-authenticate"], json.loads(body)) == (
        401, "Bearer", {"error": "missing or invalid bearer token"})
    assert api.seen == ["SELECT 1"] * 4


def test_api_scores_body_limit_is_8_mib(api: Any) -> None:
    big = b"[" + b" " * (8 << 20) + b"]"
    req = request(big, [("Authorization", f"Bearer {TOKEN}")], path="/api/scores", ctype="application/json",
                  token=None)
    status, _, body = send(api.port, req, timeout=20)
    assert (status, json.loads(body)) == (413, {"error": "body too large"})


def test_api_auth_covers_every_api_path_but_not_healthz(api: Any) -> None:
    for path in ("/api/openapi.json", "/api/anything", "/readyz", "/metrics"):
        assert send(api.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())[0] == 401, path
    assert send(api.port, HEALTHZ)[0] == 200
    assert send(api.port, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 404


def test_api_stalled_connections_are_closed(api: Any) -> None:
    assert send(api.port, HEALTHZ)[0] == 200
    _wait(lambda: api.srv.active == 0)
    t0 = time.monotonic()
    heads = _stalled(api.port, 10, b"GET /healthz HTTP/1.1\r\n")  # inside the headers
    bodies = _stalled(api.port, 5, _query(b'{"sql": ', [("Content-Length", "100")], length=False))  # inside the body
    idle = _stalled(api.port, 5, b"")  # nothing at all
    _wait(lambda: api.srv.active == 20)
    try:
        assert all(_closed_by_server(s).startswith(b"HTTP/1.1 408") for s in heads + bodies)
        assert all(_closed_by_server(s) == b"" for s in idle)
    finally:
        for s in heads + bodies + idle:
            s.close()
    assert time.monotonic() - t0 < 4  # 1 s deadlines
    _wait(lambda: api.srv.active == 0, 3)
    assert send(api.port, HEALTHZ)[0] == 200


def test_api_trickle_and_idle_keep_alive(api: Any) -> None:
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as s:  # a header byte every 0.3 s
        t0 = time.monotonic()
        try:
            for b in HEALTHZ:
                s.send(bytes([b]))
                time.sleep(0.3)
                if time.monotonic() - t0 > 5:
                    break
        except OSError:
            pass
        assert time.monotonic() - t0 < 2.5
        assert _closed_by_server(s).startswith(b"HTTP/1.1 408")
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as s:
        s.sendall(HEALTHZ)
        assert read_response(s)[0] == 200
        t0 = time.monotonic()
        assert _closed_by_server(s) == b""  # idle after a response: closed without an answer
        assert 0.9 < time.monotonic() - t0 < 2.5


def test_api_endless_headers_are_400(api: Any) -> None:
    # h11_max_incomplete_event_size: headers still not ended after 64 KiB are refused, not buffered on
    status, headers, body = send(api.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 << 10))
    assert (status, headers["connection"]) == (400, "close") and b"invalid HTTP request" in body
    assert send(api.port, HEALTHZ)[0] == 200


def test_api_connection_limit_answers_503_and_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _api(monkeypatch, Limits(header_timeout_s=5, body_timeout_s=5, idle_timeout_s=5, max_connections=4,
                                 retry_after_s=3))
    try:
        held = _stalled(a.port, 4, b"")
        _wait(lambda: a.srv.active == 4)
        with socket.create_connection(("127.0.0.1", a.port), timeout=5) as s:
            got = _closed_by_server(s)
        assert got.startswith(b"HTTP/1.1 503") and b"Retry-After: 3\r\n" in got and b"Connection: close" in got
        assert a.srv.refused == 1
        for s in held:
            s.close()
        _wait(lambda: a.srv.active == 0)
        assert send(a.port, HEALTHZ)[0] == 200
    finally:
        a.srv.shutdown()
        a.srv.server_close()


# --- TLS ------------------------------------------------------------------------------------------------------

def _cert(tmp_path: Any) -> tuple[Any, Any]:
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("no openssl CLI to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_api_over_tls(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    cert, key = _cert(tmp_path)
    a = _api(monkeypatch, tls=(str(cert), str(key)))
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    try:
        silent = socket.create_connection(("127.0.0.1", a.port), timeout=5)  # TCP only: no ClientHello
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", a.port), timeout=5)) as s:
            s.sendall(_query(json.dumps({"sql": "SELECT 1"}).encode()))
            status, _, body = read_response(s)
            assert status == 200 and json.loads(body)["rows"] == [[1]]
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", a.port), timeout=5)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")  # stalls inside the headers: over TLS the 408 is sent too
            assert _closed_by_server(s).startswith(b"HTTP/1.1 408")
        silent.close()
    finally:
        a.srv.shutdown()
        a.srv.server_close()


@pytest.fixture
def tls_receiver(tmp_path: Any) -> Iterator[tuple[Any, Any]]:
    cert, key = _cert(tmp_path)
    store = FakeStore()
    writer = Writer(Spool(tmp_path / "spool", fsync=False), lambda: store, batch_max_age_s=0.02)
    writer.start()
    srv = otlp_http.make_server("127.0.0.1", 0, otlp_http.Ingest(writer, auth_token=TOKEN), max_body_bytes=MAX,
                                tls=(str(cert), str(key)), limits=FAST)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield SimpleNamespace(port=srv.server_address[1], store=store, srv=srv), cert
    srv.shutdown()
    srv.server_close()
    writer.stop(timeout=2)


def test_tls_handshake_stall_does_not_block_others(tls_receiver: tuple[Any, Any]) -> None:
    import ssl

    r, cert = tls_receiver
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    silent = socket.create_connection(("127.0.0.1", r.port), timeout=5)  # TCP only: no ClientHello
    time.sleep(0.1)
    t0 = time.monotonic()
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", r.port), timeout=5)) as s:
        s.sendall(request(otlp_body(5)))
        assert read_response(s)[0] == 200
    assert time.monotonic() - t0 < 0.8  # served while the silent handshake is still pending
    _wait(lambda: len(r.store.rows) == 5)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", r.port), timeout=5)) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\n")  # stalls inside the headers, over TLS: closed, no 408
        t0 = time.monotonic()
        try:
            got = _closed_by_server(s)
        except ssl.SSLError:
            got = b""
        assert got == b"" and time.monotonic() - t0 < 2.5
    assert _closed_by_server(silent) == b""
    silent.close()
    _wait(lambda: r.srv.active == 0)
