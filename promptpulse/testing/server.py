"""The fake provider's HTTP server: routing, recording, faults and timing around the pure wire modules.

A stdlib ThreadingHTTPServer speaking HTTP/1.1 with keep-alive, so the SDKs' connection pools behave as in
production; streams use chunked transfer encoding, which is also what makes a cut stream detectable (the
connection closes before the terminating chunk, and httpx raises instead of seeing a clean end of body).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from promptpulse.testing import anthropic_wire, openai_wire, wires
from promptpulse.testing.faults import Fault, FaultPlan
from promptpulse.testing.routing import RecordedRequest, max_tokens_of, prompt_of, route
from promptpulse.testing.scenario import Operation, Provider, Reply, RequestInfo, Scenario, split_pieces


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never wait for a hung (timeout-fault) handler on shutdown
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], provider: FakeProvider) -> None:
        self.provider = provider
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients drop keep-alive connections at will (the openai SDK closes a stream at [DONE] without reading
        # the final chunk); that is not worth a traceback on stderr.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)) or self.provider._stopping.is_set():
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, chunked streams
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.conn_lock:
                self.server.connections.discard(self.connection)

    def do_POST(self) -> None:
        try:
            self.server.provider._handle(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            # The client gave up (its timeout, a cancelled stream): nothing left to answer.
            self.close_connection = True

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.provider.verbose:
            sys.stderr.write(f"fake-provider: {format % args}\n")

    # --- small writers --------------------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, body: Any, headers: dict[str, str]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_stream(self, headers: dict[str, str], content_type: str = wires.SSE_CONTENT_TYPE) -> None:
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeProvider:
    """A fake OpenAI + Anthropic endpoint on loopback, for the real SDKs.

    >>> with FakeProvider(Scenario(output_tokens=7)) as fake:
    ...     client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake")
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        max_recorded: int | None = 100_000,
    ) -> None:
        self.host = host
        self._port = port
        self.verbose = verbose
        self._lock = threading.Lock()
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._seq = itertools.count(1)
        self._faults = FaultPlan()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.set_scenario(scenario or Scenario())

    # --- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency or a timeout fault
        server.shutdown()
        server.server_close()
        with server.conn_lock:
            conns = list(server.connections)
        for c in conns:  # idle keep-alive handlers would otherwise block in readline
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses --------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def azure_endpoint(self) -> str:
        return self.url

    @property
    def gemini_base_url(self) -> str:
        return self.url

    @property
    def bedrock_endpoint_url(self) -> str:
        return self.url

    @property
    def mistral_server_url(self) -> str:
        return self.url + "/mistral"

    @property
    def cohere_base_url(self) -> str:
        return self.url

    @property
    def groq_base_url(self) -> str:
        return self.url + "/groq"

    @property
    def ollama_host(self) -> str:
        return self.url

    # --- configuration ----------------------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    def set_scenario(self, scenario: Scenario) -> None:
        """Install a scenario: its fault queue replaces pending faults and its seed restarts the randomness."""
        with self._lock:
            self._scenario = scenario
            self._rng = random.Random(scenario.seed)
        self._faults.reset(scenario.faults)

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: float | None = None,
        fault: Fault | None = None,
    ) -> None:
        """Make the next n requests fail (HTTP `status`, or the given fault), whichever client sends them."""
        self._faults.push([fault or Fault.http(status, retry_after)] * n)

    def inject(self, *faults: Fault) -> None:
        """Queue faults for the next requests, one each, in order (Fault.ok() lets one through)."""
        self._faults.push(faults)

    @property
    def pending_faults(self) -> int:
        return self._faults.pending

    # --- recording --------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, operation: Operation) -> list[RecordedRequest]:
        return [r for r in self.requests if r.operation == operation]

    def clear(self) -> None:
        """Forget recorded requests and pending faults (the scenario stays)."""
        with self._lock:
            self._requests.clear()
        self._faults.reset()

    # --- the request path -------------------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _sample(self, fn: Callable[[random.Random], float]) -> float:
        with self._lock:
            return fn(self._rng)

    def _handle(self, h: _Handler) -> None:
        rec, deployment = self._record(h)
        with self._lock:
            scenario = self._scenario
        azure = deployment is not None or rec.path.startswith("/openai")
        wire = wires.for_provider(rec.provider)
        meta = wire.headers(rec.request_id) if wire else _headers(rec.provider or "openai", rec.request_id, azure)
        if rec.operation is None or rec.provider is None:
            return self._error(h, rec, meta, 404, f"Invalid URL ({rec.method} {rec.path})")
        if rec.operation == "models":
            names = sorted({*scenario.response_models, *scenario.models} - {"*"}) or ["gpt-4o-mini"]
            return self._send(h, rec, meta, openai_wire.models_list(names, int(time.time())))
        if not isinstance(rec.body, dict):
            return self._error(h, rec, meta, 400, "We could not parse the JSON body of your request.")
        if not rec.model:
            return self._error(h, rec, meta, 400, "you must provide a model parameter")

        fault = self._pick_fault(rec.headers, scenario)
        if fault is not None and fault.kind != "ok":
            rec.fault = str(fault)
        if fault is not None and fault.kind == "status":
            return self._error(h, rec, meta, fault.status, fault.message, fault)
        if fault is not None and fault.kind == "timeout":
            self._sleep(fault.seconds)  # longer than the client's timeout: it gives up first
            h.close_connection = True
            return None

        sc = scenario.for_model(rec.model)
        try:
            reply = self._reply(rec, sc)
        except Exception as exc:  # a broken scenario must show up in the test, not as a hang or a retry loop
            bad = Fault.http(500, should_retry=False)
            return self._error(h, rec, meta, 500, f"fake provider scenario error: {exc!r}", bad)
        cut = fault.after_chunks if fault is not None and fault.kind == "cut" else None
        if rec.operation == "count_tokens":
            return self._send(h, rec, meta, anthropic_wire.count_tokens(reply.usage))
        if not rec.stream or rec.operation == "embeddings":
            generation = sc.seconds_per_output_token * reply.usage.output_tokens
            self._sleep(self._sample(sc.latency.sample) + generation)
            body = wire.render(rec.operation, reply) if wire else _RENDER[rec.operation](reply)
            return self._send(h, rec, meta, body, cut=cut is not None)
        events = wire.stream(rec.operation, reply) if wire else _STREAM[rec.operation](reply)
        return self._stream(h, rec, meta, events, sc, cut, reply.usage.output_tokens, wire)

    def _record(self, h: _Handler) -> tuple[RecordedRequest, str | None]:
        """Read and record the request before anything can fail, so every attempt is counted."""
        seq = next(self._seq)
        raw = h.read_body()
        url = urlsplit(h.path)
        headers = {k.lower(): v for k, v in h.headers.items()}
        provider, op, deployment = route(url.path) or (None, None, None)
        extra = wires.route(url.path) if op is None else None  # a further provider's wire (Gemini, Bedrock, …)
        if extra is not None:
            provider, op, deployment = extra[1].provider, extra[1].operation, extra[1].model  # type: ignore[assignment]
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw  # kept as bytes; answered with a 400
        jbody: dict[str, Any] = body if isinstance(body, dict) else {}
        retry = headers.get("x-stainless-retry-count", "0")
        rec = RecordedRequest(
            seq=seq,
            method=h.command,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers=headers,
            body=body,
            provider=provider,
            operation=op,
            model=str(jbody.get("model") or deployment or "") or None,
            stream=jbody.get("stream") is True if extra is None or extra[1].stream is None else extra[1].stream,
            attempt=int(retry) if retry.isdigit() else 0,
            request_id=f"req_fake{seq:020d}",
            received_at=time.time(),
        )
        with self._lock:
            self._requests.append(rec)
        return rec, deployment

    def _pick_fault(self, headers: dict[str, str], scenario: Scenario) -> Fault | None:
        fault = self._faults.from_header(headers) or self._faults.next_queued()
        if fault is None and scenario.fault_rate > 0 and scenario.random_faults:
            with self._lock:
                if self._rng.random() < scenario.fault_rate:
                    fault = self._rng.choice(list(scenario.random_faults))
        return fault

    def _reply(self, rec: RecordedRequest, sc: Scenario) -> Reply:
        assert rec.provider is not None and rec.operation is not None and rec.model is not None
        wire = wires.for_provider(rec.provider)
        if wire is not None:
            prompt_text, prompt_tokens = wire.prompt_of(rec.operation, rec.body, rec.model)
            max_tokens = wire.max_tokens_of(rec.operation, rec.body, rec.model)
        else:
            prompt_text, prompt_tokens = prompt_of(rec.operation, rec.body)
            max_tokens = max_tokens_of(rec.operation, rec.body)
        info = RequestInfo(
            provider=rec.provider,
            operation=rec.operation,
            model=rec.model,
            body=rec.body,
            headers=rec.headers,
            prompt_text=prompt_text,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            stream=rec.stream,
            seq=rec.seq,
        )
        usage, truncated = sc.compute_usage(info)
        text = sc.reply_text(info)
        rec.usage = usage
        return Reply(
            req=info,
            id=f"fake{rec.seq:020d}",
            model=sc.response_model(rec.model),
            text=text,
            pieces=split_pieces(text, sc.stream_chunks),
            usage=usage,
            truncated=truncated,
            created=int(time.time()),
            embedding_dims=sc.embedding_dims,
            anthropic_full_delta_usage=sc.anthropic_full_delta_usage,
        )

    def _send(self, h: _Handler, rec: RecordedRequest, meta: dict[str, str], body: Any, *, cut: bool = False) -> None:
        rec.status = 200
        if cut:
            return _cut_body(h, body, meta)
        self._finish(rec, lambda: h.send_json(200, body, meta))
        return None

    def _error(
        self,
        h: _Handler,
        rec: RecordedRequest,
        meta: dict[str, str],
        status: int,
        message: str | None = None,
        fault: Fault | None = None,
    ) -> None:
        headers = dict(meta)
        if fault is not None and fault.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(fault.retry_after)))  # whole seconds, rounded up
            headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
        if fault is not None and fault.should_retry is not None:
            headers["x-should-retry"] = "true" if fault.should_retry else "false"
        model = rec.model or ""
        wire = wires.for_provider(rec.provider)
        if wire is not None:
            extra_headers, body = wire.error(status, model, rec.request_id, message)
            headers.update(extra_headers)
        elif rec.provider == "anthropic":
            body = anthropic_wire.error_body(status, model, rec.request_id, message)
        else:
            body = openai_wire.error_body(status, model, message)
        rec.status = status
        self._finish(rec, lambda: h.send_json(status, body, headers))

    def _stream(
        self,
        h: _Handler,
        rec: RecordedRequest,
        meta: dict[str, str],
        events: list[bytes],
        sc: Scenario,
        cut_after: int | None,
        output_tokens: int = 0,
        wire: wires.Wire | None = None,
    ) -> None:
        rec.status = 200
        h.start_stream(meta, wire.stream_content_type if wire else wires.SSE_CONTENT_TYPE)
        per_event = sc.seconds_per_output_token * output_tokens / max(1, len(events) - 1)
        for i, event in enumerate(events):
            if cut_after is not None and i >= cut_after:
                h.close_connection = True  # drop the socket without the terminating chunk
                return
            self._sleep(self._sample((sc.ttft or sc.latency).sample) if i == 0
                        else self._sample(sc.inter_chunk.sample) + per_event)
            if self._stopping.is_set():
                h.close_connection = True
                return
            h.write_chunk(event)
        self._finish(rec, h.end_stream)

    @staticmethod
    def _finish(rec: RecordedRequest, write_last: Callable[[], None]) -> None:
        # Marked before the last write: once the client holds the whole body it may look at
        # `completed` at once, before this thread would get to set it afterwards.
        rec.completed = True
        try:
            write_last()
        except BaseException:
            rec.completed = False
            raise


