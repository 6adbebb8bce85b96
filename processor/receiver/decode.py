"""OTLP ExportTraceServiceRequest (protobuf or OTLP/JSON) → rows of ``otel_traces``.

Rows follow the column layout of the OpenTelemetry Collector's clickhouse exporter and render values exactly
as it does (``pcommon.Value.AsString``): strings as is, ints in decimal, doubles in Go's shortest ``'f'``
format (``2`` not ``2.0``, ``1e21`` spelled out), bools ``true``/``false``, bytes base64, arrays and kvlists as
compact JSON. ``SpanKind`` is ``traceutil.SpanKindStr`` ("Client", ...), ``StatusCode`` is
``traceutil.StatusCodeStr`` ("Unset", "Ok", "Error"); ids are lowercase hex.

Validation (documented in docs/PROCESSOR.md):

* a body that does not parse (garbage protobuf, invalid JSON, non-UTF-8 strings — proto3 rejects them
  on parse) raises :class:`DecodeError` → the whole request is answered 400 / INVALID_ARGUMENT;
* a span with a missing/invalid trace id or span id, a malformed parent span id, a missing or out-of-range
  start time, or a token count outside ``[0, MAX_TOKENS]`` is rejected alone and counted in
  ``partial_success.rejected_spans`` with a reason;
* a span whose end precedes its start is kept with ``Duration`` clamped to 0 (reported as a warning in
  ``partial_success.error_message``; ``otel_traces.Duration`` is unsigned).

The rule behind the rest: nothing accepted here can fail to insert because of its content (a batch that cannot
insert is retried forever and blocks the writer). So:

* times: the start time is checked as above (it is ``Timestamp``, DateTime64(9), which ends at 2^63-1 ns in 2262);
  an end time is only read through ``Duration`` (UInt64): any fixed64 end is kept; an event time past 2^63-1 is
  **clamped** to 2^63-1 and the span kept (an event is a detail of a span, not worth the span). Every path does the
  same: this module's readers and the engine's SQL (receiver.engine_decode);
* OTLP/JSON is type-checked per the proto3 JSON mapping (see the JSON section below): a wrong type, an integer out of
  its field's range (a fixed64 time of 10^26 or 2^64 included), an unpaired UTF-16 surrogate or an AnyValue nested
  deeper than MAX_JSON_DEPTH levels is a DecodeError naming the field;
* protobuf: upb validates the body first (its 100-message nesting limit bounds AnyValue recursion, ~47 levels), and a
  known field with the wrong wire type is an unknown field to both readers (ignored). The wire scanner hands any
  encoding it does not read exactly as upb (a group, a non-minimal tag, a message field given twice) to the upb
  reader.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from google.protobuf.message import DecodeError as _PbDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from ..store.native import EMPTY, SpanColumns, lp, lps

# Canonical insert order (the collector exporter's); reordered to store.base.OTEL_TRACES_COLUMNS if it differs.
COLUMNS: tuple[str, ...] = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode",
    "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId",
    "Links.TraceState", "Links.Attributes",
)

MAX_TOKENS = 100_000_000  # per call; the largest context windows are ~10^7 tokens
MAX_TIME_NS = (1 << 63) - 1  # DateTime64(9) ends in 2262
TOKEN_KEYS = (
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens", "gen_ai.usage.total_tokens", "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "llm.usage.total_tokens",
)

SPAN_KIND = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
STATUS_CODE = {0: "Unset", 1: "Ok", 2: "Error"}
_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_ZERO16 = b"\0" * 16
_ZERO8 = b"\0" * 8


class DecodeError(ValueError):
    """The request body cannot be decoded at all (→ 400 / INVALID_ARGUMENT)."""


@dataclass
class DecodeResult:
    rows: list[list[Any]] = field(default_factory=list)
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)

    @property
    def error_message(self) -> str:
        parts = [f"{n} span(s) rejected: {r}" for r, n in self.reasons.most_common()]
        parts += [f"{n} span(s) {w}" for w, n in self.warnings.most_common()]
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------------- rendering
def fmt_float(v: float) -> str:
    """Go ``strconv.FormatFloat(v, 'f', -1, 64)``."""
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    r = repr(v)
    if "e" in r:
        r = format(Decimal(r), "f")
    if r.endswith(".0"):
        r = r[:-2]
    return r if r != "-0" else "-0"


def _json_default(o: Any) -> Any:  # pragma: no cover - only bytes reach here
    if isinstance(o, (bytes, bytearray)):
        return base64.b64encode(o).decode()
    raise TypeError(type(o))


def _go_json(obj: Any) -> str:
    """``json.Marshal`` of a pcommon AsRaw() value: compact, sorted map keys, HTML-escaped."""
    s = json.dumps(_jsonable(obj), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    if "<" in s or ">" in s or "&" in s or "\u2028" in s or "\u2029" in s:
        s = (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
             .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return s


class _RawFloat(float):
    def __repr__(self) -> str:  # Go encodes integral floats without ".0"
        return fmt_float(self) if abs(self) < 1e21 else float.__repr__(self)


def _jsonable(o: Any) -> Any:
    if isinstance(o, float):
        return _RawFloat(o) if o == o and not math.isinf(o) else None
    if isinstance(o, list):
        return [_jsonable(x) for x in o]
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (bytes, bytearray)):
        return base64.b64encode(o).decode()
    return o


# --------------------------------------------------------------------------------------------- protobuf path
def _pb_raw(v: Any) -> Any:
    """AnyValue → Python value like pcommon AsRaw()."""
    w = v.WhichOneof("value")
    if w is None:
        return None
    if w == "array_value":
        return [_pb_raw(x) for x in v.array_value.values]
    if w == "kvlist_value":
        return {kv.key: _pb_raw(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, w)


def _pb_str(v: Any) -> str:
    w = v.WhichOneof("value")
    if w == "string_value":
        return v.string_value
    if w == "int_value":
        return str(v.int_value)
    if w == "bool_value":
        return "true" if v.bool_value else "false"
    if w == "double_value":
        return fmt_float(v.double_value)
    if w == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if w is None:
        return ""
    return _go_json(_pb_raw(v))


def _pb_attrs(kvs: Any) -> dict[str, str]:
    out = {}
    for kv in kvs:
        v = kv.value
        # fast path: most GenAI attributes are strings; only fall back when the oneof is something else
        s = v.string_value
        if s:
            out[kv.key] = s
        else:
            out[kv.key] = _pb_str(v)
    return out


def _check_tokens(attrs: dict[str, str]) -> str | None:
    for k in TOKEN_KEYS:
        s = attrs.get(k)
        if s is not None:
            try:
                n = float(s)
            except ValueError:
                return f"non-numeric {k}"
            if not (0 <= n <= MAX_TOKENS):
                return f"{k} outside [0, {MAX_TOKENS}]"
    return None


def decode_protobuf_upb(body: bytes) -> DecodeResult:
    """Reference reader through upb's Python objects (slow: ~30 µs/span); kept for cross-checks."""
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except (_PbDecodeError, RuntimeError, ValueError) as e:
        raise DecodeError(f"malformed protobuf ExportTraceServiceRequest: {e}") from None
    res = DecodeResult()
    rows = res.rows
    append = rows.append
    hexb = bytes.hex
    for rs in req.resource_spans:
        rattrs = _pb_attrs(rs.resource.attributes)
        sv = None
        for kv in rs.resource.attributes:
            if kv.key == "service.name":
                sv = kv.value.string_value  # pcommon Value.Str(): "" unless a string
        service = sv or ""
        for ss in rs.scope_spans:
            scope = ss.scope
            sname, sver = scope.name, scope.version
            for sp in ss.spans:
                tid, sid, pid = sp.trace_id, sp.span_id, sp.parent_span_id
                if len(tid) != 16 or tid == _ZERO16:
                    res.rejected += 1
                    res.reasons["invalid trace_id"] += 1
                    continue
                if len(sid) != 8 or sid == _ZERO8:
                    res.rejected += 1
                    res.reasons["invalid span_id"] += 1
                    continue
                if pid and len(pid) != 8:
                    res.rejected += 1
                    res.reasons["invalid parent_span_id"] += 1
                    continue
                start, end = sp.start_time_unix_nano, sp.end_time_unix_nano
                if start == 0 or start > MAX_TIME_NS:
                    res.rejected += 1
                    res.reasons["missing or out-of-range start_time_unix_nano"] += 1
                    continue
                dur = end - start
                if dur < 0:
                    dur = 0
                    res.warnings["had end before start (Duration clamped to 0)"] += 1
                attrs = _pb_attrs(sp.attributes)
                bad = _check_tokens(attrs)
                if bad:
                    res.rejected += 1
                    res.reasons[bad] += 1
                    continue
                if sp.events:
                    ev = sp.events
                    et = [min(e.time_unix_nano, MAX_TIME_NS) for e in ev]
                    en = [e.name for e in ev]
                    ea = [_pb_attrs(e.attributes) for e in ev]
                else:
                    et, en, ea = [], [], []
                if sp.links:
                    lk = sp.links
                    lt = [hexb(x.trace_id) for x in lk]
                    ls = [hexb(x.span_id) for x in lk]
                    lst = [x.trace_state for x in lk]
                    la = [_pb_attrs(x.attributes) for x in lk]
                else:
                    lt, ls, lst, la = [], [], [], []
                st = sp.status
                append([
                    start, hexb(tid), hexb(sid), hexb(pid), sp.trace_state, sp.name,
                    SPAN_KIND.get(sp.kind, ""), service, rattrs, sname, sver, attrs, dur,
                    STATUS_CODE.get(st.code, ""), st.message, et, en, ea, lt, ls, lst, la,
                ])
    return res


