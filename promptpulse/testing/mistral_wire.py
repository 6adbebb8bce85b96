"""Mistral AI wire shapes for the mistralai SDK: chat completions (plain and SSE), embeddings, errors.

Mistral's wire is OpenAI-like but always ends a stream with a chunk carrying ``usage`` (no ``stream_options``).
The fake serves it under ``/mistral`` (``FakeProvider.mistral_server_url``), since its paths are OpenAI's.
"""

from __future__ import annotations

from typing import Any

from promptpulse.testing._sse import sse
from promptpulse.testing.openai_wire import embedding_inputs, embedding_prompt_tokens
from promptpulse.testing.scenario import Reply, Usage
from promptpulse.testing.wires import SSE_CONTENT_TYPE, Route, embedding_vector, text_of

PREFIX = "/mistral"
_ROUTES = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings"}


def usage_body(u: Usage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
    }
    if u.cached_tokens:
        body["prompt_tokens_details"] = {"cached_tokens": u.cached_tokens}
    return body


def _finish(r: Reply) -> str:
    return "length" if r.truncated else "stop"


def chat_completion(r: Reply) -> dict[str, Any]:
    return {
        "id": f"cmpl-{r.id}",
        "object": "chat.completion",
        "created": r.created,
        "model": r.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": r.text, "tool_calls": None, "prefix": False},
                "finish_reason": _finish(r),
            }
        ],
        "usage": usage_body(r.usage),
    }


def chat_stream(r: Reply) -> list[bytes]:
    base = {"id": f"cmpl-{r.id}", "object": "chat.completion.chunk", "created": r.created, "model": r.model}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        return sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p}) for p in r.pieces if p]
    events.append(chunk({"content": ""}, _finish(r), usage=usage_body(r.usage)))
    events.append(sse("[DONE]"))
    return events


def embeddings(r: Reply) -> dict[str, Any]:
    items = embedding_inputs(r.req.body.get("input", ""))
    return {
        "id": f"embd-{r.id}",
        "object": "list",
        "model": r.model,
        "data": [
            {"object": "embedding", "index": i, "embedding": embedding_vector(item, r.embedding_dims)}
            for i, item in enumerate(items)
        ],
        "usage": {"prompt_tokens": r.usage.input_tokens, "completion_tokens": 0, "total_tokens": r.usage.input_tokens},
    }


class MistralWire:
    provider = "mistral"
    stream_content_type = SSE_CONTENT_TYPE

    def route(self, path: str) -> Route | None:
        if not path.startswith(PREFIX + "/"):
            return None
        op = _ROUTES.get(path[len(PREFIX) :].rstrip("/"))
        return Route("mistral", op) if op else None

    def prompt_of(self, operation: str, body: dict[str, Any], model: str) -> tuple[str, int | None]:
        if operation == "embeddings":
            raw = body.get("input", "")
            return text_of(raw), embedding_prompt_tokens(raw)
        messages = body.get("messages") or []
        return "\n".join(text_of(m.get("content")) for m in messages if isinstance(m, dict)), None

    def max_tokens_of(self, operation: str, body: dict[str, Any], model: str) -> int | None:
        value = body.get("max_tokens")
        return value if isinstance(value, int) else None

    def render(self, operation: str, reply: Reply) -> Any:
        return embeddings(reply) if operation == "embeddings" else chat_completion(reply)

    def stream(self, operation: str, reply: Reply) -> list[bytes]:
        return chat_stream(reply)

    def error(self, status: int, model: str, request_id: str, message: str | None) -> tuple[dict[str, str], Any]:
        kind = "invalid_request_error" if status < 500 else "internal_server_error"
        text = message or f"Error {status} (injected by the PromptPulse fake provider)."
        return {}, {"object": "error", "message": text, "type": kind, "param": None, "code": str(status)}

    def headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id, "x-ratelimitbysize-remaining-minute": "499000"}


WIRE = MistralWire()
