"""Anthropic Messages API wire shapes: message objects, the SSE event sequence, error bodies.

Anthropic's ``input_tokens`` excludes cache reads and writes; ``Usage`` holds the contract-1 total, so the
uncached part is computed here.  ``message_start`` carries ``output_tokens: 1`` and ``message_delta`` the
cumulative final count, as the real API does — instrumentation must not add them up.
"""

from __future__ import annotations

import json
from typing import Any

from promptpulse.testing._sse import sse
from promptpulse.testing.scenario import Reply, Usage
from promptpulse.testing.wires import text_of


def usage_body(u: Usage, *, output_tokens: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": u.uncached_input_tokens,
        "cache_creation_input_tokens": u.cache_creation_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_creation_tokens - u.cache_creation_1h_tokens,
            "ephemeral_1h_input_tokens": u.cache_creation_1h_tokens,
        },
        "output_tokens": u.output_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def _stop_reason(r: Reply) -> str:
    return "max_tokens" if r.truncated else "end_turn"


def _message(r: Reply, *, content: list[dict[str, Any]], stop: str | None, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"msg_{r.id}",
        "type": "message",
        "role": "assistant",
        "model": r.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def tool_use(r: Reply) -> tuple[dict[str, Any] | None, bool]:
    """The tool_use block answering a request that offers ``tools``: the tool ``tool_choice`` names, else the first,
    called with ``{"query": <the last user message's text>}``; and whether text comes first (only when the choice is
    ``auto`` or absent — ``any``/``tool`` force the tool at once). ``(None, True)`` without tools or under ``none``."""
    tools = [t for t in r.req.body.get("tools") or () if isinstance(t, dict) and isinstance(t.get("name"), str)]
    choice = r.req.body.get("tool_choice")
    choice = choice if isinstance(choice, dict) else {}
    if not tools or choice.get("type") == "none":
        return None, True
    name = choice.get("name") if choice.get("type") == "tool" else tools[0]["name"]
    users = [m for m in r.req.body.get("messages") or () if isinstance(m, dict) and m.get("role") == "user"]
    query = text_of(users[-1].get("content")) if users else ""
    block = {"type": "tool_use", "id": f"toolu_{r.id}", "name": name, "input": {"query": query}}
    return block, choice.get("type") in (None, "auto")


def message(r: Reply) -> dict[str, Any]:
    """A request offering tools is answered with a ``tool_use`` block (``tool_use``); any other, with text only."""
    use, says_text = tool_use(r)
    blocks: list[dict[str, Any]] = [{"type": "text", "text": r.text}] if says_text else []
    if use is not None:
        blocks.append(use)
    stop = "tool_use" if use is not None else _stop_reason(r)
    return _message(r, content=blocks, stop=stop, usage=usage_body(r.usage))


def message_stream(r: Reply) -> list[bytes]:
    """As ``message``; the tool_use block streams as the API does (``content_block_start`` with the id, the name and
    an empty input, then the input's JSON in ``input_json_delta`` pieces)."""
    u = r.usage
    use, says_text = tool_use(r)

    def ev(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, **fields}, event=kind)

    start = _message(r, content=[], stop=None, usage=usage_body(u, output_tokens=1))
    events = [ev("message_start", message=start)]
    index = 0
    if says_text:
        events += [ev("content_block_start", index=0, content_block={"type": "text", "text": ""}), ev("ping")]
        events += [ev("content_block_delta", index=0, delta={"type": "text_delta", "text": p}) for p in r.pieces if p]
        events.append(ev("content_block_stop", index=0))
        index = 1
    if use is not None:
        events.append(ev("content_block_start", index=index, content_block={**use, "input": {}}))
        raw = json.dumps(use["input"])
        step = -(-len(raw) // 3)
        for i in range(0, len(raw), step):
            delta = {"type": "input_json_delta", "partial_json": raw[i : i + step]}
            events.append(ev("content_block_delta", index=index, delta=delta))
        events.append(ev("content_block_stop", index=index))
    delta_usage: dict[str, Any] = {"output_tokens": u.output_tokens}
    if r.anthropic_full_delta_usage:
        delta_usage = {
            "input_tokens": u.uncached_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_tokens,
            "cache_read_input_tokens": u.cached_tokens,
            "output_tokens": u.output_tokens,
        }
    stop = "tool_use" if use is not None else _stop_reason(r)
    events.append(ev("message_delta", delta={"stop_reason": stop, "stop_sequence": None}, usage=delta_usage))
    events.append(ev("message_stop"))
    return events


def count_tokens(u: Usage) -> dict[str, Any]:
    return {"input_tokens": u.input_tokens}


_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (injected by the PromptPulse fake provider)."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(status: int, model: str, request_id: str, message: str | None = None) -> dict[str, Any]:
    kind, text = _ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", f"Error {status}"))
    return {
        "type": "error",
        "error": {"type": kind, "message": message or text.format(model=model)},
        "request_id": request_id,
    }
