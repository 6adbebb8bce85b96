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


# ------------------------------------------------------------------------------ poison requests (issue 16 §1)
def _json_doc(n: int = 2) -> dict:
    """OTLP/JSON of real SDK spans (ids hex), with an event on the first span."""
    import base64

    from google.protobuf import json_format

    req = encode_spans(genai_spans(n))
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    sp.events.add(time_unix_nano=sp.start_time_unix_nano + 1, name="ev").attributes.extend(
        [KeyValue(key="a", value=AnyValue(string_value="b"))])
    d = json_format.MessageToDict(req)
    for s in d["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for k in ("traceId", "spanId", "parentSpanId"):
            if k in s:
                s[k] = base64.b64decode(s[k]).hex()
    return d


def _span(d: dict) -> dict:
    return d["resourceSpans"][0]["scopeSpans"][0]["spans"][0]


def _set(path: str, value: object):
    """A mutation of the doc: ``path`` from the first span ('' = the span itself), ``@`` paths from the root."""
    def mutate(d: dict) -> None:
        o: object = d if path.startswith("@") else _span(d)
        keys = [k for k in path.lstrip("@").split("/") if k]
        for k in keys[:-1]:
            o = o[int(k)] if isinstance(o, list) else o[k]  # type: ignore[index]
        last = keys[-1]
        o[int(last) if isinstance(o, list) else last] = value  # type: ignore[index]
    return mutate


WRONG_TYPES = {
    "span name as a number": (_set("name", 5), "Span.name must be a string, got number"),
    "span name as an object": (_set("name", {"a": 1}), "Span.name must be a string, got object"),
    "traceState as a number": (_set("traceState", 7), "Span.traceState must be a string"),
    "status message as a number": (_set("status", {"message": 1}), "Status.message must be a string"),
    "status as a list": (_set("status", []), "Span.status must be an object, got array"),
    "scope name as a number": (_set("@resourceSpans/0/scopeSpans/0/scope/name", 3), "InstrumentationScope.name"),
    "scope version as a list": (_set("@resourceSpans/0/scopeSpans/0/scope/version", ["1"]),
                                "InstrumentationScope.version must be a string, got array"),
    "stringValue as a number": (_set("attributes/0/value", {"stringValue": 7}), "AnyValue.stringValue"),
    "attribute key as a number": (_set("attributes/0/key", 1), "KeyValue.key must be a string"),
    "attribute as a list": (_set("attributes/0", []), "Span.attributes[] must be an object, got array"),
    "attributes as an object": (_set("attributes", {}), "Span.attributes must be an array, got object"),
    "event name as a number": (_set("events/0/name", 2), "Event.name must be a string"),
    "resource attribute value as a string": (_set("@resourceSpans/0/resource/attributes/0/value", "x"),
                                             "AnyValue must be an object, got string"),
    "intValue not a number": (_set("attributes/0/value", {"intValue": "x"}), "AnyValue.intValue must be an integer"),
    "intValue past int64": (_set("attributes/0/value", {"intValue": str(2**63)}), "AnyValue.intValue out of range"),
    "intValue fractional": (_set("attributes/0/value", {"intValue": 1.5}), "AnyValue.intValue must be an integer"),
    "boolValue as a string": (_set("attributes/0/value", {"boolValue": "true"}), "AnyValue.boolValue must be a bool"),
    "doubleValue as a bool": (_set("attributes/0/value", {"doubleValue": True}), "AnyValue.doubleValue must be a n"),
    "doubleValue too large": (_set("attributes/0/value", {"doubleValue": "1e999"}), "AnyValue.doubleValue out of"),
    "bytesValue not base64": (_set("attributes/0/value", {"bytesValue": "%%%"}), "AnyValue.bytesValue is not base64"),
    "two values": (_set("attributes/0/value", {"stringValue": "a", "intValue": "1"}), "more than one value"),
    "array values as an object": (_set("attributes/0/value", {"arrayValue": {"values": {}}}), "ArrayValue.values"),
    "trace id as a number": (_set("traceId", 5), "Span.traceId must be a hex string"),
    "kind unknown": (_set("kind", "CLIENT"), "Span.kind: unknown enum value"),
    "kind past int32": (_set("kind", 2**31), "Span.kind out of range"),
    "status code as a list": (_set("status", {"code": [2]}), "Status.code must be an integer"),
    "end time 10^26": (_set("endTimeUnixNano", 10**26), "Span.endTimeUnixNano out of range"),
    "end time 10^26 as text": (_set("endTimeUnixNano", "1" + "0" * 26), "Span.endTimeUnixNano out of range"),
    "event time 2^64": (_set("events/0/timeUnixNano", str(2**64)), "Event.timeUnixNano out of range"),
    "negative start": (_set("startTimeUnixNano", -1), "Span.startTimeUnixNano out of range"),
    "start with underscores": (_set("startTimeUnixNano", "1_000"), "Span.startTimeUnixNano must be an integer"),
    "start as a bool": (_set("startTimeUnixNano", True), "decimal string), got boolean"),
    "unpaired surrogate": (_set("name", "x\ud800"), "unpaired UTF-16 surrogate"),
    "resourceSpans as an object": (_set("@resourceSpans", {}), "resourceSpans must be an array, got object"),
    "spans element null": (_set("@resourceSpans/0/scopeSpans/0/spans/1", None), "ScopeSpans.spans[] must be an"),
}


@pytest.mark.parametrize("name", sorted(WRONG_TYPES))
def test_json_with_a_wrong_type_is_a_400_naming_the_field(name: str) -> None:
    mutate, message = WRONG_TYPES[name]
    d = _json_doc()
    mutate(d)
    with pytest.raises(decode.DecodeError) as e:
        decode.decode_json(json.dumps(d).encode())
    assert message in str(e.value)


def test_json_accepts_every_proto3_spelling() -> None:
    d = _json_doc(1)
    sp = _span(d)
    start = 2**60  # (2006) a float holds it and start + 1024 exactly
    sp.update(startTimeUnixNano=start, endTimeUnixNano=float(start + 1024), kind=3, traceState=None)
    sp["status"] = {"code": "2", "message": None}
    sp["events"][0]["timeUnixNano"] = str(2**63)  # past 2262: clamped
    sp["events"].append({"timeUnixNano": 2**64 - 1, "name": None, "attributes": None})
    sp["attributes"] = [
        {"key": "i", "value": {"intValue": -5}}, {"key": "is", "value": {"intValue": "-5"}},
        {"key": "if", "value": {"intValue": 1e3}}, {"key": "nan", "value": {"doubleValue": "NaN"}},
        {"key": "inf", "value": {"doubleValue": "-Infinity"}}, {"key": "dt", "value": {"doubleValue": "2.50"}},
        {"key": "di", "value": {"doubleValue": 3}}, {"key": "b64url", "value": {"bytesValue": "_-8"}},
        {"key": "null", "value": None}, {"key": "nullmember", "value": {"stringValue": None, "intValue": "4"}},
        {"key": "pair", "value": {"stringValue": "\ud83d\ude00"}},
        {"key": "strindex", "value": {"stringValueStrindex": 3}},
        {"key": "arr", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"doubleValue": 2}, {}]}}},
        {"key": "kvl", "value": {"kvlistValue": {"values": [{"key": "z"},
                                                            {"key": "a", "value": {"boolValue": True}}]}}},
        {"value": {"stringValue": "no key"}},
    ]
    res = decode.decode_json(json.dumps(d).encode())
    assert (res.rejected, len(res.rows)) == (0, 1)
    row = res.rows[0]
    assert row[C["SpanAttributes"]] == {
        "i": "-5", "is": "-5", "if": "1000", "nan": "NaN", "inf": "-Inf", "dt": "2.5", "di": "3", "b64url": "/+8=",
        "null": "", "nullmember": "4", "pair": "\U0001f600", "strindex": "3", "arr": "[1,2.0,null]",
        "kvl": '{"a":true,"z":null}', "": "no key"}
    assert (row[C["SpanKind"]], row[C["StatusCode"]], row[C["StatusMessage"]], row[C["TraceState"]]) == (
        "Client", "Error", "", "")
    assert (row[C["Timestamp"]], row[C["Duration"]]) == (start, 1024)
    assert row[C["Events.Timestamp"]] == [decode.MAX_TIME_NS, decode.MAX_TIME_NS]
    assert row[C["Events.Name"]] == ["ev", ""]


