"""OpenAI wire shapes (also served to Azure OpenAI): chat, legacy completions, embeddings, Responses API.

Pure functions from a ``Reply`` to JSON bodies or SSE byte events; shapes follow the openai 3.x SDK models.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
from typing import Any

from promptpulse.testing._sse import sse
from promptpulse.testing.scenario import Reply, Usage, fake_tokens

SYSTEM_FINGERPRINT = "fp_promptpulse_fake"
DONE = sse("[DONE]")


def chat_usage(u: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": u.cached_tokens, "audio_tokens": 0}
    if u.cache_creation_tokens:
        prompt_details["cache_write_tokens"] = u.cache_creation_tokens
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _service_tier(r: Reply) -> str:
    """The tier that served the request, as OpenAI answers it: the one asked for, else "default"."""
    asked = r.req.body.get("service_tier")
    return asked if asked in ("flex", "priority", "scale") else "default"


def _finish(r: Reply) -> str:
    return "length" if r.truncated else "stop"


def _choice_count(r: Reply) -> int:
    """The request's ``n`` (choices to generate), 1 when absent or not a positive integer."""
    n = r.req.body.get("n")
    return n if type(n) is int and n > 1 else 1


def _include_usage(r: Reply) -> bool:
    opts = r.req.body.get("stream_options") or {}
    return bool(isinstance(opts, dict) and opts.get("include_usage"))


# --- chat completions -------------------------------------------------------------------------------------


