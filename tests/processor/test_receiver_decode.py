"""decode.py: collector-exporter renderings, validation, protobuf and OTLP/JSON give the same rows."""

from __future__ import annotations

import json

import pytest
from fakes import genai_spans
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from promptpulse.processor.receiver import decode
from promptpulse.processor.store.base import OTEL_TRACES_COLUMNS

C = {c: i for i, c in enumerate(decode.COLUMNS)}


def test_columns_match_store() -> None:
    assert decode.COLUMNS == OTEL_TRACES_COLUMNS
    assert decode.column_order() == (OTEL_TRACES_COLUMNS, None)


@pytest.mark.parametrize(("v", "s"), [(2.0, "2"), (0.1, "0.1"), (1e21, "1000000000000000000000"), (1e-7, "0.0000001"),
                                       (-3.5, "-3.5"), (float("inf"), "+Inf"), (float("nan"), "NaN")])
def test_float_like_go(v: float, s: str) -> None:
    assert decode.fmt_float(v) == s


def _req_with(attrs: list[KeyValue], **span: object) -> bytes:
    req = encode_spans(genai_spans(1))
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    del sp.attributes[:]
    sp.attributes.extend(attrs)
    for k, v in span.items():
        setattr(sp, k, v)
    return req.SerializeToString()


def test_renderings_match_collector_exporter() -> None:
    kvl = KeyValueList(values=[KeyValue(key="b", value=AnyValue(int_value=1)),
                               KeyValue(key="a", value=AnyValue(string_value="<x>"))])
    attrs = [
        KeyValue(key="s", value=AnyValue(string_value="é")), KeyValue(key="i", value=AnyValue(int_value=-42)),
        KeyValue(key="d", value=AnyValue(double_value=2.0)), KeyValue(key="b", value=AnyValue(bool_value=True)),
        KeyValue(key="arr", value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="x"),
                                                                          AnyValue(int_value=3)]))),
        KeyValue(key="kv", value=AnyValue(kvlist_value=kvl)), KeyValue(key="by", value=AnyValue(bytes_value=b"\x01")),
        KeyValue(key="empty", value=AnyValue()),
    ]
    body = _req_with(attrs)
    res = decode.decode_protobuf(body)
    row = res.rows[0]
    assert row[C["SpanAttributes"]] == {"s": "é", "i": "-42", "d": "2", "b": "true", "arr": '["x",3]',
                                        "kv": '{"a":"\\u003cx\\u003e","b":1}', "by": "AQ==", "empty": ""}
    assert row[C["SpanKind"]] == "Client" and row[C["StatusCode"]] == "Error"
    assert row[C["ServiceName"]] == "test-app"
    assert len(row[C["TraceId"]]) == 32 and row[C["TraceId"]] == row[C["TraceId"]].lower()
    assert decode.decode_protobuf_upb(body).rows == res.rows


def test_protobuf_and_json_agree() -> None:
    from google.protobuf import json_format

    req = encode_spans(genai_spans(30))
    pb = decode.decode_protobuf(req.SerializeToString())
    d = json_format.MessageToDict(req)
    for rs in d["resourceSpans"]:  # OTLP/JSON: ids are hex, not base64
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in sp:
                        sp[k] = __import__("base64").b64decode(sp[k]).hex()
    js = decode.decode_json(json.dumps(d).encode())
    assert js.rows == pb.rows and len(pb.rows) == 30 and pb.rows[0][C["StatusCode"]] == "Error"


def test_validation() -> None:
    big = [KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=10**15))]
    r = decode.decode_protobuf(_req_with(big))
    assert (r.rejected, len(r.rows)) == (1, 0)
    assert dict(r.reasons) == {f"gen_ai.usage.input_tokens outside [0, {decode.MAX_TOKENS}]": 1}
    r = decode.decode_protobuf(_req_with([], trace_id=b""))
    assert (r.rejected, len(r.rows)) == (1, 0) and "trace_id" in r.error_message
    r = decode.decode_protobuf(_req_with([], span_id=b"\0" * 8))
    assert r.rejected == 1
    req = ExportTraceServiceRequest.FromString(_req_with([]))
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    sp.end_time_unix_nano = sp.start_time_unix_nano - 5
    r = decode.decode_protobuf(req.SerializeToString())
    assert r.rejected == 0 and r.rows[0][C["Duration"]] == 0 and "clamped" in r.error_message
    with pytest.raises(decode.DecodeError):
        decode.decode_protobuf(b"\xff\xff\xff garbage")
    # non-UTF-8 in a proto3 string: the whole request is malformed
    bad = _req_with([KeyValue(key="k", value=AnyValue(string_value="XX"))]).replace(b"XX", b"\xff\xfe")
    with pytest.raises(decode.DecodeError):
        decode.decode_protobuf(bad)
    with pytest.raises(decode.DecodeError):
        decode.decode_json(b"{not json")
