"""Message content: its text (for fingerprints), the GenAI JSON shape of captured messages, and that JSON cut to size.

Shapes (the GenAI semantic conventions' input/output message schemas): a message is ``{"role", "parts"}`` (output
messages add ``finish_reason``); a part is ``{"type": "text", "content"}``, ``{"type": "tool_call", "id", "name",
"arguments"}`` or ``{"type": "tool_call_response", "id", "response"}``; system instructions are a list of parts.

``to_json(value, limit)`` gives at most about ``limit`` characters: when the whole does not fit, the longest strings
inside are shortened (each ending in ``MARK``) and, if that is not enough, trailing list items are replaced by one
``{"type": "truncated", "omitted": n}`` entry. The structure — roles, part types, tool-call ids — survives; a reader
can always ``json.loads`` the attribute. Off the hot path: only runs when content capture is on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc

if TYPE_CHECKING:
    from promptpulse.instrumentation.spans import LLMCall

MARK = "…[truncated]"
# Structural fields: never shortened (they are short, and a reader needs them whole).
_KEEP = frozenset({"role", "type", "id", "name", "finish_reason", "mime_type", "modality"})


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _cap_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= cap else value[:cap] + MARK
    if isinstance(value, dict):
        return {k: v if k in _KEEP and isinstance(v, str) else _cap_strings(v, cap) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cap_strings(v, cap) for v in value]
    return value


def _longest_string(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_string(v) for k, v in value.items() if k not in _KEEP), default=0)
    if isinstance(value, list | tuple):
        return max((_longest_string(v) for v in value), default=0)
    return 0


def _drop_tail(value: list[Any], limit: int) -> list[Any]:
    """Keep the leading items that fit, then one marker saying how many were left out."""
    for keep in range(len(value) - 1, -1, -1):
        candidate = [*value[:keep], {"type": "truncated", "omitted": len(value) - keep}]
        if len(_dumps(candidate)) <= limit:
            return candidate
    return [{"type": "truncated", "omitted": len(value)}]


def to_json(value: Any, limit: int) -> str:
    """``value`` as JSON of at most ``limit`` characters where possible (a bare string is cut as text)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + MARK
    text = _dumps(value)
    if len(text) <= limit:
        return text
    # The largest per-string cap that fits, by bisection over 0..longest string.
    low, high = 0, _longest_string(value)
    best: Any = None
    while low <= high:
        cap = (low + high) // 2
        candidate = _cap_strings(value, cap)
        if len(_dumps(candidate)) <= limit:
            best, low = candidate, cap + 1
        else:
            high = cap - 1
    if best is not None:
        return _dumps(best)
    shortest = _cap_strings(value, 0)
    if isinstance(shortest, list):
        return _dumps(_drop_tail(shortest, limit))
    return _dumps({"type": "truncated"})


# --- reading --------------------------------------------------------------------------------------------------------
# Whether a type is a Mapping, by type: an ABC isinstance runs a Python-level __instancecheck__ on every call (SDK
# objects, None) and the answer is the type's. Bounded: an app that makes types on the fly cannot grow it for ever.
_is_mapping: dict[type, bool] = {}
_IS_MAPPING_MAX = 512


def get(item: Any, key: str) -> Any:
    """A field of an SDK object or of the plain dict the SDK also accepts; None when absent."""
    kind = type(item)
    if kind is dict:
        return item.get(key)
    mapping = _is_mapping.get(kind)
    if mapping is None:
        if len(_is_mapping) >= _IS_MAPPING_MAX:
            _is_mapping.clear()
        mapping = _is_mapping[kind] = isinstance(item, Mapping)
    if mapping:
        return item.get(key)
    return getattr(item, key, None)


def text_of(content: Any, nested: tuple[str, ...] = ()) -> str | None:
    """The text of a message, part or list of them: a string, an item's ``text``, else the text of its first
    ``nested`` field present (``content`` for Bedrock's blocks, ``parts`` for Gemini's); a list's texts are joined
    by newlines."""
    if isinstance(content, str):
        return content
    if content is None:
        return None
    if isinstance(content, Sequence):
        texts = [t for t in (text_of(c, nested) for c in content) if t]
        return "\n".join(texts) if texts else None
    text = get(content, "text")
    if isinstance(text, str):
        return text
    for key in nested:
        inner = get(content, key)
        if inner is not None:
            return text_of(inner, nested)
    return None


def template_fingerprint(instructions: str | None, first: str | None) -> str | None:
    """The prompt fingerprint of the instructions, else of the first message's text (its template)."""
    template = fp.template_of(instructions, first)
    return fp.fingerprint(template) if template else None


def messages_fingerprint(messages: Any, instructions: Any = None, *, system_roles: tuple[str, ...] = ()) -> str | None:
    """Fingerprint of ``instructions``, else of the system/developer messages' text, else of the first message's.
    Never iterates a one-shot iterable the SDK still has to read (only lists and tuples are looked into)."""
    if isinstance(instructions, str) and instructions:
        return fp.fingerprint(instructions)
    if isinstance(messages, str):
        return template_fingerprint(None, messages)
    if not isinstance(messages, list | tuple) or not messages:
        return None
    roles = system_roles or _SYSTEM_ROLES
    system: list[str] = []
    for m in messages:
        # Plain dicts with string content (the usual request) without a function call per field.
        if type(m) is dict:
            if m.get("role") in roles:
                text = m.get("content")
                if type(text) is not str:
                    text = text_of(text)
                if text:
                    system.append(text)
        elif get(m, "role") in roles:
            text = text_of(get(m, "content"))
            if text:
                system.append(text)
    if system:
        return fp.fingerprint("\n".join(system))
    return template_fingerprint(None, text_of(get(messages[0], "content")))


