"""Anthropic's Messages API answers — a ``Message`` and its stream events — read into a call: response id and model,
the stop reason, usage (input excludes the cache: ``usage.apply_uncached_usage``), the service tier and 1-hour cache
writes, and (when content is captured) the content blocks, streamed ``tool_use`` input JSON parsed at the end.

One reader for every client that speaks this format: the ``anthropic`` SDK (its pydantic objects) and Bedrock's
InvokeModel/InvokeModelWithResponseStream on ``anthropic.*`` models (the same JSON, as dicts: ``json_view`` lets them
be read by attribute like the SDK's objects).
"""

from __future__ import annotations

import json
from typing import Any

from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import content
from promptpulse.instrumentation.kit.usage import apply_uncached_usage, int_or_none
from promptpulse.instrumentation.spans import LLMCall


class _JsonView:
    """A JSON object read by attribute, as the SDK's objects are: a missing key is None, a nested object a view."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        value = self._data.get(name)
        return _JsonView(value) if type(value) is dict else value


def json_view(data: Any) -> Any:
    """A decoded JSON event or message (a dict) as ``on_chunk``/``read_message`` read it; anything else as it is."""
    return _JsonView(data) if type(data) is dict else data


def read_tier(call: LLMCall, usage: Any) -> None:
    """What prices the call beyond token counts: the service tier and the 1-hour part of the cache writes."""
    tier = getattr(usage, "service_tier", None)
    if isinstance(tier, str):
        call.service_tier = tier
    one_hour = getattr(getattr(usage, "cache_creation", None), "ephemeral_1h_input_tokens", None)
    if isinstance(one_hour, int):
        call.cache_write_1h_tokens = one_hour


def read_usage(call: LLMCall, usage: Any) -> bool:
    """A message's usage; False when it has none."""
    if usage is None:
        return False
    read_tier(call, usage)
    details = getattr(usage, "output_tokens_details", None)
    apply_uncached_usage(
        call,
        int_or_none(getattr(usage, "input_tokens", None)),
        int_or_none(getattr(usage, "output_tokens", None)),
        int_or_none(getattr(usage, "cache_read_input_tokens", None)) or 0,
        int_or_none(getattr(usage, "cache_creation_input_tokens", None)) or 0,
        reasoning=int_or_none(getattr(details, "thinking_tokens", None)) if details is not None else None,
    )
    return True


def read_message(call: LLMCall, message: Any, capture: bool) -> bool:
    """A whole ``Message``; False when it carries no usage."""
    stop_reason = getattr(message, "stop_reason", None)
    call.set_response(
        model=getattr(message, "model", None),
        response_id=getattr(message, "id", None),
        finish_reasons=(stop_reason,) if isinstance(stop_reason, str) else None,
    )
    has_usage = read_usage(call, getattr(message, "usage", None))
    if capture:
        blocks = getattr(message, "content", None)
        call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_from_blocks(blocks, stop_reason)])
    return has_usage


class StreamState:
    """What one event stream has said so far; a ``streams.StreamHandler``."""

    __slots__ = ("blocks", "cache_creation", "cache_read", "capture", "delta_seen", "output", "stop_reason", "uncached")

    def __init__(self, capture: bool) -> None:
        self.capture = capture
        self.uncached: int | None = None
        self.cache_read = 0
        self.cache_creation = 0
        self.output: int | None = None
        self.delta_seen = False
        self.stop_reason: str | None = None
        # Content blocks by index, when content is captured: text, or a tool_use with its input JSON as streamed.
        self.blocks: dict[int, dict[str, Any]] | None = {} if capture else None

    @property
    def has_usage(self) -> bool:
        return self.uncached is not None or self.output is not None

    def _take_input(self, usage: Any) -> None:
        # In message_delta these are None unless the API repeats them; then they are cumulative: replace.
        value = getattr(usage, "input_tokens", None)
        if isinstance(value, int):
            self.uncached = value
        value = getattr(usage, "cache_read_input_tokens", None)
        if isinstance(value, int):
            self.cache_read = value
        value = getattr(usage, "cache_creation_input_tokens", None)
        if isinstance(value, int):
            self.cache_creation = value

    def on_chunk(self, call: LLMCall, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            if self.blocks is not None:
                block = self.blocks.setdefault(getattr(event, "index", 0), {"type": "text", "text": ""})
                delta = getattr(event, "delta", None)
                text = getattr(delta, "text", None)
                if isinstance(text, str):
                    block["text"] = block.get("text", "") + text
                partial = getattr(delta, "partial_json", None)
                if isinstance(partial, str):
                    block["json"] = block.get("json", "") + partial
        elif kind == "content_block_start":
            if self.blocks is not None:
                start = getattr(event, "content_block", None)
                block = {"type": getattr(start, "type", None), "text": getattr(start, "text", None) or ""}
                if block["type"] == "tool_use":
                    block.update(id=getattr(start, "id", None), name=getattr(start, "name", None), input=None)
                self.blocks[getattr(event, "index", 0)] = block
        elif kind == "message_start":
            message = getattr(event, "message", None)
            call.set_response(model=getattr(message, "model", None), response_id=getattr(message, "id", None))
            usage = getattr(message, "usage", None)
            if usage is not None:
                self._take_input(usage)
                read_tier(call, usage)
        elif kind == "message_delta":
            self.delta_seen = True
            stop_reason = getattr(getattr(event, "delta", None), "stop_reason", None)
            if isinstance(stop_reason, str):
                self.stop_reason = stop_reason
            usage = getattr(event, "usage", None)
            if usage is not None:
                self._take_input(usage)
                output = getattr(usage, "output_tokens", None)
                if isinstance(output, int):
                    self.output = output  # cumulative: the last one wins

    def on_finish(self, call: LLMCall) -> None:
        if self.stop_reason is not None:
            call.set_response(finish_reasons=(self.stop_reason,))
        # Cut or abandoned before message_delta: the input is known, the output is not (no cost, usage missing).
        apply_uncached_usage(
            call, self.uncached, self.output, self.cache_read, self.cache_creation, complete=self.delta_seen
        )
        if self.blocks is not None:
            blocks = [_streamed_block(self.blocks[i]) for i in sorted(self.blocks)]
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_from_blocks(blocks, self.stop_reason)])


def _streamed_block(block: dict[str, Any]) -> dict[str, Any]:
    """A streamed content block as the block the API would have returned (a tool_use's input parsed from its JSON)."""
    if block.get("type") == "tool_use":
        raw = block.get("json") or "{}"
        try:
            block["input"] = json.loads(raw)
        except ValueError:  # cut mid-way: keep what arrived
            block["input"] = raw
    return block
