"""Gemini API / Vertex AI wire shapes for the google-genai SDK: generateContent, streamGenerateContent?alt=sse,
batchEmbedContents / embedContent / predict, and Google's error body.

Paths: ``/{version}/models/{model}:{method}`` (Gemini API) and
``/{version}/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`` (Vertex AI).
Gemini's ``promptTokenCount`` includes cached tokens (``cachedContentTokenCount``) and ``candidatesTokenCount``
excludes thinking (``thoughtsTokenCount``): the contract-1 ``Usage`` maps onto that directly.
"""

from __future__ import annotations

from typing import Any

from promptpulse.testing._sse import sse
from promptpulse.testing.scenario import Reply, Usage, fake_tokens
from promptpulse.testing.wires import SSE_CONTENT_TYPE, Route, embedding_vector, text_of

_GENERATE = {"generateContent": False, "streamGenerateContent": True}
_EMBED = ("batchEmbedContents", "embedContent", "predict")


def usage_metadata(u: Usage, *, output_tokens: int | None = None) -> dict[str, Any]:
    output = u.output_tokens if output_tokens is None else output_tokens
    reasoning = min(u.reasoning_tokens, output)
    body: dict[str, Any] = {
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": output - reasoning,
        "totalTokenCount": u.input_tokens + output,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.input_tokens}],
    }
    if u.cached_tokens:
        body["cachedContentTokenCount"] = u.cached_tokens
    if reasoning:
        body["thoughtsTokenCount"] = reasoning
    return body


def _finish(r: Reply) -> str:
    return "MAX_TOKENS" if r.truncated else "STOP"


def _candidate(text: str, finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return cand


def generate_content(r: Reply) -> dict[str, Any]:
    return {
        "candidates": [_candidate(r.text, _finish(r))],
        "usageMetadata": usage_metadata(r.usage),
        "modelVersion": r.model,
        "responseId": f"gem-{r.id}",
    }


def generate_content_stream(r: Reply) -> list[bytes]:
    """One chunk per piece; every chunk carries the running usage, the last one the final counts."""
    pieces = [p for p in r.pieces if p] or [""]
    events = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        running = r.usage.output_tokens if last else min(r.usage.output_tokens, i + 1)
        events.append(
            sse(
                {
                    "candidates": [_candidate(piece, _finish(r) if last else None)],
                    "usageMetadata": usage_metadata(r.usage, output_tokens=running),
                    "modelVersion": r.model,
                    "responseId": f"gem-{r.id}",
                }
            )
        )
    return events


def _embed_texts(body: dict[str, Any]) -> list[str]:
    if isinstance(body.get("requests"), list):  # batchEmbedContents
        return [text_of(req.get("content")) for req in body["requests"] if isinstance(req, dict)]
    if "content" in body:  # embedContent
        return [text_of(body["content"])]
    if isinstance(body.get("instances"), list):  # Vertex predict
        return [text_of(inst.get("content")) for inst in body["instances"] if isinstance(inst, dict)]
    return []


def embed(r: Reply) -> dict[str, Any]:
    """The answer's shape follows the request's: batchEmbedContents, embedContent, or Vertex predict."""
    body = r.req.body
    method = "predict" if "instances" in body else "embedContent" if "content" in body else "batchEmbedContents"
    texts = _embed_texts(body) or [""]
    vectors = [embedding_vector(t, r.embedding_dims) for t in texts]
    usage = {"promptTokenCount": r.usage.input_tokens, "totalTokenCount": r.usage.input_tokens}
    if method == "predict":
        counts = [fake_tokens(t) for t in texts]
        return {
            "predictions": [
                {"embeddings": {"values": v, "statistics": {"token_count": c, "truncated": False}}}
                for v, c in zip(vectors, counts, strict=True)
            ],
            "metadata": {"billableCharacterCount": sum(len(t) for t in texts)},
        }
    if method == "embedContent":
        return {"embedding": {"values": vectors[0]}, "usageMetadata": usage}
    return {"embeddings": [{"values": v} for v in vectors], "usageMetadata": usage}


_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GeminiWire:
    provider = "gemini"
    stream_content_type = SSE_CONTENT_TYPE

    def route(self, path: str) -> Route | None:
        head, sep, tail = path.rpartition("/models/")
        if not sep or not head.startswith("/v"):
            return None
        model, _, method = tail.partition(":")
        if method in _GENERATE:
            return Route("gemini", "generate_content", model=model, stream=_GENERATE[method])
        if method in _EMBED:
            return Route("gemini", "embeddings", model=model, stream=False)
        return None

    def prompt_of(self, operation: str, body: dict[str, Any], model: str) -> tuple[str, int | None]:
        if operation == "embeddings":
            return "\n".join(_embed_texts(body)), None
        parts = [text_of(body["systemInstruction"])] if body.get("systemInstruction") else []
        parts += [text_of(c) for c in body.get("contents") or []]
        return "\n".join(parts), None

    def max_tokens_of(self, operation: str, body: dict[str, Any], model: str) -> int | None:
        value = (body.get("generationConfig") or {}).get("maxOutputTokens")
        return value if isinstance(value, int) else None

    def render(self, operation: str, reply: Reply) -> Any:
        if operation == "embeddings":
            return embed(reply)
        return generate_content(reply)

    def stream(self, operation: str, reply: Reply) -> list[bytes]:
        return generate_content_stream(reply)

    def error(self, status: int, model: str, request_id: str, message: str | None) -> tuple[dict[str, str], Any]:
        text = message or f"Error {status} (injected by the PromptPulse fake provider)."
        return {}, {"error": {"code": status, "message": text, "status": _STATUS.get(status, "UNKNOWN")}}

    def headers(self, request_id: str) -> dict[str, str]:
        return {"x-goog-request-id": request_id, "server-timing": "gfet4t7; dur=1"}


WIRE = GeminiWire()
