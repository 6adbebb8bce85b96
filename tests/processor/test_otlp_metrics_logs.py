"""OTLP metrics and logs into `promptpulse serve` (HTTP and gRPC, embedded and server store), sent by the official
OTel SDK exporters and by the PromptPulse instrumentation itself; exact stored rows per otel_metrics_* / otel_logs."""

from __future__ import annotations

import gzip
import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import openai
import pytest
from google.rpc import status_pb2
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from test_ingest_fuzz import clickhouse_server
from test_service_e2e import Serve

from promptpulse.instrumentation import metrics_buffer
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.processor.receiver import signals
from promptpulse.testing import FakeProvider, Scenario

TOKEN = "s3cret-token"
TS = (time.time_ns() // 10**9 - 3600) * 10**9 + 123_456_789  # recent: rows past the retention are dropped at insert


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory):
    s = Serve(tmp_path_factory.mktemp("serve"))
    yield s
    s.stop()
    assert s.proc.returncode == 0


def _post(s: Serve, path: str, body: bytes, ctype: str = "application/x-protobuf", **headers: str):
    s_url = s.url.replace("/v1/traces", path)
    req = urllib.request.Request(s_url, body, {"Content-Type": ctype, **headers}, method="POST")
    try:
        r = urllib.request.urlopen(req, timeout=10)
        return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _prom(s: Serve) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{s.api}/metrics", timeout=10).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^promptpulse_(\w+) (\S+)$", text, re.M)}


def _wait(s: Serve, sql: str, n: int) -> None:
    """Until ``SELECT count() ...`` is n (the writer inserts in spool order: a later marker means all before)."""
    s.wait_count(n, f"({sql})")


def _metrics_data(service: str) -> Any:
    """One of each data point type from the SDK (an exponential histogram through a view)."""
    reader = InMemoryMetricReader()
    views = [View(instrument_name="pp.latency", aggregation=ExplicitBucketHistogramAggregation([10.0, 100.0])),
             View(instrument_name="pp.exp", aggregation=ExponentialBucketHistogramAggregation(max_size=20))]
    mp = MeterProvider(metric_readers=[reader], views=views, resource=Resource.create({"service.name": service}))
    m = mp.get_meter("pp.test", "1.2")
    c = m.create_counter("pp.requests", unit="{request}", description="requests")
    c.add(3, {"route": "a"})
    c.add(4, {"route": "a"})
    m.create_up_down_counter("pp.inflight").add(-2)
    h = m.create_histogram("pp.latency", unit="ms")
    for v in (5, 50, 500):
        h.record(v, {"model": "gpt"})
    m.create_gauge("pp.temperature").set(42.5, {"room": "x"})
    e = m.create_histogram("pp.exp")
    for v in (1.0, 2.0, 4.0):
        e.record(v)
    data = reader.get_metrics_data()
    mp.shutdown()
    return data


def _assert_metrics(s: Serve, service: str) -> None:
    w = f"ServiceName = '{service}'"
    _wait(s, f"SELECT * FROM otel_metrics_exponential_histogram WHERE {w}", 1)
    assert s.query(f"SELECT MetricName, Value, IsMonotonic, AggregationTemporality, Attributes, MetricUnit, "
                   f"MetricDescription, ScopeName, ScopeVersion FROM otel_metrics_sum WHERE {w} ORDER BY MetricName") \
        == [["pp.inflight", -2, False, 2, {}, "", "", "pp.test", "1.2"],
            ["pp.requests", 7, True, 2, {"route": "a"}, "{request}", "requests", "pp.test", "1.2"]]
    assert s.query(f"SELECT toString(Count), Sum, BucketCounts, ExplicitBounds, Min, Max, Attributes "
                   f"FROM otel_metrics_histogram WHERE {w}") == [["3", 555, ["1", "1", "1"], [10, 100], 5, 500,
                                                                    {"model": "gpt"}]] or \
        s.query(f"SELECT Count, Sum, BucketCounts FROM otel_metrics_histogram WHERE {w}") == [[3, 555, [1, 1, 1]]]
    assert s.query(f"SELECT MetricName, Value, Attributes FROM otel_metrics_gauge WHERE {w}") == \
        [["pp.temperature", 42.5, {"room": "x"}]]
    assert s.query(f"SELECT toInt32(Count), Sum, Min, Max, toInt32(arraySum(PositiveBucketCounts)), "
                   f"toInt32(ZeroCount), TimeUnix > StartTimeUnix FROM otel_metrics_exponential_histogram "
                   f"WHERE {w}") == [[3, 7, 1, 4, 3, 0, True]]
    assert s.query(f"SELECT ResourceAttributes['service.name'], ResourceAttributes['telemetry.sdk.language'] "
                   f"FROM otel_metrics_gauge WHERE {w}") == [[service, "python"]]


