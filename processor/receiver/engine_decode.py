"""OTLP protobuf decoded by the ClickHouse engine: ``INSERT INTO otel_traces SELECT <rendering> FROM <bodies>
FORMAT Protobuf``, outside the GIL, for the requests where the engine provably renders exactly what decode.py does.

Which requests (:func:`check`, at request time, all in upb's C code but one loop over the spans):

* the body parses with a copy of the OTLP schema (:data:`FAST_FILE`) in which a kvlist value or an array inside an
  array cannot be serialised, and re-serialises, its unknown fields discarded, to the same bytes (canonical
  encoding: fields in order, each once, minimal varints, no unknown field) — so the engine's Protobuf reader and
  upb see the same message, and every value has a shape the SQL renders. Unknown fields matter: upb keeps a known
  field with the wrong wire type (``08 01`` appended to a request) as an unknown one and writes it back where it
  was, but the engine's reader rejects the whole insert (``Code: 444 ... Protobuf messages are corrupted``);
* every span passes decode.py's id / start-time checks (a request with a rejected span takes the Python path, so
  the engine never has to filter);
* every occurrence of a token-count key (decode.TOKEN_KEYS) in the body is a span attribute with a small int value
  in canonical form (``4a L 0a klen key 12 V 18 varint``; see _token_ok for why that is exact);
* no attribute value is an empty array (``12 02 2a 00``: ClickHouse cannot tell it from an absent one).

Everything else (JSON, rejected spans, kvlists, odd encodings) takes the Python decoder as before.

Times are those of decode.py: a start time of 0 or past 2^63-1 ns (DateTime64(9) ends in 2262) rejects the span
(so such a request takes the Python path); any fixed64 end time is kept through ``Duration`` (UInt64, 0 when the
end precedes the start); an event time past 2^63-1 is stored as 2^63-1 (clamped, the span kept), as decode.py
does. Rendering
(:func:`insert_select`) follows decode.py's docstring; tests/processor/test_engine_decode.py compares every column
with the row path (``toString``, so map order counts).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from ..store.native import BodyRows
from . import decode

PACKAGE = "promptpulse.otlp.fast"
ROOT = "ExportTraceServiceRequest"


# ------------------------------------------------------------------------------------------ restricted schema
def _excluded_file() -> descriptor_pb2.FileDescriptorProto:
    """A proto2 message with a required field that no body has: a field of this type makes the parse fail."""
    fdp = descriptor_pb2.FileDescriptorProto(name="promptpulse_otlp_excluded.proto", package=PACKAGE, syntax="proto2")
    msg = fdp.message_type.add(name="Excluded")
    msg.field.add(name="never", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED)
    return fdp


EXCLUDED = f".{PACKAGE}.Excluded"


def _fast_file() -> descriptor_pb2.FileDescriptorProto:
    """A copy of the installed OTLP trace schema in one file, where the values the SQL cannot render (a kvlist, an
    array inside an array) have the type Excluded, so a body holding one does not parse. Every other field is as
    in the real schema (same UTF-8 checks); fields unknown to both are ignored by both decoders."""
    fdp = descriptor_pb2.FileDescriptorProto(name="promptpulse_otlp_fast.proto", package=PACKAGE, syntax="proto3",
                                             dependency=["promptpulse_otlp_excluded.proto"])
    pkg = re.compile(r"^\.opentelemetry\.proto\.[a-z.]+\.v1\.")

    def fix(msg: descriptor_pb2.DescriptorProto) -> None:
        for f in msg.field:
            if f.type_name:
                f.type_name = pkg.sub(f".{PACKAGE}.", f.type_name)
        for n in msg.nested_type:
            fix(n)

    def copy(d: Any, name: str | None = None, exclude: tuple[str, ...] = (), element: str | None = None) -> None:
        p = descriptor_pb2.DescriptorProto()
        d.CopyToProto(p)
        if name:
            p.name = name
        fix(p)
        for f in p.field:
            if f.name in exclude:
                f.type = f.TYPE_MESSAGE
                f.type_name = EXCLUDED
        if element:  # ArrayValue.values
            p.field[0].type_name = f".{PACKAGE}.{element}"
        fdp.message_type.append(p)  # (appends a copy)

    for d in (trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR, trace_pb2.ResourceSpans.DESCRIPTOR,
              trace_pb2.ScopeSpans.DESCRIPTOR, trace_pb2.Span.DESCRIPTOR, trace_pb2.Status.DESCRIPTOR,
              resource_pb2.Resource.DESCRIPTOR, common_pb2.InstrumentationScope.DESCRIPTOR,
              common_pb2.KeyValue.DESCRIPTOR):
        copy(d)
    if hasattr(common_pb2, "EntityRef"):
        copy(common_pb2.EntityRef.DESCRIPTOR)
    copy(common_pb2.AnyValue.DESCRIPTOR, exclude=("kvlist_value",))
    copy(common_pb2.AnyValue.DESCRIPTOR, "AnyValueLeaf", exclude=("kvlist_value", "array_value"))
    copy(common_pb2.ArrayValue.DESCRIPTOR, element="AnyValueLeaf")
    return fdp


FAST_FILE = _fast_file()
_pool = descriptor_pool.DescriptorPool()
_pool.Add(_excluded_file())
_pool.Add(FAST_FILE)
FastRequest = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.{ROOT}"))


_SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string", descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool", descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double", descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64:
    "fixed64", descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32", descriptor_pb2.FieldDescriptorProto.TYPE_INT32:
    "int32", descriptor_pb2.FieldDescriptorProto.TYPE_ENUM: "int32",  # wire-compatible; no enum value checks
}


def proto_text() -> str:
    """FAST_FILE as .proto source for the engine's ``format_schema`` (nested types flattened, enums as int32)."""
    out = ['syntax = "proto3";']

    def name_of(type_name: str) -> str:
        return type_name.rsplit(".", 1)[1]

    def emit(msg: descriptor_pb2.DescriptorProto) -> None:
        for n in msg.nested_type:
            emit(n)
        fields = []
        for f in msg.field:
            if f.type_name == EXCLUDED:  # never in a body that reaches the engine
                continue
            t = name_of(f.type_name) if f.type == f.TYPE_MESSAGE else _SCALARS[f.type]
            rep = "repeated " if f.label == f.LABEL_REPEATED else ""
            fields.append(f"{rep}{t} {f.name} = {f.number};")
        out.append(f"message {msg.name} {{ {' '.join(fields)} }}")

    for m in FAST_FILE.message_type:
        emit(m)
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------ request-time check
_MAX_TIME = decode.MAX_TIME_NS
_Z16, _Z8 = b"\0" * 16, b"\0" * 8
_EMPTY_ARRAY = b"\x12\x02\x2a\x00"


