"""The engine decode path (receiver.engine_decode): OTLP request bodies decoded and rendered by ClickHouse SQL store
exactly what the Python row path stores (every column through toString, so map order counts; llm_calls too); the
request-time check accepts only what the SQL renders exactly and counts like the Python decoder; everything else
takes the Python decoder; dedup tokens drop retries; the writer splits mixed batches by path."""

from __future__ import annotations

import base64
import math
import random
import struct
import uuid
from collections.abc import Iterator

import pytest
from fakes import add_plain_resource, genai_spans
from fakes import kv as _kv
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from promptpulse.processor.receiver import decode, engine_decode
from promptpulse.processor.store.base import StoreError
from promptpulse.processor.store.native import SpanColumns

pytest.importorskip("chdb")

OTEL_SQL = ("SELECT SpanId, toString(tuple(Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,"
            " ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode,"
            " StatusMessage, Events.Timestamp, Events.Name, Events.Attributes, Links.TraceId, Links.SpanId,"
            " Links.TraceState, Links.Attributes)) FROM DB.otel_traces ORDER BY SpanId")
CALLS_SQL = "SELECT toString(tuple(*)) FROM DB.llm_calls ORDER BY span_id"
C_EVENTS, C_DURATION = decode.COLUMNS.index("Events.Timestamp"), decode.COLUMNS.index("Duration")
SPECIAL = "\"\\/<>&\u2028\u2029\b\f\n\r\t\x00\x01\x0b\x1f\x7f é😀 \\u000B"


def _floats() -> list[float]:
    return [1e21, 1e22, 1e-7, 1e-5, 1e-4, 0.1, -0.0, 0.0, 5e-324, 1.7976931348623157e308, 123456789.125, 1e16,
            9999999999999998.0, 2.0, -2.5, float("nan"), float("inf"), float("-inf")]


def _edge_request(seed: int) -> bytes:
    """Real SDK spans plus every shape the engine path renders: all scalar kinds and extreme doubles, arrays of
    mixed leaves and JSON-special strings, long (multi-byte varint) and non-ASCII strings, repeated keys, an empty
    value and an empty key, events and links with attributes, odd link ids, trace state, status messages, unknown
    kind/status, a clamped duration, resources with a repeated or non-string service.name, scopes without version."""
    req = encode_spans(genai_spans(40, seed=seed))
    sp0 = req.resource_spans[0].scope_spans[0].spans
    base = sp0[0].start_time_unix_nano
    leaves = [AnyValue(string_value=SPECIAL), AnyValue(string_value=""), AnyValue(int_value=-3),
              AnyValue(bool_value=True), AnyValue(bytes_value=b"\0\xff"), AnyValue(), AnyValue(string_value_strindex=4)]
    leaves += [AnyValue(double_value=f) for f in _floats()]
    odd = [
        _kv("dup", string_value="first"), _kv("s", string_value="é" * 100), _kv("long", string_value="x" * 70000),
        _kv("i", int_value=-(2**63)), _kv("imax", int_value=2**63 - 1), _kv("zero", int_value=0),
        _kv("bool", bool_value=False), _kv("by", bytes_value=b"\0\xff"), _kv("noby", bytes_value=b""),
        _kv("arr", array_value=ArrayValue(values=leaves)), _kv("tags", array_value=ArrayValue(values=[
            AnyValue(string_value="beta"), AnyValue(string_value="eu")])),
        _kv("empty"), _kv("", string_value="empty key"), _kv("nostr", string_value=""), _kv("sp", string_value=SPECIAL),
        _kv("strindex", string_value_strindex=7), _kv("dup", string_value="second"),
        _kv("gen_ai.usage.input_tokens", int_value=7), _kv("gen_ai.usage.output_tokens", int_value=2**21 - 1),
    ]
    odd += [_kv(f"d{k}", double_value=f) for k, f in enumerate(_floats())]
    sp0[1].attributes.extend(odd)
    sp0[2].attributes.extend([_kv("gen_ai.usage.output_tokens", int_value=3), _kv("gen_ai.usage.output_tokens",
                                                                                  int_value=0)])
    sp0[3].trace_state = "k=v,é=1"
    sp0[3].status.message = "ü" * 200
    sp0[3].kind = 9
    sp0[3].status.code = 7
    sp0[3].flags = 0x301
    sp0[3].dropped_attributes_count = 2
    sp0[4].end_time_unix_nano = sp0[4].start_time_unix_nano - 5  # clamped to 0
    for k in range(3):
        ev = sp0[5].events.add(time_unix_nano=base + k, name=f"ev{k % 2}")
        ev.attributes.extend([_kv("ek", string_value=str(k)), _kv("gen_ai.prompt", string_value="p" * 300),
                              _kv("ed", double_value=1e-9), _kv("ek", int_value=k)])
    sp0[6].events.add(time_unix_nano=0, name="")
    ln = sp0[6].links.add(trace_id=uuid.uuid4().bytes, span_id=b"\1" * 8, trace_state="lt=1")
    ln.attributes.extend([_kv("lk", int_value=1), _kv("lk", string_value="x"), _kv("la", array_value=ArrayValue(
        values=[AnyValue(double_value=1.0)]))])
    sp0[7].links.add(trace_id=b"\1\2\3", span_id=b"")
    sp0[8].parent_span_id = b"\7" * 8
    req.resource_spans[0].resource.attributes.extend([_kv("res.d", double_value=0.25), _kv("res.a", array_value=
                                                      ArrayValue(values=[AnyValue(int_value=1)]))])
    req.resource_spans[0].scope_spans[0].scope.attributes.extend([_kv("scope.attr", string_value="ignored")])
    for svc in ([_kv("host.name", string_value="h"), _kv("service.name", int_value=3)],
                [_kv("service.name", string_value="a"), _kv("service.name", string_value="b")]):
        add_plain_resource(req, svc, base)
    return req.SerializeToString()


