"""JSON responses of the HTTP API: one encoder (datetimes ISO, Decimal as float, bytes as text) and one error shape,
``{"error": message, "path": path}``."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSON

from .api import json_default


class JSONResponse(_StarletteJSON):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=json_default).encode()


def error(status: int, message: str, path: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    doc: dict[str, Any] = {"error": message}
    if path is not None:
        doc["path"] = path
    return JSONResponse(doc, status_code=status, headers=headers)