# ----------------------------------------------------------------------------------- fast wire-format path
# upb parses a request in ~1 µs/span, but reading ~25 attributes through its Python wrappers costs ~30 µs/span
# (a wrapper object per KeyValue/AnyValue). After upb has validated the body (structure, UTF-8), this scanner
# walks the same bytes directly and memoises rendered KeyValues by their raw bytes: GenAI attributes repeat a lot
# (model, operation, provider, prompt name/version, server ...), so most attributes cost one dict lookup.
_U64 = struct.Struct("<Q").unpack_from


class _Bail(Exception):
    """The scanner met an encoding it does not read exactly as upb does (a group, a non-minimal tag, a message
    field given twice, which upb merges): decode_protobuf falls back to the upb reader."""
_KV_CACHE: dict[bytes, tuple[str, str, bytes, bytes, bool]] = {}
_KV_CACHE_MAX = 200_000


def _vi(b: bytes, i: int) -> tuple[int, int]:
    r = 0
    s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        if x < 0x80:
            return r, i
        s += 7


def _skip(b: bytes, i: int, wt: int) -> int:
    if wt == 0:
        return _vi(b, i)[1]
    if wt == 1:
        return i + 8
    if wt == 2:
        n, i = _vi(b, i)
        return i + n
    if wt == 5:
        return i + 4
    raise _Bail  # a group (upb validated the body, so nothing worse)


