"""Stalled-connection probe for the OTLP/HTTP receiver (issue 16 §3): open N connections on loopback that stall
(nothing sent, half a request line, headers without the body, or a body trickled a byte at a time) and count the
process's threads (threading.active_count()) before, while held and after the deadline.

In-process receiver with a null writer (no request completes, so nothing is stored). Usage:
  .venv/bin/python bench/bench_http_stall.py [--connections 1000] [--timeout 2] [--kind headers] [--wait 10]
"""

from __future__ import annotations

import argparse
import inspect
import socket
import sys
import threading
import time
from typing import Any

from promptpulse.processor.receiver import otlp_http

KINDS = {
    "nothing": b"",
    "request-line": b"POST /v1/tr",
    "headers": b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n",
    "body": b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1000\r\n\r\n\n",
}


class _NullWriter:
    def takes_request_bodies(self) -> bool:
        return False

    def submit(self, *_a: Any, **_k: Any) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=2.0, help="header/body/idle deadline of the receiver (s)")
    ap.add_argument("--kind", choices=[*sorted(KINDS), "trickle"], default="headers",
                    help="what each connection sends before stalling; trickle: one header byte every 0.5 s")
    ap.add_argument("--wait", type=float, default=10.0, help="how long to watch the thread count after opening")
    a = ap.parse_args()

    ingest = otlp_http.Ingest(_NullWriter())  # type: ignore[arg-type]
    kw: dict[str, Any] = {"max_body_bytes": 32 << 20}
    if "limits" in inspect.signature(otlp_http.make_server).parameters:  # this tree has the deadlines
        from promptpulse.processor.http_limits import Limits

        kw["limits"] = Limits(header_timeout_s=a.timeout, body_timeout_s=a.timeout, idle_timeout_s=a.timeout,
                              max_connections=max(1024, a.connections + 10))
    else:
        print("(this tree's receiver has no deadlines: make_server takes no limits)")
    otlp_http._Server.request_queue_size = 4096  # listen backlog: a burst of N connects without SYN retries
    srv = otlp_http.make_server("127.0.0.1", 0, ingest, **kw)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = srv.server_address[1]
    socket.create_connection(("127.0.0.1", port)).close()  # warm up: the deadline reaper thread starts lazily
    time.sleep(0.3)
    before = threading.active_count()
    data = KINDS.get(a.kind, KINDS["headers"])
    socks: list[socket.socket] = []
    t0 = time.monotonic()
    for _ in range(a.connections):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if data:
            s.sendall(data)
        socks.append(s)
    opened = time.monotonic() - t0
    stop = threading.Event()
    if a.kind == "trickle":
        def trickle() -> None:
            while not stop.wait(0.5):
                for s in socks:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
        threading.Thread(target=trickle, daemon=True).start()
    held = threading.active_count()
    peak, released_at = held, None
    samples = []
    t1 = time.monotonic()
    while time.monotonic() - t1 < a.wait:
        n = threading.active_count()
        peak = max(peak, n)
        if released_at is None and n <= before + (a.kind == "trickle"):  # + the trickling thread
            released_at = time.monotonic() - t1
        samples.append((round(time.monotonic() - t1, 1), n))
        time.sleep(0.1)
    after = threading.active_count()
    stop.set()
    for s in socks:
        s.close()
    every = max(1, len(samples) // 12)
    print(f"python {sys.version.split()[0]}  kind={a.kind}  connections={a.connections}  deadline={a.timeout}s")
    back = "never" if released_at is None else f"{released_at:.2f}s after the last connect"
    print(f"threads: before={before}  when all were open={held}  peak={peak}  {a.wait:.0f}s later={after}  "
          f"(opened in {opened:.2f}s; back to the start count: {back})")
    print("samples (s, threads):", samples[::every])
    srv.shutdown()
    srv.server_close()


if __name__ == "__main__":
    main()
