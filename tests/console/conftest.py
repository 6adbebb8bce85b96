"""The console over a real embedded store with known calls, served by uvicorn on loopback, driven by Debian's
Chromium through Playwright. Screenshots go to tests/console/artifacts/ (git-ignored)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("chdb")
pytest.importorskip("fastapi")

from console_seed import rows
from fastapi import Request  # module level: FastAPI resolves the handlers' string annotations here

TOKEN = "console-s3cret"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def make_app(service: Any) -> Any:
    """The API app with the console installed, as `promptpulse serve` builds it."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from promptpulse.processor import analytics as an
    from promptpulse.processor import console

    app = FastAPI()
    app.state.service = service

    @app.middleware("http")
    async def auth(request: Request, call_next: Any) -> Any:
        token = service.settings.auth_token
        if token and request.url.path.startswith("/api/") and \
                request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return await call_next(request)

    @app.get("/api/compare")
    def compare(request: Request) -> Any:
        try:
            return an.compare(service.get_store(), dict(request.query_params))
        except an.BadRequest as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    console.install(app)
    return app


class Server:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="session")
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
    svc = SimpleNamespace(get_store=lambda: store, store=store, settings=SimpleNamespace(auth_token=token))
    srv = Server(make_app(svc))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def server(store: Any) -> Iterator[Server]:
    yield from _serve(store, TOKEN)


@pytest.fixture(scope="session")
def open_server(store: Any) -> Iterator[Server]:
    """No auth token configured."""
    yield from _serve(store, None)


@pytest.fixture(scope="session")
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

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def kpi(self, name: str) -> str:
        return self.page.inner_text(f'[data-kpi="{name}"] .value')

    def value(self, name: str) -> float:
        return float(self.page.get_attribute(f'[data-kpi="{name}"]', "data-value"))

    def close(self) -> None:
        assert not self.errors, self.errors
        assert not self.foreign, f"requests left the server: {self.foreign}"
        self.ctx.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Page]:
    p = Page(browser, server.url)
    yield p
    p.close()