_F64 = struct.Struct("<d").unpack_from


def _kv(raw: bytes) -> tuple[str, str]:
    # common shapes decoded inline: 0x0a klen key 0x12 vlen (0x0a slen str | 0x18 int | 0x10 bool | 0x21 f64)
    try:
        if raw[0] == 0x0A and raw[1] < 0x80:
            k = 2 + raw[1]
            if raw[k] == 0x12 and raw[k + 1] < 0x80 and k + 2 + raw[k + 1] == len(raw):
                key = raw[2:k].decode()
                t = raw[k + 2] if k + 2 < len(raw) else -1
                v = k + 3
                if t == 0x0A:
                    n, v = _vi(raw, v)
                    if v + n == len(raw):
                        return key, raw[v:].decode()
                elif t == 0x18:
                    n, v = _vi(raw, v)
                    if v == len(raw):
                        return key, str(n - (1 << 64) if n >= 1 << 63 else n)
                elif t == 0x21 and v + 8 == len(raw):
                    return key, fmt_float(_F64(raw, v)[0])
                elif t == 0x10:
                    n, v = _vi(raw, v)
                    if v == len(raw):
                        return key, "true" if n else "false"
    except IndexError:
        pass
    kv = KeyValue.FromString(raw)
    return kv.key, _pb_str(kv.value)


def _token_bad(key: str, s: str) -> bool:
    try:
        n = float(s)
    except ValueError:
        return True
    return not (0 <= n <= MAX_TOKENS)


_TOKEN_SET = frozenset(TOKEN_KEYS)


def _kv_entry(raw: bytes) -> tuple[str, str, bytes, bytes, bool]:
    """Render a KeyValue once and cache it: (key, value, key as a Native string, value as a Native string,
    whether it is a token count that _check_tokens refuses)."""
    key, val = _kv(raw)
    ent = (key, val, lps(key), lps(val), key in _TOKEN_SET and _token_bad(key, val))
    cache = _KV_CACHE
    if len(cache) >= _KV_CACHE_MAX:
        cache.clear()
    cache[raw] = ent
    return ent


def _w_attrs(b: bytes, i: int, end: int, tag: int) -> tuple[dict[str, str], int]:
    """Consecutive KeyValue fields with tag byte ``tag`` starting at i (the first tag already consumed)."""
    out = {}
    cache = _KV_CACHE
    while True:
        n = b[i]
        if n < 0x80:
            i += 1
        else:
            n, i = _vi(b, i)
        j = i + n
        raw = b[i:j]
        kv = cache.get(raw)
        if kv is None:
            kv = _kv_entry(raw)
        out[kv[0]] = kv[1]
        i = j
        if i >= end or b[i] != tag:
            return out, i
        i += 1


def _w_msg_attrs(b: bytes, i: int, end: int, field: int) -> dict[str, str]:
    """Attributes (field number ``field``) of the message in b[i:end]."""
    out: dict[str, str] = {}
    tag = (field << 3) | 2
    while i < end:
        t = b[i]
        i += 1
        if t == tag:
            a, i = _w_attrs(b, i, end, tag)
            out.update(a)
        else:
            if t >= 0x80:
                t, i = _vi(b, i - 1)
                if t < 0x80:  # a one-byte tag written long
                    raise _Bail
            i = _skip(b, i, t & 7)
    return out


def _w_event(b: bytes, i: int, end: int) -> tuple:
    tsn, name, attrs = 0, "", {}
    while i < end:
        t, i = _vi(b, i)
        if t == 0x09:
            tsn = _U64(b, i)[0]
            if tsn > MAX_TIME_NS:
                tsn = MAX_TIME_NS
            i += 8
        elif t == 0x12:
            n, i = _vi(b, i)
            name = b[i:i + n].decode()
            i += n
        elif t == 0x1A:
            a, i = _w_attrs(b, i, end, 0x1A)
            attrs.update(a)
        else:
            i = _skip(b, i, t & 7)
    return tsn, name, attrs


