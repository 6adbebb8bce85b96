"""Reliability end to end, on `promptpulse serve` over a ClickHouse server (the loopback server over chDB, where the
test can change the schema under the processor): a request the store refuses on its data goes to the dead letters
while the rest of its batch is stored, and `promptpulse deadletter replay` stores it once the cause is gone; a body
resent after kill -9 (the exporter never heard the answer) is stored once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from fakes import genai_spans
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from test_ingest_fuzz import _metrics, clickhouse_server
from test_service_e2e import BIN, Serve


def _ddl(url: str, sql: str) -> None:
    req = urllib.request.Request(url + "/", sql.encode(), {"Content-Type": "text/plain"}, method="POST")
    urllib.request.urlopen(req, timeout=30).read()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, "deadletter", *args], capture_output=True, text=True, timeout=60)


def test_refused_request_is_dead_lettered_and_replayed(tmp_path: Path) -> None:
    with clickhouse_server(tmp_path / "ch") as url:
        s = Serve(tmp_path, "--clickhouse-url", f"{url}/pp_rel?compress=false", "--batch-max-age", "1")
        spool = str(tmp_path / "spool")
        try:
            _ddl(url, "ALTER TABLE pp_rel.otel_traces ADD CONSTRAINT no_poison CHECK SpanName != 'poison-op'")
            bodies = [encode_spans(genai_spans(5, seed=40 + i)) for i in range(6)]
            bodies[3].resource_spans[0].scope_spans[0].spans[2].name = "poison-op"
            for b in bodies:  # within one batch age: one batch holding the bad request
                assert s.post(b.SerializeToString())[0] == 200
            s.wait_count(25)
            m = _metrics(s)
            assert m["promptpulse_deadletter_requests_total"] == 1 and m["promptpulse_deadletter_spans_total"] == 5
            ready = json.load(urllib.request.urlopen(f"http://127.0.0.1:{s.api}/readyz"))
            assert ready["status"] == "ready" and ready["dead_letters"] == 1
            out = _cli("list", "--spool-dir", spool, "--json")
            (letter,) = [json.loads(x) for x in out.stdout.splitlines()]
            assert letter["spans"] == 5 and letter["kind"] == "protobuf" and "469" in letter["error"], letter
            # later requests are stored as usual
            assert s.post(encode_spans(genai_spans(4, seed=60)).SerializeToString())[0] == 200
            s.wait_count(29)
            # the cause is gone: replay stores it, once
            _ddl(url, "ALTER TABLE pp_rel.otel_traces DROP CONSTRAINT no_poison")
            r = _cli("replay", "--spool-dir", spool, "--endpoint", f"http://127.0.0.1:{s.http}")
            assert r.returncode == 0 and ": 200" in r.stdout, r.stdout + r.stderr
            s.wait_count(34)
            assert s.query("SELECT count() FROM otel_traces WHERE SpanName = 'poison-op'") == [[1]]
            assert _cli("list", "--spool-dir", spool).stdout == ""
            assert _cli("replay", "--spool-dir", spool).returncode == 0  # nothing left: a no-op
            s.wait_count(34)
        finally:
            s.stop()


def test_resend_after_kill_9_is_stored_once(tmp_path: Path) -> None:
    body = encode_spans(genai_spans(7, seed=77)).SerializeToString()
    s = Serve(tmp_path, "--batch-max-age", "60", "--batch-max-spans", "100000")  # nothing inserted before the kill
    assert s.post(body)[0] == 200  # spooled; the exporter "never heard" this answer…
    s.stop(signal.SIGKILL)
    s = Serve(tmp_path)
    try:
        assert s.post(body)[0] == 200  # …and sends the same body again
        other = encode_spans(genai_spans(3, seed=78)).SerializeToString()
        assert s.post(other)[0] == 200
        s.wait_count(10)
        assert _metrics(s)["promptpulse_duplicate_requests_total"] == 1
    finally:
        s.stop()


if __name__ == "__main__":
    sys.exit("run with pytest")


def test_one_request_over_many_days_is_stored(tmp_path: Path) -> None:
    """A valid request whose spans fall on 150 different days (ClickHouse refuses more than 100 partitions in one
    insert block by default, and that refusal is not about bad data: it must not block the queue)."""
    import time

    req = encode_spans(genai_spans(150, seed=91))
    day = 86_400 * 10**9
    now = time.time_ns()
    for k, sp in enumerate(req.resource_spans[0].scope_spans[0].spans):
        sp.start_time_unix_nano = now + (k + 1) * day  # future days: the TTL never drops them during the test
        sp.end_time_unix_nano = sp.start_time_unix_nano + 10**9
    s = Serve(tmp_path)
    try:
        assert s.post(req.SerializeToString())[0] == 200
        assert s.post(encode_spans(genai_spans(5, seed=92)).SerializeToString())[0] == 200
        s.wait_count(155)
        s.wait_count(155, "llm_calls")
        assert _metrics(s)["promptpulse_deadletter_requests_total"] == 0
    finally:
        s.stop()