BODIES = [_edge_request(seed) for seed in (1, 2)] + [encode_spans(genai_spans(300, seed=3)).SerializeToString()]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions

    s = EmbeddedStore(str(tmp_path_factory.mktemp("chdb")), schema_options=SchemaOptions(database="pp_engine"))
    s.apply_schema()
    try:
        yield s
    finally:
        s.close()


def _in_db(store, db: str):  # a ConnectStore over the same client, on another database
    from promptpulse.processor.store._connect import ConnectStore
    from promptpulse.processor.store.schema import SchemaOptions

    other = ConnectStore.__new__(ConnectStore)
    ConnectStore.__init__(other, store._client, SchemaOptions(database=db))
    return other


def test_check_accepts_the_edge_requests_and_counts_like_the_python_decoder() -> None:
    for body in BODIES:
        fast, rows = engine_decode.check(body), decode.decode_protobuf_rows(body)
        assert fast is not None and isinstance(fast.rows, engine_decode.EngineSpans)
        assert len(fast.rows) == len(rows.rows) > 0
        assert (fast.rejected, fast.reasons, fast.warnings) == (rows.rejected, rows.reasons, rows.warnings)
    assert engine_decode.check(BODIES[0]).warnings == {"had end before start (Duration clamped to 0)": 1}
    assert len(engine_decode.check(BODIES[0]).rows) == 52


def test_engine_stores_the_same_rows_as_the_row_path(store) -> None:
    rows = [r for b in BODIES for r in decode.decode_protobuf_rows(b).rows]
    reference = _in_db(store, "pp_engine_rows")
    reference.apply_schema()
    reference.insert_otel_traces(rows, dedup_token="rows-path")
    store._client.database = store.database  # (the reference moved the shared client)
    store.insert_otel_traces_otlp(BODIES, dedup_token="engine-path")
    want = reference.query(OTEL_SQL.replace("DB.", "pp_engine_rows.")).rows
    got = store.query(OTEL_SQL.replace("DB.", "pp_engine.")).rows
    assert len(want) == len(rows) == 52 * 2 + 300
    assert got == want
    calls = reference.query(CALLS_SQL.replace("DB.", "pp_engine_rows.")).rows
    assert len(calls) == 380  # the SDK spans: 40 + 40 + 300
    assert store.query(CALLS_SQL.replace("DB.", "pp_engine.")).rows == calls
    # the edge cases did reach the table
    text = "\n".join(r[1] for r in want)
    assert "'dup':'second'" in text and "'d0':'1000000000000000000000'" in text and "'d5':'0.1'" in text
    assert "1e+22,1e-07" in text and "null,null,null" in text and "\\\\u003c" in text and "'strindex':'7'" in text