def _w_link(b: bytes, i: int, end: int) -> tuple:
    tid = sid = b""
    ts, attrs = "", {}
    while i < end:
        t, i = _vi(b, i)
        if t == 0x22:
            a, i = _w_attrs(b, i, end, 0x22)
            attrs.update(a)
            continue
        if t & 7 != 2:
            i = _skip(b, i, t & 7)
            continue
        n, i = _vi(b, i)
        f = t >> 3
        if f == 1:
            tid = b[i:i + n]
        elif f == 2:
            sid = b[i:i + n]
        elif f == 3:
            ts = b[i:i + n].decode()
        i += n
    return tid, sid, ts, attrs


def _w_status(b: bytes, i: int, end: int) -> tuple[int, str]:
    code, msg = 0, ""
    while i < end:
        t, i = _vi(b, i)
        if t == 0x18:
            code, i = _vi(b, i)
        elif t == 0x12:
            n, i = _vi(b, i)
            msg = b[i:i + n].decode()
            i += n
        else:
            i = _skip(b, i, t & 7)
    return code, msg


def _w_fields(b: bytes, i: int, end: int):
    """Yield (field, start, stop) of the length-delimited fields of the message in b[i:end]."""
    while i < end:
        t, i = _vi(b, i)
        if t & 7 != 2:
            i = _skip(b, i, t & 7)
            continue
        n, i = _vi(b, i)
        yield t >> 3, i, i + n
        i += n


def _w_service(b: bytes, i: int, end: int) -> str:
    """The string value of the last ``service.name`` attribute of the Resource in b[i:end] (pcommon Value.Str():
    "" unless a string), as the upb reader gives it."""
    last = None
    for f, s, e in _w_fields(b, i, end):
        if f == 1 and b"service.name" in b[s:e]:  # KeyValue
            last = (s, e)
    if last is None:
        return ""
    kv = KeyValue.FromString(b[last[0]:last[1]])
    if kv.key != "service.name":  # the bytes were elsewhere in it: look at every attribute
        svc = ""
        for f, s, e in _w_fields(b, i, end):
            if f == 1:
                kv = KeyValue.FromString(b[s:e])
                if kv.key == "service.name":
                    svc = kv.value.string_value
        return svc
    return kv.value.string_value


def decode_protobuf(body: bytes) -> DecodeResult:
    """Validate with upb (garbage / non-UTF-8 → DecodeError), then extract the spans with the wire scanner into
    Native column pieces: ``rows`` is a :class:`SpanColumns` (also a sequence of the rows decode_protobuf_rows
    gives)."""
    _validate(body)
    b = bytes(body)
    try:
        return _decode_wire_cols(b)
    except Exception:  # _Bail (or a scanner bug): the (slower) upb reader, exact by definition
        res = decode_protobuf_upb(b)
        res.rows = _columns_of_rows(res.rows, b)  # type: ignore[assignment]
        return res


def decode_protobuf_rows(body: bytes) -> DecodeResult:
    """Like decode_protobuf, with the rows as lists in COLUMNS order (maps as dicts), read through upb.

    The row path is the fallback (``PROMPTPULSE_NATIVE_INSERT=0``, batches mixing JSON and protobuf) and the
    independent reference the column scanner is tested against, so it is the upb reader, not a second scanner."""
    return decode_protobuf_upb(body)


def _validate(body: bytes) -> None:
    try:
        ExportTraceServiceRequest.FromString(body)
    except Exception as e:  # upb raises DecodeError; be defensive about its exact class
        raise DecodeError(f"malformed protobuf ExportTraceServiceRequest: {e}") from None


def _columns_of_rows(rows: list[list[Any]], body: bytes) -> SpanColumns:
    """decode_protobuf_upb's rows as the column pieces _decode_wire_cols gives."""
    C = SpanColumns(body)
    for r in rows:
        (start, tid, sid, pid, tstate, name, kind, service, rattrs, sname, sver, attrs, dur, scode, smsg, et, en, ea,
         lt, ls, lst, la) = r
        C.ts.append(start)
        C.dur.append(dur)
        C.tid.append(tid.encode())
        C.sid.append(sid.encode())
        C.pid.append(lps(pid))
        C.tstate.append(lps(tstate))
        C.name.append(lps(name))
        C.kind.append(lps(kind))
        C.scode.append(lps(scode))
        C.smsg.append(lps(smsg))
        C.akeys.extend(lps(k) for k in attrs)
        C.avals.extend(lps(v) for v in attrs.values())
        C.alen.append(len(attrs))
        C.ev.append(list(zip(et, en, ea, strict=True)))
        C.lk.append([(bytes.fromhex(t), bytes.fromhex(s), ts, a) for t, s, ts, a in zip(lt, ls, lst, la, strict=True)])
        C.res.append([1, lps(service), [lps(k) for k in rattrs], [lps(v) for v in rattrs.values()]])
        C.scope.append([1, lps(sname), lps(sver)])
    C.n = len(rows)
    return C


_KIND_LP = {k: lps(v) for k, v in SPAN_KIND.items()}
_STATUS_LP = {k: lps(v) for k, v in STATUS_CODE.items()}


def _unlp(p: bytes) -> str:
    """A Native string piece back to str."""
    i = 0
    while p[i] & 0x80:
        i += 1
    return p[i + 1:].decode()


