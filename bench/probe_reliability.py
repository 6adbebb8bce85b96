"""Reliability probe: `promptpulse serve` under bad input, kill -9, bursts, a store outage and injection attempts —
bounded, seeded, loopback only. Prints one figure line per phase (docs/PROCESSOR.md, Reliability, quotes them).

    .venv/bin/python bench/probe_reliability.py [--http 4000] [--grpc 1200] [--kills 3] [--seed 16]

Phases:
  malformed   seeded mutants (promptpulse.testing.otlp_mutants) over OTLP/HTTP (protobuf, JSON) and gRPC, valid
              spans after every 50: answers by code, spans accepted / stored / dead-lettered, valid spans lost
  kill9       a client sends unique requests and resends a request whose answer it did not get (as exporters
              do), while the processor is killed with SIGKILL and restarted: spans lost and doubled
  burst       8 clients x 40 requests of 256 spans against a small queue: 429s, then everything stored once
  outage      a ClickHouse server (the loopback server over chDB) killed mid-ingest and restarted: lost, doubled
  injection   /api/query forms that reach files, URLs, settings or a second statement: refused of tried
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import make_spans

from promptpulse.processor.receiver import decode, engine_decode
from promptpulse.testing.otlp_mutants import mutants, otlp_json

BIN = str(Path(sys.executable).with_name("promptpulse"))
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    def __init__(self, tmp: Path, *extra: str, ports: tuple[int, int, int] | None = None) -> None:
        self.tmp, self.extra = tmp, extra
        self.grpc, self.http, self.api = ports or (_port(), _port(), _port())
        self.start()

    def start(self) -> None:
        args = [BIN, "serve", "--data-dir", str(self.tmp / "data"), "--spool-dir", str(self.tmp / "spool"),
                "--otlp-grpc-port", str(self.grpc), "--otlp-http-port", str(self.http), "--api-port", str(self.api),
                "--batch-max-age", "0.2", "--log-level", "WARNING", *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.tmp / "serve.log", "ab"))  # noqa: SIM115
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.api}/healthz", timeout=1)
                return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(60)

    def post(self, body: bytes, ctype: str = "application/x-protobuf") -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}/v1/traces", body, {"Content-Type": ctype})
        try:
            return urllib.request.urlopen(req, timeout=30).status
        except urllib.error.HTTPError as e:
            return e.code

    def api_post(self, sql: str, timeout: float = 60) -> tuple[int, dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.api}/api/query", json.dumps({"sql": sql}).encode())
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
        except TimeoutError:
            return 0, {"error": "no answer (it ran)"}

    def query(self, sql: str) -> list:
        code, doc = self.api_post(sql)
        assert code == 200, doc
        return doc["rows"]

    def metrics(self) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.api}/metrics", timeout=10).read().decode()
        return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines() if ln and not ln.startswith("#")}

    def drain(self) -> dict[str, float]:
        deadline = time.monotonic() + 120
        while (m := self.metrics())["promptpulse_queue_spans"] > 0:
            assert time.monotonic() < deadline, m
            time.sleep(0.2)
        return m


def _grpc(channel: grpc.Channel, body: bytes) -> str:
    try:
        channel.unary_unary(EXPORT)(body, timeout=30)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def _unique(seed: int, n: int) -> tuple[bytes, list[str]]:
    spans = make_spans(n, seed)
    return encode_spans(spans).SerializeToString(), [f"{s.context.trace_id:032x}{s.context.span_id:016x}"
                                                     for s in spans]


def _stored(s: Serve, ids: list[str]) -> tuple[int, int]:
    """(ids found, rows holding them) in otel_traces."""
    found = rows = 0
    for i in range(0, len(ids), 2000):
        part = ",".join(f"'{x}'" for x in ids[i:i + 2000])
        f, r = s.query(f"SELECT uniqExact(concat(TraceId, SpanId)), count() FROM otel_traces "
                       f"WHERE concat(TraceId, SpanId) IN ({part})")[0]
        found, rows = found + int(f), rows + int(r)
    return found, rows


def malformed(tmp: Path, n_http: int, n_grpc: int, seed: int) -> str:
    s = Serve(tmp)
    rnd = random.Random(seed)
    pb, _ = _unique(seed, 4)
    doc = otlp_json(encode_spans(make_spans(4, seed)))
    todo = mutants(rnd, pb, doc, n_http * 3 // 2)  # 2/3 over HTTP …
    todo = [m for m in todo if m[0] != "grpc"] + [("grpc", b) for k, b in mutants(rnd, pb, doc, n_grpc * 3)
                                                    if k == "grpc"][:n_grpc]  # … and n_grpc over gRPC
    answers: Counter[str] = Counter()
    channel = grpc.insecure_channel(f"127.0.0.1:{s.grpc}")
    ids: list[str] = []
    seen: set[bytes] = set()
    expired = 0  # accepted spans (not resent) whose start time is before the retention window
    horizon = (time.time() - 14 * 86400) * 1e9
    for i, (kind, body) in enumerate(todo):
        if kind == "grpc":
            answer = _grpc(channel, body)
            ok = answer == "OK"
            answers[f"grpc {answer}"] += 1
        else:
            code = s.post(body, "application/json" if kind == "json" else "application/x-protobuf")
            ok = code == 200
            answers[f"{kind} {code}"] += 1
        if ok and body not in seen:
            seen.add(body)
            res = decode.decode_json(body) if kind == "json" else engine_decode.decode_protobuf(body)
            expired += sum(1 for row in res.rows if row[0] < horizon)
        if i % 50 == 49:
            vb, vids = _unique(seed * 1000 + i, 8)
            ids += vids
            assert (_grpc(channel, vb) == "OK") if i % 100 == 99 else (s.post(vb) == 200)
    m = s.drain()
    found, _ = _stored(s, ids)
    stored = s.query("SELECT count() FROM otel_traces")[0][0]
    s.stop()
    return (f"malformed: {len(todo)} requests ({sum(v for k, v in answers.items() if k.startswith('grpc'))} gRPC); "
            f"answers {dict(sorted(answers.items()))}; spans accepted {m['promptpulse_spans_accepted_total']:.0f}, "
            f"stored {stored}, {expired} older than the 14-day retention (the TTL drops them on merge), resends not "
            f"stored again {m['promptpulse_duplicate_spans_total']:.0f}, "
            f"dead-lettered {m['promptpulse_deadletter_spans_total']:.0f}; valid spans after them lost "
            f"{len(ids) - found} of {len(ids)}")


def _resending_client(port: int, bodies: list[tuple[bytes, list[str]]], acked: list[str], resent: list[int]) -> None:
    """Sends each body until it is answered 200; a body whose answer did not come is sent again, as exporters do."""
    for body, ids in bodies:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                if conn.getresponse().status == 200:
                    acked.extend(ids)
                    break
            except OSError:
                pass
            resent[0] += 1
            time.sleep(0.2)


def kill9(tmp: Path, kills: int, seed: int) -> str:
    rnd = random.Random(seed)
    lost = doubled = acked_total = 0
    resent = [0]
    for k in range(kills):
        d = tmp / f"kill{k}"
        d.mkdir()
        s = Serve(d)
        bodies = [_unique(seed * 10_000 + k * 1000 + i, 64) for i in range(300)]
        acked: list[str] = []
        t = threading.Thread(target=_resending_client, args=(s.http, bodies, acked, resent))
        t.start()
        at = rnd.randint(20, 200) * 64
        while len(acked) < at:  # mid-ingest: after a random number of answered requests
            time.sleep(0.001)
        s.stop(signal.SIGKILL)
        s.start()
        t.join()
        s.drain()
        found, rows = _stored(s, [x for _, ids in bodies for x in ids])
        acked_set = set(acked)
        lost += len(acked_set) - min(found, len(acked_set))
        doubled += rows - found
        acked_total += len(acked_set)
        s.stop()
    return (f"kill9: {kills} kill -9 mid-ingest, {acked_total} spans acknowledged, {resent[0]} resends; "
            f"lost {lost}, doubled {doubled}")


def burst(tmp: Path, seed: int) -> str:
    s = Serve(tmp, "--queue-max-spans", "600")
    codes: Counter[int] = Counter()
    ids: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        for i in range(40):
            body, mine = _unique(seed * 100_000 + c * 1000 + i, 256)
            while True:
                code = s.post(body)
                with lock:
                    codes[code] += 1
                if code == 200:
                    with lock:
                        ids.extend(mine)
                    break
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s.drain()
    found, rows = _stored(s, ids)
    s.stop()
    return f"burst: answers {dict(sorted(codes.items()))}; {len(ids)} spans acknowledged, lost {len(ids) - found}, " \
           f"doubled {rows - found}"


_CH = """
import sys, time
from promptpulse.testing.clickhouse_http import ClickHouseHTTPServer
ClickHouseHTTPServer(sys.argv[1], port=int(sys.argv[2])).start()
print("ready", flush=True)
time.sleep(10**6)
"""


def outage(tmp: Path, seed: int) -> str:
    port = _port()

    def clickhouse() -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", _CH, str(tmp / "ch"), str(port)], stdout=subprocess.PIPE,
                             text=True)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        return p

    ch = clickhouse()
    s = Serve(tmp, "--clickhouse-url", f"http://127.0.0.1:{port}/pp_probe?compress=false")
    ids: list[str] = []
    codes: Counter[int] = Counter()
    for i in range(120):
        if i == 40:
            ch.kill()
            ch.wait()
        if i == 90:
            ch = clickhouse()
        body, mine = _unique(seed * 7 + i, 64)
        code = s.post(body)
        codes[code] += 1
        if code == 200:
            ids += mine
    s.drain()
    found, rows = _stored(s, ids)
    m = s.metrics()
    s.stop()
    ch.kill()
    return (f"outage: store killed for 50 of 120 requests; answers {dict(codes)}; spooled "
            f"{m['promptpulse_spans_spooled_total']:.0f} spans; {len(ids)} acknowledged, lost {len(ids) - found}, "
            f"doubled {rows - found}")


INJECTIONS = [
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV')",
    "SELECT * FROM remote('127.0.0.1:9000', system.one)",
    "SELECT * FROM executable('id', 'TSV', 'x String')",
    "SELECT * FROM mysql('127.0.0.1:3306', 'd', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:5432', 'd', 't', 'u', 'p')",
    "SELECT 1 INTO OUTFILE '/tmp/promptpulse-probe-outfile'",
    "SELECT 1 SETTINGS max_memory_usage = 100000000000",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT 1 -- '\n; DROP TABLE otel_traces",
    "SELECT 1; SELECT 2",
    "SELECT * FROM system.users",
    "SELECT * FROM default.t",
    "INSERT INTO otel_traces (TraceId) VALUES ('x')",
    "DROP TABLE otel_traces",
    "SET readonly = 0",
    "SELECT file('/etc/passwd')",
    "WITH x AS (SELECT * FROM file('/etc/passwd', 'LineAsString')) SELECT * FROM x",
    "SELECT * FROM llm_calls WHERE trace_id IN (SELECT * FROM url('http://127.0.0.1:9/', 'TSV', 'x String'))",
]


def injection(tmp: Path) -> str:
    s = Serve(tmp)
    refused = 0
    ran = []
    for sql in INJECTIONS:
        code, _doc = s.api_post(sql, timeout=10)
        if code == 400:
            refused += 1
        else:
            ran.append((code, sql))
    literal = s.api_post("SELECT '\\'; DROP TABLE otel_traces; --'")  # a string, not a statement: runs
    ok = s.api_post("SELECT count() FROM otel_traces")[0]  # and the table is still there
    s.stop()
    return (f"injection: {refused} of {len(INJECTIONS)} forms refused (400); ran: {ran}; a literal holding "
            f"'; DROP …': {literal[0]} {literal[1].get('rows')}; otel_traces afterwards: {ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--http", type=int, default=4000)
    ap.add_argument("--grpc", type=int, default=1200)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--phases", default="malformed,kill9,burst,outage,injection")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pp-probe-") as d:
        tmp = Path(d)
        for phase in a.phases.split(","):
            (tmp / phase).mkdir()
            t0 = time.monotonic()
            if phase == "malformed":
                line = malformed(tmp / phase, a.http, a.grpc, a.seed)
            elif phase == "kill9":
                line = kill9(tmp / phase, a.kills, a.seed)
            elif phase == "burst":
                line = burst(tmp / phase, a.seed)
            elif phase == "outage":
                line = outage(tmp / phase, a.seed)
            else:
                line = injection(tmp / phase)
            print(f"{line}  [{time.monotonic() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