def test_dedup_token_drops_a_retried_batch(store) -> None:
    body = encode_spans(genai_spans(50, seed=11, service="dedup-engine")).SerializeToString()
    for _ in range(3):
        store.insert_otel_traces_otlp([body], dedup_token="tok-engine")
    p = {"s": "dedup-engine"}
    assert store.query("SELECT count() FROM otel_traces WHERE ServiceName = {s:String}", p).scalar() == 50
    assert store.query("SELECT count() FROM llm_calls WHERE service = {s:String}", p).scalar() == 50
    assert store.query("SELECT sum(calls) FROM llm_calls_1m WHERE service = {s:String}", p).scalar() == 50


def _with(attrs: list[KeyValue], service: str = "test-app", **span: object) -> bytes:
    req = encode_spans(genai_spans(3, seed=5, service=service))
    sp = req.resource_spans[0].scope_spans[0].spans[1]
    sp.attributes.extend(attrs)
    for k, v in span.items():
        setattr(sp, k, v)
    return req.SerializeToString()


def _reversed_kv_body() -> bytes:
    """A KeyValue with its value before its key: valid protobuf, not canonical."""
    good = _with([_kv("zz", string_value="v")])
    kv = _kv("zz", string_value="v").SerializeToString()
    swapped = kv[len(b"\x0a\x02zz"):] + b"\x0a\x02zz"
    return good.replace(kv, swapped, 1)


PYTHON_PATH = {
    "kvlist": _with([_kv("k", kvlist_value=KeyValueList(values=[_kv("a", int_value=1)]))]),
    "empty kvlist": _with([_kv("k", kvlist_value=KeyValueList())]),
    "array in array": _with([_kv("k", array_value=ArrayValue(values=[AnyValue(array_value=ArrayValue())]))]),
    "empty array": _with([_kv("k", array_value=ArrayValue())]),
    "rejected span": _with([], trace_id=b"\0" * 16),
    "bad parent": _with([], parent_span_id=b"\1\2"),
    "no start": _with([], start_time_unix_nano=0),
    "token as string": _with([_kv("gen_ai.usage.input_tokens", string_value="12")]),
    "big token": _with([_kv("gen_ai.usage.input_tokens", int_value=3_000_000)]),
    "too big token": _with([_kv("gen_ai.usage.input_tokens", int_value=10**9)]),
    "negative token": _with([_kv("gen_ai.usage.output_tokens", int_value=-1)]),
    "token key in a string": _with([], service="gen_ai.usage.input_tokens"),
    "value before key": _reversed_kv_body(),
    "merged fields": _with([]) + b"\x0a\x04\x0a\x00\x0a\x00",  # a ResourceSpans with its resource twice
}


@pytest.mark.parametrize("name", sorted(PYTHON_PATH))
def test_what_the_engine_cannot_render_exactly_takes_the_python_decoder(name: str) -> None:
    body = PYTHON_PATH[name]
    ExportTraceServiceRequest.FromString(body)  # a valid request
    assert engine_decode.check(body) is None
    res, ref = engine_decode.decode_protobuf(body), decode.decode_protobuf_rows(body)
    assert isinstance(res.rows, SpanColumns)
    assert (len(res.rows), res.rejected, res.reasons, res.warnings) == (len(ref.rows), ref.rejected, ref.reasons,
                                                                        ref.warnings)


def test_unparseable_and_non_utf8_bodies_are_still_a_400() -> None:
    good = _with([_kv("u", string_value="é")])
    bad_utf8 = good.replace("é".encode(), b"\xff\xfe", 1)
    for body in (b"\xff\xff\xff garbage", bad_utf8):
        assert engine_decode.check(body) is None
        with pytest.raises(decode.DecodeError):
            engine_decode.decode_protobuf(body)


