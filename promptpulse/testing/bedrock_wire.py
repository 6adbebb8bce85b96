"""Amazon Bedrock Runtime wire shapes for boto3/botocore: Converse, ConverseStream, InvokeModel and
InvokeModelWithResponseStream (Anthropic Claude, Amazon Nova, Amazon Titan text/embeddings, Meta Llama bodies).

Streams use AWS event-stream binary framing (``application/vnd.amazon.eventstream``), which botocore decodes:
each message is ``total length | headers length | prelude CRC32 | headers | payload | message CRC32`` (big-endian,
CRC32 as in zlib), headers ``name length (1) | name | type 7 = string | value length (2) | value``.
Converse's ``inputTokens`` excludes cache reads and writes (like Anthropic's); ``Usage`` holds the contract-1 total.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any
from urllib.parse import unquote

from promptpulse.testing import anthropic_wire
from promptpulse.testing.scenario import Reply, Usage
from promptpulse.testing.wires import Route, embedding_vector, text_of

EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
_OPERATIONS = {
    "converse": ("converse", False),
    "converse-stream": ("converse", True),
    "invoke": ("invoke", False),
    "invoke-with-response-stream": ("invoke", True),
}


# --- event-stream framing ----------------------------------------------------------------------------------------
def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with both CRCs."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, body: dict[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return event_message(headers, json.dumps(body, separators=(",", ":")).encode())


def chunk(body: dict[str, Any]) -> bytes:
    """An InvokeModelWithResponseStream ``chunk``: the model's JSON, base64 in the event's ``bytes`` blob."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    return event("chunk", {"bytes": base64.b64encode(raw).decode()})


# --- families ----------------------------------------------------------------------------------------------------
def family(model: str) -> str:
    """``us.anthropic.claude-…`` / ``anthropic.claude-…`` / ARN → anthropic, nova, titan-embed, titan, llama."""
    name = model.rsplit("/", 1)[-1].lower()
    if "anthropic." in name or name.startswith("claude"):
        return "anthropic"
    if "amazon.nova" in name:
        return "nova"
    if "titan-embed" in name:
        return "titan-embed"
    if "amazon.titan" in name:
        return "titan"
    if "meta.llama" in name:
        return "llama"
    return "other"


def converse_usage(u: Usage, *, output_tokens: int | None = None) -> dict[str, Any]:
    output = u.output_tokens if output_tokens is None else output_tokens
    body = {"inputTokens": u.uncached_input_tokens, "outputTokens": output, "totalTokens": u.input_tokens + output}
    if u.cached_tokens:
        body["cacheReadInputTokens"] = u.cached_tokens
    if u.cache_creation_tokens:
        body["cacheWriteInputTokens"] = u.cache_creation_tokens
    return body


def _stop(r: Reply) -> str:
    return "max_tokens" if r.truncated else "end_turn"


def _invocation_metrics(u: Usage) -> dict[str, Any]:
    return {
        "inputTokenCount": u.input_tokens,
        "outputTokenCount": u.output_tokens,
        "invocationLatency": 1,
        "firstByteLatency": 1,
    }


def _tool_use(r: Reply) -> tuple[dict[str, Any] | None, bool]:
    """The toolUse the fake answers with when the Converse request offers tools (``toolConfig.tools``): the tool
    ``toolChoice`` names, else the first, called with ``{"query": <the last user message's text>}``; and whether
    text comes first (only when the choice is ``auto`` or absent — ``any``/``tool`` force the tool at once)."""
    config = r.req.body.get("toolConfig")
    if not isinstance(config, dict):
        return None, True
    tools = [t for t in config.get("tools") or () if isinstance(t, dict)]
    specs = [t["toolSpec"] for t in tools if isinstance(t.get("toolSpec"), dict)]
    if not specs:
        return None, True
    choice = config.get("toolChoice") if isinstance(config.get("toolChoice"), dict) else {}
    name = (choice.get("tool") or {}).get("name") or specs[0].get("name")
    users = [m for m in r.req.body.get("messages") or () if isinstance(m, dict) and m.get("role") == "user"]
    query = text_of(users[-1].get("content")) if users else ""
    use = {"toolUseId": f"tooluse_{r.id}", "name": name, "input": {"query": query}}
    return use, "tool" not in choice and "any" not in choice