def chat_completion(r: Reply) -> dict[str, Any]:
    """One choice per the request's ``n`` (the same text each), as the stream has them."""
    return {
        "id": f"chatcmpl-{r.id}",
        "object": "chat.completion",
        "created": r.created,
        "model": r.model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": r.text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": _finish(r),
            }
            for i in range(_choice_count(r))
        ],
        "usage": chat_usage(r.usage),
        "service_tier": _service_tier(r),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def chat_stream(r: Reply) -> list[bytes]:
    with_usage = _include_usage(r)
    base: dict[str, Any] = {
        "id": f"chatcmpl-{r.id}",
        "object": "chat.completion.chunk",
        "created": r.created,
        "model": r.model,
        "service_tier": _service_tier(r),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if with_usage:
        base["usage"] = None  # real chunks carry "usage": null until the last one

    def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    n = _choice_count(r)
    if n == 1:
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": p}) for p in r.pieces if p]
        events.append(chunk({}, _finish(r)))
    else:  # interleaved as OpenAI sends them: one choice per chunk, each round over 0..n-1, finishes last
        indexes = range(n)
        events = [chunk({"role": "assistant", "content": "", "refusal": None}, index=i) for i in indexes]
        events += [chunk({"content": p}, index=i) for p in r.pieces if p for i in indexes]
        events += [chunk({}, _finish(r), index=i) for i in indexes]
    if with_usage:
        events.append(sse({**base, "choices": [], "usage": chat_usage(r.usage)}))
    events.append(DONE)
    return events


# --- legacy completions -----------------------------------------------------------------------------------


def completion(r: Reply) -> dict[str, Any]:
    return {
        "id": f"cmpl-{r.id}",
        "object": "text_completion",
        "created": r.created,
        "model": r.model,
        "choices": [{"text": r.text, "index": 0, "logprobs": None, "finish_reason": _finish(r)}],
        "usage": chat_usage(r.usage),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def completion_stream(r: Reply) -> list[bytes]:
    base = {"id": f"cmpl-{r.id}", "object": "text_completion", "created": r.created, "model": r.model}
    events = [
        sse({**base, "choices": [{"text": p, "index": 0, "logprobs": None, "finish_reason": None}]}) for p in r.pieces
    ]
    events.append(sse({**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": _finish(r)}]}))
    if _include_usage(r):
        events.append(sse({**base, "choices": [], "usage": chat_usage(r.usage)}))
    events.append(DONE)
    return events


# --- embeddings -------------------------------------------------------------------------------------------


def embedding_inputs(raw: Any) -> list[str | list[int]]:
    """Normalise the `input` field: a string, strings, a token list, or token lists."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        return [raw]
    if isinstance(raw, list):
        return [x if isinstance(x, (str, list)) else str(x) for x in raw]
    return [str(raw)]


def embedding_prompt_tokens(raw: Any) -> int:
    return sum(len(x) if isinstance(x, list) else fake_tokens(x) for x in embedding_inputs(raw))


def _vector(item: str | list[int], dims: int) -> list[float]:
    # Seeded by the input, so the same text always embeds to the same unit vector.
    seed = hashlib.sha256(repr(item).encode()).digest()
    rng = random.Random(seed)
    v = [rng.uniform(-1.0, 1.0) for _ in range(dims)]
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    # Round through float32 so float and base64 answers decode to identical numbers.
    return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in v]


def embeddings(r: Reply) -> dict[str, Any]:
    body = r.req.body
    dims = body.get("dimensions") or r.embedding_dims
    b64 = body.get("encoding_format") == "base64"
    data = []
    for i, item in enumerate(embedding_inputs(body.get("input", ""))):
        vec = _vector(item, int(dims))
        emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if b64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {
        "object": "list",
        "data": data,
        "model": r.model,
        "usage": {"prompt_tokens": r.usage.input_tokens, "total_tokens": r.usage.input_tokens},
    }


# --- Responses API ----------------------------------------------------------------------------------------


def responses_usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": u.cache_creation_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(r: Reply, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"msg_{r.id}", "type": "message", "status": status, "role": "assistant", "content": content}


def response_object(r: Reply, *, final: bool) -> dict[str, Any]:
    body = r.req.body
    status = ("incomplete" if r.truncated else "completed") if final else "in_progress"
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    return {
        "id": f"resp_{r.id}",
        "object": "response",
        "created_at": r.created,
        "status": status,
        "completed_at": r.created if final else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if final and r.truncated else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": r.model,
        "output": [_message_item(r, "completed", [_output_text(r.text)])] if final else [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "service_tier": _service_tier(r),
        "store": True,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": responses_usage(r.usage) if final else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def response_stream(r: Reply) -> list[bytes]:
    seq = 0
    events: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        nonlocal seq
        events.append(sse({"type": kind, "sequence_number": seq, **fields}, event=kind))
        seq += 1

    item_id = f"msg_{r.id}"
    loc = {"item_id": item_id, "output_index": 0, "content_index": 0}
    emit("response.created", response=response_object(r, final=False))
    emit("response.in_progress", response=response_object(r, final=False))
    emit("response.output_item.added", output_index=0, item=_message_item(r, "in_progress", []))
    emit("response.content_part.added", **loc, part=_output_text(""))
    for p in r.pieces:
        if p:
            emit("response.output_text.delta", **loc, delta=p, logprobs=[])
    emit("response.output_text.done", **loc, text=r.text, logprobs=[])
    emit("response.content_part.done", **loc, part=_output_text(r.text))
    emit("response.output_item.done", output_index=0, item=_message_item(r, "completed", [_output_text(r.text)]))
    final = "response.incomplete" if r.truncated else "response.completed"
    emit(final, response=response_object(r, final=True))
    return events


# --- models and errors ------------------------------------------------------------------------------------


def models_list(names: list[str], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": created, "owned_by": "promptpulse-fake"} for n in names],
    }


_RATE_LIMIT = (
    "Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
    "Limit 3, Used 3, Requested 1. Please try again later."
)
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (injected by the PromptPulse fake provider)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-fake****."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported.",
    ),
    404: ("invalid_request_error", "model_not_found", "The model `{model}` does not exist or you do not have access."),
    408: ("server_error", "timeout", "Request timed out."),
    429: ("requests", "rate_limit_exceeded", _RATE_LIMIT),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_body(status: int, model: str, message: str | None = None) -> dict[str, Any]:
    kind, code, text = _ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, f"Error {status}.")
    )
    return {"error": {"message": message or text.format(model=model), "type": kind, "param": None, "code": code}}


def response_object_final(r: Reply) -> dict[str, Any]:
    return response_object(r, final=True)
