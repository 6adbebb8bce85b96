"""The web console of `promptpulse serve`: a static page (static/, no build step) over the console's API router.

``install(app)`` is the one call the API app makes: it includes the router (its /api/* paths get the app's bearer
auth) and serves the page at /console/ (static files, no data, no auth; / redirects there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).resolve().parent / "static"
PATH = "/console"


def install(app: Any) -> None:
    from fastapi.responses import RedirectResponse
    from fastapi.staticfiles import StaticFiles

    from .router import router

    app.include_router(router)
    app.mount(PATH, StaticFiles(directory=STATIC_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse(PATH + "/")
