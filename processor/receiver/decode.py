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
"""

from __future__ import annotations

import base64
import json
import math
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
    "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.reasoning.output_tokens",
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
                    et = [e.time_unix_nano for e in ev]
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
    raise DecodeError(f"unsupported wire type {wt}")


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
            i = _skip(b, i, t & 7)
    return out


def _w_event(b: bytes, i: int, end: int) -> tuple:
    tsn, name, attrs = 0, "", {}
    while i < end:
        t, i = _vi(b, i)
        if t == 0x09:
            tsn = _U64(b, i)[0]
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
    for f, s, e in _w_fields(b, i, end):
        if f == 1:  # KeyValue
            key = ""
            for kf, ks, ke in _w_fields(b, s, e):
                if kf == 1:
                    key = b[ks:ke].decode()
                elif kf == 2 and key == "service.name":
                    for vf, vs, ve in _w_fields(b, ks, ke):
                        if vf == 1:
                            return b[vs:ve].decode()
                    return ""
    return ""


def decode_protobuf(body: bytes) -> DecodeResult:
    """Validate with upb (garbage / non-UTF-8 → DecodeError), then extract the spans with the wire scanner into
    Native column pieces: ``rows`` is a :class:`SpanColumns` (also a sequence of the rows decode_protobuf_rows
    gives)."""
    _validate(body)
    b = bytes(body)
    try:
        return _decode_wire_cols(b)
    except DecodeError:
        raise
    except Exception:  # the scanner disagrees with upb: fall back to the (slower) upb reader
        return decode_protobuf_upb(body)


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
        for f2, s2, e2 in _w_fields(b, rs, re_):
            if f2 == 1:
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
            for f3, s3, e3 in _w_fields(b, s2, e2):
                if f3 == 1:
                    for f4, s4, e4 in _w_fields(b, s3, e3):
                        if f4 == 1:
                            sname = b[s4:e4]
                        elif f4 == 2:
                            sver = b[s4:e4]
                    if srun[0]:
                        srun = [0, lp(sname), lp(sver)]
                        C.scope.append(srun)
                    else:
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
                flag = False
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
                kind_a(_KIND_LP.get(kind) or EMPTY)
                scode_a(_STATUS_LP.get(scode) or EMPTY)
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
def _j_raw(v: Any) -> Any:
    if not isinstance(v, dict):
        raise DecodeError("AnyValue must be an object")
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "doubleValue" in v:
        d = v["doubleValue"]
        return float(d)  # "NaN"/"Infinity" strings are allowed by the proto JSON mapping
    if "bytesValue" in v:
        return base64.b64decode(v["bytesValue"])
    if "arrayValue" in v:
        return [_j_raw(x) for x in (v["arrayValue"] or {}).get("values") or ()]
    if "kvlistValue" in v:
        return {kv["key"]: _j_raw(kv.get("value") or {}) for kv in (v["kvlistValue"] or {}).get("values") or ()}
    return None


def _j_str(v: Any) -> str:
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


def _j_attrs(kvs: Any) -> dict[str, str]:
    if not kvs:
        return {}
    return {kv["key"]: _j_str(kv.get("value") or {}) for kv in kvs}


def _j_id(s: Any, n: int) -> bytes | None:
    if not s:
        return b""
    try:
        b = bytes.fromhex(s)
    except (TypeError, ValueError):
        return None
    return b if len(b) == n else None


def _j_enum(v: Any, names: dict[str, int]) -> int:
    if isinstance(v, str):
        return names.get(v, int(v) if v.lstrip("-").isdigit() else -1)
    return int(v or 0)


def decode_json(body: bytes) -> DecodeResult:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise DecodeError(f"invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise DecodeError("OTLP/JSON body must be an object")
    try:
        return _decode_json_doc(doc)
    except DecodeError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DecodeError(f"malformed OTLP/JSON ExportTraceServiceRequest: {type(e).__name__}: {e}") from None


def _decode_json_doc(doc: dict) -> DecodeResult:
    res = DecodeResult()
    for rs in doc.get("resourceSpans") or ():
        rattrs_l = (rs.get("resource") or {}).get("attributes") or ()
        rattrs = _j_attrs(rattrs_l)
        service = ""
        for kv in rattrs_l:
            if kv.get("key") == "service.name":
                service = (kv.get("value") or {}).get("stringValue") or ""
        for ss in rs.get("scopeSpans") or ():
            scope = ss.get("scope") or {}
            sname, sver = scope.get("name") or "", scope.get("version") or ""
            for sp in ss.get("spans") or ():
                tid = _j_id(sp.get("traceId"), 16)
                sid = _j_id(sp.get("spanId"), 8)
                pid = _j_id(sp.get("parentSpanId"), 8)
                if not tid or tid == _ZERO16:
                    res.rejected += 1
                    res.reasons["invalid trace_id"] += 1
                    continue
                if not sid or sid == _ZERO8:
                    res.rejected += 1
                    res.reasons["invalid span_id"] += 1
                    continue
                if pid is None:
                    res.rejected += 1
                    res.reasons["invalid parent_span_id"] += 1
                    continue
                start = int(sp.get("startTimeUnixNano") or 0)
                end = int(sp.get("endTimeUnixNano") or 0)
                if start <= 0 or start > MAX_TIME_NS:
                    res.rejected += 1
                    res.reasons["missing or out-of-range start_time_unix_nano"] += 1
                    continue
                dur = end - start
                if dur < 0:
                    dur = 0
                    res.warnings["had end before start (Duration clamped to 0)"] += 1
                attrs = _j_attrs(sp.get("attributes"))
                bad = _check_tokens(attrs)
                if bad:
                    res.rejected += 1
                    res.reasons[bad] += 1
                    continue
                ev = sp.get("events") or ()
                lk = sp.get("links") or ()
                st = sp.get("status") or {}
                res.rows.append([
                    start, tid.hex(), sid.hex(), pid.hex(), sp.get("traceState") or "", sp.get("name") or "",
                    SPAN_KIND.get(_j_enum(sp.get("kind"), _KIND_NAMES), ""), service, rattrs, sname, sver,
                    attrs, dur, STATUS_CODE.get(_j_enum(st.get("code"), _STATUS_NAMES), ""),
                    st.get("message") or "",
                    [int(e.get("timeUnixNano") or 0) for e in ev], [e.get("name") or "" for e in ev],
                    [_j_attrs(e.get("attributes")) for e in ev],
                    [(_j_id(x.get("traceId"), 16) or b"").hex() for x in lk],
                    [(_j_id(x.get("spanId"), 8) or b"").hex() for x in lk],
                    [x.get("traceState") or "" for x in lk], [_j_attrs(x.get("attributes")) for x in lk],
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