_RENDER: dict[Operation, Callable[[Reply], dict[str, Any]]] = {
    "chat": openai_wire.chat_completion,
    "text_completion": openai_wire.completion,
    "embeddings": openai_wire.embeddings,
    "responses": openai_wire.response_object_final,
    "messages": anthropic_wire.message,
}
_STREAM: dict[Operation, Callable[[Reply], list[bytes]]] = {
    "chat": openai_wire.chat_stream,
    "text_completion": openai_wire.completion_stream,
    "responses": openai_wire.response_stream,
    "messages": anthropic_wire.message_stream,
}


def _cut_body(h: _Handler, body: Any, meta: dict[str, str]) -> None:
    """A non-stream answer that announces its full length but stops half-way."""
    data = json.dumps(body).encode()
    h.send_response(200)
    for k, v in meta.items():
        h.send_header(k, v)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data[: len(data) // 2])
    h.wfile.flush()
    h.close_connection = True


def _headers(provider: Provider, request_id: str, azure: bool) -> dict[str, str]:
    if provider == "anthropic":
        return {
            "request-id": request_id,
            "anthropic-organization-id": "00000000-0000-0000-0000-00000000fa4e",
            "anthropic-ratelimit-requests-limit": "4000",
            "anthropic-ratelimit-requests-remaining": "3999",
        }
    out = {
        "x-request-id": request_id,
        "openai-version": "2020-10-01",
        "openai-organization": "promptpulse-fake",
        "openai-processing-ms": "1",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-limit-tokens": "10000000",
        "x-ratelimit-remaining-tokens": "9999000",
    }
    if azure:
        out["apim-request-id"] = request_id
        out["x-ms-region"] = "fake-region"
    return out
