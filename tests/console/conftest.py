"""The console over a real embedded store with known calls, served by uvicorn on loopback, driven by Debian's
Chromium through Playwright. Screenshots go to tests/console/artifacts/ (git-ignored)."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("chdb")
pytest.importorskip("fastapi")

from console_page import ARGS, CHROMIUM, TOKEN, Page
from console_seed import rows


class Server:
    """`promptpulse serve`'s API server (processor/api_server.py: FastAPI on uvicorn, the console installed)."""

    def __init__(self, service: Any) -> None:
        from promptpulse.processor import api_server

        self.srv = api_server.make_server("127.0.0.1", 0, service)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        self.srv.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


# module scope: chDB holds one data path per process, so the store is closed before the next module opens its own
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from promptpulse.processor.store.embedded import EmbeddedStore
    from promptpulse.processor.store.schema import SchemaOptions

    s = EmbeddedStore(str(tmp_path_factory.mktemp("chdb-console")), schema_options=SchemaOptions(database="pp_console"))
    try:
        s.apply_schema()
        s.insert_otel_traces(rows(), dedup_token=uuid.uuid4().hex)
        yield s
    finally:
        s.close()


def _serve(store: Any, token: str | None) -> Iterator[Server]:
    svc = SimpleNamespace(get_store=lambda: store, settings=None,
                          ingest=SimpleNamespace(authorized=lambda h: token is None or h == f"Bearer {token}"))
    srv = Server(svc)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def server(store: Any) -> Iterator[Server]:
    yield from _serve(store, TOKEN)


@pytest.fixture(scope="module")
def open_server(store: Any) -> Iterator[Server]:
    """No auth token configured."""
    yield from _serve(store, None)


# module scope, not session: Playwright's sync API keeps an event loop running in the main thread while it is up,
# and every async test after it would fail with "Runner.run() cannot be called from a running event loop".
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: .ci/run installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Page]:
    p = Page(browser, server.url)
    yield p
    p.close()
