"""Cohere v2 wire shapes for the cohere SDK (``ClientV2``): chat, chat stream (typed SSE events), embed, errors.

Usage is reported twice by Cohere: ``billed_units`` (what is charged) and ``tokens`` (what the model saw); the fake
sends the scenario's numbers in both, and ``cached_tokens`` when there are any.
"""

from __future__ import annotations

from typing import Any

from promptpulse.testing._sse import sse
from promptpulse.testing.scenario import Reply, Usage, fake_tokens
from promptpulse.testing.wires import SSE_CONTENT_TYPE, Route, embedding_vector, text_of

_ROUTES = {"/v2/chat": "chat", "/v2/embed": "embeddings"}


def usage_body(u: Usage) -> dict[str, Any]:
    counts = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}
    body: dict[str, Any] = {"billed_units": dict(counts), "tokens": dict(counts)}
    if u.cached_tokens:
        body["cached_tokens"] = u.cached_tokens
    return body


def _finish(r: Reply) -> str:
    return "MAX_TOKENS" if r.truncated else "COMPLETE"


def chat(r: Reply) -> dict[str, Any]:
    return {
        "id": f"co-{r.id}",
        "finish_reason": _finish(r),
        "message": {"role": "assistant", "content": [{"type": "text", "text": r.text}]},
        "usage": usage_body(r.usage),
    }


def chat_stream(r: Reply) -> list[bytes]:
    def ev(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, **fields}, event=kind)

    events = [
        ev(
            "message-start",
            id=f"co-{r.id}",
            delta={"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}},
        ),
        ev("content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}}),
    ]
    events += [ev("content-delta", index=0, delta={"message": {"content": {"text": p}}}) for p in r.pieces if p]
    events.append(ev("content-end", index=0))
    events.append(ev("message-end", delta={"finish_reason": _finish(r), "usage": usage_body(r.usage)}))
    return events


def _texts(body: dict[str, Any]) -> list[str]:
    texts = body.get("texts")
    if isinstance(texts, list):
        return [t if isinstance(t, str) else text_of(t) for t in texts]
    inputs = body.get("inputs")
    if isinstance(inputs, list):
        return [text_of(i) for i in inputs]
    return []


def embed(r: Reply) -> dict[str, Any]:
    texts = _texts(r.req.body)
    vectors = [embedding_vector(t, r.embedding_dims) for t in texts]
    return {
        "id": f"co-{r.id}",
        "response_type": "embeddings_by_type",
        "embeddings": {"float": vectors},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": r.usage.input_tokens}},
    }


class CohereWire:
    provider = "cohere"
    stream_content_type = SSE_CONTENT_TYPE

    def route(self, path: str) -> Route | None:
        op = _ROUTES.get(path.removeprefix("/cohere").rstrip("/"))
        return Route("cohere", op) if op else None

    def prompt_of(self, operation: str, body: dict[str, Any], model: str) -> tuple[str, int | None]:
        if operation == "embeddings":
            texts = _texts(body)
            return "\n".join(texts), sum(fake_tokens(t) for t in texts) if texts else None
        messages = body.get("messages") or []
        return "\n".join(text_of(m.get("content")) for m in messages if isinstance(m, dict)), None

    def max_tokens_of(self, operation: str, body: dict[str, Any], model: str) -> int | None:
        value = body.get("max_tokens")
        return value if isinstance(value, int) else None

    def render(self, operation: str, reply: Reply) -> Any:
        return embed(reply) if operation == "embeddings" else chat(reply)

    def stream(self, operation: str, reply: Reply) -> list[bytes]:
        return chat_stream(reply)

    def error(self, status: int, model: str, request_id: str, message: str | None) -> tuple[dict[str, str], Any]:
        return {}, {"id": request_id, "message": message or f"Error {status} (injected by the PromptPulse fake)."}

    def headers(self, request_id: str) -> dict[str, str]:
        return {"x-trace-id": request_id}


WIRE = CohereWire()