def _decode_wire_cols(b: bytes) -> DecodeResult:
    """The spans, validated and rendered as the upb reader does, appended to Native column pieces."""
    res = DecodeResult()
    C = SpanColumns(b)
    res.rows = C  # type: ignore[assignment]
    ts_a, dur_a, tid_a, sid_a, pid_a = C.ts.append, C.dur.append, C.tid.append, C.sid.append, C.pid.append
    tst_a, name_a, kind_a, scode_a, smsg_a = C.tstate.append, C.name.append, C.kind.append, C.scode.append, \
        C.smsg.append
    alen_a, ev_a, lk_a = C.alen.append, C.ev.append, C.lk.append
    akeys, avals = C.akeys, C.avals
    ka, va = akeys.append, avals.append
    cache = _KV_CACHE
    U64 = _U64
    nacc = 0
    for f, rs, re_ in _w_fields(b, 0, len(b)):
        if f != 1:
            continue
        rattrs: dict[str, str] = {}
        service = ""
        scopes = []
        seen = False
        for f2, s2, e2 in _w_fields(b, rs, re_):
            if f2 == 1:
                if seen:  # upb merges the two
                    raise _Bail
                seen = True
                rattrs = _w_msg_attrs(b, s2, e2, 1)
                service = _w_service(b, s2, e2)
            elif f2 == 2:
                scopes.append((s2, e2))
        rrun = [0, lps(service), [lps(k) for k in rattrs], [lps(v) for v in rattrs.values()]]
        C.res.append(rrun)
        for s2, e2 in scopes:
            sname = sver = b""
            srun = [0, EMPTY, EMPTY]
            C.scope.append(srun)
            seen = False
            for f3, s3, e3 in _w_fields(b, s2, e2):
                if f3 == 1:
                    if seen or srun[0]:  # a second scope (upb merges it), or one after spans (it applies to them)
                        raise _Bail
                    seen = True
                    for f4, s4, e4 in _w_fields(b, s3, e3):
                        if f4 == 1:
                            sname = b[s4:e4]
                        elif f4 == 2:
                            sver = b[s4:e4]
                    srun[1], srun[2] = lp(sname), lp(sver)
                    continue
                if f3 != 2:
                    continue
                # ---- one span ----
                i, end = s3, e3
                tid = sid = pid = b""
                tstate = name = EMPTY
                smsg = ""
                kind = start = stop = scode = 0
                k0 = len(akeys)
                flag = status = False
                ev = lk = None
                while i < end:
                    t = b[i]
                    i += 1
                    if t == 0x4A:  # attributes (a run of consecutive KeyValues)
                        while True:
                            n = b[i]
                            if n < 0x80:
                                i += 1
                            else:
                                n, i = _vi(b, i)
                            j = i + n
                            raw = b[i:j]
                            kv = cache.get(raw)
                            if kv is None:
                                kv = _kv_entry(raw)
                            ka(kv[2])
                            va(kv[3])
                            if kv[4]:
                                flag = True
                            i = j
                            if i >= end or b[i] != 0x4A:
                                break
                            i += 1
                        continue
                    if t == 0x39:
                        start = U64(b, i)[0]
                        i += 8
                        continue
                    if t == 0x41:
                        stop = U64(b, i)[0]
                        i += 8
                        continue
                    if t == 0x30:
                        kind, i = _vi(b, i)
                        continue
                    if t >= 0x80:
                        t, i = _vi(b, i - 1)
                        if t < 0x80:  # a one-byte tag written long
                            raise _Bail
                    wt = t & 7
                    if wt != 2:
                        i = _skip(b, i, wt)
                        continue
                    n, i = _vi(b, i)
                    j = i + n
                    fn = t >> 3
                    if fn == 1:
                        tid = b[i:j]
                    elif fn == 2:
                        sid = b[i:j]
                    elif fn == 4:
                        pid = b[i:j]
                    elif fn == 5:
                        name = lp(b[i:j])
                    elif fn == 3:
                        tstate = lp(b[i:j])
                    elif fn == 11:
                        if ev is None:
                            ev = []
                        ev.append(_w_event(b, i, j))
                    elif fn == 13:
                        if lk is None:
                            lk = []
                        lk.append(_w_link(b, i, j))
                    elif fn == 15:
                        if status:  # upb merges the two
                            raise _Bail
                        status = True
                        scode, smsg = _w_status(b, i, j)
                    i = j
                # ---- validation, exactly as decode_protobuf_upb ----
                reason = None
                if len(tid) != 16 or tid == _ZERO16:
                    reason = "invalid trace_id"
                elif len(sid) != 8 or sid == _ZERO8:
                    reason = "invalid span_id"
                elif pid and len(pid) != 8:
                    reason = "invalid parent_span_id"
                elif start == 0 or start > MAX_TIME_NS:
                    reason = "missing or out-of-range start_time_unix_nano"
                if reason is None:
                    dur = stop - start
                    if dur < 0:
                        dur = 0
                        res.warnings["had end before start (Duration clamped to 0)"] += 1
                    na = len(akeys) - k0
                    if na > 1 and len(set(akeys[k0:])) != na:  # a repeated key: the last value wins, like a dict
                        d = dict(zip(akeys[k0:], avals[k0:], strict=True))
                        del akeys[k0:], avals[k0:]
                        akeys.extend(d)
                        avals.extend(d.values())
                        na = len(d)
                        flag = True
                    if flag:
                        pairs = zip(akeys[k0:], avals[k0:], strict=True)
                        reason = _check_tokens({_unlp(k): _unlp(v) for k, v in pairs})
                if reason is not None:
                    del akeys[k0:], avals[k0:]
                    res.rejected += 1
                    res.reasons[reason] += 1
                    continue
                ts_a(start)
                dur_a(dur)
                tid_a(tid.hex().encode())
                sid_a(sid.hex().encode())
                pid_a(b"\x10" + pid.hex().encode() if pid else EMPTY)
                tst_a(tstate)
                name_a(name)
                kind_a(_KIND_LP.get(kind & 0xFFFFFFFF) or EMPTY)  # int32 fields: upb keeps the low 32 bits
                scode_a(_STATUS_LP.get(scode & 0xFFFFFFFF) or EMPTY)
                smsg_a(lps(smsg) if smsg else EMPTY)
                alen_a(na)
                ev_a(ev or ())
                lk_a(lk or ())
                rrun[0] += 1
                srun[0] += 1
                nacc += 1
    C.n = nacc
    return res