def _token_regexes() -> list[re.Pattern[bytes]]:
    """One regex per leading word of decode.TOKEN_KEYS (a literal prefix keeps the scan at C speed)."""
    groups: dict[bytes, list[bytes]] = {}
    for k in decode.TOKEN_KEYS:
        head, _, rest = k.encode().partition(b".")
        groups.setdefault(head, []).append(rest)
    return [re.compile(re.escape(head + b".") + b"(?:" + b"|".join(re.escape(r) for r in sorted(rests, key=len,
                       reverse=True)) + b")") for head, rests in groups.items()]


_TOKEN_RX = _token_regexes()
assert decode.MAX_TOKENS >= 1 << 21


def _token_ok(body: bytes) -> bool:
    """True when every span attribute whose key is a token key (decode.TOKEN_KEYS) holds an int below 2^21 (so
    decode._check_tokens passes every span): each occurrence of a token key in the body must read
    ``4a L 0a klen <key> 12 V 18 <varint of V-1 <= 3 bytes>`` with L = 2 + klen + 2 + V.

    Exact for a canonical body: such an attribute contains its key's bytes, preceded by its key field header
    ``0a klen`` (the key is the first field of a KeyValue, lengths are minimal) and by its own header ``4a L``; when
    L covers exactly the key and a value ``18 varint``, that value is its int value. So each real one is an
    occurrence, and a passing occurrence is a small int. Occurrences elsewhere (a resource or event attribute, inside
    a string) only make the check fail, never pass wrongly."""
    try:
        for rx in _TOKEN_RX:
            for m in rx.finditer(body):
                p, q = m.start(), m.end()
                kl = q - p
                v = body[q + 1]
                if (p < 4 or body[p - 4] != 0x4A or body[p - 2] != 0x0A or body[p - 1] != kl or body[q] != 0x12
                        or not 2 <= v <= 4 or body[p - 3] != kl + 4 + v or body[q + 2] != 0x18):
                    return False
    except IndexError:
        return False
    return True


