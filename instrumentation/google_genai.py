"""Google Gen AI instrumentation: one contract-1 span per ``google-genai`` SDK call (Gemini API and Vertex AI).

Wrapped, sync and async (``client.models`` / ``client.aio.models``): ``generate_content``,
``generate_content_stream`` and ``embed_content``. Chats (``client.chats``) go through ``generate_content*`` and so are
covered too. The provider is ``gcp.vertex_ai`` when the client is in Vertex AI mode, else ``gcp.gemini``.

Usage. Gemini's ``prompt_token_count`` already includes cached tokens (``cached_content_token_count``); tool-use
prompt tokens are billed as input and added. ``candidates_token_count`` excludes thinking, so
``gen_ai.usage.output_tokens`` = candidates + thoughts and ``gen_ai.usage.reasoning.output_tokens`` = thoughts.
Every stream chunk carries the running usage: the last one seen wins, but only a stream that reached a finish reason
reports output tokens and cost — a cut or abandoned one records its input and ``promptpulse.usage.missing``.

One span per public call: the SDK's automatic continuation is merged by the SDK (usage summed across hops). With
automatic function calling (Python callables as tools), several requests happen inside one call and the final
response carries only the last request's usage, so the span reports that — a known undercount.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptpulse.instrumentation import common, patching, wrappers
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import content, endpoint, targets
from promptpulse.instrumentation.kit.usage import int_or_none
from promptpulse.instrumentation.spans import AttributeValue, LLMCall, Telemetry

_INSTRUMENTS = ("google-genai >= 1.0",)
_MODULE = "google.genai.models"


def _get(obj: Any, name: str, camel: str | None = None) -> Any:
    """A field of a pydantic object or of the dict the SDK also accepts (snake_case or camelCase keys)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        value = obj.get(name)
        return obj.get(camel) if value is None and camel else value
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    return int_or_none(value) or 0