# ------------------------------------------------------------------------------------------------ JSON path
# Types are checked as the proto3 JSON mapping states them, so a value that would not encode into otel_traces never
# becomes a row: strings are JSON strings, integers JSON numbers (integral) or decimal strings within the field's
# range, enums a name or an int32, doubles numbers or "NaN" / "Infinity" / "-Infinity" (or a numeric string), bools
# JSON booleans, bytes base64 strings, ids hex strings; null is the field's default. Fields not stored are not read.
_U64_MAX = (1 << 64) - 1
_I64 = (-(1 << 63), (1 << 63) - 1)
_I32 = (-(1 << 31), (1 << 31) - 1)
_FIXED64 = (0, _U64_MAX)
_INT_TEXT = re.compile(r"-?[0-9]+")
_FLOAT_TEXT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DOUBLE_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_LONE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_B64_URL = str.maketrans("-_", "+/")
_ANY_MEMBERS = ("stringValue", "intValue", "boolValue", "doubleValue", "bytesValue", "arrayValue", "kvlistValue",
                "stringValueStrindex")
MAX_JSON_DEPTH = 40  # AnyValue levels (array / kvlist inside one another); upb's limit gives protobuf ~47
_NO_OBJ: dict = {}


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(type(v), "?")


def _bad(name: str, want: str, v: Any) -> DecodeError:
    return DecodeError(f"OTLP/JSON {name} must be {want}, got {_jtype(v)}")


def _j_obj(v: Any, name: str) -> dict:
    if type(v) is dict:
        return v
    if v is None:
        return _NO_OBJ
    raise _bad(name, "an object", v)


def _j_list(v: Any, name: str) -> list | tuple:
    if type(v) is list:
        return v
    if v is None:
        return ()
    raise _bad(name, "an array", v)


def _j_objs(v: Any, name: str) -> list | tuple:
    """A repeated message field: an array of objects (null elements are refused, as by protobuf's json_format)."""
    v = _j_list(v, name)
    for x in v:
        if type(x) is not dict:
            raise _bad(f"{name}[]", "an object", x)
    return v


def _j_s(v: Any, name: str) -> str:
    if type(v) is str:
        return v
    if v is None:
        return ""
    raise _bad(name, "a string", v)


def _j_int(v: Any, name: str, rng: tuple[int, int]) -> int:
    t = type(v)
    if t is int:
        n = v
    elif (t is str and _INT_TEXT.fullmatch(v)) or (t is float and v.is_integer()):
        n = int(v) if len(str(v)) <= 25 else rng[1] + 1  # (int() refuses 4,300 digits)
    elif v is None:
        return 0
    else:
        raise _bad(name, "an integer (a JSON number or a decimal string)", v)
    if not rng[0] <= n <= rng[1]:
        raise DecodeError(f"OTLP/JSON {name} out of range [{rng[0]}, {rng[1]}]: {v!r:.40}")
    return n


def _j_enum(v: Any, names: dict[str, int], name: str) -> int:
    if type(v) is str:
        n = names.get(v)
        if n is not None:
            return n
        if not _INT_TEXT.fullmatch(v):
            raise DecodeError(f"OTLP/JSON {name}: unknown enum value {v!r:.40}")
    return _j_int(v, name, _I32)


def _j_double(v: Any, name: str) -> float:
    t = type(v)
    if t is float:
        if math.isfinite(v):
            return v
        raise DecodeError(f"OTLP/JSON {name}: a non-finite number must be written \"NaN\", \"Infinity\" or "
                          "\"-Infinity\"")
    if t is int:
        try:
            return float(v)
        except OverflowError:
            raise DecodeError(f"OTLP/JSON {name} out of the double range") from None
    if t is str:
        x = _DOUBLE_NAMES.get(v)
        if x is not None:
            return x
        if _FLOAT_TEXT.fullmatch(v):
            x = float(v)
            if math.isfinite(x):
                return x
            raise DecodeError(f"OTLP/JSON {name} out of the double range")
    if v is None:
        return 0.0
    raise _bad(name, "a number", v)


