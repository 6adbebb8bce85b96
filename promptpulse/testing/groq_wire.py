"""Groq wire shapes for the groq SDK: OpenAI's chat completions and embeddings, plus Groq's ``x_groq`` block.

Groq's API is OpenAI-compatible under ``/openai/v1``; what differs is that a stream's last chunk carries the usage in
``x_groq.usage`` whether or not ``stream_options.include_usage`` was asked for. The fake serves it under ``/groq``
(``FakeProvider.groq_base_url``), so it is told apart from Azure's ``/openai/v1`` form.
"""

from __future__ import annotations

import json
from typing import Any

from promptpulse.testing import openai_wire
from promptpulse.testing._sse import sse
from promptpulse.testing.routing import max_tokens_of, prompt_of
from promptpulse.testing.scenario import Reply
from promptpulse.testing.wires import SSE_CONTENT_TYPE, Route

PREFIX = "/groq/openai/v1"
_ROUTES = {"/chat/completions": "chat", "/embeddings": "embeddings"}


def chat_completion(r: Reply) -> dict[str, Any]:
    body = openai_wire.chat_completion(r)
    body["x_groq"] = {"id": f"req_{r.id}"}
    return body


def chat_stream(r: Reply) -> list[bytes]:
    """OpenAI's chunks, with ``x_groq.id`` on the first and ``x_groq.usage`` on the finishing chunk."""
    events = []
    for i, event in enumerate(openai_wire.chat_stream(r)):
        payload = event[len(b"data: ") :].strip()
        if payload == b"[DONE]":
            events.append(event)
            continue
        chunk = json.loads(payload)
        if chunk.get("choices") and chunk["choices"][0].get("finish_reason"):
            chunk["x_groq"] = {"id": f"req_{r.id}", "usage": openai_wire.chat_usage(r.usage)}
        elif i == 0:
            chunk["x_groq"] = {"id": f"req_{r.id}"}
        events.append(sse(chunk))
    return events


class GroqWire:
    provider = "groq"
    stream_content_type = SSE_CONTENT_TYPE

    def route(self, path: str) -> Route | None:
        if not path.startswith(PREFIX + "/"):
            return None
        op = _ROUTES.get(path[len(PREFIX) :].rstrip("/"))
        return Route("groq", op) if op else None

    def prompt_of(self, operation: str, body: dict[str, Any], model: str) -> tuple[str, int | None]:
        return prompt_of(operation, body)  # type: ignore[arg-type]

    def max_tokens_of(self, operation: str, body: dict[str, Any], model: str) -> int | None:
        return max_tokens_of(operation, body)  # type: ignore[arg-type]

    def render(self, operation: str, reply: Reply) -> Any:
        return openai_wire.embeddings(reply) if operation == "embeddings" else chat_completion(reply)

    def stream(self, operation: str, reply: Reply) -> list[bytes]:
        return chat_stream(reply)

    def error(self, status: int, model: str, request_id: str, message: str | None) -> tuple[dict[str, str], Any]:
        return {}, openai_wire.error_body(status, model, message)

    def headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id, "x-ratelimit-remaining-requests": "14399"}


WIRE = GroqWire()
