"""Poison requests (issue 16 §1): nothing the receivers accept can fail to insert because of its content.

A seeded, bounded fuzz: valid OTLP requests (protobuf, one the engine decodes and one the Python decoder does; their
OTLP/JSON forms) with attributes of every kind, token counts, events and links, mutated by (a) random bit flips,
(b) wire-level edits (known fields with another wire type, appended or in place, repeated message fields, long tags,
groups, unknown fields, extreme varint / fixed64 values), (c) JSON type mutations (any node replaced by a value of
another JSON type, huge or negative numbers, 10^26, 2^64, unpaired surrogates, deep nesting). Each mutant is decoded
as the receivers do (engine_decode.decode_protobuf, decode.decode_json): a DecodeError is a 400 and fine; anything
else must give the same spans as the upb reader and insert into real stores — embedded (the engine path and the
Native path) and a server through the loopback ClickHouse-HTTP server (Native and rows). Inserts go in small groups;
a group that fails is inserted again mutant by mutant so the failure names its mutant (seed and hex in the message).
Afterwards the stores hold exactly the accepted spans, the engine and Python renderings agree, and a batch of valid
spans still goes in. ``PROMPTPULSE_FUZZ_SEED=<n>`` runs another seed (the exact statistics are then not checked).
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fakes import column_rows, genai_spans, kv
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from promptpulse.processor.receiver import decode, engine_decode
from promptpulse.processor.store.base import StoreError
from promptpulse.processor.store.native import SpanColumns, encode_otel_traces

pytest.importorskip("chdb")

SEED = int(os.environ.get("PROMPTPULSE_FUZZ_SEED", "16"))
EXACT = "PROMPTPULSE_FUZZ_SEED" not in os.environ
N_FLIPS = 1500  # per protobuf base
N_WIRE = 700  # per protobuf base
N_JSON = 1200  # per JSON base
GROUP = 300  # mutants per insert
# Fixed, not today's date: a bit flip's outcome depends on the timestamp's bits (the exact counts moved by one on a
# new day). The stores keep rows for 20,000 days, so the TTL never drops these rows.
BASE_NS = 1_761_955_200 * 10**9  # 2025-11-01 00:00 UTC
TTL_DAYS = 20_000
DBS = ("fz_engine", "fz_py", "fz_http_native", "fz_http_rows")
ROW_SQL = ("SELECT toString(tuple(Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,"
           " ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode,"
           " StatusMessage, Events.Timestamp, Events.Name, Events.Attributes, Links.TraceId, Links.SpanId,"
           " Links.TraceState, Links.Attributes)) FROM DB.otel_traces")


# ------------------------------------------------------------------------------------------------ valid requests
def _request(rnd: random.Random, n: int, *, odd: bool) -> ExportTraceServiceRequest:
    """n GenAI spans with every attribute kind, token counts, events, links, a trace state and an error status;
    ``odd`` adds a kvlist and a nested array (values only the Python decoder renders)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", string_value="fuzz"), kv("host.cpus", int_value=8),
                                   kv("deployment.environment.name", string_value="prod")])
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "promptpulse.instrumentation.openai", "0.1.0"
    for i in range(n):
        start = BASE_NS + i * 10**9
        sp = ss.spans.add(trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8), name="chat gpt-4o",
                          parent_span_id=rnd.randbytes(8) if i else b"", kind=Span.SPAN_KIND_CLIENT,
                          start_time_unix_nano=start, end_time_unix_nano=start + rnd.randint(10**8, 3 * 10**9))
        sp.attributes.extend([
            kv("gen_ai.operation.name", string_value="chat"), kv("gen_ai.request.model", string_value="gpt-4o"),
            kv("gen_ai.usage.input_tokens", int_value=100 + i), kv("gen_ai.usage.output_tokens", int_value=7 * i),
            kv("gen_ai.request.temperature", double_value=0.5), kv("gen_ai.request.stream", bool_value=i == 1),
            kv("gen_ai.response.finish_reasons", array_value=ArrayValue(values=[AnyValue(string_value="stop"),
                                                                                AnyValue(int_value=-3)])),
            kv("promptpulse.cost.usd", double_value=0.0012), kv("user.id", string_value=f"u{i}é"),
            kv("blob", bytes_value=b"\0\xff"), kv("empty"),
        ])
        if odd and i == 0:
            sp.attributes.extend([kv("kvl", kvlist_value=KeyValueList(values=[kv("a", int_value=1)])),
                                  kv("nest", array_value=ArrayValue(values=[AnyValue(array_value=ArrayValue(
                                      values=[AnyValue(double_value=1e21)]))]))])
        ev = sp.events.add(time_unix_nano=start + 5, name="gen_ai.content.prompt")
        ev.attributes.extend([kv("gen_ai.prompt", string_value="hi <b>"), kv("n", int_value=2)])
        if i == 1:
            sp.trace_state = "k=v"
            sp.events.add(time_unix_nano=start + 7, name="exception").attributes.extend([
                kv("exception.type", string_value="RateLimitError")])
            sp.status.code, sp.status.message = Status.STATUS_CODE_ERROR, "rate limited"
        ln = sp.links.add(trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8), trace_state="l=1")
        ln.attributes.extend([kv("link.kind", string_value="retry")])
    return req


