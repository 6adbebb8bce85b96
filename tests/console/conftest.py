"""The console over a real embedded store with known calls, served by uvicorn on loopback, driven by Debian's
Chromium through Playwright. Screenshots go to tests/console/artifacts/ (git-ignored)."""

from __future__ import annotations

import json
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

from console_seed import rows

TOKEN = "console-s3cret"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


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


class Page:
    """A browser page that records console errors, failed requests and any request leaving the server."""

    def __init__(self, browser: Any, base: str) -> None:
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.ctx.new_page()
        self.base = base
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: None if r.url.startswith(base) else self.foreign.append(r.url))
        self.page.on("response", lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    def open(self, query: str = "", *, token: str | None = TOKEN) -> Any:
        if token is not None:  # as if typed into the token form before (that form: test_console_overview.py)
            self.page.add_init_script(f"sessionStorage.setItem('promptpulse.token', {json.dumps(token)})")
        self.page.goto(f"{self.base}/console/{query}")
        self.wait_loaded()
        return self.page

    def wait_loaded(self, refreshes: int = 1) -> None:
        self.page.wait_for_function(f"Number(document.body.dataset.refreshes || 0) >= {refreshes} && "
                                    "!document.body.dataset.loading", timeout=30000)

    def shot(self, name: str, *, full_page: bool = True) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)

    def kpi(self, name: str, section: str = "overview") -> str:
        return self.page.inner_text(f'#{section} [data-kpi="{name}"] .value')

    def value(self, name: str, section: str = "overview") -> float:
        return float(self.page.get_attribute(f'#{section} [data-kpi="{name}"]', "data-value"))

    def close(self) -> None:
        assert not self.errors, self.errors
        assert not self.foreign, f"requests left the server: {self.foreign}"
        self.ctx.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Page]:
    p = Page(browser, server.url)
    yield p
    p.close()
