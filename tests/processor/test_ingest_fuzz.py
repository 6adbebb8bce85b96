"""Poison requests end to end (issue 16 §1): `promptpulse serve` is fed seeded mutants of valid requests — bit flips,
wrong wire types, OTLP/JSON type mutations, the named poison cases — over OTLP/HTTP (protobuf and JSON) and
OTLP/gRPC, each followed by valid spans. Every mutant is answered 200 or 4xx, every accepted span is stored (none
dead-lettered: the checks let through only what can be stored), and every valid request after them is stored.
Run on the embedded store (the engine decodes request bodies) and on a ClickHouse server (the loopback server over
chDB in its own process; the Python decoder and Native inserts)."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fakes import genai_spans
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from test_service_e2e import Serve, _port

from promptpulse.testing.otlp_mutants import mutants, otlp_json

pytest.importorskip("chdb")

SEED = 1616
N_MUTANTS = 480  # per store: a third each over HTTP protobuf, HTTP JSON and gRPC
VALID_EVERY = 20


def _valid(seed: int, n: int = 4) -> tuple[bytes, dict[str, Any]]:
    req = encode_spans(genai_spans(n, seed=seed))
    return req.SerializeToString(), otlp_json(req)


def _metrics(s: Serve) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{s.api}/metrics", timeout=10).read().decode()
    return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines() if ln and not ln.startswith("#")}


def _grpc_export(channel: grpc.Channel, body: bytes) -> int:
    call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                               request_serializer=None, response_deserializer=None)
    try:
        call(body, timeout=10)
        return 0
    except grpc.RpcError as e:
        return e.code().value[0]


def _run(s: Serve) -> None:
    rnd = random.Random(SEED)
    pb, doc = _valid(1)
    answers: Counter[str] = Counter()
    valid_ids: list[str] = []
    channel = grpc.insecure_channel(f"127.0.0.1:{s.grpc}")
    for i, (kind, body) in enumerate(mutants(rnd, pb, doc, N_MUTANTS)):
        if kind == "grpc":
            code = _grpc_export(channel, body)
            assert code in (0, grpc.StatusCode.INVALID_ARGUMENT.value[0]), (i, code, body.hex())
            answers[f"grpc {code}"] += 1
        else:
            status, text, _ = s.post(body, "application/json" if kind == "json" else "application/x-protobuf")
            assert status in (200, 400), (i, status, text[:300], body[:2000])
            answers[f"{kind} {status}"] += 1
        if i % VALID_EVERY == VALID_EVERY - 1:  # valid spans after the mutants: stored
            vb, vdoc = _valid(1000 + i)
            valid_ids += [sp["traceId"] for sp in vdoc["resourceSpans"][0]["scopeSpans"][0]["spans"]]
            if (i // VALID_EVERY) % 2:
                assert _grpc_export(channel, vb) == 0
            else:
                assert s.post(vb)[0] == 200
    channel.close()
    deadline = time.monotonic() + 60
    while (m := _metrics(s))["promptpulse_queue_spans"] > 0:
        assert time.monotonic() < deadline, m
        time.sleep(0.2)
    assert m["promptpulse_deadletter_requests_total"] == 0, (s.tmp / "serve.log").read_text()[-3000:]
    stored = s.query("SELECT count() FROM otel_traces")[0][0]
    # every accepted span is stored once (a mutant identical to an earlier body is a resend: answered, not stored)
    assert stored == m["promptpulse_spans_accepted_total"] - m["promptpulse_duplicate_spans_total"], (stored, m)
    ids = ",".join(f"'{t}'" for t in valid_ids)
    assert s.query(f"SELECT uniqExact(TraceId) FROM otel_traces WHERE TraceId IN ({ids})")[0][0] == len(set(valid_ids))
    # some of each kind was accepted and some refused: the fuzz reached both sides
    for kind in ("http-pb", "json"):
        assert answers[f"{kind} 200"] and answers[f"{kind} 400"], answers
    print("fuzz answers:", dict(answers))


def test_poison_requests_embedded(tmp_path: Path) -> None:
    s = Serve(tmp_path)
    s.tmp = tmp_path
    try:
        _run(s)
    finally:
        s.stop()


_CH_SERVER = """
import sys, time
from promptpulse.testing.clickhouse_http import ClickHouseHTTPServer
srv = ClickHouseHTTPServer(sys.argv[1], port=int(sys.argv[2])).start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


@contextlib.contextmanager
def clickhouse_server(data_dir: Path) -> Iterator[str]:
    """The loopback ClickHouse-HTTP server over chDB in a process of its own (chDB takes one data dir per
    process); yields its URL."""
    port = _port()
    ch = subprocess.Popen([sys.executable, "-c", _CH_SERVER, str(data_dir), str(port)], stdout=subprocess.PIPE,
                          text=True)
    try:
        assert ch.stdout is not None and ch.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        ch.kill()
        ch.wait(10)


def test_poison_requests_server_store(tmp_path: Path) -> None:
    with clickhouse_server(tmp_path / "ch") as url:
        s = Serve(tmp_path, "--clickhouse-url", f"{url}/pp_fuzz?compress=false")
        s.tmp = tmp_path
        try:
            _run(s)
        finally:
            s.stop()