def test_sdk_metrics_over_http_and_grpc_exact_rows(serve: Serve) -> None:
    before = _prom(serve)
    http = HttpMetricExporter(endpoint=serve.url.replace("/v1/traces", "/v1/metrics"))
    assert http.export(_metrics_data("m-http")) == MetricExportResult.SUCCESS
    g = GrpcMetricExporter(endpoint=f"127.0.0.1:{serve.grpc}", insecure=True)
    assert g.export(_metrics_data("m-grpc")) == MetricExportResult.SUCCESS
    for service in ("m-http", "m-grpc"):
        _assert_metrics(serve, service)
    after = _prom(serve)
    assert after["otlp_metrics_requests_total"] - before["otlp_metrics_requests_total"] == 2
    assert after["metric_points_accepted_total"] - before["metric_points_accepted_total"] == 2 * 5  # a point each
    assert after["otlp_requests_total"] == before["otlp_requests_total"]  # the traces counters stay the traces'


def _emit_logs(provider: LoggerProvider, tracer: TracerProvider) -> tuple[str, str, int]:
    """A record inside a span (trace context from the SDK, no timestamp: the observed time is stored) and a
    structured one; the span's hex ids and trace flags."""
    with tracer.get_tracer("t").start_as_current_span("op") as span:
        provider.get_logger("pp.app").emit(LogRecord(
            body="cache miss for order-123", severity_text="WARN", severity_number=SeverityNumber.WARN,
            attributes={"order.id": 123}))
        ctx = span.get_span_context()
    provider.get_logger("pp.events", "0.1").emit(LogRecord(
        timestamp=TS, body={"event": "done", "n": [1, 2]}, severity_text="INFO",
        severity_number=SeverityNumber.INFO, attributes={"k": "v"}, event_name="pp.done"))
    provider.force_flush()
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", int(ctx.trace_flags)


def _logs_provider(service: str, exporter: Any) -> LoggerProvider:
    p = LoggerProvider(resource=Resource.create({"service.name": service}))
    p.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return p


def _assert_logs(s: Serve, service: str, tid: str, sid: str, flags: int) -> None:
    w = f"ServiceName = '{service}'"
    _wait(s, f"SELECT * FROM otel_logs WHERE {w}", 2)
    rows = s.query(f"SELECT Body, SeverityText, SeverityNumber, TraceId, SpanId, TraceFlags, LogAttributes['order.id'],"
                   f" LogAttributes['k'], EventName, ScopeName FROM otel_logs WHERE {w} ORDER BY SeverityNumber DESC")
    assert rows[0] == ["cache miss for order-123", "WARN", 13, tid, sid, flags, "123", "", "", "pp.app"]
    assert rows[1] == ['{"event":"done","n":[1,2]}', "INFO", 9, "", "", 0, "", "v", "pp.done", "pp.events"]
    assert s.query(f"SELECT toUnixTimestamp64Nano(Timestamp), TimestampTime FROM otel_logs WHERE {w} AND "
                   f"EventName = 'pp.done'")[0][0] in (TS, str(TS))


def test_sdk_logs_over_http_and_grpc_with_trace_ids(serve: Serve) -> None:
    tracer = TracerProvider()
    http = _logs_provider("l-http", HttpLogExporter(endpoint=serve.url.replace("/v1/traces", "/v1/logs")))
    ids_http = _emit_logs(http, tracer)
    grpc_p = _logs_provider("l-grpc", GrpcLogExporter(endpoint=f"127.0.0.1:{serve.grpc}", insecure=True))
    ids_grpc = _emit_logs(grpc_p, tracer)
    _assert_logs(serve, "l-http", *ids_http)
    _assert_logs(serve, "l-grpc", *ids_grpc)
    http.shutdown()
    grpc_p.shutdown()


def test_instrumentation_token_usage_lands_in_otel_metrics_histogram(serve: Serve) -> None:
    exporter = HttpMetricExporter(endpoint=serve.url.replace("/v1/traces", "/v1/metrics"))
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    mp = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "pp-openai"}))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=TracerProvider(), meter_provider=mp)
    try:
        with FakeProvider(Scenario(input_tokens=1000, output_tokens=200)) as fake:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0)
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            client.close()
        metrics_buffer.flush()  # histogram records are taken off the call path
    finally:
        # (shutdown exports once; a force_flush before it would store the cumulative points twice, as it should)
        inst.uninstrument()
        mp.shutdown()
    w = "ServiceName = 'pp-openai' AND MetricName = 'gen_ai.client.token.usage'"
    _wait(serve, f"SELECT * FROM otel_metrics_histogram WHERE {w}", 2)
    assert serve.query(f"SELECT Attributes['gen_ai.token.type'], toInt64(Count), Sum, "
                       f"Attributes['gen_ai.request.model'] FROM otel_metrics_histogram WHERE {w} ORDER BY 1") == \
        [["input", 3, 3000, "gpt-4o-mini"], ["output", 3, 600, "gpt-4o-mini"]]
    assert serve.query("SELECT toInt64(sum(Count)) FROM otel_metrics_histogram WHERE ServiceName = 'pp-openai' "
                       "AND MetricName = 'gen_ai.client.operation.duration'") == [[3]]


def _json_logs(service: str, records: list[dict]) -> bytes:
    return json.dumps({"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": service}}]},
        "scopeLogs": [{"scope": {"name": "j"}, "logRecords": records}]}]}).encode()


