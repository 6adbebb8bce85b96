"""OTLP ExportLogsServiceRequest (protobuf or OTLP/JSON) → rows of ``otel_logs``.

Rendered as the OTel Collector contrib clickhouse exporter does (its logs exporter): Timestamp the record's time,
else its observed time; TraceId/SpanId lowercase hex, "" when absent; TraceFlags the low byte of ``flags``; Body and
attribute values as pcommon AsString (strings as is, kvlists and arrays compact JSON); ServiceName the resource's
``service.name``. Schema: schemas/012_otel_logs.sql.

Validation (docs/PROCESSOR.md "Metrics and logs"): a body that does not parse is a DecodeError (400 /
INVALID_ARGUMENT; decode_signal); a record with a trace id or span id of the wrong length, a time past 2^63-1 ns
(DateTime64(9) ends in 2262) or a severity number outside 0..24 (the column is UInt8; the enum ends at 24) is
rejected alone and counted in ``partial_success.rejected_log_records``. Every other field fits its column by its
proto type, so nothing accepted can fail to insert.
"""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from .decode_signal import MAX_TIME_NS, SignalRows, attrs, id_ok, parse, service_name, value_str

TABLE = "otel_logs"
# Insert column order (the exporter's logs insert template; TimestampTime is the table's DEFAULT)
COLUMNS: tuple[str, ...] = (
    "Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName", "Body",
    "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
    "LogAttributes", "EventName",
)
ID_PATHS = (
    (("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs"), ("logRecords", "log_records")),
)
MAX_SEVERITY = 24  # SEVERITY_NUMBER_FATAL4
UNIT = "log record(s)"


def decode(body: bytes, *, is_json: bool) -> SignalRows:
    req = parse(body, ExportLogsServiceRequest, is_json=is_json, id_paths=ID_PATHS)
    res = SignalRows(UNIT)
    for rl in req.resource_logs:
        rattrs = attrs(rl.resource.attributes)
        service = service_name(rattrs)
        for sl in rl.scope_logs:
            sc = sl.scope
            sattrs = attrs(sc.attributes)
            for r in sl.log_records:
                if not id_ok(r.trace_id, 16) or not id_ok(r.span_id, 8):
                    res.reject("invalid trace_id or span_id")
                    continue
                ts = r.time_unix_nano or r.observed_time_unix_nano
                if ts > MAX_TIME_NS:
                    res.reject("time_unix_nano past 2262 (out of DateTime64(9))")
                    continue
                if not 0 <= r.severity_number <= MAX_SEVERITY:
                    res.reject(f"severity_number outside 0..{MAX_SEVERITY}")
                    continue
                res.add(TABLE, [
                    ts, r.trace_id.hex(), r.span_id.hex(), r.flags & 0xFF, r.severity_text, r.severity_number,
                    service, value_str(r.body), rl.schema_url, rattrs, sl.schema_url, sc.name, sc.version, sattrs,
                    attrs(r.attributes), r.event_name,
                ])
    return res
