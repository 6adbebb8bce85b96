"""`promptpulse serve` in a subprocess, fed by the official OTLP exporters (HTTP and gRPC)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fakes import genai_spans
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

BIN = str(Path(sys.executable).with_name("promptpulse"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    def __init__(self, tmp: Path, *extra: str, spool: Path | None = None) -> None:
        self.grpc, self.http, self.api = _port(), _port(), _port()
        args = [BIN, "serve", "--data-dir", str(tmp / "data"), "--otlp-grpc-port", str(self.grpc),
                "--otlp-http-port", str(self.http), "--api-port", str(self.api), "--batch-max-age", "0.2",
                "--spool-dir", str(spool or tmp / "spool"), *extra]
        self.log = open(tmp / "serve.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.api}/healthz", timeout=1)
                break
            except OSError:
                assert self.proc.poll() is None, (tmp / "serve.log").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}/v1/traces"

    def query(self, sql: str) -> list:
        req = urllib.request.Request(f"http://127.0.0.1:{self.api}/api/query", json.dumps({"sql": sql}).encode(),
                                     method="POST")
        try:
            return json.load(urllib.request.urlopen(req, timeout=30))["rows"]
        except urllib.error.HTTPError as e:  # say why
            raise AssertionError(f"{e.code} {e.read()[:2000]!r} for {sql[:300]}") from None

    def wait_count(self, n: int, table: str = "otel_traces", timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while (c := self.query(f"SELECT count() FROM {table}")[0][0]) != n:
            assert c < n and time.monotonic() < deadline, c
            time.sleep(0.1)

    def post(self, body: bytes, ctype: str = "application/x-protobuf", **headers: str):
        req = urllib.request.Request(self.url, body, {"Content-Type": ctype, **headers}, method="POST")
        try:
            r = urllib.request.urlopen(req, timeout=10)
            return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(30)
        self.log.close()


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    s = Serve(tmp_path_factory.mktemp("serve"), "--max-body-bytes", "2000000")
    yield s
    s.stop()
    assert s.proc.returncode == 0


def test_official_exporters_exact_counts_and_api(serve: Serve) -> None:
    spans = genai_spans(300, service="e2e")
    assert HttpExporter(endpoint=serve.url).export(spans[:200]) == SpanExportResult.SUCCESS
    assert GrpcExporter(endpoint=f"127.0.0.1:{serve.grpc}", insecure=True).export(spans[200:]) == \
        SpanExportResult.SUCCESS
    serve.wait_count(300)
    serve.wait_count(300, "llm_calls")
    want_in = sum(s.attributes["gen_ai.usage.input_tokens"] for s in spans)
    assert serve.query("SELECT sum(input_tokens), uniqExact(span_id) FROM llm_calls WHERE service = 'e2e'") == \
        [[str(want_in) if isinstance(want_in, str) else want_in, 300]]
    day = dt.date.today()
    start, end = (day - dt.timedelta(days=1)).isoformat(), (day + dt.timedelta(days=1)).isoformat()
    m = json.load(urllib.request.urlopen(
        f"http://127.0.0.1:{serve.api}/api/metrics?prompt_id=p1&start={start}&end={end}&service=e2e"))
    ref = serve.query("SELECT count(), countIf(status != 'error'), sum(input_tokens + output_tokens), "
                      "quantileExact(0.95)(latency_ms), toFloat64(sum(cost_usd)) FROM llm_calls "
                      "WHERE prompt_name = 'p1' AND service = 'e2e'")[0]
    mm = m["metrics"]
    assert m["period"] == f"{start} to {end}"
    assert mm["total_requests"] == ref[0] == 100
    assert mm["success_rate"] == round(100 * ref[1] / ref[0], 2)
    assert mm["total_tokens"] == int(ref[2])
    assert mm["p95_latency_ms"] == round(ref[3], 1)
    assert mm["total_cost_usd"] == pytest.approx(ref[4])
    assert sum(mm["errors"].values()) == ref[0] - ref[1]


def test_bad_input_gets_documented_answers(serve: Serve) -> None:
    code, body, _ = serve.post(b"\xff\x00garbage")
    assert code == 400 and status_pb2.Status.FromString(body).code == 3
    assert serve.post(b"{nope", "application/json")[0] == 400
    assert serve.post(b"x", "text/plain")[0] == 415
    assert serve.post(b"\0" * 2_000_001)[0] == 413
    assert serve.post(gzip.compress(b"\0" * 3_000_000), **{"Content-Encoding": "gzip"})[0] == 413
    req = encode_spans(genai_spans(3))
    sps = req.resource_spans[0].scope_spans[0].spans
    sps[0].trace_id = b""
    sps[1].end_time_unix_nano = sps[1].start_time_unix_nano - 1  # clamped
    code, body, _ = serve.post(gzip.compress(req.SerializeToString()), **{"Content-Encoding": "gzip"})
    resp = ExportTraceServiceResponse.FromString(body)
    assert code == 200 and resp.partial_success.rejected_spans == 1 and "clamped" in resp.partial_success.error_message
    code, body, _ = serve.post(b'{"resourceSpans": []}', "application/json")
    assert code == 200 and json.loads(body) == {}
    assert urllib.request.urlopen(f"http://127.0.0.1:{serve.api}/healthz").status == 200
    with pytest.raises(AssertionError, match=r"^400 "):
        serve.query("DROP TABLE otel_traces")


def test_kill_9_keeps_acknowledged_data(tmp_path: Path) -> None:
    s = Serve(tmp_path, "--batch-max-age", "60", "--batch-max-spans", "100000")  # nothing inserted before the kill
    assert HttpExporter(endpoint=s.url).export(genai_spans(150, seed=3)) == SpanExportResult.SUCCESS
    s.stop(signal.SIGKILL)
    s = Serve(tmp_path)
    s.wait_count(150)
    s.stop()


def test_store_down_spools_then_replays(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_port()}/"
    s = Serve(tmp_path, "--clickhouse-url", dead)
    assert HttpExporter(endpoint=s.url).export(genai_spans(120, seed=4)) == SpanExportResult.SUCCESS
    assert GrpcExporter(endpoint=f"127.0.0.1:{s.grpc}", insecure=True).export(genai_spans(80, seed=5)) == \
        SpanExportResult.SUCCESS
    s.stop()  # graceful, store still down: stays in the spool
    assert s.proc.returncode == 0
    env_store = Serve(tmp_path)  # same spool, a store that works
    env_store.wait_count(200)
    env_store.wait_count(200, "llm_calls")
    env_store.stop()
    assert os.path.exists(tmp_path / "spool")