def test_malformed_partial_resent_and_gzip_json(serve: Serve) -> None:
    before = _prom(serve)
    for path in ("/v1/metrics", "/v1/logs"):
        code, body = _post(serve, path, b"\xff\x00garbage")
        assert code == 400 and status_pb2.Status.FromString(body).code == 3
    code, body = _post(serve, "/v1/metrics", b'{"resourceMetrics": 5}', "application/json")
    assert code == 400 and json.loads(body)["code"] == 3
    code, _ = _post(serve, "/v1/logs", b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": '
                    b'"18446744073709551616"}]}]}]}', "application/json")  # past fixed64
    assert code == 400
    ch = grpc.insecure_channel(f"127.0.0.1:{serve.grpc}")
    for svc in ("metrics.v1.MetricsService", "logs.v1.LogsService"):
        call = ch.unary_unary(f"/opentelemetry.proto.collector.{svc}/Export")
        with pytest.raises(grpc.RpcError) as ei:
            call(b"\xff\x00garbage", timeout=10)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ch.close()
    after = _prom(serve)
    assert after["metrics_requests_bad_total"] - before["metrics_requests_bad_total"] == 3
    assert after["logs_requests_bad_total"] - before["logs_requests_bad_total"] == 3

    # partial success: the bad records are rejected alone and counted; gzip JSON; a resent body is stored once
    good = {"timeUnixNano": str(TS), "body": {"stringValue": "ok"}, "severityNumber": 9,
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}
    body = _json_logs("l-json", [good, {**good, "traceId": "zz"}, {**good, "severityNumber": 99}])
    for _ in range(2):
        code, resp = _post(serve, "/v1/logs", gzip.compress(body), "application/json", **{"Content-Encoding": "gzip"})
        assert code == 200
        assert json.loads(resp)["partialSuccess"]["rejectedLogRecords"] in ("2", 2)
    code, resp = _post(serve, "/v1/logs", _json_logs("l-json-marker", [good]), "application/json")
    assert code == 200 and json.loads(resp) == {}
    _wait(serve, "SELECT * FROM otel_logs WHERE ServiceName = 'l-json-marker'", 1)
    assert serve.query("SELECT Body, TraceId, SpanId, SeverityText FROM otel_logs WHERE ServiceName = 'l-json'") == \
        [["ok", "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", ""]]
    final = _prom(serve)
    assert final["log_records_rejected_total"] - before["log_records_rejected_total"] == 4
    assert final["duplicate_requests_total"] - before["duplicate_requests_total"] == 1
    pb = ExportLogsServiceResponse()  # protobuf answers carry the same partial success
    code, resp = _post(serve, "/v1/logs", b"")
    assert code == 200 and pb.FromString(resp) == ExportLogsServiceResponse()


def test_bearer_token_required(tmp_path: Path) -> None:
    s = Serve(tmp_path, "--auth-token", TOKEN)
    try:
        data = _metrics_data("m-auth")
        code, _ = _post(s, "/v1/metrics", b"")
        assert code == 401
        code, _ = _post(s, "/v1/logs", b"", Authorization=f"Bearer {TOKEN}")
        assert code == 200
        assert GrpcMetricExporter(endpoint=f"127.0.0.1:{s.grpc}", insecure=True).export(data) == \
            MetricExportResult.FAILURE
        ok = GrpcMetricExporter(endpoint=f"127.0.0.1:{s.grpc}", insecure=True,
                                headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.export(data) == MetricExportResult.SUCCESS
    finally:
        s.stop()


def test_server_store_and_spool_replay(tmp_path: Path) -> None:
    """A ClickHouse server store: accepted while it is down (spooled), replayed (decoded again) once it is up."""
    spool = tmp_path / "spool"
    (tmp_path / "a").mkdir()
    down = Serve(tmp_path / "a", "--clickhouse-url", "http://127.0.0.1:9/db?compress=false", spool=spool)
    http = HttpMetricExporter(endpoint=down.url.replace("/v1/traces", "/v1/metrics"))
    assert http.export(_metrics_data("m-server")) == MetricExportResult.SUCCESS
    logs = _logs_provider("l-server", GrpcLogExporter(endpoint=f"127.0.0.1:{down.grpc}", insecure=True))
    ids = _emit_logs(logs, TracerProvider())
    logs.shutdown()
    down.stop()
    with clickhouse_server(tmp_path / "ch") as url:
        (tmp_path / "b").mkdir()
        up = Serve(tmp_path / "b", "--clickhouse-url", f"{url}/db?compress=false", spool=spool)
        try:
            _assert_metrics(up, "m-server")
            _assert_logs(up, "l-server", *ids)
            assert _prom(up)["metric_points_inserted_total"] == 5
        finally:
            up.stop()


def test_insert_columns_are_the_tables_columns(serve: Serve) -> None:
    for table, cols in signals.TABLE_COLUMNS.items():
        have = [r[0] for r in serve.query(f"DESCRIBE TABLE {table}")]
        assert [c for c in have if c != "TimestampTime"] == list(cols), table  # TimestampTime: the DEFAULT