def _j_bool(v: Any, name: str) -> bool:
    if v is True or v is False:
        return v
    if v is None:
        return False
    raise _bad(name, "a boolean", v)


def _j_bytes(v: Any, name: str) -> bytes:
    s = _j_s(v, name)
    try:  # standard or URL-safe alphabet, padding optional (the proto3 JSON mapping accepts both)
        return base64.b64decode(s.translate(_B64_URL) + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"OTLP/JSON {name} is not base64") from None


def _j_raw(v: Any, depth: int = 0) -> Any:
    """An AnyValue as a Python value like pcommon AsRaw() (None: no value)."""
    if type(v) is not dict:
        if v is None:
            return None
        raise _bad("AnyValue", "an object", v)
    if len(v) > 1 and sum(v.get(m) is not None for m in _ANY_MEMBERS) > 1:
        raise DecodeError("OTLP/JSON AnyValue has more than one value")
    x = v.get("stringValue")
    if x is not None:
        return _j_s(x, "AnyValue.stringValue")
    x = v.get("intValue")
    if x is not None:
        return _j_int(x, "AnyValue.intValue", _I64)
    x = v.get("boolValue")
    if x is not None:
        return _j_bool(x, "AnyValue.boolValue")
    x = v.get("doubleValue")
    if x is not None:
        return _j_double(x, "AnyValue.doubleValue")
    x = v.get("bytesValue")
    if x is not None:
        return _j_bytes(x, "AnyValue.bytesValue")
    x = v.get("arrayValue")
    if x is not None:
        if depth >= MAX_JSON_DEPTH:
            raise DecodeError(f"OTLP/JSON AnyValue nested deeper than {MAX_JSON_DEPTH} levels")
        vals = _j_objs(_j_obj(x, "AnyValue.arrayValue").get("values"), "ArrayValue.values")
        return [_j_raw(e, depth + 1) for e in vals]
    x = v.get("kvlistValue")
    if x is not None:
        if depth >= MAX_JSON_DEPTH:
            raise DecodeError(f"OTLP/JSON AnyValue nested deeper than {MAX_JSON_DEPTH} levels")
        kvs = _j_objs(_j_obj(x, "AnyValue.kvlistValue").get("values"), "KeyValueList.values")
        return {_j_s(kv.get("key"), "KeyValue.key"): _j_raw(kv.get("value"), depth + 1) for kv in kvs}
    x = v.get("stringValueStrindex")
    if x is not None:
        return _j_int(x, "AnyValue.stringValueStrindex", _I32)
    return None


def _j_str(v: Any) -> str:
    if type(v) is dict and len(v) == 1:  # fast path: a plain string value
        s = v.get("stringValue")
        if type(s) is str:
            return s
    r = _j_raw(v)
    if isinstance(r, str):
        return r
    if isinstance(r, bool):
        return "true" if r else "false"
    if isinstance(r, int):
        return str(r)
    if isinstance(r, float):
        return fmt_float(r)
    if isinstance(r, bytes):
        return base64.b64encode(r).decode()
    if r is None:
        return ""
    return _go_json(r)


def _j_attrs(kvs: Any, name: str) -> dict[str, str]:
    if type(kvs) is not list:
        if kvs is None:
            return {}
        raise _bad(name, "an array", kvs)
    out = {}
    for kv in kvs:  # (one pass: the hot loop of the JSON path)
        if type(kv) is not dict:
            raise _bad(f"{name}[]", "an object", kv)
        k = kv.get("key")
        out[k if type(k) is str else _j_s(k, "KeyValue.key")] = _j_str(kv.get("value"))
    return out


def _j_id(s: Any, n: int, name: str) -> bytes | None:
    """A hex id: b"" when absent, None when not n bytes of hex (the span is rejected, as for protobuf)."""
    if not s:
        if s is None or s == "":
            return b""
        raise _bad(name, "a hex string", s)
    if type(s) is not str:
        raise _bad(name, "a hex string", s)
    try:
        b = binascii.unhexlify(s)
    except (binascii.Error, ValueError):
        return None
    return b if len(b) == n else None