def _nested_json(member: str, levels: int) -> str:
    if member == "arrayValue":
        return '{"arrayValue":{"values":[' * levels + '{"intValue":"1"}' + "]}}" * levels
    return '{"kvlistValue":{"values":[{"key":"k","value":' * levels + '{"intValue":"1"}' + "}]}}" * levels


@pytest.mark.parametrize("member", ["arrayValue", "kvlistValue"])
def test_deeply_nested_json_is_a_400(member: str) -> None:
    d = _json_doc(1)
    _span(d)["attributes"] = [{"key": "deep", "value": "@@"}]
    text = json.dumps(d)
    ok = decode.decode_json(text.replace('"@@"', _nested_json(member, decode.MAX_JSON_DEPTH)).encode())
    assert len(ok.rows) == 1 and ok.rows[0][C["SpanAttributes"]]["deep"].count("1") == 1
    for levels in (decode.MAX_JSON_DEPTH + 1, 5000):
        with pytest.raises(decode.DecodeError, match="nested"):
            decode.decode_json(text.replace('"@@"', _nested_json(member, levels)).encode())
    with pytest.raises(decode.DecodeError, match="nested too deeply"):  # plain lists, where an array belongs
        decode.decode_json(b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}")


def _lp(b: bytes) -> bytes:
    from promptpulse.processor.store.native import leb128

    return leb128(len(b)) + b