class EngineSpans(BodyRows):
    """The accepted spans of one request that the engine will decode: the body and the span count. Reads as the
    rows of decode_protobuf_rows (for a store or a batch that takes another path)."""

    __slots__ = ("_rows", "body", "n")

    def __init__(self, body: bytes, n: int) -> None:
        self.body = body
        self.n = n
        self._rows: list | None = None

    def columns(self) -> Any:
        """The Python decoder's Native column pieces (store.native.SpanColumns) for this body."""
        cols = decode.decode_protobuf(self.body).rows
        if len(cols) != self.n:
            raise RuntimeError("column decoder and engine check disagree on the span count")
        return cols

    def __repr__(self) -> str:
        return f"<EngineSpans {self.n} spans>"


def check(body: bytes) -> decode.DecodeResult | None:
    """The DecodeResult of ``body`` with ``rows`` = EngineSpans when the engine can decode it exactly, else None."""
    if _EMPTY_ARRAY in body:
        return None
    try:
        req = FastRequest.FromString(body)
        # canonical, no unknown field (upb would write one back unchanged, the engine rejects a wrong wire type),
        # and no Excluded value (serialising one raises: its required field is missing)
        req.DiscardUnknownFields()
        if req.SerializeToString() != body:
            return None
    except Exception:  # not parseable here: the Python decoder gives the 400 (or parses what we cannot)
        return None
    if not _token_ok(body):
        return None
    n = clamped = 0
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                tid, sid, pid = sp.trace_id, sp.span_id, sp.parent_span_id
                start = sp.start_time_unix_nano
                if (len(tid) != 16 or tid == _Z16 or len(sid) != 8 or sid == _Z8 or (pid and len(pid) != 8)
                        or start == 0 or start > _MAX_TIME):
                    return None
                if sp.end_time_unix_nano < start:
                    clamped += 1
                n += 1
    res = decode.DecodeResult(rows=EngineSpans(body, n))  # type: ignore[arg-type]
    if clamped:
        res.warnings = Counter({"had end before start (Duration clamped to 0)": clamped})
    return res


# on by default; PROMPTPULSE_ENGINE_DECODE=0 keeps every request on the Python decoder
ENABLED = os.environ.get("PROMPTPULSE_ENGINE_DECODE", "1") != "0"


def decode_protobuf(body: bytes) -> decode.DecodeResult:
    """The receivers' (and the spool replay's) protobuf decoder: EngineSpans when the engine can decode the body
    exactly (:func:`check`), else decode.decode_protobuf (column pieces, or DecodeError → 400). Deterministic, so a
    replayed body takes the same path and gets the same dedup token."""
    if ENABLED:
        res = check(body)
        if res is not None:
            return res
    return decode.decode_protobuf(body)


# ------------------------------------------------------------------------------------------ the engine's SQL
_LEAF = ("Tuple(string_value Nullable(String), bool_value Nullable(Bool), int_value Nullable(Int64), "
         "double_value Nullable(Float64), bytes_value Nullable(String), string_value_strindex Nullable(Int32))")
