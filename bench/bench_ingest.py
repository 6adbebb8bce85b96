"""Ingest benchmark: spans/s over OTLP/HTTP into `promptpulse serve` (embedded chDB), measured until queryable.

Realistic GenAI spans (~25 attributes) in requests of 512 spans, sent over keep-alive connections; the clock stops
when `SELECT count() FROM otel_traces` returns the total. Also: the processor's peak RSS (VmHWM), and the decoder
alone in-process. Usage: .venv/bin/python bench/bench_ingest.py [--requests 200] [--clients 2] [--no-fsync]
[--receiver stdlib|asgi|both] [--rounds 1] [--http-only]. ``both`` alternates the stdlib OTLP/HTTP receiver and
the ASGI one (bench/otlp_asgi_receiver.py: uvicorn) round by round in one run, and prints each run and a summary.
``--http-only``: the receivers in this process over a writer that drops what it gets (the engine check of each body
still runs, as in serve): the HTTP servers' own share, without the store's inserts and their noise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import marshal
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


def make_spans(n: int, seed: int) -> list:
    rnd = random.Random(seed)
    exp = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "bench-app", "deployment.environment.name": "prod"}))
    tp.add_span_processor(SimpleSpanProcessor(exp))
    tr = tp.get_tracer("promptpulse.instrumentation.openai", "0.1.0")
    for i in range(n):
        model = rnd.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"])
        with tr.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT) as s:
            s.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": model, "gen_ai.response.model": model + "-2024-08-06",
                "gen_ai.request.stream": False, "gen_ai.request.max_tokens": 1024,
                "gen_ai.request.temperature": 0.7, "gen_ai.request.top_p": 1.0,
                "gen_ai.response.id": f"chatcmpl-{rnd.getrandbits(64):x}",
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.usage.input_tokens": rnd.randint(10, 4000), "gen_ai.usage.output_tokens": rnd.randint(1, 800),
                "gen_ai.usage.cache_read.input_tokens": 0, "gen_ai.prompt.name": f"prompt_{i % 12}",
                "gen_ai.prompt.version": f"1.{i % 3}.0", "gen_ai.conversation.id": f"conv-{rnd.randint(0, 500)}",
                "user.id": f"user-{rnd.randint(0, 1000)}", "session.id": f"sess-{rnd.randint(0, 700)}",
                "server.address": "api.openai.com", "server.port": 443, "http.response.status_code": 200,
                "promptpulse.cost.usd": rnd.random() / 100, "promptpulse.feature": "support",
                "promptpulse.tags": ["beta", "eu"], "promptpulse.prompt.fingerprint": f"{rnd.getrandbits(64):016x}",
            })
            if i % 20 == 0:
                s.set_attribute("error.type", "RateLimitError")
                s.set_attribute("promptpulse.error.category", "rate_limit")
                s.set_status(Status(StatusCode.ERROR, "rate limited"))
    return list(exp.get_finished_spans())


def _bytes_per_row(data_dir: Path) -> dict[str, float]:
    """Compressed bytes per row of otel_traces and llm_calls, read from the data dir once serve has stopped
    (system.parts is not among the tables /api/query may read)."""
    from promptpulse.processor.store.embedded import EmbeddedStore

    store = EmbeddedStore(str(data_dir))
    try:
        rows = store.query("SELECT table, sum(rows), sum(data_compressed_bytes) FROM system.parts WHERE active AND "
                           "database = currentDatabase() AND table IN ('otel_traces', 'llm_calls') GROUP BY table").rows
    finally:
        store.close()
    return {r[0]: round(int(r[2]) / max(int(r[1]), 1), 1) for r in rows}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def decoder_only(bodies: list[bytes]) -> float:
    from promptpulse.processor.receiver import decode

    t = time.perf_counter()
    n = sum(len(decode.decode_protobuf(b).rows) for b in bodies)
    return n / (time.perf_counter() - t)


def load_bodies(requests: int) -> list[bytes]:
    t = time.perf_counter()
    cache = Path(tempfile.gettempdir()) / f"pp-bench-bodies-{requests}.marshal"
    if cache.exists():  # the same deterministic bodies (seeded), generated once: the SDK takes ~17 s for 200
        bodies = marshal.loads(cache.read_bytes())
    else:
        # one request per seed: distinct spans and ids, so distinct dedup tokens
        bodies = [encode_spans(make_spans(512, seed)).SerializeToString() for seed in range(requests)]
        cache.write_bytes(marshal.dumps(bodies))
    print(f"generated {requests} x 512 spans in {time.perf_counter() - t:.1f} s, "
          f"{len(bodies[0]) / 512:.0f} B/span on the wire", file=sys.stderr)
    return bodies


RECEIVERS = {"stdlib": None, "asgi": Path(__file__).with_name("otlp_asgi_receiver.py")}


def run_once(bodies: list[bytes], a: argparse.Namespace, receiver: str = "stdlib") -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pp-bench-"))
    ports = {"grpc": _port(), "http": _port(), "api": _port()}
    env = {**os.environ, "PROMPTPULSE_SPOOL_FSYNC": "0" if a.no_fsync else "1"}
    script = RECEIVERS[receiver]
    cmd = [sys.executable, str(script)] if script else [str(Path(sys.executable).with_name("promptpulse"))]
    proc = subprocess.Popen([*cmd, "serve", "--data-dir",
                             str(tmp / "data"), "--otlp-grpc-port", str(ports["grpc"]), "--otlp-http-port",
                             str(ports["http"]), "--api-port", str(ports["api"]), "--log-level", "WARNING"],
                            env=env, stdout=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{ports['api']}"
    while True:
        try:
            urllib.request.urlopen(api + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)

    def count() -> int:
        req = urllib.request.Request(api + "/api/query", json.dumps({"sql": "SELECT count() FROM otel_traces"})
                                     .encode(), method="POST")
        return int(json.load(urllib.request.urlopen(req))["rows"][0][0])

    total = 512 * len(bodies)
    codes: dict[int, int] = {}

    def client(mine: list[bytes]) -> None:
        c = http.client.HTTPConnection("127.0.0.1", ports["http"])
        for b in mine:
            while True:
                c.request("POST", "/v1/traces", b, {"Content-Type": "application/x-protobuf"})
                r = c.getresponse()
                r.read()
                codes[r.status] = codes.get(r.status, 0) + 1
                if r.status == 200:
                    break
                time.sleep(float(r.headers.get("Retry-After") or 1))

    spy = None
    if a.py_spy:
        spy = subprocess.Popen(["py-spy", "record", "--gil", "-r", "250", "-f", "raw",
                                "-o", a.py_spy, "--pid", str(proc.pid)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    t0 = time.perf_counter()
    ths = [threading.Thread(target=client, args=(bodies[i::a.clients],)) for i in range(a.clients)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    t_ack = time.perf_counter() - t0
    while count() < total:
        time.sleep(0.05)
    t_q = time.perf_counter() - t0
    with open(f"/proc/{proc.pid}/stat") as fh:  # utime + stime of the processor, start-up included
        cpu_s = sum(int(x) for x in fh.read().rsplit(")", 1)[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")
    rss = 0
    with open(f"/proc/{proc.pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                rss = int(line.split()[1]) // 1024
    if spy:
        spy.send_signal(2)
        spy.wait(30)
    proc.terminate()
    proc.wait(60)
    storage = _bytes_per_row(tmp / "data")
    return {"receiver": receiver, "spans": total, "requests": len(bodies), "clients": a.clients,
            "fsync": not a.no_fsync, "spans_per_s_acknowledged": round(total / t_ack),
            "spans_per_s_queryable": round(total / t_q), "seconds_until_queryable": round(t_q, 2),
            "peak_rss_mb": rss, "processor_cpu_s": round(cpu_s, 2), "http_codes": codes,
            "compressed_bytes_per_row_as_ingested": storage}


class _DropWriter:
    """A writer that takes request bodies (so Ingest runs the engine check, as serve does) and drops them."""

    def takes_request_bodies(self) -> bool:
        return True

    def submit(self, *_a: object, **_k: object) -> None:
        pass


def run_http_only(bodies: list[bytes], a: argparse.Namespace, receiver: str) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    import otlp_asgi_receiver

    from promptpulse.processor.receiver import otlp_http

    ingest = otlp_http.Ingest(_DropWriter())  # type: ignore[arg-type]
    make = otlp_http.make_server if receiver == "stdlib" else otlp_asgi_receiver.make_server
    srv = make("127.0.0.1", 0, ingest, max_body_bytes=32 << 20)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = srv.server_address[1]
    codes: dict[int, int] = {}
    cpu0 = time.process_time()

    def client(mine: list[bytes]) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port)
        for b in mine:
            c.request("POST", "/v1/traces", b, {"Content-Type": "application/x-protobuf"})
            r = c.getresponse()
            r.read()
            codes[r.status] = codes.get(r.status, 0) + 1

    t0 = time.perf_counter()
    ths = [threading.Thread(target=client, args=(bodies[i::a.clients],)) for i in range(a.clients)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    dt_s = time.perf_counter() - t0
    cpu = time.process_time() - cpu0  # server and clients (same process)
    srv.shutdown()
    srv.server_close()
    return {"receiver": receiver, "mode": "http-only", "requests": len(bodies), "clients": a.clients,
            "requests_per_s": round(len(bodies) / dt_s, 1), "spans_per_s_acknowledged": round(512 * len(bodies) / dt_s),
            "ms_per_request": round(1e3 * dt_s / len(bodies), 2), "process_cpu_s": round(cpu, 2),
            "http_codes": codes, "accepted_spans": ingest.counters["accepted_spans"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--receiver", choices=(*RECEIVERS, "both"), default="stdlib",
                    help="OTLP/HTTP server: the stdlib one (processor/receiver/otlp_http.py), the ASGI candidate "
                         "(bench/otlp_asgi_receiver.py), or both alternating")
    ap.add_argument("--rounds", type=int, default=1, help="runs per receiver (alternating with --receiver both)")
    ap.add_argument("--http-only", action="store_true", help="in-process receivers, bodies checked and dropped")
    ap.add_argument("--py-spy", metavar="OUT", help="record the processor with py-spy (on PATH) into OUT (speedscope)")
    a = ap.parse_args()
    bodies = load_bodies(a.requests)
    dec = decoder_only(bodies[:20])
    order = list(RECEIVERS) if a.receiver == "both" else [a.receiver]
    runs = []
    for _ in range(a.rounds):
        for receiver in order:
            doc = run_http_only(bodies, a, receiver) if a.http_only else {
                **run_once(bodies, a, receiver), "decoder_only_spans_per_s": round(dec)}
            print(json.dumps(doc), flush=True)
            runs.append(doc)
    if len(runs) > 1:
        summary = {}
        for receiver in order:
            mine = [r for r in runs if r["receiver"] == receiver]
            summary[receiver] = {k: sorted(r[k] for r in mine) for k in
                                 ("spans_per_s_acknowledged", "spans_per_s_queryable", "peak_rss_mb", "process_cpu_s",
                                           "processor_cpu_s")
                                 if k in mine[0]}
        print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
