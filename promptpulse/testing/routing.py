"""Reading a request: which endpoint it is for, its prompt text, its max-tokens cap, and the recorded form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promptpulse.testing import openai_wire
from promptpulse.testing.scenario import Operation, Provider, Usage


@dataclass
class RecordedRequest:
    """One request as the server saw it; recorded on arrival, so hung and failed attempts count too."""

    seq: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    provider: Provider | None
    operation: Operation | None
    model: str | None
    stream: bool
    attempt: int  # the SDKs' x-stainless-retry-count (0 = first try)
    request_id: str
    received_at: float
    fault: str | None = None  # str(Fault) when one was applied
    status: int | None = None  # HTTP status sent (None: no response, e.g. timeout)
    usage: Usage | None = None  # usage served in the answer
    completed: bool = False  # the whole body was written


# (operation, wire path after the /v1 prefix); provider is implied by the operation.
_ROUTES: dict[str, Operation] = {
    "/chat/completions": "chat",
    "/completions": "text_completion",
    "/embeddings": "embeddings",
    "/responses": "responses",
    "/messages": "messages",
    "/messages/count_tokens": "count_tokens",
    "/models": "models",
}


def route(path: str) -> tuple[Provider, Operation, str | None] | None:
    """Map a request path to (provider, operation, azure deployment). Accepts /v1/…, bare /…, and Azure's
    /openai/deployments/{name}/… and /openai/(v1/)… forms."""
    deployment = None
    p = path.rstrip("/")
    if p.startswith("/openai/deployments/"):
        deployment, _, rest = p[len("/openai/deployments/") :].partition("/")
        p = "/" + rest
    elif p.startswith("/openai/"):
        p = p[len("/openai") :]
    if p.startswith("/v1/"):
        p = p[3:]
    op = _ROUTES.get(p)
    if op is None:
        return None
    provider: Provider = "anthropic" if op in ("messages", "count_tokens") else "openai"
    return provider, op, deployment


def _text_of(content: Any) -> str:
    """Text of a message content: a string or a list of typed parts (text / input_text / output_text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif "content" in part:
                    parts.append(_text_of(part["content"]))
        return "\n".join(parts)
    return ""


def prompt_of(op: Operation, body: dict[str, Any]) -> tuple[str, int | None]:
    """The request's prompt text (joined with newlines) and, for token-id inputs, the exact token count."""
    if op in ("chat",):
        return "\n".join(_text_of(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)), None
    if op == "text_completion":
        prompt = body.get("prompt", "")
        if isinstance(prompt, list) and prompt and all(isinstance(x, int) for x in prompt):
            return "", len(prompt)
        return (prompt if isinstance(prompt, str) else "\n".join(map(str, prompt))), None
    if op == "embeddings":
        raw = body.get("input", "")
        return _text_of(raw) if not isinstance(raw, str) else raw, openai_wire.embedding_prompt_tokens(raw)
    if op == "responses":
        parts = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
        inp = body.get("input", "")
        parts.append(inp if isinstance(inp, str) else _text_of(inp))
        return "\n".join(parts), None
    if op in ("messages", "count_tokens"):
        system = body.get("system")
        parts = [_text_of(system)] if system else []
        parts += [_text_of(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]
        return "\n".join(parts), None
    return "", None


def max_tokens_of(op: Operation, body: dict[str, Any]) -> int | None:
    keys = {"chat": ("max_completion_tokens", "max_tokens"), "responses": ("max_output_tokens",)}.get(
        op, ("max_tokens",)
    )
    for k in keys:
        if isinstance(body.get(k), int):
            return int(body[k])
    return None