# --- requests ----------------------------------------------------------------------------------------------------
_CONFIG_PARAMS: tuple[tuple[str, str | None, str, type], ...] = (
    ("max_output_tokens", "maxOutputTokens", sc.GEN_AI_REQUEST_MAX_TOKENS, int),
    ("temperature", None, sc.GEN_AI_REQUEST_TEMPERATURE, float),
    ("top_p", "topP", sc.GEN_AI_REQUEST_TOP_P, float),
    ("top_k", "topK", sc.GEN_AI_REQUEST_TOP_K, float),
    ("seed", None, sc.GEN_AI_REQUEST_SEED, int),
    ("candidate_count", "candidateCount", sc.GEN_AI_REQUEST_CHOICE_COUNT, int),
    ("presence_penalty", "presencePenalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY, float),
    ("frequency_penalty", "frequencyPenalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, float),
)


def _request_attributes(config: Any) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    if config is None:
        return attrs
    for name, camel, attr, kind in _CONFIG_PARAMS:
        value = _get(config, name, camel)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if kind is int and isinstance(value, int):
            attrs[attr] = value
        elif kind is float:
            attrs[attr] = float(value)
    stops = _get(config, "stop_sequences", "stopSequences")
    if isinstance(stops, Sequence) and not isinstance(stops, str) and all(isinstance(s, str) for s in stops):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(stops)
    return attrs


def _text_of(value: Any) -> str | None:
    """Text of a ContentUnion: str, Part, Content, their dicts, or a list of them."""
    return content.text_of(value, ("parts",))


def _fingerprint(contents: Any, config: Any) -> str | None:
    instructions = _text_of(_get(config, "system_instruction", "systemInstruction"))
    first = None
    if not instructions:
        if isinstance(contents, Sequence) and not isinstance(contents, str):
            first = _text_of(contents[0]) if contents else None
        else:
            first = _text_of(contents)
    return content.template_fingerprint(instructions, first)


def _provider_and_target(instance: Any) -> tuple[str, str | None, int | None]:
    client = getattr(instance, "_api_client", None)
    provider = sc.PROVIDER_GCP_VERTEX_AI if getattr(client, "vertexai", False) else sc.PROVIDER_GCP_GEMINI
    options = getattr(client, "_http_options", None)
    host, port = targets.host_port(getattr(options, "base_url", None))
    return provider, host, port


# --- responses ---------------------------------------------------------------------------------------------------
def _finish_reason(candidate: Any) -> str | None:
    reason = getattr(candidate, "finish_reason", None)
    if reason is None:
        return None
    value = getattr(reason, "value", reason)
    return str(value).lower() if value else None


def _usage_numbers(usage: Any) -> tuple[int, int, int, int] | None:
    """(input incl. cache and tool-use prompt, output incl. thoughts, cache read, thoughts) or None."""
    if usage is None:
        return None
    prompt = getattr(usage, "prompt_token_count", None)
    candidates = getattr(usage, "candidates_token_count", None)
    if not isinstance(prompt, int) and not isinstance(candidates, int):
        return None
    thoughts = _int(getattr(usage, "thoughts_token_count", None))
    tool_prompt = _int(getattr(usage, "tool_use_prompt_token_count", None))
    cached = _int(getattr(usage, "cached_content_token_count", None))
    return _int(prompt) + tool_prompt, _int(candidates) + thoughts, cached, thoughts


def _set_usage(call: LLMCall, numbers: tuple[int, int, int, int]) -> None:
    input_tokens, output_tokens, cached, thoughts = numbers
    call.set_usage(
        input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached, reasoning_tokens=thoughts
    )


def _read_response(call: LLMCall, response: Any) -> None:
    candidates = getattr(response, "candidates", None) or ()
    reasons = [r for r in (_finish_reason(c) for c in candidates) if r]
    call.set_response(
        model=getattr(response, "model_version", None),
        response_id=getattr(response, "response_id", None),
        finish_reasons=reasons or None,
    )
    numbers = _usage_numbers(getattr(response, "usage_metadata", None))
    if numbers is not None:
        _set_usage(call, numbers)


def _response_parts(response: Any) -> list[Any]:
    candidates = getattr(response, "candidates", None) or ()
    message = getattr(candidates[0], "content", None) if candidates else None
    return list(getattr(message, "parts", None) or ())


def _output_messages(parts: list[Any], reason: str | None) -> list[dict[str, Any]]:
    return [content.output_from_blocks(parts, reason)]


class _StreamState:
    """A ``streams.StreamHandler`` for ``generate_content_stream`` chunks (each a GenerateContentResponse)."""

    __slots__ = ("finish_reasons", "parts", "usage")

    def __init__(self, capture: bool) -> None:
        self.usage: tuple[int, int, int, int] | None = None
        self.finish_reasons: list[str] = []
        # The answer's parts, when content is captured: consecutive text pieces joined, function calls as they come.
        self.parts: list[Any] | None = [] if capture else None

    def on_chunk(self, call: LLMCall, chunk: Any) -> None:
        call.set_response(model=getattr(chunk, "model_version", None), response_id=getattr(chunk, "response_id", None))
        numbers = _usage_numbers(getattr(chunk, "usage_metadata", None))
        if numbers is not None:
            self.usage = numbers  # a running total: the last one wins
        for candidate in getattr(chunk, "candidates", None) or ():
            reason = _finish_reason(candidate)
            if reason:
                self.finish_reasons.append(reason)
        if self.parts is not None:
            for part in _response_parts(chunk):
                text = getattr(part, "text", None)
                if isinstance(text, str) and self.parts and isinstance(self.parts[-1], dict):
                    self.parts[-1]["text"] += text
                elif isinstance(text, str):
                    self.parts.append({"text": text})
                else:
                    self.parts.append(part)

    def on_finish(self, call: LLMCall) -> None:
        if self.finish_reasons:
            call.set_response(finish_reasons=self.finish_reasons)
        if self.usage is not None:
            if self.finish_reasons:
                _set_usage(call, self.usage)
            else:  # cut short: the prompt count is final, the output count is not
                call.set_attribute(sc.PROMPTPULSE_USAGE_INPUT_TOKENS_SEEN, self.usage[0])
        if self.parts is not None:
            reason = self.finish_reasons[-1] if self.finish_reasons else None
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, _output_messages(self.parts, reason))


# --- endpoints ---------------------------------------------------------------------------------------------------
def _generate_attributes(kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    return _request_attributes(kwargs.get("config"))


def _generate_fingerprint(kwargs: dict[str, Any]) -> str | None:
    return _fingerprint(kwargs.get("contents"), kwargs.get("config"))


def _capture_input(call: LLMCall, kwargs: dict[str, Any]) -> None:
    system = _get(kwargs.get("config"), "system_instruction", "systemInstruction")
    if system is not None:
        parts = system if isinstance(system, str | list | tuple) else _get(system, "parts") or system
        call.capture(sc.GEN_AI_SYSTEM_INSTRUCTIONS, content.system_instructions(parts))
    call.capture(sc.GEN_AI_INPUT_MESSAGES, content.messages(kwargs.get("contents"), content_key="parts"))


def _capture_output(call: LLMCall, result: Any) -> None:
    reasons = [r for r in (_finish_reason(c) for c in getattr(result, "candidates", None) or ()) if r]
    call.capture(sc.GEN_AI_OUTPUT_MESSAGES, _output_messages(_response_parts(result), next(iter(reasons), None)))


def _embed_attributes(kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    dims = _get(kwargs.get("config"), "output_dimensionality", "outputDimensionality")
    if isinstance(dims, int) and not isinstance(dims, bool):
        attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
    return attrs


def _read_embeddings(call: LLMCall, result: Any) -> None:
    embeddings = getattr(result, "embeddings", None) or ()
    numbers = _usage_numbers(getattr(result, "usage_metadata", None))
    if numbers is not None:
        call.set_usage(input_tokens=numbers[0])
    else:  # Vertex AI predict: per-embedding statistics
        counts = [getattr(getattr(e, "statistics", None), "token_count", None) for e in embeddings]
        if counts and all(isinstance(c, (int, float)) for c in counts):
            call.set_usage(input_tokens=int(sum(counts)))  # type: ignore[arg-type]
    values = getattr(embeddings[0], "values", None) if embeddings else None
    if isinstance(values, Sequence):
        call.set_attribute(sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, len(values))


def _generate_endpoint(telemetry: Telemetry, *, stream: bool) -> endpoint.Endpoint:
    return endpoint.Endpoint(
        telemetry,
        sc.OPERATION_GENERATE_CONTENT,
        target=_provider_and_target,
        attributes=_generate_attributes,
        read=_read_response,
        fingerprint=_generate_fingerprint,
        capture_input=_capture_input,
        capture_output=_capture_output,
        stream_handler=(lambda: _StreamState(telemetry.capture_content)) if stream else None,
    )


def _patches(telemetry: Telemetry) -> list[patching.Patch]:
    generate = _generate_endpoint(telemetry, stream=False)
    stream = _generate_endpoint(telemetry, stream=True)
    embed = endpoint.Endpoint(
        telemetry,
        sc.OPERATION_EMBEDDINGS,
        target=_provider_and_target,
        attributes=_embed_attributes,
        read=_read_embeddings,
    )
    sync, async_ = wrappers.sync_wrapper, wrappers.async_wrapper
    return [
        patching.Patch(_MODULE, "Models.generate_content", sync(telemetry, generate)),
        patching.Patch(_MODULE, "Models.generate_content_stream", sync(telemetry, stream)),
        patching.Patch(_MODULE, "Models.embed_content", sync(telemetry, embed)),
        patching.Patch(_MODULE, "AsyncModels.generate_content", async_(telemetry, generate)),
        patching.Patch(_MODULE, "AsyncModels.generate_content_stream", async_(telemetry, stream)),
        patching.Patch(_MODULE, "AsyncModels.embed_content", async_(telemetry, embed)),
    ]


class GoogleGenAIInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_google_genai`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "google.genai"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        return _patches(telemetry)