_VALUE = ("Tuple(string_value Nullable(String), bool_value Nullable(Bool), int_value Nullable(Int64), "
          f"double_value Nullable(Float64), array_value Tuple(values Array({_LEAF})), bytes_value Nullable(String), "
          "string_value_strindex Nullable(Int32))")
_KVS = f"Array(Tuple(key String, value {_VALUE}))"
STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KVS}), scope_spans Array(Tuple(scope Tuple(name String, "
    "version String), spans Array(Tuple(trace_id String, span_id String, trace_state String, parent_span_id String, "
    f"name String, kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_KVS}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KVS})), links Array(Tuple(trace_id String, "
    f"span_id String, trace_state String, attributes {_KVS})), status Tuple(message String, code Int32)))))))"
)


def _bind(var: str, value: str, body: str) -> str:
    """``body`` with ``var`` = ``value`` computed once (the engine has no let; a one-element arrayMap is one)."""
    return f"arrayMap({var} -> {body}, [{value}])[1]"


def _digits(s: str, v: str) -> str:
    """(significant digits D, decimal exponent P with |x| = 0.D * 10^P) of the engine's shortest round-trip text
    ``s`` of a finite |x| (the same digits as Python's repr; tests compare 200k values), bound to tuple ``v``."""
    m, q, r = f"{v}m", f"{v}q", f"{v}r"
    body = (f"tuple(trimRight(trimLeft({r}, '0'), '0'), toInt32(length({q}[1])) + if(length({m}) = 2, "
            f"toInt32OrZero({m}[2]), 0) - toInt32(length({r}) - length(trimLeft({r}, '0'))))")
    body = _bind(r, f"concat({q}[1], if(length({q}) = 2, {q}[2], ''))", body)
    body = _bind(q, f"splitByChar('.', {m}[1])", body)
    return _bind(m, f"splitByChar('e', {s})", body)


def _abs_text(s: str) -> str:
    return f"trimLeft({s}, '-')"


def _positional(d: str, p: str, integral_suffix: str) -> str:
    return (f"multiIf({p} <= 0, concat('0.', repeat('0', toUInt64(-{p})), {d}), "
            f"{p} >= length({d}), concat({d}, repeat('0', toUInt64({p} - length({d}))), '{integral_suffix}'), "
            f"concat(substring({d}, 1, {p}), '.', substring({d}, {p} + 1)))")


def sql_go_float(x: str, v: str = "g") -> str:
    """decode.fmt_float in SQL (Go ``FormatFloat(v, 'f', -1, 64)``). The engine already writes positional text
    for mid-range values (the same as Go's); only its exponent form is rewritten."""
    s, a, t = f"{v}s", f"{v}a", f"{v}t"
    conv = _bind(t, _digits(a, v), f"if({t}.1 = '', '0', {_positional(f'{t}.1', f'{t}.2', '')})")
    conv = f"concat(if(startsWith({s}, '-'), '-', ''), {_bind(a, _abs_text(s), conv)})"
    body = (f"multiIf(isNaN({x}), 'NaN', isInfinite({x}), if({x} > 0, '+Inf', '-Inf'), position({s}, 'e') = 0, {s}, "
            f"{conv})")
    return _bind(s, f"toString({x})", body)


def sql_py_float(x: str, v: str = "p") -> str:
    """Python ``repr`` of a finite float in SQL (how json.dumps writes floats inside arrays)."""
    s, t = f"{v}s", f"{v}t"
    d, p = f"{t}.1", f"{t}.2"
    e = f"({p} - 1)"
    sci = (f"concat(substring({d}, 1, 1), if(length({d}) > 1, concat('.', substring({d}, 2)), ''), 'e', "
           f"if({e} < 0, '-', '+'), if(abs({e}) < 10, '0', ''), toString(abs({e})))")
    body = f"multiIf({d} = '', '0.0', {e} < -4 OR {e} >= 16, {sci}, {_positional(d, p, '.0')})"
    body = f"concat(if(startsWith({s}, '-'), '-', ''), {_bind(t, _digits(_abs_text(s), v), body)})"
    return _bind(s, f"toString({x})", body)


_CONTROL_REST = [c for c in range(0x20) if c not in (0x08, 0x09, 0x0A, 0x0C, 0x0D)]


def sql_json_string(s: str) -> str:
    """decode._go_json of a string: json.dumps(ensure_ascii=False), then <, >, &, U+2028, U+2029 as \\u escapes."""
    steps = [("\\\\", "\\\\\\\\"), ('"', '\\\\"'), ("\\n", "\\\\n"), ("\\r", "\\\\r"), ("\\t", "\\\\t"),
             ("\\b", "\\\\b"), ("\\f", "\\\\f")]
    steps += [(f"\\x{c:02X}", f"\\\\u{c:04x}") for c in _CONTROL_REST]
    steps += [("<", "\\\\u003c"), (">", "\\\\u003e"), ("&", "\\\\u0026"), ("\\xE2\\x80\\xA8", "\\\\u2028"),
              ("\\xE2\\x80\\xA9", "\\\\u2029")]
    slow = s
    for a, b in steps:
        slow = f"replaceAll({slow}, '{a}', '{b}')"
    return (f"concat('\"', if(match({s}, '[\\\\x00-\\\\x1f\"\\\\\\\\<>&]') OR position({s}, '\\xE2\\x80') > 0, "
            f"{slow}, {s}), '\"')")


def _leaf_json(e: str) -> str:
    return (f"multiIf({e}.string_value IS NOT NULL, {sql_json_string(f'assumeNotNull({e}.string_value)')}, "
            f"{e}.int_value IS NOT NULL, toString({e}.int_value), "
            f"{e}.bool_value IS NOT NULL, if({e}.bool_value, 'true', 'false'), "
            f"{e}.double_value IS NOT NULL AND isFinite(assumeNotNull({e}.double_value)), "
            f"{sql_py_float(f'assumeNotNull({e}.double_value)')}, "
            f"{e}.bytes_value IS NOT NULL, concat('\"', base64Encode(assumeNotNull({e}.bytes_value)), '\"'), "
            f"{e}.string_value_strindex IS NOT NULL, toString({e}.string_value_strindex), 'null')")


def sql_values(kvs: str) -> str:
    """decode._pb_str of each AnyValue of a KeyValue array, as an array (exactly one member is set in a canonical
    body; none: ''). Per-member subcolumns and coalesce: several times cheaper in the engine than a multiIf per
    element."""
    v = f"{kvs}.value"
    arr = f"concat('[', arrayStringConcat(arrayMap(e -> {_leaf_json('e')}, av), ','), ']')"
    return (f"arrayMap((s, i, b, d, y, av, x) -> coalesce(s, toString(i), toString(b), "
            f"if(d IS NULL, NULL, {sql_go_float('assumeNotNull(d)')}), base64Encode(y), "
            f"if(empty(av), NULL, {arr}), toString(x), ''), "
            f"{v}.string_value, {v}.int_value, {v}.bool_value, {v}.double_value, {v}.bytes_value, "
            f"{v}.array_value.values, {v}.string_value_strindex)")


def sql_map(kvs: str) -> str:
    """A KeyValue list as Map(key → rendered value) with dict semantics: a repeated key keeps its first position and
    takes its last value."""
    dedup = ("mapFromArrays(arrayDistinct(mk), arrayMap(u -> mv[length(mk) + 1 - indexOf(arrayReverse(mk), u)], "
             "arrayDistinct(mk)))")
    return (f"arrayMap((mk, mv) -> if(length(arrayDistinct(mk)) = length(mk), mapFromArrays(mk, mv), {dedup}), "
            f"[{kvs}.key], [{sql_values(kvs)}])[1]")


def _names(expr: str, names: dict[int, str]) -> str:
    ks = ", ".join(str(k) for k in names)
    vs = ", ".join(f"'{v}'" for v in names.values())
    return f"transform({expr}, [{ks}], [{vs}], '')"


RENDER: dict[str, str] = {
    "Timestamp": "fromUnixTimestamp64Nano(reinterpretAsInt64(sp.start_time_unix_nano))",
    "TraceId": "lower(hex(sp.trace_id))",
    "SpanId": "lower(hex(sp.span_id))",
    "ParentSpanId": "lower(hex(sp.parent_span_id))",
    "TraceState": "sp.trace_state",
    "SpanName": "sp.name",
    "SpanKind": _names("sp.kind", decode.SPAN_KIND),
    "ServiceName": "r_service",
    "ResourceAttributes": "r_attributes",
    "ScopeName": "scope.name",
    "ScopeVersion": "scope.version",
    "SpanAttributes": "maps[1]",
    "Duration": "if(sp.end_time_unix_nano >= sp.start_time_unix_nano, "
                "sp.end_time_unix_nano - sp.start_time_unix_nano, 0)",
    "StatusCode": _names("sp.status.code", decode.STATUS_CODE),
    "StatusMessage": "sp.status.message",
    "Events.Timestamp": "arrayMap(e -> fromUnixTimestamp64Nano(reinterpretAsInt64(least(e.time_unix_nano, "
                        f"toUInt64({decode.MAX_TIME_NS})))), sp.events)",
    "Events.Name": "arrayMap(e -> e.name, sp.events)",
    "Events.Attributes": "arraySlice(maps, 2, length(sp.events))",
    "Links.TraceId": "arrayMap(l -> lower(hex(l.trace_id)), sp.links)",
    "Links.SpanId": "arrayMap(l -> lower(hex(l.span_id)), sp.links)",
    "Links.TraceState": "arrayMap(l -> l.trace_state, sp.links)",
    "Links.Attributes": "arraySlice(maps, 2 + length(sp.events))",
}


# per resource, before the spans are joined
_RESOURCE = {
    "r_service": "coalesce(tupleElement(tupleElement(arrayFilter(a -> a.key = 'service.name', "
                 "rs.resource.attributes)[-1], 'value'), 'string_value'), '')",
    "r_attributes": sql_map("rs.resource.attributes"),
}


def frame(bodies: Sequence[bytes]) -> bytes:
    """Request bodies as one input of the engine's ``Protobuf`` format (each message preceded by its varint
    length)."""
    out = []
    for b in bodies:
        n = len(b)
        while n >= 0x80:
            out.append(bytes([(n & 0x7F) | 0x80]))
            n >>= 7
        out.append(bytes([n]))
        out.append(b)
    return b"".join(out)


# per span: its attributes, then each event's, then each link's, through one copy of sql_map (the engine analyses
# every copy of that large expression for every insert: ~25 ms each)
_MAPS = ("arrayMap(kvs -> " + sql_map("kvs") + ", arrayConcat([sp.attributes], arrayMap(e -> e.attributes, "
         "sp.events), arrayMap(l -> l.attributes, sp.links)))")


def select_sql(source: str, columns: Sequence[str]) -> str:
    """``SELECT <columns rendered> FROM <source>``: source yields ExportTraceServiceRequest rows of STRUCTURE."""
    cols = ",\n  ".join(f"{RENDER[c]} AS `{c}`" for c in columns)
    inner = ", ".join(f"{v} AS {k}" for k, v in _RESOURCE.items())
    return (f"SELECT\n  {cols}\nFROM (SELECT sp, ss.scope AS scope, {', '.join(_RESOURCE)}, {_MAPS} AS maps\n"
            f"FROM (SELECT {inner}, rs.scope_spans AS scope_spans FROM {source} ARRAY JOIN resource_spans AS rs)\n"
            "ARRAY JOIN scope_spans AS ss ARRAY JOIN ss.spans AS sp)")