def _json_doc(req: ExportTraceServiceRequest) -> dict:
    """OTLP/JSON of req (ids hex, not base64; 64-bit ints as strings, enums by name)."""
    import base64

    d = json_format.MessageToDict(req)
    for rs in d["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for x in [sp, *sp.get("links", ())]:
                    for k in ("traceId", "spanId", "parentSpanId"):
                        if k in x:
                            x[k] = base64.b64decode(x[k]).hex()
    return d


# ------------------------------------------------------------------------------------------------ wire mutations
def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        if x < 0x80:
            return r, i
        s += 7


def _enc(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@dataclass
class _Node:
    """A message as a list of [field number, wire type, value, long tag]; value: int (varint), bytes (fixed,
    length-delimited raw, group body) or a _Node (a known message field)."""

    desc: Any
    fields: list = field(default_factory=list)


def _parse(b: bytes, desc: Any) -> _Node:
    node = _Node(desc)
    i = 0
    while i < len(b):
        tag, i = _varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            v, i = b[i:i + n], i + n
        else:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
            fd = desc.fields_by_number.get(num)
            if fd is not None and fd.message_type is not None:
                v = _parse(v, fd.message_type)
        node.fields.append([num, wt, v, False])
    return node


def _ser(node: _Node) -> bytes:
    out = bytearray()
    for num, wt, v, long in node.fields:
        tag = _enc((num << 3) | wt)
        out += tag[:-1] + bytes([tag[-1] | 0x80, 0]) if long else tag
        if wt == 0:
            out += _enc(v)
        elif wt in (1, 5):
            out += v
        elif wt == 2:
            raw = _ser(v) if isinstance(v, _Node) else v
            out += _enc(len(raw)) + raw
        else:  # a group: its body, then the end-group tag
            out += v + _enc((num << 3) | 4)
    return bytes(out)


def _nodes(node: _Node, acc: list[_Node]) -> list[_Node]:
    acc.append(node)
    for f in node.fields:
        if isinstance(f[2], _Node):
            _nodes(f[2], acc)
    return acc


_FIXED = {FieldDescriptor.TYPE_DOUBLE: 1, FieldDescriptor.TYPE_FIXED64: 1, FieldDescriptor.TYPE_SFIXED64: 1,
          FieldDescriptor.TYPE_FLOAT: 5, FieldDescriptor.TYPE_FIXED32: 5, FieldDescriptor.TYPE_SFIXED32: 5,
          FieldDescriptor.TYPE_STRING: 2, FieldDescriptor.TYPE_BYTES: 2, FieldDescriptor.TYPE_MESSAGE: 2}
_VARINTS = (0, 1, 3, 9, 2**31, 2**32 + 3, 2**63, 2**64 - 1)
_FIXED64 = tuple(x.to_bytes(8, "little") for x in (0, 2**63 - 1, 2**63, 2**64 - 1, 10**19))


def _payload(rnd: random.Random, wt: int) -> Any:
    if wt == 0:
        return rnd.choice(_VARINTS)
    if wt == 1:
        return rnd.choice(_FIXED64) if rnd.random() < 0.5 else rnd.randbytes(8)
    if wt == 5:
        return rnd.randbytes(4)
    return rnd.choice([b"", b"x", b"\x08\x01", b"\xff\xfe", b"\x0a\x02hi", rnd.randbytes(3)])


def _copy(v: Any) -> Any:
    return _parse(_ser(v), v.desc) if isinstance(v, _Node) else v


def _wire_mutant(rnd: random.Random, base: bytes) -> bytes:
    root = _parse(base, ExportTraceServiceRequest.DESCRIPTOR)
    for _ in range(rnd.choice((1, 1, 2))):
        nodes = _nodes(root, [])
        node = rnd.choice(nodes)
        fs = node.fields
        op = rnd.randrange(8)
        pos = len(fs) if rnd.random() < 0.6 else rnd.randint(0, len(fs))  # mostly trailing: what upb writes back
        if op <= 1 and node.desc.fields:  # a known field with another wire type
            fd = rnd.choice(node.desc.fields)
            wt = rnd.choice([w for w in (0, 1, 2, 5) if w != _FIXED.get(fd.type, 0)])
            fs.insert(pos, [fd.number, wt, _payload(rnd, wt), False])
        elif op == 2 and fs:  # an existing field retyped
            f = rnd.choice(fs)
            f[1] = rnd.choice([w for w in (0, 1, 2, 5) if w != f[1]])
            f[2] = _payload(rnd, f[1])
        elif op == 3 and fs:  # a field given twice (a message one is merged by protobuf)
            f = rnd.choice(fs)
            fs.insert(pos, [f[0], f[1], _copy(f[2]), False])
        elif op == 4 and fs:
            rnd.choice(fs)[3] = True  # a non-minimal tag
        elif op == 5:  # a group, with a known or an unknown number
            fs.insert(pos, [rnd.choice([1, 2, 7, 77]), 3, rnd.choice([b"", b"\x08\x01", b"\x12\x01a"]), False])
        elif op == 6:  # an unknown field
            wt = rnd.choice((0, 1, 2, 5))
            fs.insert(pos, [rnd.randint(17, 3000), wt, _payload(rnd, wt), False])
        elif fs:  # another value of the same wire type (extreme varints and times, raw bytes)
            f = rnd.choice(fs)
            if not isinstance(f[2], _Node) and f[1] != 3:
                f[2] = _payload(rnd, f[1])
    return _ser(root)


def _flip(rnd: random.Random, base: bytes) -> bytes:
    b = bytearray(base)
    for _ in range(rnd.choice((1, 1, 2, 3))):
        b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
    return bytes(b)


# ------------------------------------------------------------------------------------------------ JSON mutations
_DEEP = "\x00deep\x00"
_DEEP_TEXTS = [
    "[" * 5000 + "]" * 5000,
    '{"arrayValue":{"values":[' * 5000 + "{}" + "]}}" * 5000,
    '{"kvlistValue":{"values":[{"key":"k","value":' * 5000 + "{}" + "}]}}" * 5000,
    '{"arrayValue":{"values":[' * 45 + '{"intValue":"1"}' + "]}}" * 45,
    '{"kvlistValue":{"values":[{"key":"k","value":' * 20 + '{"stringValue":"x"}' + "}]}}" * 20,
]
_OTHER = [0, 1, -1, 2.5, True, False, None, "", "x", "NaN", "Infinity", "12", "-7", [], [1, "a"], {}, {"a": 1},
          {"stringValue": "s"}, {"intValue": "3", "stringValue": "s"}, [{"key": "k"}], "AQ==", "zz"]
_NUMBERS = [10**26, 2**64, 2**64 - 1, 2**63, 2**63 - 1, -(2**63) - 1, -(2**63), -1, 1e300, 1.5, 1e19, 0,
            "100000000000000000000000000", "18446744073709551616", "9223372036854775808", "-1", "1e5", " 5",
            "5_0", "0x10", "١٢", "+1"]


def _paths(o: Any, acc: list) -> list:
    if isinstance(o, dict):
        for k, v in o.items():
            acc.append((o, k))
            _paths(v, acc)
    elif isinstance(o, list):
        for i, v in enumerate(o):
            acc.append((o, i))
            _paths(v, acc)
    return acc


def _json_mutant(rnd: random.Random, doc: dict) -> bytes:
    d = copy.deepcopy(doc)
    deep = None
    for _ in range(rnd.choice((1, 1, 1, 2))):
        where, key = rnd.choice(_paths(d, []))
        op = rnd.random()
        if op < 0.5:
            where[key] = rnd.choice(_OTHER)
        elif op < 0.8:
            where[key] = rnd.choice(_NUMBERS)
        elif op < 0.86:
            where.pop(key)
        elif op < 0.93:
            where[key] = rnd.choice(["\ud800", "a\udc00", "\ud83d\ude00"])  # lone surrogates; a valid pair
        else:
            where[key] = _DEEP
            deep = rnd.choice(_DEEP_TEXTS)
    text = json.dumps(d)
    if deep is not None:
        text = text.replace(json.dumps(_DEEP), deep)
    return text.encode()


# ------------------------------------------------------------------------------------------------ stores
@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions
    from promptpulse.processor.store.server import ServerStore
    from promptpulse.testing.clickhouse_http import ClickHouseHTTPServer

    def opts(db: str) -> SchemaOptions:
        return SchemaOptions(database=db, ttl_raw_days=TTL_DAYS, ttl_calls_days=TTL_DAYS)

    data_dir = str(tmp_path_factory.mktemp("chdb"))
    engine = EmbeddedStore(data_dir, schema_options=opts("fz_engine"))
    py = EmbeddedStore(data_dir, schema_options=opts("fz_py"))
    server = ClickHouseHTTPServer(data_dir).start()
    http_native = ServerStore(f"{server.url}/fz_http_native?compress=false", schema_options=opts("fz_http_native"))
    http_rows = ServerStore(f"{server.url}/fz_http_rows?compress=false", schema_options=opts("fz_http_rows"))
    out = {"engine": engine, "py": py, "http_native": http_native, "http_rows": http_rows}
    try:
        for s in out.values():
            s.apply_schema()
        for db in DBS:  # TTL merges would drop the mutants' odd timestamps and make the counts inexact
            engine.command(f"SYSTEM STOP MERGES {db}.otel_traces")
        yield out
    finally:
        http_rows.close()
        http_native.close()
        server.stop()
        py.close()
        engine.close()


@dataclass
class _Stats:
    tried: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)  # DecodeError: 400
    accepted: Counter = field(default_factory=Counter)  # decoded, with at least one span
    empty: Counter = field(default_factory=Counter)  # decoded, every span rejected alone (partial success)
    spans: Counter = field(default_factory=Counter)  # accepted spans
    engine: int = 0  # mutants the engine path took
    engine_spans: int = 0


class _Inserts:
    """Mutants queued per insert path, inserted in groups; a group that fails is halved until the failing mutants
    are inserted alone (so each failure names its mutant; at most MAX_FAILURES per path are looked for)."""

    MAX_FAILURES = 5

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.queues: dict[str, list] = {}
        self.failures: list[str] = []
        self.inserts = 0

    def add(self, path: str, mutant: bytes, payload: Any) -> None:
        self.queues.setdefault(path, []).append((mutant, payload))

    def flush(self, path: str, insert: Callable[[list, str], None]) -> None:
        items = self.queues.pop(path, [])
        found: list[str] = []
        for k in range(0, len(items), GROUP):
            self._insert(path, items[k:k + GROUP], insert, found)
        self.failures += found

    def _insert(self, path: str, chunk: list, insert: Callable[[list, str], None], found: list[str]) -> None:
        if len(found) >= self.MAX_FAILURES:
            return
        self.inserts += 1
        try:
            insert([p for _, p in chunk], f"fuzz-{self.seed}-{self.inserts}")
        except StoreError as e:
            if len(chunk) == 1:
                found.append(f"{path}: {str(e)[:400]}\n  seed {self.seed}, mutant {_show(chunk[0][0])}")
            else:
                self._insert(path, chunk[:len(chunk) // 2], insert, found)
                self._insert(path, chunk[len(chunk) // 2:], insert, found)


def _show(mutant: bytes) -> str:
    """A mutant for a failure message: protobuf as hex, JSON as text (5000-level nestings cut)."""
    if mutant[:1] == b"{":
        return mutant.decode(errors="replace")[:6000]
    return mutant.hex()


def _rows(store: Any, db: str) -> Counter:
    return Counter(r[0] for r in store.query(ROW_SQL.replace("DB.", f"{db}.")).rows)


def test_no_accepted_request_fails_to_insert(stores: dict) -> None:
    rnd = random.Random(SEED)
    pb_bases = {"pb-engine": _request(rnd, 3, odd=False).SerializeToString(),
                "pb-python": _request(rnd, 2, odd=True).SerializeToString()}
    assert engine_decode.check(pb_bases["pb-engine"]) is not None and engine_decode.check(pb_bases["pb-python"]) is None
    json_bases = {"json-" + k[3:]: _json_doc(ExportTraceServiceRequest.FromString(b)) for k, b in pb_bases.items()}
    for name, doc in json_bases.items():  # the JSON forms decode to the protobuf rows
        assert decode.decode_json(json.dumps(doc).encode()).rows == decode.decode_protobuf_rows(
            pb_bases["pb-" + name[5:]]).rows
    stats = _Stats()
    ins = _Inserts(SEED)
    errors: list[str] = []

    def protobuf(cls: str, body: bytes) -> None:
        stats.tried[cls] += 1
        try:
            res = engine_decode.decode_protobuf(body)
        except decode.DecodeError:
            stats.rejected[cls] += 1
            return
        except Exception as e:  # a 500 in the receiver
            errors.append(f"{cls}: {type(e).__name__}: {e}\n  seed {SEED}, mutant {_show(body)}")
            return
        ref = decode.decode_protobuf_rows(body)
        got = (len(res.rows), res.rejected, res.reasons, res.warnings)
        if got != (len(ref.rows), ref.rejected, ref.reasons, ref.warnings):
            errors.append(f"{cls}: counts {got} differ from the upb reader's\n  seed {SEED}, mutant {_show(body)}")
            return
        if not res.rows:
            stats.empty[cls] += 1
            return
        if isinstance(res.rows, engine_decode.EngineSpans):
            stats.engine += 1
            stats.engine_spans += len(res.rows)
            ins.add("engine", body, body)
            cols = res.rows.columns()
        else:
            cols = res.rows
        assert isinstance(cols, SpanColumns), body.hex()
        if column_rows(cols) != ref.rows:  # the Native pieces store what the upb reader reads
            errors.append(f"{cls}: the column pieces differ from the upb reader's rows\n"
                          f"  seed {SEED}, mutant {_show(body)}")
            return
        stats.accepted[cls] += 1
        stats.spans[cls] += len(ref.rows)
        ins.add("py-native", body, cols)
        ins.add("http-native", body, cols)
        ins.add("http-rows", body, ref.rows)

    def otlp_json(cls: str, body: bytes) -> None:
        stats.tried[cls] += 1
        try:
            res = decode.decode_json(body)
        except decode.DecodeError:
            stats.rejected[cls] += 1
            return
        except Exception as e:
            errors.append(f"{cls}: {type(e).__name__}: {e}\n  seed {SEED}, mutant {_show(body)}")
            return
        if not res.rows:
            stats.empty[cls] += 1
            return
        stats.accepted[cls] += 1
        stats.spans[cls] += len(res.rows)
        ins.add("py-rows", body, res.rows)
        ins.add("http-rows", body, res.rows)

    for name, base in pb_bases.items():
        for _ in range(N_FLIPS):
            protobuf(f"{name} flip", _flip(rnd, base))
        for _ in range(N_WIRE):
            protobuf(f"{name} wire", _wire_mutant(rnd, base))
    for name, doc in json_bases.items():
        for _ in range(N_JSON):
            otlp_json(name, _json_mutant(rnd, doc))

    e, py, hn, hr = stores["engine"], stores["py"], stores["http_native"], stores["http_rows"]
    ins.flush("engine", lambda bodies, tok: e.insert_otel_traces_otlp(bodies, dedup_token=tok))
    ins.flush("py-native", lambda cols, tok: py.insert_otel_traces_native(encode_otel_traces(cols), dedup_token=tok))
    ins.flush("py-rows", lambda rows, tok: py.insert_otel_traces([r for rs in rows for r in rs], dedup_token=tok))
    ins.flush("http-native", lambda cols, tok: hn.insert_otel_traces_native(encode_otel_traces(cols),
                                                                            dedup_token=tok))
    ins.flush("http-rows", lambda rows, tok: hr.insert_otel_traces([r for rs in rows for r in rs], dedup_token=tok))
    summary = {c: (stats.tried[c], stats.rejected[c], stats.accepted[c], stats.empty[c], stats.spans[c])
               for c in sorted(stats.tried)}
    print(f"\nfuzz seed {SEED}: class: (tried, rejected 400, accepted with spans, accepted without, spans stored); "
          f"engine path: {stats.engine} mutants, {stats.engine_spans} spans")
    for c, v in summary.items():
        print(f"  {c}: {v}")
    problems = errors + ins.failures
    assert not problems, f"{len(problems)} poison mutant(s):\n" + "\n".join(problems[:5])

    # the stores hold exactly the accepted spans, and every path stored the same rows
    pb_spans = sum(v for c, v in stats.spans.items() if c.startswith("pb-"))
    js_spans = sum(v for c, v in stats.spans.items() if c.startswith("json-"))
    got = {db: _rows(e, db) for db in DBS}
    assert {db: got[db].total() for db in DBS} == {"fz_engine": stats.engine_spans, "fz_py": pb_spans + js_spans,
                                                  "fz_http_native": pb_spans, "fz_http_rows": pb_spans + js_spans}
    assert got["fz_http_rows"] == got["fz_py"]
    assert not got["fz_http_native"] - got["fz_py"]
    assert not got["fz_engine"] - got["fz_py"], "the engine rendered a mutant differently from the Python decoder"

    # and valid spans still go in, on every path
    body = encode_spans(genai_spans(40, seed=SEED, service="fuzz-after")).SerializeToString()
    res = engine_decode.decode_protobuf(body)
    assert isinstance(res.rows, engine_decode.EngineSpans)
    e.insert_otel_traces_otlp([body], dedup_token="after")
    for s in (py, hn):
        s.insert_otel_traces_native(encode_otel_traces([res.rows.columns()]), dedup_token="after")
    hr.insert_otel_traces(list(res.rows), dedup_token="after")
    for db in DBS:
        p = {"s": "fuzz-after"}
        assert e.query(f"SELECT count() FROM {db}.otel_traces WHERE ServiceName = {{s:String}}", p).scalar() == 40
        assert e.query(f"SELECT count() FROM {db}.llm_calls WHERE service = {{s:String}}", p).scalar() == 40

    if EXACT:  # seed 16: (tried, rejected 400, accepted with spans, accepted without, spans stored)
        assert summary == {
            "json-engine": (1200, 931, 264, 5, 760), "json-python": (1200, 954, 238, 8, 461),
            "pb-engine flip": (1500, 582, 918, 0, 2733), "pb-engine wire": (700, 9, 689, 2, 2059),
            "pb-python flip": (1500, 632, 866, 2, 1706), "pb-python wire": (700, 11, 688, 1, 1365),
        }, summary
        assert (stats.engine, stats.engine_spans) == (860, 2581)
