"""Seeded mutants of valid OTLP trace requests, for the poison-request fuzz (tests/processor/test_ingest_fuzz.py)
and the reliability probe (bench/probe_reliability.py): bit flips, known fields with another wire type, OTLP/JSON
type mutations, and the named poison cases of the processor's reliability figures (docs/PROCESSOR.md)."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def otlp_json(req: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP/JSON form of ``req`` (ids in hex, as the OTLP spec says, not protobuf JSON's base64)."""
    doc = json_format.MessageToDict(req)
    for rs in doc.get("resourceSpans", ()):
        for ss in rs.get("scopeSpans", ()):
            for sp in ss.get("spans", ()):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in sp:
                        sp[k] = base64.b64decode(sp[k]).hex()
    return doc


def flip(rnd: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randrange(len(b))
        b[i] ^= 1 << rnd.randrange(8)
    return bytes(b)


_WIRE = (b"\x08\x01", b"\x09" + bytes(8), b"\x0d\x00\x00\x00\x00", b"\x0b\x0c", b"\x0a\x02\x08\x01",
         b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x7a\x00")


def wire(rnd: random.Random, body: bytes) -> bytes:
    """A known field of the request with another wire type (appended, or in front), or a stray field."""
    extra = rnd.choice(_WIRE)
    return body + extra if rnd.random() < 0.7 else extra + body


ODD: list[Any] = [5, -1, 10**26, 2**64, 1.5, "x", "", True, None, [], {}, [1, "a"], {"a": 1}, "NaN"]


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def json_mutant(rnd: random.Random, doc: dict[str, Any]) -> bytes:
    """``doc`` with one node (any depth) replaced by a value of another JSON type or an out-of-range number."""
    d = json.loads(json.dumps(doc))
    path = rnd.choice(_paths(d)[1:])
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = rnd.choice(ODD)
    return json.dumps(d).encode()


def named_poison(doc: dict[str, Any]) -> list[bytes]:
    """The OTLP/JSON poison cases that stopped storage before (their protobuf twin ``08 01`` is among the wire
    mutants): wrong scalar types, out-of-range times, 5,000 levels of nesting."""
    out = []

    def first_span(d: dict[str, Any]) -> dict[str, Any]:
        return d["resourceSpans"][0]["scopeSpans"][0]["spans"][0]

    for field, value in (("name", 5), ("traceState", 7), ("endTimeUnixNano", str(10**26)),
                         ("endTimeUnixNano", 10**26), ("events", [{"timeUnixNano": str(2**64), "name": "e"}]),
                         ("events", [{"timeUnixNano": "1", "name": 4}]),
                         ("attributes", [{"key": 9, "value": {"stringValue": "v"}}]),
                         ("attributes", [{"key": "k", "value": {"stringValue": 1}}]),
                         ("status", {"code": 2, "message": 1})):
        d = json.loads(json.dumps(doc))
        first_span(d)[field] = value
        out.append(json.dumps(d).encode())
    d = json.loads(json.dumps(doc))
    d["resourceSpans"][0]["scopeSpans"][0]["scope"] = {"name": 3}
    out.append(json.dumps(d).encode())
    deep = '{"arrayValue": {"values": [' * 5000 + '{"stringValue": "x"}' + "]}}" * 5000  # (beyond json.dumps)
    first_span(d)["attributes"] = [{"key": "deep", "value": "DEEP"}]
    out.append(json.dumps(d).encode().replace(b'"DEEP"', deep.encode()))
    return out


def mutants(rnd: random.Random, pb: bytes, doc: dict[str, Any], n: int) -> list[tuple[str, bytes]]:
    """The named cases, then ``n`` mutants: a third each protobuf for HTTP, OTLP/JSON, protobuf for gRPC."""
    out: list[tuple[str, bytes]] = [("json", b) for b in named_poison(doc)]
    for i in range(n):
        kind = ("http-pb", "json", "grpc")[i % 3]
        if kind == "json":
            out.append((kind, json_mutant(rnd, doc)))
        else:
            out.append((kind, flip(rnd, pb) if rnd.random() < 0.6 else wire(rnd, pb)))
    return out
