"""The browser side of the console tests: the Chromium flags and a page that records what went wrong.

A module of its own (not conftest.py) so the tests can import it by a name no other test folder uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOKEN = "console-s3cret"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


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