def test_sql_float_rendering_matches_python(store, tmp_path) -> None:
    rnd = random.Random(7)
    vals = _floats()
    for _ in range(20000):
        k = rnd.random()
        if k < 0.4:
            v = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0]
        elif k < 0.7:
            v = rnd.random() * 10 ** rnd.randint(-30, 30)
        else:
            v = round(rnd.random() * 1000, rnd.randint(0, 6))
        vals.append(v)
    path = tmp_path / "floats.bin"
    path.write_bytes(b"".join(struct.pack("<d", v) for v in vals))
    go, py = engine_decode.sql_go_float("x"), engine_decode.sql_py_float("x")
    got = store.query(f"SELECT {go} AS g, if(isFinite(x), {py}, '') AS p FROM file('{path}', 'RowBinary', 'x Float64') "
                      "SETTINGS max_threads = 1").rows
    want = [(decode.fmt_float(v), repr(v) if math.isfinite(v) else "") for v in vals]
    assert got == want


def test_sql_json_string_matches_python(store) -> None:
    texts = [chr(c) for c in range(0x80)] + [SPECIAL, "\u2028x\u2029", "é\u2030", "plain", "", "\\u000B\x0b"]
    args = ", ".join(f"unhex('{t.encode().hex()}')" for t in texts)
    got = store.query(f"SELECT {engine_decode.sql_json_string('s')} AS j FROM (SELECT arrayJoin([{args}]) AS s)").rows
    assert [r[0] for r in got] == [decode._go_json([t])[1:-1] for t in texts]


def test_writer_splits_a_mixed_batch_by_path(store, tmp_path) -> None:
    """Engine bodies, Python column pieces and OTLP/JSON rows in one batch: each group inserted once with its own
    token; a retry of the whole batch inserts nothing twice."""
    import json

    from google.protobuf import json_format

    from promptpulse.processor.spool import Spool
    from promptpulse.processor.writer import Writer

    bodies = [encode_spans(genai_spans(20, seed=s, service="mixed")).SerializeToString() for s in (21, 22)]
    kv = _with([_kv("k", kvlist_value=KeyValueList())], service="mixed")  # the Python path
    doc = json_format.MessageToDict(encode_spans(genai_spans(5, seed=23, service="mixed")))
    for sp in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:  # OTLP/JSON ids are hex, not base64
        sp["traceId"], sp["spanId"] = (base64.b64decode(sp[k]).hex() for k in ("traceId", "spanId"))
        sp.pop("parentSpanId", None)
    js = json.dumps(doc).encode()
    w = Writer(Spool(tmp_path), lambda: store, batch_max_spans=10_000, batch_max_age_s=0.01)
    assert w.takes_request_bodies() is True
    for b in bodies:
        res = engine_decode.decode_protobuf(b)
        assert isinstance(res.rows, engine_decode.EngineSpans)
        w.submit(res.rows, b)
    res = engine_decode.decode_protobuf(kv)
    assert isinstance(res.rows, SpanColumns)
    w.submit(res.rows, kv)
    w.submit(decode.decode_json(js).rows, js, is_json=True)
    batch = list(w._q)
    groups = w._groups(store, batch)
    assert [k for k, _ in groups] == ["otlp", "native", "rows"]
    for _ in range(2):
        w._insert(batch)
    p = {"s": "mixed"}
    assert store.query("SELECT count() FROM otel_traces WHERE ServiceName = {s:String}", p).scalar() == 48
    assert store.query("SELECT count() FROM llm_calls WHERE service = {s:String}", p).scalar() == 48
    assert store.query("SELECT count() FROM otel_traces WHERE ServiceName = {s:String} AND SpanAttributes['k'] "
                       "= '{}'", p).scalar() == 1
    w.spool.close()


# ------------------------------------------------------------------------------ poison requests (issue 16 §1)
def _with_unknown(where: str, raw: bytes) -> bytes:
    """A request whose ``where`` message carries the fields ``raw`` as unknown ones (upb keeps and rewrites them)."""
    req = encode_spans(genai_spans(3, seed=31, service="unknown-fields"))
    sp = req.resource_spans[0].scope_spans[0].spans[1]
    target = {"span": sp, "status": sp.status, "attribute": sp.attributes[0], "value": sp.attributes[0].value,
              "event": sp.events.add(time_unix_nano=sp.start_time_unix_nano, name="e"),
              "resource": req.resource_spans[0].resource}.get(where)
    if target is None:  # the request itself
        return req.SerializeToString() + raw
    target.MergeFromString(raw)
    return req.SerializeToString()


