"""Every example in README.md and docs/*.md runs as written, so none can rot.

Fenced blocks by language:

- ``toml``: written to a file and loaded as `promptpulse serve --config` loads it (``config.load`` and
  ``config.check``), once with its ``${VARS}`` unset (as `alerts test --dry-run` reads it) and once with them set;
- ``sql``: sent to ``POST /api/query`` of the server below; it must answer 200;
- ``bash`` / ``sh`` / ``shell``: run by ``bash -euo pipefail`` in a scratch directory, with ``promptpulse`` from this
  environment and ``PROMPTPULSE_API_PORT`` / ``_OTLP_HTTP_PORT`` / ``_OTLP_GRPC_PORT`` set to the server's ports.
  ``localhost:8321`` / ``:4318`` / ``:4317`` in the text become those ports; ``curl`` fails on an HTTP error;
- ``json``: a first line ``GET /api/...`` is requested from the server (it must answer 200); the rest must parse.

Blocks in ``python`` (the SDK's examples, exercised by the instrumentation tests) and blocks without a language
(layouts, synopses) are not run. A block that cannot run here is preceded by the marker
``<!-- docs-test: skip: <reason> -->`` (hidden when rendered), e.g. ``docker compose`` or ``pip install``; the reason
is required.

The server is one real `promptpulse serve` on loopback for the module, fed over OTLP/HTTP by the official exporter
with calls of the prompts the examples name (support_reply 2.1.0 and 2.2.0, ...) over the last hours.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chdb")

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).with_name("promptpulse")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(?P<reason>[^>]*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", re.S | re.M)
SHELL, RUN = ("bash", "sh", "shell"), ("toml", "sql", "bash", "sh", "shell", "json")
N_CALLS = 60


@dataclass(frozen=True)
class Block:
    file: str
    line: int
    lang: str
    body: str
    skip: str | None  # the marker's reason

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def blocks() -> list[Block]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in FENCE.finditer(text):
            before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = SKIP.search(before)
            out.append(Block(str(path.relative_to(ROOT)), text.count("\n", 0, m.start()) + 1, m.group("lang"),
                             m.group("body"), marker.group("reason") if marker else None))
    return out


BLOCKS = blocks()
RUNNABLE = [b for b in BLOCKS if b.lang in RUN]


# -------------------------------------------------------------------------------------------------------- server
def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    api: int
    http: int
    grpc: int
    data: Path

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api}{path}", timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def query(self, sql: str) -> tuple[int, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.api}/api/query", json.dumps({"sql": sql}).encode(),
                                     {"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, e.read()[:2000]


def _seed(endpoint: str) -> None:
    """N_CALLS calls over the last 3 hours through the official OTLP/HTTP exporter: support_reply 2.1.0 and 2.2.0
    (one failure in ten on 2.2.0), summarize_ticket 1.0.0."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tp = TracerProvider(resource=Resource.create({"service.name": "support-bot",
                                                  "deployment.environment.name": "prod"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=30)))
    tracer = tp.get_tracer("docs-examples")
    now = time.time_ns()
    for i in range(N_CALLS):
        prompt, version = [("support_reply", "2.1.0"), ("support_reply", "2.2.0"), ("summarize_ticket", "1.0.0")][i % 3]
        start = now - (N_CALLS - i) * 150 * 10**9  # every 2.5 minutes
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, start_time=start, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 200 + i, "gen_ai.usage.output_tokens": 40,
            "gen_ai.prompt.name": prompt, "gen_ai.prompt.version": version, "user.id": f"u{i % 7}"})
        if version == "2.2.0" and i % 10 == 1:
            span.set_attribute("error.type", "RateLimitError")
            span.set_attribute("http.response.status_code", 429)
            span.set_status(Status(StatusCode.ERROR, "rate limited"))
        span.end(end_time=start + (400 + 10 * i) * 10**6)
    tp.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("docs-serve")
    s = Server(_port(), _port(), _port(), tmp / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTPULSE_")}
    with open(tmp / "serve.log", "wb") as log:
        proc = subprocess.Popen([str(BIN), "serve", "--data-dir", str(s.data), "--api-port", str(s.api),
                                 "--otlp-http-port", str(s.http), "--otlp-grpc-port", str(s.grpc),
                                 "--batch-max-age", "0.2"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(s):
            assert proc.poll() is None, (tmp / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        _seed(f"http://127.0.0.1:{s.http}/v1/traces")
        while (n := s.query("SELECT count() FROM llm_calls")[1]["rows"][0][0]) < N_CALLS:
            assert time.monotonic() < deadline + 30, n
            time.sleep(0.1)
        yield s
    finally:
        proc.terminate()
        proc.wait(30)


def _healthy(s: Server) -> bool:
    try:
        return s.get("/healthz")[0] == 200
    except OSError:  # not listening yet
        return False


# --------------------------------------------------------------------------------------------------------- tests
def test_every_block_is_seen_and_every_skip_has_a_reason() -> None:
    assert len(RUNNABLE) >= 15, [b.id for b in BLOCKS]
    for b in BLOCKS:
        assert b.skip is None or len(b.skip) >= 10, f"{b.id}: say why the block cannot run"
    text = "\n".join(p.read_text() for p in DOCS)
    assert text.count("docs-test: skip") == sum(b.skip is not None for b in BLOCKS), "a marker not before a block"


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_example_runs_as_written(block: Block, server: Server, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(block.skip)
    {"toml": _toml, "sql": _sql, "json": _json}.get(block.lang, _shell)(block, server, tmp_path)


def _toml(block: Block, _server: Server, tmp_path: Path) -> None:
    from promptpulse.processor.config import check, load

    f = tmp_path / "example.toml"
    f.write_text(block.body)
    s = load(config_file=str(f), env={})
    check(s, secrets=False)  # what `alerts list` and `alerts test --dry-run` need
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", block.body))
    env = {n: "https://hooks.example.com/value" for n in names}
    from promptpulse.processor.alerts.rules import load_alerts

    load_alerts(s.alerts, env=env)  # and what `serve` needs, once the variables are set


def _sql(block: Block, server: Server, _tmp: Path) -> None:
    code, doc = server.query(block.body.strip().rstrip(";"))
    assert code == 200, (block.id, doc)


def _json(block: Block, server: Server, _tmp: Path) -> None:
    body = block.body
    if body.startswith("GET "):
        request, body = body.split("\n", 1)
        path = request.split(None, 1)[1].strip()
        code, answer = server.get(path)
        assert code == 200, (block.id, path, answer[:500])
        json.loads(answer)
    json.loads(body)


def _shell(block: Block, server: Server, tmp_path: Path) -> None:
    script = (block.body.replace("localhost:8321", f"127.0.0.1:{server.api}")
              .replace("127.0.0.1:8321", f"127.0.0.1:{server.api}")
              .replace(":4318", f":{server.http}").replace(":4317", f":{server.grpc}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTPULSE_")}
    env.update(PATH=f"{BIN.parent}{os.pathsep}{env.get('PATH', '')}", PROMPTPULSE_API_PORT=str(server.api),
               PROMPTPULSE_OTLP_HTTP_PORT=str(server.http), PROMPTPULSE_OTLP_GRPC_PORT=str(server.grpc))
    prelude = 'curl() { command curl -sS --fail-with-body "$@"; }\n'
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (f"{block.id}: exit {r.returncode}\n{script}\n--- stdout\n{r.stdout}\n"
                               f"--- stderr\n{r.stderr}")


def test_sql_and_curl_examples_see_the_seeded_calls(server: Server) -> None:
    """The README's examples show data when copied (relative dates): the seeded calls are in their answers."""
    code, body = server.get("/api/metrics?prompt_id=support_reply&start=-7d&end=now")
    doc = json.loads(body)
    assert code == 200 and doc["metrics"]["total_requests"] == 2 * N_CALLS // 3
    start, end = (dt.datetime.fromisoformat(t) for t in doc["period"].split(" to "))  # resolved times, UTC
    assert start.utcoffset() == dt.timedelta(0) and (end - start) == dt.timedelta(days=7)
    code, doc = server.query("SELECT count() FROM llm_calls WHERE prompt_name = 'support_reply'")
    assert code == 200 and doc["rows"] == [[2 * N_CALLS // 3]]


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def test_docs_link_only_inside_the_repository() -> None:
    for path in DOCS:
        for m in LINK.finditer(path.read_text()):
            target = m.group("target").split("#", 1)[0]
            if not target or re.match(r"^[a-z]+:", target):
                continue  # an anchor in the same file, or a URL
            resolved = (path.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{path.name}: {m.group('target')} leaves the repository"
            assert resolved.exists(), f"{path.name}: {m.group('target')} does not exist"