def converse(r: Reply) -> dict[str, Any]:
    use, says_text = _tool_use(r)
    blocks: list[dict[str, Any]] = [{"text": r.text}] if says_text else []
    if use is not None:
        blocks.append({"toolUse": use})
    return {
        "output": {"message": {"role": "assistant", "content": blocks}},
        "stopReason": "tool_use" if use is not None else _stop(r),
        "usage": converse_usage(r.usage),
        "metrics": {"latencyMs": 1},
    }


def converse_stream(r: Reply) -> list[bytes]:
    use, says_text = _tool_use(r)
    events = [event("messageStart", {"role": "assistant"})]
    index = 0
    if says_text:
        events += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}) for p in r.pieces if p]
        events.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        index = 1
    if use is not None:  # as Bedrock streams a tool call: id and name first, then the input's JSON in pieces
        start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
        events.append(event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        raw = json.dumps(use["input"])
        step = -(-len(raw) // 3)
        for i in range(0, len(raw), step):
            delta = {"toolUse": {"input": raw[i : i + step]}}
            events.append(event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        events.append(event("contentBlockStop", {"contentBlockIndex": index}))
    events.append(event("messageStop", {"stopReason": "tool_use" if use is not None else _stop(r)}))
    events.append(event("metadata", {"usage": converse_usage(r.usage), "metrics": {"latencyMs": 1}}))
    return events


def _nova_usage(u: Usage) -> dict[str, Any]:
    body = {
        "inputTokens": u.uncached_input_tokens,
        "outputTokens": u.output_tokens,
        "totalTokens": u.input_tokens + u.output_tokens,
    }
    if u.cached_tokens:
        body["cacheReadInputTokenCount"] = u.cached_tokens
    if u.cache_creation_tokens:
        body["cacheWriteInputTokenCount"] = u.cache_creation_tokens
    return body


def invoke(r: Reply) -> dict[str, Any]:
    kind = family(r.req.model)
    u = r.usage
    if kind == "anthropic":  # a body offering tools gets a tool_use block
        return anthropic_wire.message(r)
    if kind == "nova":
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": r.text}]}},
            "stopReason": _stop(r),
            "usage": _nova_usage(u),
        }
    if kind == "titan-embed":
        text = r.req.body.get("inputText", "")
        return {"embedding": embedding_vector(text, r.embedding_dims), "inputTextTokenCount": u.input_tokens}
    if kind == "titan":
        reason = "LENGTH" if r.truncated else "FINISH"
        return {
            "inputTextTokenCount": u.input_tokens,
            "results": [{"tokenCount": u.output_tokens, "outputText": r.text, "completionReason": reason}],
        }
    if kind == "llama":
        return {
            "generation": r.text,
            "prompt_token_count": u.input_tokens,
            "generation_token_count": u.output_tokens,
            "stop_reason": "length" if r.truncated else "stop",
        }
    return {"outputs": [{"text": r.text, "stop_reason": "length" if r.truncated else "stop"}]}


def invoke_stream(r: Reply) -> list[bytes]:
    kind = family(r.req.model)
    u = r.usage
    metrics = {"amazon-bedrock-invocationMetrics": _invocation_metrics(u)}
    pieces = [p for p in r.pieces if p]
    if kind == "anthropic":
        out = []
        for raw in anthropic_wire.message_stream(r):
            data = raw.decode().split("data: ", 1)[1].strip()
            body = json.loads(data)
            if body.get("type") == "ping":
                continue
            if body.get("type") == "message_stop":
                body.update(metrics)
            out.append(chunk(body))
        return out
    if kind == "nova":
        bodies: list[dict[str, Any]] = [{"messageStart": {"role": "assistant"}}]
        bodies += [{"contentBlockDelta": {"delta": {"text": p}, "contentBlockIndex": 0}} for p in pieces]
        bodies.append({"contentBlockStop": {"contentBlockIndex": 0}})
        bodies.append({"messageStop": {"stopReason": _stop(r)}})
        bodies.append({"metadata": {"usage": _nova_usage(u), "metrics": {}, "trace": {}}, **metrics})
        return [chunk(b) for b in bodies]
    if kind == "titan":
        reason = "LENGTH" if r.truncated else "FINISH"
        out = []
        for i, p in enumerate(pieces):
            last = i == len(pieces) - 1
            body = {
                "outputText": p,
                "index": 0,
                "totalOutputTextTokenCount": u.output_tokens if last else i + 1,
                "completionReason": reason if last else None,
                "inputTextTokenCount": u.input_tokens,
            }
            out.append(chunk({**body, **metrics} if last else body))
        return out
    # llama and the rest: text pieces, the counts on the last chunk
    out = []
    for i, p in enumerate(pieces):
        last = i == len(pieces) - 1
        body: dict[str, Any] = {
            "generation": p,
            "prompt_token_count": u.input_tokens if i == 0 else None,
            "generation_token_count": i + 1 if not last else u.output_tokens,
            "stop_reason": ("length" if r.truncated else "stop") if last else None,
        }
        out.append(chunk({**body, **metrics} if last else body))
    return out


# --- requests ----------------------------------------------------------------------------------------------------
def _messages_text(body: dict[str, Any]) -> list[str]:
    parts = [text_of(body["system"])] if body.get("system") else []
    parts += [text_of(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]
    return parts


_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


class BedrockWire:
    provider = "bedrock"
    stream_content_type = EVENTSTREAM_CONTENT_TYPE

    def route(self, path: str) -> Route | None:
        if not path.startswith("/model/"):
            return None
        model, _, op = path[len("/model/") :].rpartition("/")
        found = _OPERATIONS.get(op)
        if not found or not model:
            return None
        operation, stream = found
        model = unquote(model)
        if operation == "invoke" and not stream and family(model) == "titan-embed":
            operation = "embeddings"
        return Route("bedrock", operation, model=model, stream=stream)

    def prompt_of(self, operation: str, body: dict[str, Any], model: str) -> tuple[str, int | None]:
        if operation == "converse" or family(model) in ("anthropic", "nova"):
            return "\n".join(_messages_text(body)), None
        for key in ("inputText", "prompt"):
            if isinstance(body.get(key), str):
                return body[key], None
        return "", None

    def max_tokens_of(self, operation: str, body: dict[str, Any], model: str) -> int | None:
        candidates = [
            (body.get("inferenceConfig") or {}).get("maxTokens"),
            (body.get("inferenceConfig") or {}).get("max_new_tokens"),
            body.get("max_tokens"),
            (body.get("textGenerationConfig") or {}).get("maxTokenCount"),
            body.get("max_gen_len"),
        ]
        return next((c for c in candidates if isinstance(c, int)), None)

    def render(self, operation: str, reply: Reply) -> Any:
        return converse(reply) if operation == "converse" else invoke(reply)

    def stream(self, operation: str, reply: Reply) -> list[bytes]:
        return converse_stream(reply) if operation == "converse" else invoke_stream(reply)

    def error(self, status: int, model: str, request_id: str, message: str | None) -> tuple[dict[str, str], Any]:
        code = _ERRORS.get(status, "InternalServerException" if status >= 500 else "ValidationException")
        headers = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        return headers, {"message": message or f"{code} (injected by the PromptPulse fake provider)."}

    def headers(self, request_id: str) -> dict[str, str]:
        return {"x-amzn-RequestId": request_id}


WIRE = BedrockWire()