UNKNOWN_FIELDS = {
    "08 01 appended to the request": _with_unknown("request", b"\x08\x01"),
    "a span's name as a varint": _with_unknown("span", b"\x28\x05"),
    "a status message as a fixed64": _with_unknown("status", b"\x11" + b"\0" * 8),
    "an attribute value as a varint": _with_unknown("attribute", b"\x10\x01"),
    "an AnyValue string as a fixed32": _with_unknown("value", b"\x0d\0\0\0\0"),
    "an event time as a varint": _with_unknown("event", b"\x08\x05"),
    "resource attributes as a varint": _with_unknown("resource", b"\x08\x00"),
    "an unknown field number": _with_unknown("span", b"\xf8\x06\x01"),
}


@pytest.mark.parametrize("name", sorted(UNKNOWN_FIELDS))
def test_bodies_with_unknown_fields_take_the_python_decoder(store, name: str) -> None:
    from fakes import column_rows

    from promptpulse.processor.store.native import encode_otel_traces

    body = UNKNOWN_FIELDS[name]
    # canonical as far as upb can tell: without DiscardUnknownFields the check would have taken it
    assert engine_decode.FastRequest.FromString(body).SerializeToString() == body
    assert engine_decode.check(body) is None
    res, ref = engine_decode.decode_protobuf(body), decode.decode_protobuf_rows(body)
    assert isinstance(res.rows, SpanColumns) and len(ref.rows) == 3 and ref.rejected == 0
    assert column_rows(res.rows) == ref.rows  # the field is ignored, as protobuf says
    store.insert_otel_traces_native(encode_otel_traces([res.rows]), dedup_token=f"unknown-{name}")
    if name.startswith("08 01"):  # what the engine path did with it: a batch that never inserts
        with pytest.raises(StoreError, match="Protobuf messages are corrupted"):
            store.insert_otel_traces_otlp([body], dedup_token="unknown-engine")


def test_event_times_past_2262_are_clamped_alike_on_every_path(store) -> None:
    """fixed64 event times ≥ 2^63 (DateTime64(9) ends at 2^63-1 ns): the engine's SQL and the Python decoders store
    2^63-1; an end time past 2^63 is kept in Duration (UInt64)."""
    from promptpulse.processor.store.native import encode_otel_traces

    req = encode_spans(genai_spans(3, seed=32, service="clamped-times"))
    sp = req.resource_spans[0].scope_spans[0].spans
    for t in (2**63 - 1, 2**63, 2**64 - 1, 5):
        sp[0].events.add(time_unix_nano=t, name=f"t{t}")
    sp[1].end_time_unix_nano = 2**64 - 1
    body = req.SerializeToString()
    res = engine_decode.check(body)
    assert res is not None and isinstance(res.rows, engine_decode.EngineSpans)
    rows = decode.decode_protobuf_rows(body).rows
    assert rows[0][C_EVENTS] == [decode.MAX_TIME_NS] * 3 + [5]
    assert rows[1][C_DURATION] == 2**64 - 1 - sp[1].start_time_unix_nano
    native = _in_db(store, "pp_engine_clamp_native")
    native.apply_schema()
    native.insert_otel_traces_native(encode_otel_traces([res.rows.columns()]), dedup_token="clamp")
    reference = _in_db(store, "pp_engine_clamp_rows")
    reference.apply_schema()
    reference.insert_otel_traces(rows, dedup_token="clamp")
    store._client.database = store.database  # (the others moved the shared client)
    store.insert_otel_traces_otlp([body], dedup_token="clamp")
    sql = OTEL_SQL.replace("FROM DB.otel_traces", "FROM DB.otel_traces WHERE ServiceName = 'clamped-times'")
    want = store.query(sql.replace("DB.", "pp_engine_clamp_rows.")).rows
    assert len(want) == 3
    assert store.query(sql.replace("DB.", "pp_engine.")).rows == want
    assert store.query(sql.replace("DB.", "pp_engine_clamp_native.")).rows == want
    got = store.query("SELECT toString(Events.Timestamp), Duration FROM pp_engine.otel_traces WHERE ServiceName = "
                      "'clamped-times' ORDER BY SpanId").rows
    last = "'2262-04-11 23:47:16.854775807'"
    assert [last, last, last, "'1970-01-01 00:00:00.000000005'"] == next(
        r[0] for r in got if "2262" in r[0]).strip("[]").split(",")
    assert 2**64 - 1 - sp[1].start_time_unix_nano in [r[1] for r in got]
