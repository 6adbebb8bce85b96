"""Further providers' wires for the fake server: each says which paths are its own and how to answer them.

The OpenAI and Anthropic wires are routed by ``routing.route``; a wire registered here is asked only for paths that
route does not know. A wire is a small object (see ``Wire``): its route, how to read a request's prompt and output
cap, and how to render an answer, a stream and an error. Faults, latency, recording and usage are the server's and
apply to every wire the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from promptpulse.testing.openai_wire import _vector as embedding_vector  # one deterministic embedding for all wires

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


@dataclass(frozen=True)
class Route:
    provider: str
    operation: str
    model: str | None = None  # named in the path (Gemini, Bedrock); None: the body's "model"
    stream: bool | None = None  # decided by the path; None: the body's ``"stream": true``


class Wire(Protocol):
    provider: str
    stream_content_type: str

    def route(self, path: str) -> Route | None: ...

    def prompt_of(self, operation: str, body: dict[str, Any], model: str) -> tuple[str, int | None]: ...

    def max_tokens_of(self, operation: str, body: dict[str, Any], model: str) -> int | None: ...

    def render(self, operation: str, reply: Any) -> Any: ...

    def stream(self, operation: str, reply: Any) -> list[bytes]: ...

    def error(self, status: int, model: str, request_id: str, message: str | None) -> tuple[dict[str, str], Any]:
        """Extra response headers and the JSON body of an error answer."""
        ...

    def headers(self, request_id: str) -> dict[str, str]: ...


def _wires() -> list[Wire]:
    from promptpulse.testing import bedrock_wire, cohere_wire, gemini_wire, groq_wire, mistral_wire, ollama_wire

    return [gemini_wire.WIRE, bedrock_wire.WIRE, mistral_wire.WIRE, cohere_wire.WIRE, groq_wire.WIRE, ollama_wire.WIRE]


_REGISTRY: list[Wire] | None = None


def registry() -> list[Wire]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _wires()
    return _REGISTRY


def route(path: str) -> tuple[Wire, Route] | None:
    for wire in registry():
        found = wire.route(path)
        if found is not None:
            return wire, found
    return None


def for_provider(provider: str | None) -> Wire | None:
    for wire in registry():
        if wire.provider == provider:
            return wire
    return None


def text_of(content: Any) -> str:
    """Text of a content value: a string, a typed part ({"text": …}), or a list of them."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return content["text"]
        for key in ("parts", "content"):
            if key in content:
                return text_of(content[key])
        return ""
    if isinstance(content, list):
        return "\n".join(t for t in (text_of(p) for p in content) if t)
    return ""


__all__ = ["SSE_CONTENT_TYPE", "Route", "Wire", "embedding_vector", "for_provider", "registry", "route", "text_of"]
