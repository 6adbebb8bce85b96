"""Usage shapes shared by several SDKs, mapped onto ``LLMCall.set_usage`` (contract 1: input includes cached input).

- OpenAI's: ``prompt_tokens``/``completion_tokens`` with ``*_details`` (chat, completions; groq, litellm, compatible
  servers), ``input_tokens``/``output_tokens`` with details (responses), or either as a JSON dict.
- "Input excludes the cache" (Anthropic, Bedrock's Converse): input = uncached + cache read + cache write.
A stream cut before its usage is complete records the input it saw as ``promptpulse.usage.input_tokens_seen`` and no
``gen_ai.usage.*`` count: ``LLMCall.end`` then marks the usage missing and records no cost, and every reader (the
processor's ``usage_known`` included) sees the call's usage as unknown — never as known with 0 output tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit.content import get
from promptpulse.instrumentation.spans import LLMCall


def int_or_none(value: Any) -> int | None:
    """A token count: ints (not bools) and integral floats (some SDKs type counts as floats); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _set(call: LLMCall, input_tokens: Any, output_tokens: Any, input_details: Any, output_details: Any) -> None:
    """OpenAI's usage, from SDK objects or from JSON dicts (``get`` reads either)."""
    call.set_usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=get(input_details, "cached_tokens"),
        cache_creation_tokens=get(input_details, "cache_write_tokens"),
        reasoning_tokens=get(output_details, "reasoning_tokens"),
    )


def apply_completion_usage(call: LLMCall, usage: Any) -> None:
    """Chat/completions usage: ``prompt_tokens`` already includes cached tokens."""
    details = usage.completion_tokens_details
    _set(call, usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details, details)


def apply_responses_usage(call: LLMCall, usage: Any) -> None:
    _set(call, usage.input_tokens, usage.output_tokens, usage.input_tokens_details, usage.output_tokens_details)


def apply_usage_dict(call: LLMCall, usage: Any) -> None:
    """Usage from a JSON body (raw responses the app read as bytes/JSON), either OpenAI API's shape."""
    if not isinstance(usage, Mapping):
        return
    prefix = "prompt" if "prompt_tokens" in usage else "input" if "input_tokens" in usage else None
    if prefix is None:
        return
    out = "completion" if prefix == "prompt" else "output"
    _set(
        call,
        usage.get(f"{prefix}_tokens"),
        usage.get(f"{out}_tokens"),
        usage.get(f"{prefix}_tokens_details"),
        usage.get(f"{out}_tokens_details"),
    )


def apply_uncached_usage(
    call: LLMCall,
    uncached: int | None,
    output: int | None,
    cache_read: int = 0,
    cache_write: int = 0,
    *,
    complete: bool = True,
    reasoning: int | None = None,
) -> None:
    """Usage whose input count excludes cache reads and writes. ``complete=False`` (a stream cut before its final
    usage) or an unknown output records only the input seen (``promptpulse.usage.input_tokens_seen``) — never an
    invented output count or cost."""
    if uncached is None and output is None:
        return
    total_input = (uncached or 0) + cache_read + cache_write
    if complete and output is not None:
        call.set_usage(
            input_tokens=total_input,
            output_tokens=output,
            cache_read_tokens=cache_read,
            cache_creation_tokens=cache_write,
            reasoning_tokens=reasoning,
        )
    elif uncached is not None:
        call.set_attribute(sc.PROMPTPULSE_USAGE_INPUT_TOKENS_SEEN, total_input)
