"""Ollama's native wire for the ollama SDK: /api/chat, /api/generate, /api/embed; NDJSON streams; errors.

Usage is ``prompt_eval_count`` (input) and ``eval_count`` (output), sent on the final object (``"done": true``)
together with the durations in nanoseconds. A stream is one JSON object per line (``application/x-ndjson``).
Served at the server root (``FakeProvider.ollama_host``), as a real Ollama serves it on :11434.
"""

from __future__ import annotations

import json
import time
from typing import Any

from promptpulse.testing.openai_wire import embedding_prompt_tokens
from promptpulse.testing.scenario import Reply
from promptpulse.testing.wires import Route, embedding_vector, text_of

NDJSON_CONTENT_TYPE = "application/x-ndjson"
_ROUTES = {"/api/chat": "chat", "/api/generate": "generate", "/api/embed": "embeddings"}


def _created_at(r: Reply) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(r.created))


def _done(r: Reply) -> dict[str, Any]:
    """The final object's statistics: durations (ns) and the token counts."""
    return {
        "done": True,
        "done_reason": "length" if r.truncated else "stop",
        "total_duration": 5_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": r.usage.input_tokens,
        "prompt_eval_duration": 1_000_000,
        "eval_count": r.usage.output_tokens,
        "eval_duration": 3_000_000,
    }


def _piece(r: Reply, operation: str, text: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": r.model, "created_at": _created_at(r)}
    if operation == "chat":
        body["message"] = {"role": "assistant", "content": text}
    else:
        body["response"] = text
    return body


def render(operation: str, r: Reply) -> dict[str, Any]:
    if operation == "embeddings":
        raw = r.req.body.get("input", "")
        items = [raw] if isinstance(raw, str) else list(raw)
        return {
            "model": r.model,
            "embeddings": [embedding_vector(item, r.embedding_dims) for item in items],
            "total_duration": 2_000_000,
            "load_duration": 1_000_000,
            "prompt_eval_count": r.usage.input_tokens,
        }
    body = {**_piece(r, operation, r.text), **_done(r)}
    if operation == "generate":
        body["context"] = list(range(1, 9))
    return body


def stream(operation: str, r: Reply) -> list[bytes]:
    lines = [_piece(r, operation, p) | {"done": False} for p in r.pieces if p]
    final = {**_piece(r, operation, ""), **_done(r)}
    if operation == "generate":
        final["context"] = list(range(1, 9))
    lines.append(final)
    return [json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines]


class OllamaWire:
    provider = "ollama"
    stream_content_type = NDJSON_CONTENT_TYPE

    def route(self, path: str) -> Route | None:
        op = _ROUTES.get(path.rstrip("/"))
        return Route("ollama", op) if op else None

    def prompt_of(self, operation: str, body: dict[str, Any], model: str) -> tuple[str, int | None]:
        if operation == "chat":
            messages = body.get("messages") or []
            return "\n".join(text_of(m.get("content")) for m in messages if isinstance(m, dict)), None
        if operation == "embeddings":
            raw = body.get("input", "")
            return text_of(raw), embedding_prompt_tokens(raw)
        parts = [body.get("system"), body.get("prompt")]
        return "\n".join(p for p in parts if isinstance(p, str) and p), None

    def max_tokens_of(self, operation: str, body: dict[str, Any], model: str) -> int | None:
        options = body.get("options")
        value = options.get("num_predict") if isinstance(options, dict) else None
        return value if isinstance(value, int) and value >= 0 else None

    def render(self, operation: str, reply: Reply) -> Any:
        return render(operation, reply)

    def stream(self, operation: str, reply: Reply) -> list[bytes]:
        return stream(operation, reply)

    def error(self, status: int, model: str, request_id: str, message: str | None) -> tuple[dict[str, str], Any]:
        text = message or (f"model '{model}' not found" if status == 404 else f"error {status} (fake provider)")
        return {}, {"error": text}

    def headers(self, request_id: str) -> dict[str, str]:
        return {}


WIRE = OllamaWire()