def load_json_object(body: bytes) -> dict:
    """An OTLP/JSON body as a dict, or DecodeError (invalid JSON, nested too deeply, not an object, an unpaired
    surrogate). Shared by the traces, metrics and logs decoders."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise DecodeError(f"invalid JSON: {e}") from None
    except RecursionError:
        raise DecodeError("invalid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise DecodeError("OTLP/JSON body must be an object")
    if _LONE_SURROGATE.search(body):  # "\ud800" alone decodes to a str that cannot be written as UTF-8
        try:
            json.dumps(doc, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise DecodeError("invalid JSON: a string holds an unpaired UTF-16 surrogate") from None
        except RecursionError:
            raise DecodeError("invalid JSON: nested too deeply") from None
    return doc


def decode_json(body: bytes) -> DecodeResult:
    doc = load_json_object(body)
    try:
        return _decode_json_doc(doc)
    except DecodeError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as e:  # a gap above
        raise DecodeError(f"malformed OTLP/JSON ExportTraceServiceRequest: {type(e).__name__}: {e}") from None


def _decode_json_doc(doc: dict) -> DecodeResult:
    res = DecodeResult()
    for rs in _j_objs(doc.get("resourceSpans"), "resourceSpans"):
        rattrs_l = _j_obj(rs.get("resource"), "ResourceSpans.resource").get("attributes")
        rattrs = _j_attrs(rattrs_l, "Resource.attributes")
        service = ""
        for kv in rattrs_l or ():
            if kv.get("key") == "service.name":
                v = kv.get("value")
                s = v.get("stringValue") if type(v) is dict else None
                service = s if type(s) is str else ""  # pcommon Value.Str(): "" unless a string
        for ss in _j_objs(rs.get("scopeSpans"), "ResourceSpans.scopeSpans"):
            scope = _j_obj(ss.get("scope"), "ScopeSpans.scope")
            sname = _j_s(scope.get("name"), "InstrumentationScope.name")
            sver = _j_s(scope.get("version"), "InstrumentationScope.version")
            for sp in _j_objs(ss.get("spans"), "ScopeSpans.spans"):
                tid = _j_id(sp.get("traceId"), 16, "Span.traceId")
                sid = _j_id(sp.get("spanId"), 8, "Span.spanId")
                pid = _j_id(sp.get("parentSpanId"), 8, "Span.parentSpanId")
                start = _j_int(sp.get("startTimeUnixNano"), "Span.startTimeUnixNano", _FIXED64)
                end = _j_int(sp.get("endTimeUnixNano"), "Span.endTimeUnixNano", _FIXED64)
                # every field is type-checked before a span is rejected: a malformed request is a 400 as a whole
                tstate = _j_s(sp.get("traceState"), "Span.traceState")
                name = _j_s(sp.get("name"), "Span.name")
                kind = _j_enum(sp.get("kind"), _KIND_NAMES, "Span.kind")
                attrs = _j_attrs(sp.get("attributes"), "Span.attributes")
                st = _j_obj(sp.get("status"), "Span.status")
                smsg = _j_s(st.get("message"), "Status.message")
                scode = _j_enum(st.get("code"), _STATUS_NAMES, "Status.code")
                et, en, ea = [], [], []
                for e in _j_objs(sp.get("events"), "Span.events"):
                    t = _j_int(e.get("timeUnixNano"), "Event.timeUnixNano", _FIXED64)
                    et.append(t if t <= MAX_TIME_NS else MAX_TIME_NS)  # clamped: DateTime64(9) ends in 2262
                    en.append(_j_s(e.get("name"), "Event.name"))
                    ea.append(_j_attrs(e.get("attributes"), "Event.attributes"))
                lt, ls, lst, la = [], [], [], []
                for x in _j_objs(sp.get("links"), "Span.links"):
                    lt.append((_j_id(x.get("traceId"), 16, "Link.traceId") or b"").hex())
                    ls.append((_j_id(x.get("spanId"), 8, "Link.spanId") or b"").hex())
                    lst.append(_j_s(x.get("traceState"), "Link.traceState"))
                    la.append(_j_attrs(x.get("attributes"), "Link.attributes"))
                if not tid or tid == _ZERO16:
                    reason = "invalid trace_id"
                elif not sid or sid == _ZERO8:
                    reason = "invalid span_id"
                elif pid is None:
                    reason = "invalid parent_span_id"
                elif start == 0 or start > MAX_TIME_NS:
                    reason = "missing or out-of-range start_time_unix_nano"
                else:
                    reason = _check_tokens(attrs)
                if reason is not None:
                    res.rejected += 1
                    res.reasons[reason] += 1
                    continue
                dur = end - start
                if dur < 0:
                    dur = 0
                    res.warnings["had end before start (Duration clamped to 0)"] += 1
                res.rows.append([
                    start, tid.hex(), sid.hex(), pid.hex(), tstate, name, SPAN_KIND.get(kind, ""), service, rattrs,
                    sname, sver, attrs, dur, STATUS_CODE.get(scode, ""), smsg, et, en, ea, lt, ls, lst, la,
                ])
    return res


# ------------------------------------------------------------------------------------------- column order
def _store_columns() -> tuple[str, ...]:
    try:
        from promptpulse.processor.store.base import OTEL_TRACES_COLUMNS
    except Exception:  # the store package may not exist yet
        return COLUMNS
    return tuple(OTEL_TRACES_COLUMNS)


def column_order() -> tuple[tuple[str, ...], list[int] | None]:
    """(columns to insert with, permutation from COLUMNS or None when identical)."""
    cols = _store_columns()
    if cols == COLUMNS:
        return cols, None
    if set(cols) != set(COLUMNS):
        raise RuntimeError(f"otel_traces columns differ from the collector layout: {cols}")
    return cols, [COLUMNS.index(c) for c in cols]
