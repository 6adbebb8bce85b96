"""ClickHouse Native-format encoding of ``otel_traces`` blocks, built column by column.

The protobuf decoder (``receiver.decode.decode_protobuf``) fills a :class:`SpanColumns` per request with column
pieces that are already Native-encoded (strings as ``varint length + UTF-8 bytes``, shared through the decoder's
attribute cache); :func:`encode_otel_traces` concatenates the chunks of a batch into one Native block that the store
inserts as is (``INSERT INTO otel_traces (...) FORMAT Native``). This replaces clickhouse-connect's row → Native
re-encoding, which cost ~44% of the processor's GIL time.

Wire layout (the HTTP / file Native format: no block info, no per-column serialization flags):
``varint ncols, varint nrows`` then per column ``string name, string type, data``:

* ``DateTime64(9)`` / ``UInt64``: 8 bytes little endian per row (DateTime64(9) is Int64 nanoseconds);
* ``String``: per row ``varint len`` + bytes;
* ``Array(T)``: ``UInt64`` cumulative end offsets per row, then the nested column of all elements;
* ``Map(K, V)`` = ``Array(Tuple(K, V))``: offsets per row, then all keys, then all values.

The block declares ``String`` / ``Map(String, String)`` where the table has ``LowCardinality(String)`` /
``Map(LowCardinality(String), String)``: ClickHouse converts Native input to the table's types (values unchanged;
``input_format_native_allow_types_conversion``, on by default), which is cheaper than building LowCardinality
dictionaries in Python. tests/processor/test_native_insert.py checks that the stored rows equal the row path's.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import Any

from .base import OTEL_TRACES_COLUMNS

# varint prefixes of short lengths, the common case
_VI = [bytes([i]) for i in range(128)]


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def lp(s: bytes) -> bytes:
    """A Native String value: varint length + bytes."""
    n = len(s)
    return _VI[n] + s if n < 128 else leb128(n) + s


def lps(s: str) -> bytes:
    return lp(s.encode())


EMPTY = _VI[0]

# Declared types of the block, by column (the table's types with LowCardinality dropped; see the module docstring).
_LCS = "LowCardinality(String)"
_MAP = "Map(LowCardinality(String), String)"
TYPES: dict[str, str] = {
    "Timestamp": "DateTime64(9)", "TraceId": "String", "SpanId": "String", "ParentSpanId": "String",
    "TraceState": "String", "SpanName": _LCS, "SpanKind": _LCS, "ServiceName": _LCS,
    "ResourceAttributes": _MAP, "ScopeName": "String", "ScopeVersion": "String",
    "SpanAttributes": _MAP, "Duration": "UInt64", "StatusCode": _LCS,
    "StatusMessage": "String", "Events.Timestamp": "Array(DateTime64(9))", "Events.Name": f"Array({_LCS})",
    "Events.Attributes": f"Array({_MAP})", "Links.TraceId": "Array(String)",
    "Links.SpanId": "Array(String)", "Links.TraceState": "Array(String)",
    "Links.Attributes": f"Array({_MAP})",
}
assert set(TYPES) == set(OTEL_TRACES_COLUMNS)


class BodyRows(Sequence):
    """The accepted spans of one OTLP request (``body``, ``n`` spans) as a read-only sequence of rows in
    ``decode.COLUMNS`` order, decoded from the body by the row decoder on first use (tests, a store or batch that
    takes the row path). Subclasses set ``body``, ``n`` and ``_rows = None``."""

    __slots__ = ()
    body: bytes | None
    n: int
    _rows: list | None

    def rows(self) -> list:
        if self._rows is None:
            from ..receiver import decode

            self._rows = decode.decode_protobuf_rows(self.body).rows if self.body is not None else []
            if len(self._rows) != self.n:  # never: every reader of a body accepts the same spans
                raise RuntimeError(f"the row decoder and {type(self).__name__} disagree on the span count")
        return self._rows

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        return self.rows()[i]

    def __iter__(self) -> Iterator:
        return iter(self.rows())


class SpanColumns(BodyRows):
    """The accepted spans of one request, as Native column pieces (filled by the decoder).

    Also a read-only sequence of rows in ``decode.COLUMNS`` order: indexing or iterating decodes ``body`` again with
    the row decoder (the same renderings), for callers that want rows (tests, a store without ``insert_native``).

    Per span: ``ts``/``dur`` ints; ``tid``/``sid`` lowercase hex bytes (32 / 16 chars); ``pid``, ``tstate``,
    ``name``, ``kind``, ``scode``, ``smsg`` Native string pieces; ``akeys``/``avals`` the SpanAttributes pieces of all
    spans with ``alen`` the map size per span; ``ev``/``lk`` per span the decoder's event/link tuples (usually
    empty). Runs (consecutive spans sharing a value): ``res`` = (n, service piece, resource key pieces, resource
    value pieces), ``scope`` = (n, name piece, version piece)."""

    __slots__ = (
        "_rows",
        "akeys",
        "alen",
        "avals",
        "body",
        "dur",
        "ev",
        "kind",
        "lk",
        "n",
        "name",
        "pid",
        "res",
        "scode",
        "scope",
        "sid",
        "smsg",
        "tid",
        "ts",
        "tstate",
    )

    def __init__(self, body: bytes | None = None) -> None:
        self.n = 0
        self.ts: list[int] = []
        self.dur: list[int] = []
        self.tid: list[bytes] = []
        self.sid: list[bytes] = []
        self.pid: list[bytes] = []
        self.tstate: list[bytes] = []
        self.name: list[bytes] = []
        self.kind: list[bytes] = []
        self.scode: list[bytes] = []
        self.smsg: list[bytes] = []
        self.akeys: list[bytes] = []
        self.avals: list[bytes] = []
        self.alen: list[int] = []
        self.ev: list[list] = []
        self.lk: list[list] = []
        self.res: list[list] = []
        self.scope: list[list] = []
        self.body = body
        self._rows: list | None = None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SpanColumns):
            other = other.rows()
        return self.rows() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<SpanColumns {self.n} spans>"


def _offsets(counts: Iterable[int]) -> bytes:
    offs = list(accumulate(counts))
    return struct.pack(f"<{len(offs)}Q", *offs)


# LowCardinality: the column starts with the serialization version (1 = shared dictionaries with additional keys;
# for a nested LowCardinality, at the start of the whole column); the data is one granule: UInt64 flags | index type
# (need-update-dictionary 1<<9, has-additional-keys 1<<10; index UInt8/16/32 = 0/1/2), UInt64 dictionary size, the
# dictionary as a String column, UInt64 row count, the row indexes. As clickhouse-connect writes it.
LC_PREFIX = struct.pack("<Q", 1)
_LC_FLAGS = (1 << 9) | (1 << 10)
_BIG = sys.byteorder == "big"


def lc(pieces: list[bytes]) -> bytes:
    """A LowCardinality(String) column of Native string pieces (without the version prefix)."""
    if not pieces:
        return b""
    uniq = list(dict.fromkeys(pieces))
    nu = len(uniq)
    if nu < 256:
        ix_type, code = 0, "B"
    elif nu < 65536:
        ix_type, code = 1, "H"
    else:
        ix_type, code = 2, "I"
    ids = list(map({k: i for i, k in enumerate(uniq)}.__getitem__, pieces))
    if ix_type == 0:
        idx = bytes(ids)
    else:
        arr = array(code, ids)
        if _BIG:
            arr.byteswap()
        idx = arr.tobytes()
    return b"".join((struct.pack("<QQ", _LC_FLAGS | ix_type, nu), *uniq, struct.pack("<Q", len(pieces)), idx))


def _map_column(maps: Sequence[dict[str, str]]) -> tuple[bytes, list[bytes], list[bytes]]:
    keys: list[bytes] = []
    vals: list[bytes] = []
    for m in maps:
        for k, v in m.items():
            keys.append(lps(k))
            vals.append(lps(v))
    return _offsets(len(m) for m in maps), keys, vals


def encode_otel_traces(chunks: Sequence[SpanColumns], columns: Sequence[str] = OTEL_TRACES_COLUMNS) -> bytes:
    """One Native block with the spans of ``chunks`` (in order), columns in ``columns`` order."""
    n = sum(c.n for c in chunks)
    data: dict[str, Any] = {}
    j = b"".join

    def cat(attr: str) -> list:
        out: list = []
        for c in chunks:
            out.extend(getattr(c, attr))
        return out

    data["Timestamp"] = struct.pack(f"<{n}q", *cat("ts"))
    data["Duration"] = struct.pack(f"<{n}Q", *cat("dur"))
    data["TraceId"] = (b" " + b" ".join(cat("tid"))) if n else b""
    data["SpanId"] = (b"\x10" + b"\x10".join(cat("sid"))) if n else b""
    for col, attr in (("ParentSpanId", "pid"), ("TraceState", "tstate"), ("StatusMessage", "smsg")):
        data[col] = j(cat(attr))
    for col, attr in (("SpanName", "name"), ("SpanKind", "kind"), ("StatusCode", "scode")):
        data[col] = LC_PREFIX + lc(cat(attr))
    # runs: resource (service, resource attributes) and scope
    svc: list[bytes] = []
    rk: list[bytes] = []
    rv: list[bytes] = []
    rlen: list[int] = []
    sn: list[bytes] = []
    sv: list[bytes] = []
    for c in chunks:
        for cnt, service, keys, vals in c.res:
            if cnt:
                svc.extend([service] * cnt)
                rk.extend(keys * cnt)
                rv.append(j(vals) * cnt)
                rlen.extend([len(keys)] * cnt)
        for cnt, name, version in c.scope:
            sn.append(name * cnt)
            sv.append(version * cnt)
    data["ServiceName"] = LC_PREFIX + lc(svc)
    data["ResourceAttributes"] = LC_PREFIX + _offsets(rlen) + lc(rk) + j(rv)
    data["ScopeName"] = j(sn)
    data["ScopeVersion"] = j(sv)
    data["SpanAttributes"] = LC_PREFIX + _offsets(cat("alen")) + lc(cat("akeys")) + j(cat("avals"))
    # Events / Links: Array columns of the decoder's tuples (rare in GenAI traffic)
    ev = cat("ev")
    lk = cat("lk")
    ev_off = _offsets(len(e) for e in ev)
    lk_off = _offsets(len(x) for x in lk)
    evs = [e for row in ev for e in row]
    lks = [x for row in lk for x in row]
    data["Events.Timestamp"] = ev_off + struct.pack(f"<{len(evs)}Q", *(e[0] for e in evs))
    data["Events.Name"] = LC_PREFIX + ev_off + lc([lps(e[1]) for e in evs])
    moff, mk, mv = _map_column([e[2] for e in evs])
    data["Events.Attributes"] = LC_PREFIX + ev_off + moff + lc(mk) + j(mv)
    data["Links.TraceId"] = lk_off + j(lp(x[0].hex().encode()) for x in lks)
    data["Links.SpanId"] = lk_off + j(lp(x[1].hex().encode()) for x in lks)
    data["Links.TraceState"] = lk_off + j(lps(x[2]) for x in lks)
    moff, mk, mv = _map_column([x[3] for x in lks])
    data["Links.Attributes"] = LC_PREFIX + lk_off + moff + lc(mk) + j(mv)

    out = [leb128(len(columns)), leb128(n)]
    for col in columns:
        out.append(lps(col))
        out.append(lps(TYPES[col]))
        out.append(data[col])
    return j(out)