_SYSTEM_ROLES = ("system", "developer")


# --- shaping (only when content capture is on) ----------------------------------------------------------------------
def text_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as GenAI parts, whatever the provider's block shape: a string; text blocks
    (``{"type": "text", "text"}``, Bedrock's and Gemini's ``{"text"}``); tool calls (Anthropic ``tool_use``, Bedrock
    ``toolUse``, Gemini ``function_call``); tool results (Anthropic ``tool_result``, Bedrock ``toolResult``, Gemini
    ``function_response``); any other block by its type."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if not isinstance(content, list | tuple):
        content = [content]
    return [_part(block) for block in content]


def _part(block: Any) -> dict[str, Any]:
    if isinstance(block, str):
        return {"type": "text", "content": block}
    kind = get(block, "type")
    text = get(block, "text")
    if isinstance(text, str) and (kind is None or kind == "text" or kind.endswith("_text")):
        return {"type": "text", "content": text}
    if kind == "tool_use":  # Anthropic
        return tool_call_part(get(block, "id"), get(block, "name"), get(block, "input"))
    if kind == "tool_result":
        return tool_response_part(get(block, "tool_use_id"), get(block, "content"))
    use = get(block, "toolUse")  # Bedrock Converse
    if use is not None:
        return tool_call_part(get(use, "toolUseId"), get(use, "name"), get(use, "input"))
    result = get(block, "toolResult")
    if result is not None:
        return tool_response_part(get(result, "toolUseId"), get(result, "content"))
    call = get(block, "function_call") or get(block, "functionCall")  # Gemini
    if call is not None:
        return tool_call_part(get(call, "id"), get(call, "name"), get(call, "args"))
    response = get(block, "function_response") or get(block, "functionResponse")
    if response is not None:
        return tool_response_part(get(response, "id"), get(response, "response"))
    return {"type": str(kind or "unknown")}


def tool_response_part(call_id: Any, response: Any) -> dict[str, Any]:
    """A tool's result; a list of content blocks becomes their parts."""
    if isinstance(response, list | tuple):
        response = text_parts(response)
    elif not isinstance(response, str | int | float | bool | dict) and response is not None:
        response = _plain(response)
    return {"type": "tool_call_response", "id": call_id, "response": response}


def _plain(value: Any) -> Any:
    """An SDK object (a pydantic model, a protobuf-like dict) as plain JSON-able data, for tool arguments/results."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            return str(value)
    return value


_ROLES = {"model": "assistant"}  # Gemini's name for the assistant


def messages(items: Any, *, content_key: str = "content") -> list[dict[str, Any]] | None:
    """Chat messages of any provider (``{"role", content_key}`` objects or dicts; Gemini's ``Content`` with ``parts``,
    a bare string or part) as GenAI input messages."""
    if items is None:
        return None
    if isinstance(items, str) or not isinstance(items, list | tuple):
        items = [items]
    out = []
    for item in items:
        if isinstance(item, str) or (get(item, "role") is None and get(item, content_key) is None):
            out.append({"role": "user", "parts": text_parts(item)})
            continue
        role = str(get(item, "role") or "user")
        out.append({"role": _ROLES.get(role, role), "parts": text_parts(get(item, content_key))})
    return out


def output_from_blocks(blocks: Any, finish_reason: str | None) -> dict[str, Any]:
    """One GenAI output message from a provider's content blocks."""
    return {"role": "assistant", "parts": text_parts(blocks), "finish_reason": finish_reason or ""}


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": _plain(arguments)}


def _openai_tool_calls(tool_calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in tool_calls or ():
        function = get(call, "function")
        out.append(tool_call_part(get(call, "id"), get(function, "name"), get(function, "arguments")))
    return out


def input_messages(messages: Any) -> list[dict[str, Any]] | None:
    """OpenAI-shaped chat messages (also a bare prompt string) as GenAI input messages."""
    if isinstance(messages, str):
        return [{"role": "user", "parts": text_parts(messages)}]
    if not isinstance(messages, list | tuple):
        return None
    out = []
    for message in messages:
        if isinstance(message, str):
            out.append({"role": "user", "parts": text_parts(message)})
            continue
        parts = text_parts(get(message, "content")) + _openai_tool_calls(get(message, "tool_calls"))
        role = get(message, "role") or get(message, "type") or "user"
        if role == "tool":
            parts = [{"type": "tool_call_response", "id": get(message, "tool_call_id"), "response": parts}]
        out.append({"role": str(role), "parts": parts})
    return out


def output_message(text: str | None, finish_reason: str | None, tool_calls: Any = None) -> dict[str, Any]:
    """One GenAI output message: the text, OpenAI-shaped tool calls, the finish reason."""
    parts = text_parts(text) + _openai_tool_calls(tool_calls)
    return {"role": "assistant", "parts": parts, "finish_reason": finish_reason or ""}


def system_instructions(text: Any) -> list[dict[str, Any]] | None:
    """``gen_ai.system_instructions``: a string or a list of text parts/blocks, as text parts."""
    parts = text_parts(text)
    return parts or None


def capture_messages(call: LLMCall, kwargs: Mapping[str, Any]) -> None:
    """An ``Endpoint``'s ``capture_input`` for OpenAI-shaped ``messages`` (Mistral, Cohere v2, LiteLLM…)."""
    call.capture(sc.GEN_AI_INPUT_MESSAGES, input_messages(kwargs.get("messages")))
