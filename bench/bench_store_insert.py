"""Ways to insert otel_traces rows from Python into chDB, side by side, through the full schema (MVs included).

    .venv/bin/python bench/bench_store_insert.py [--spans 20000] [--batch 512]

Prints spans/s for each candidate; docs/SCHEMA.md records a run.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time

from promptpulse.processor.store.base import OTEL_TRACES_COLUMNS
from promptpulse.processor.store.embedded import EmbeddedStore


def make_rows(n: int, seed: int = 1) -> list[list]:
    rng = random.Random(seed)
    now = time.time_ns()
    rows = []
    for i in range(n):
        attrs = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": rng.choice(["gpt-4o", "gpt-4o-mini", "gpt-4.1"]),
            "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": f"chatcmpl-{i}",
            "gen_ai.response.finish_reasons": '["stop"]', "gen_ai.request.max_tokens": "512",
            "gen_ai.request.temperature": "0.2", "gen_ai.request.stream": "false",
            "gen_ai.usage.input_tokens": str(rng.randint(50, 5000)),
            "gen_ai.usage.output_tokens": str(rng.randint(10, 800)),
            "gen_ai.usage.cache_read.input_tokens": "0",
            "gen_ai.prompt.name": f"prompt_{rng.randint(0, 9)}", "gen_ai.prompt.version": str(rng.randint(1, 3)),
            "gen_ai.conversation.id": f"conv-{rng.randint(0, 999)}", "user.id": f"user-{rng.randint(0, 999)}",
            "session.id": f"sess-{rng.randint(0, 999)}", "server.address": "api.openai.com", "server.port": "443",
            "http.response.status_code": "200", "promptpulse.cost.usd": "0.00123",
            "promptpulse.feature": "support", "promptpulse.tags": '["beta","eu"]',
            "promptpulse.prompt.fingerprint": "abcdef0123456789",
        }
        rows.append([now - rng.randint(0, 3600) * 10**9, f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}",
                     "", "", "chat gpt-4o", "Client", "bench-svc",
                     {"service.name": "bench-svc", "deployment.environment.name": "prod",
                      "telemetry.sdk.name": "opentelemetry"}, "promptpulse", "0.1.0", attrs,
                     rng.randint(200, 20000) * 10**6, "Ok", "", [], [], [], [], [], [], []])
    return rows


def _json_rows(rows: list[list]) -> bytes:
    cols = OTEL_TRACES_COLUMNS
    out = []
    for r in rows:
        d = dict(zip(cols, r, strict=False))
        ts = d["Timestamp"]
        d["Timestamp"] = f"{ts // 10**9}.{ts % 10**9:09d}"
        out.append(json.dumps(d, separators=(",", ":")))
    return "\n".join(out).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()
    rows = make_rows(args.spans)
    batches = [rows[i:i + args.batch] for i in range(0, len(rows), args.batch)]
    tmp = tempfile.mkdtemp()
    store = EmbeddedStore(tmp)
    store.apply_schema()
    client = store._client
    conn = client._backend._handle.conn  # the raw chdb connection under clickhouse-connect
    cols = ", ".join(f"`{c}`" for c in OTEL_TRACES_COLUMNS)
    ctx = client.create_insert_context(table="otel_traces", column_names=list(OTEL_TRACES_COLUMNS),
                                       database=store.database)

    def native_infile(batch: list[list], i: int) -> None:  # what EmbeddedStore does
        store.insert_otel_traces(batch, dedup_token=f"a{i}")

    def native_stream(batch: list[list], i: int) -> None:  # clickhouse-connect's serialiser, chDB send_insert
        ctx.data = batch
        chunks = list(client._transform.build_insert(ctx))
        chunks[0] = chunks[0][chunks[0].find(b"\n") + 1:]
        with client._backend._handle.lock:
            ins = conn.send_insert(f"INSERT INTO {store.database}.otel_traces ({cols}) "
                                   f"SETTINGS insert_deduplication_token = 'b{i}'", "Native")
            for chunk in chunks:
                ins.append(chunk)
            ins.finish()

    def json_stream(batch: list[list], i: int) -> None:  # json.dumps per row, chDB send_insert
        data = _json_rows(batch)
        with client._backend._handle.lock:
            ins = conn.send_insert(f"INSERT INTO {store.database}.otel_traces ({cols}) "
                                   f"SETTINGS insert_deduplication_token = 'c{i}', "
                                   f"input_format_import_nested_json = 0", "JSONEachRow")
            ins.append(data)
            ins.finish()

    def encode_only(batch: list[list], i: int) -> None:
        ctx.data = batch
        list(client._transform.build_insert(ctx))

    def json_encode_only(batch: list[list], i: int) -> None:
        _json_rows(batch)

    results = {}
    for name, fn in [("native_encode_only", encode_only), ("json_encode_only", json_encode_only),
                     ("native_infile (EmbeddedStore)", native_infile), ("native_send_insert", native_stream),
                     ("jsoneachrow_send_insert", json_stream)]:
        started = time.perf_counter()
        for i, batch in enumerate(batches):
            fn(batch, i)
        elapsed = time.perf_counter() - started
        results[name] = len(rows) / elapsed
        print(f"{name:32s} {len(rows) / elapsed:10.0f} spans/s")
    print(store.query("SELECT count() FROM otel_traces").rows, store.query("SELECT count() FROM llm_calls").rows)
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