def _body(span: bytes, *, resource: bytes = b"", scope: bytes = b"", tail: bytes = b"") -> bytes:
    """A request of one span given as bytes; ``resource`` / ``scope`` / ``tail`` are raw fields of the Resource
    Spans, of the ScopeSpans (before the span) and of the ScopeSpans after the span."""
    ss = scope + b"\x12" + _lp(span) + tail
    return b"\x0a" + _lp(resource + b"\x12" + _lp(ss))


def _res(*attrs: KeyValue) -> bytes:
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    return b"\x0a" + _lp(Resource(attributes=list(attrs)).SerializeToString())


def _plain_span(**fields: object) -> bytes:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    base = dict(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="n", start_time_unix_nano=10**18,
                end_time_unix_nano=10**18 + 5, attributes=[KeyValue(key="a", value=AnyValue(string_value="b"))])
    base.update(fields)
    return Span(**base).SerializeToString()  # type: ignore[arg-type]


_SVC = KeyValue(key="service.name", value=AnyValue(string_value="first"))
_SVC2 = KeyValue(key="service.name", value=AnyValue(string_value="second"))
_KV = KeyValue(key="k", value=AnyValue(int_value=3)).SerializeToString()
ODD_ENCODINGS = {
    "status twice (merged)": _body(_plain_span() + b"\x7a\x07\x12\x05first" + b"\x7a\x02\x18\x02"),
    "resource twice (merged)": _body(_plain_span(), resource=_res(_SVC) + _res(
        KeyValue(key="x", value=AnyValue(int_value=1)))),
    "two service.name": _body(_plain_span(), resource=_res(_SVC, _SVC2)),
    "service.name then a non-string one": _body(_plain_span(), resource=_res(_SVC, KeyValue(
        key="service.name", value=AnyValue(int_value=1)))),
    "scope after the span": _body(_plain_span(), tail=b"\x0a\x03\x0a\x01s"),
    "scope twice": _body(_plain_span(), scope=b"\x0a\x03\x0a\x01s\x0a\x03\x12\x01v"),
    "start time with a long tag": _body(_plain_span(start_time_unix_nano=0) + b"\xb9\x00" + (10**18).to_bytes(
        8, "little")),
    "attribute with a long tag": _body(_plain_span() + b"\xca\x00" + _lp(_KV)),
    "kind past 2^32": _body(_plain_span() + b"\x30" + bytes([0x83, 0x80, 0x80, 0x80, 0x10])),  # 2^32 + 3
    "status code past 2^32": _body(_plain_span() + b"\x7a\x06\x18" + bytes([0x82, 0x80, 0x80, 0x80, 0x10])),
    "name as a varint": _body(_plain_span() + b"\x28\x05"),
    "start time as bytes": _body(_plain_span() + b"\x3a\x01x"),
    "attributes as a fixed64": _body(_plain_span() + b"\x49" + b"\0" * 8),
    "event time as a varint": _body(_plain_span() + b"\x5a\x04\x08\x05\x12\x00"),
    "a group": _body(_plain_span() + b"\xa3\x06\x08\x01\xa4\x06"),
    "event time past 2^63": _body(_plain_span() + b"\x5a\x09\x09" + (2**63 + 1).to_bytes(8, "little")),
    "end time past 2^63": _body(_plain_span(end_time_unix_nano=2**64 - 1)),
}


