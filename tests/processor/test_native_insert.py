"""The Native insert path (decoder → column pieces → one Native block → INSERT ... FORMAT Native) stores exactly
what the row path (decoder rows → clickhouse-connect) stores: same rows in otel_traces and llm_calls, byte for byte
(maps in order), and the dedup token still drops a retried batch. Both stores: embedded chDB (INFILE) and the
server path (raw HTTP insert, through the loopback ClickHouse-HTTP server over the same engine)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fakes import add_plain_resource, genai_spans
from fakes import kv as _kv
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList

from promptpulse.processor.receiver import decode
from promptpulse.processor.store.native import SpanColumns, encode_otel_traces

pytest.importorskip("chdb")


def _edge_request(seed: int) -> bytes:
    """Real SDK spans plus the shapes the fast path special-cases: repeated keys (last wins), token keys repeated
    bad→good and good→bad, every AnyValue kind, long (multi-byte varint) and non-ASCII strings, events and links with
    attributes, parent ids, trace state, status messages, unknown kind/status, a second resource without
    service.name, scopes with no version, rejected spans and a clamped duration."""
    req = encode_spans(genai_spans(40, seed=seed))
    sp0 = req.resource_spans[0].scope_spans[0].spans
    base = sp0[0].start_time_unix_nano
    kvl = KeyValueList(values=[_kv("b", int_value=1), _kv("a", string_value="<x>&")])
    odd = [
        _kv("dup", string_value="first"), _kv("s", string_value="é" * 100), _kv("long", string_value="x" * 70000),
        _kv("i", int_value=-(2**63)), _kv("d", double_value=1e21), _kv("f", double_value=0.1),
        _kv("nan", double_value=float("nan")), _kv("bool", bool_value=False), _kv("by", bytes_value=b"\0\xff"),
        _kv("arr", array_value=ArrayValue(values=[AnyValue(string_value="q"), AnyValue(double_value=2.0)])),
        _kv("kvl", kvlist_value=kvl), _kv("empty"), _kv("", string_value="empty key"),
        _kv("dup", string_value="second"), _kv("gen_ai.usage.input_tokens", string_value="-5"),
        _kv("gen_ai.usage.input_tokens", int_value=7),
    ]
    sp0[1].attributes.extend(odd)
    sp0[2].attributes.extend([_kv("gen_ai.usage.output_tokens", int_value=3),
                              _kv("gen_ai.usage.output_tokens", string_value="lots")])  # → rejected
    sp0[3].trace_state = "k=v,é=1"
    sp0[3].status.message = "ü" * 200
    sp0[3].kind = 9
    sp0[3].status.code = 7
    sp0[4].end_time_unix_nano = sp0[4].start_time_unix_nano - 5  # clamped to 0
    for k in range(3):
        ev = sp0[5].events.add(time_unix_nano=base + k, name=f"ev{k % 2}")
        ev.attributes.extend([_kv("ek", string_value=str(k)), _kv("gen_ai.prompt", string_value="p" * 300)])
    sp0[6].events.add(time_unix_nano=base, name="")
    ln = sp0[6].links.add(trace_id=uuid.uuid4().bytes, span_id=b"\1" * 8, trace_state="lt=1")
    ln.attributes.extend([_kv("lk", int_value=1), _kv("lk", string_value="x")])
    sp0[7].links.add(trace_id=uuid.uuid4().bytes, span_id=b"\2" * 8)
    sp0[8].trace_id = b"\0" * 16  # rejected
    sp0[9].attributes.extend([_kv("gen_ai.usage.input_tokens", int_value=10**9)])  # rejected
    add_plain_resource(req, [_kv("host.name", string_value="h"), _kv("service.name", int_value=3)], base)
    return req.SerializeToString()


BODIES = [_edge_request(seed) for seed in (1, 2)] + [encode_spans(genai_spans(300, seed=3)).SerializeToString()]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions
    from promptpulse.processor.store.server import ServerStore
    from promptpulse.testing.clickhouse_http import ClickHouseHTTPServer

    data_dir = str(tmp_path_factory.mktemp("chdb"))
    embedded = EmbeddedStore(data_dir, schema_options=SchemaOptions(database="pp_native_embedded"))
    server = ClickHouseHTTPServer(data_dir).start()
    rows_path = ServerStore(f"{server.url}/pp_native_rows?compress=false")
    native_http = ServerStore(f"{server.url}/pp_native_http?compress=false")
    try:
        for s in (embedded, rows_path, native_http):
            s.apply_schema()
        yield {"embedded": embedded, "rows": rows_path, "http": native_http}
    finally:
        native_http.close()
        rows_path.close()
        server.stop()
        embedded.close()


def _dump(store, db: str, sql: str) -> list:
    # toString renders maps in stored order (a dict comparison would not see a reordered map)
    return store.query(sql.replace("DB.", f"{db}.")).rows


OTEL_SQL = ("SELECT SpanId, toString(tuple(Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,"
            " ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode,"
            " StatusMessage, Events.Timestamp, Events.Name, Events.Attributes, Links.TraceId, Links.SpanId,"
            " Links.TraceState, Links.Attributes)), toTypeName(SpanAttributes) FROM DB.otel_traces ORDER BY SpanId")
CALLS_SQL = "SELECT toString(tuple(*)) FROM DB.llm_calls ORDER BY span_id"


def test_decoders_agree() -> None:
    for body in BODIES:
        cols, rows = decode.decode_protobuf(body), decode.decode_protobuf_rows(body)
        assert isinstance(cols.rows, SpanColumns) and cols.rows.n == len(rows.rows) > 0
        assert (cols.rejected, cols.reasons, cols.warnings) == (rows.rejected, rows.reasons, rows.warnings)
    assert decode.decode_protobuf(BODIES[0]).rejected == 3


def test_native_block_stores_the_same_rows_as_the_row_path(stores: dict) -> None:
    results = [decode.decode_protobuf(b) for b in BODIES]
    rows = [r for res in results for r in decode.decode_protobuf_rows(BODIES[results.index(res)]).rows]
    block = encode_otel_traces([res.rows for res in results])
    stores["rows"].insert_otel_traces(rows, dedup_token="rows-path")
    stores["embedded"].insert_otel_traces_native(block, dedup_token="native-path")
    stores["http"].insert_otel_traces_native(block, dedup_token="native-path")
    e = stores["embedded"]
    want = _dump(e, "pp_native_rows", OTEL_SQL)
    assert len(want) == len(rows) == sum(r.rows.n for r in results)
    assert want[0][2] == "Map(LowCardinality(String), String)"
    assert _dump(e, "pp_native_embedded", OTEL_SQL) == want
    assert _dump(e, "pp_native_http", OTEL_SQL) == want
    calls = _dump(e, "pp_native_rows", CALLS_SQL)
    assert len(calls) > 300
    assert _dump(e, "pp_native_embedded", CALLS_SQL) == calls
    assert _dump(e, "pp_native_http", CALLS_SQL) == calls
    # the edge cases did reach the table
    got = {r[0]: r[1] for r in want}
    assert any("'dup':'second'" in v and "'gen_ai.usage.input_tokens':'7'" in v for v in got.values())
    assert any("'ev0','ev1','ev0'" in v for v in got.values())


@pytest.mark.parametrize("name", ["embedded", "http"])
def test_native_insert_dedup_token(stores: dict, name: str) -> None:
    store = stores[name]
    body = encode_spans(genai_spans(50, seed=11, service=f"dedup-{name}")).SerializeToString()
    block = encode_otel_traces([decode.decode_protobuf(body).rows])
    for _ in range(3):
        store.insert_otel_traces_native(block, dedup_token=f"tok-{name}")
    p = {"s": f"dedup-{name}"}
    assert store.query("SELECT count() FROM otel_traces WHERE ServiceName = {s:String}", p).scalar() == 50
    assert store.query("SELECT count() FROM llm_calls WHERE service = {s:String}", p).scalar() == 50
    assert store.query("SELECT sum(calls) FROM llm_calls_1m WHERE service = {s:String}", p).scalar() == 50
