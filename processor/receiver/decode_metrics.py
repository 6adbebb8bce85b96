"""OTLP ExportMetricsServiceRequest (protobuf or OTLP/JSON) → rows of the five ``otel_metrics_*`` tables.

One row per data point, in the table of its metric's type, rendered as the OTel Collector contrib clickhouse
exporter does (internal/metrics/*_metrics.go): resource/scope/point attributes as AsString maps, ServiceName the
resource's ``service.name``, an int value as Float64, Min/Max 0 when absent, exemplar ids in hex (all zeros when
absent), AggregationTemporality as its enum number. Schemas: schemas/011_otel_metrics.sql.

Validation (docs/PROCESSOR.md "Metrics and logs"): a body that does not parse is a DecodeError (400 /
INVALID_ARGUMENT; decode_signal); a data point whose time or start time is past 2^63-1 ns (DateTime64(9) ends in
2262), or whose exemplar has an id of the wrong length, is rejected alone and counted in
``partial_success.rejected_data_points``; an exemplar time past 2^63-1 is clamped. Every other field fits its column
by its proto type, so nothing accepted can fail to insert. A metric with no data (no type set) adds no rows.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from .decode_signal import MAX_TIME_NS, SignalRows, attrs, id_ok, parse, service_name

_HEAD = ("ResourceAttributes", "ResourceSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
         "ScopeDroppedAttrCount", "ScopeSchemaUrl", "ServiceName", "MetricName", "MetricDescription", "MetricUnit",
         "Attributes", "StartTimeUnix", "TimeUnix")
_EXEMPLARS = ("Exemplars.FilteredAttributes", "Exemplars.TimeUnix", "Exemplars.Value", "Exemplars.SpanId",
              "Exemplars.TraceId")
SUM, GAUGE, HISTOGRAM = "otel_metrics_sum", "otel_metrics_gauge", "otel_metrics_histogram"
EXP_HISTOGRAM, SUMMARY = "otel_metrics_exponential_histogram", "otel_metrics_summary"
# Insert column order per table (the exporter's insert templates; tests check them against the tables)
COLUMNS: dict[str, tuple[str, ...]] = {
    GAUGE: (*_HEAD, "Value", "Flags", *_EXEMPLARS),
    SUM: (*_HEAD, "Value", "Flags", *_EXEMPLARS, "AggregationTemporality", "IsMonotonic"),
    HISTOGRAM: (*_HEAD, "Count", "Sum", "BucketCounts", "ExplicitBounds", *_EXEMPLARS, "Flags", "Min", "Max",
                "AggregationTemporality"),
    EXP_HISTOGRAM: (*_HEAD, "Count", "Sum", "Scale", "ZeroCount", "PositiveOffset", "PositiveBucketCounts",
                    "NegativeOffset", "NegativeBucketCounts", *_EXEMPLARS, "Flags", "Min", "Max",
                    "AggregationTemporality"),
    SUMMARY: (*_HEAD, "Count", "Sum", "ValueAtQuantiles.Quantile", "ValueAtQuantiles.Value", "Flags"),
}
_TABLE = {"gauge": GAUGE, "sum": SUM, "histogram": HISTOGRAM, "exponential_histogram": EXP_HISTOGRAM,
          "summary": SUMMARY}
_METRICS = (("resourceMetrics", "resource_metrics"), ("scopeMetrics", "scope_metrics"), ("metrics",))
ID_PATHS = tuple((*_METRICS, (k,), ("dataPoints", "data_points"), ("exemplars",))
                 for k in ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram"))
UNIT = "data point(s)"


def _number(p: Any) -> float:
    w = p.WhichOneof("value")
    return float(p.as_int) if w == "as_int" else p.as_double  # (as_double is 0.0 when neither is set)


def _exemplars(exs: Any) -> list[list[Any]] | str:
    """The five Exemplars.* columns, or the reason to reject the data point."""
    fa, tu, va, si, ti = [], [], [], [], []
    for e in exs:
        if not id_ok(e.trace_id, 16) or not id_ok(e.span_id, 8):
            return "invalid exemplar trace_id or span_id"
        fa.append(attrs(e.filtered_attributes))
        tu.append(min(e.time_unix_nano, MAX_TIME_NS))
        va.append(_number(e))
        si.append((e.span_id or b"\0" * 8).hex())  # the exporter writes pdata's fixed-size ids: zeros when absent
        ti.append((e.trace_id or b"\0" * 16).hex())
    return [fa, tu, va, si, ti]


def decode(body: bytes, *, is_json: bool) -> SignalRows:
    req = parse(body, ExportMetricsServiceRequest, is_json=is_json, id_paths=ID_PATHS)
    res = SignalRows(UNIT)
    for rm in req.resource_metrics:
        rattrs = attrs(rm.resource.attributes)
        service = service_name(rattrs)
        for sm in rm.scope_metrics:
            sc = sm.scope
            head = [rattrs, rm.schema_url, sc.name, sc.version, attrs(sc.attributes), sc.dropped_attributes_count,
                    sm.schema_url, service]
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                table = _TABLE.get(kind or "")
                if table is None:
                    continue
                data = getattr(m, kind)
                for p in data.data_points:
                    if p.time_unix_nano > MAX_TIME_NS or p.start_time_unix_nano > MAX_TIME_NS:
                        res.reject("time_unix_nano or start_time_unix_nano past 2262 (out of DateTime64(9))")
                        continue
                    row = [*head, m.name, m.description, m.unit, attrs(p.attributes), p.start_time_unix_nano,
                           p.time_unix_nano]
                    if table == SUMMARY:
                        qs = p.quantile_values
                        row += [p.count, p.sum, [q.quantile for q in qs], [q.value for q in qs], p.flags]
                        res.add(table, row)
                        continue
                    ex = _exemplars(p.exemplars)
                    if isinstance(ex, str):
                        res.reject(ex)
                        continue
                    if table == GAUGE:
                        row += [_number(p), p.flags, *ex]
                    elif table == SUM:
                        row += [_number(p), p.flags, *ex, data.aggregation_temporality, data.is_monotonic]
                    elif table == HISTOGRAM:
                        row += [p.count, p.sum, list(p.bucket_counts), list(p.explicit_bounds), *ex, p.flags,
                                p.min, p.max, data.aggregation_temporality]
                    else:
                        row += [p.count, p.sum, p.scale, p.zero_count, p.positive.offset,
                                list(p.positive.bucket_counts), p.negative.offset, list(p.negative.bucket_counts),
                                *ex, p.flags, p.min, p.max, data.aggregation_temporality]
                    res.add(table, row)
    return res