@pytest.mark.parametrize("name", sorted(ODD_ENCODINGS))
def test_column_decoder_reads_odd_encodings_as_upb_does(name: str) -> None:
    from fakes import column_rows

    body = ODD_ENCODINGS[name]
    res, ref = decode.decode_protobuf(body), decode.decode_protobuf_rows(body)
    assert len(ref.rows) == 1
    assert (res.rejected, res.reasons, res.warnings) == (ref.rejected, ref.reasons, ref.warnings)
    assert column_rows(res.rows) == ref.rows


def test_odd_encodings_read_as_protobuf_says() -> None:
    rows = {k: decode.decode_protobuf_rows(b).rows[0] for k, b in ODD_ENCODINGS.items()}
    assert (rows["status twice (merged)"][C["StatusCode"]], rows["status twice (merged)"][C["StatusMessage"]]) == (
        "Error", "first")
    assert rows["resource twice (merged)"][C["ResourceAttributes"]] == {"service.name": "first", "x": "1"}
    assert rows["two service.name"][C["ServiceName"]] == "second"
    assert rows["service.name then a non-string one"][C["ServiceName"]] == ""
    assert rows["scope after the span"][C["ScopeName"]] == "s"
    assert (rows["scope twice"][C["ScopeName"]], rows["scope twice"][C["ScopeVersion"]]) == ("s", "v")
    assert rows["start time with a long tag"][C["Timestamp"]] == 10**18
    assert rows["attribute with a long tag"][C["SpanAttributes"]] == {"a": "b", "k": "3"}
    assert rows["kind past 2^32"][C["SpanKind"]] == "Client"
    assert rows["status code past 2^32"][C["StatusCode"]] == "Error"
    for k in ("name as a varint", "start time as bytes", "attributes as a fixed64", "a group"):  # ignored
        assert rows[k] == decode.decode_protobuf_rows(_body(_plain_span())).rows[0]
    assert rows["event time as a varint"][C["Events.Timestamp"]] == [0]
    assert rows["event time past 2^63"][C["Events.Timestamp"]] == [decode.MAX_TIME_NS]
    assert rows["end time past 2^63"][C["Duration"]] == 2**64 - 1 - 10**18


def _nested_pb(levels: int) -> bytes:
    v = b"\x18\x01"  # int_value 1
    for _ in range(levels):
        v = b"\x2a" + _lp(b"\x0a" + _lp(v))  # AnyValue{array_value{values: [v]}}
    return _body(_plain_span(attributes=[]) + b"\x4a" + _lp(b"\x0a\x01k\x12" + _lp(v)))


def test_deeply_nested_protobuf_is_a_400_and_bounded() -> None:
    from fakes import column_rows

    body = _nested_pb(45)  # upb's limit of 100 nested messages leaves ~47 AnyValue levels
    res = decode.decode_protobuf(body)
    assert column_rows(res.rows) == decode.decode_protobuf_rows(body).rows
    assert res.rows[0][C["SpanAttributes"]]["k"] == "[" * 44 + "[1]" + "]" * 44
    for levels in (48, 5000):
        with pytest.raises(decode.DecodeError):
            decode.decode_protobuf(_nested_pb(levels))
