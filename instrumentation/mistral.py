"""Mistral AI instrumentation: one contract-1 span per ``mistralai`` SDK call (``from mistralai.client import
Mistral``). Provider ``mistral_ai``.

Wrapped: ``chat.complete``, ``chat.stream`` and their ``*_async`` twins (``chat.parse*`` go through them), and
``embeddings.create`` / ``create_async``. Mistral streams always end with a chunk carrying ``usage``; a stream that
ended before it reports ``promptpulse.usage.missing``. Cached prompt tokens, when the API reports them
(``prompt_tokens_details.cached_tokens`` or ``num_cached_tokens``), are already part of ``prompt_tokens``.

The SDK's own tracing hook (on when the app opts in to Mistral's telemetry or sets a global tracer provider) would
start a second span for the same request; while one of our calls runs it is told tracing is off
(``get_traced_request_and_span`` is wrapped), so there is one span per call, with the HTTP spans under ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptpulse.instrumentation import common, patching, wrappers
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import content, endpoint, requests, targets
from promptpulse.instrumentation.kit.content import get
from promptpulse.instrumentation.kit.usage import int_or_none
from promptpulse.instrumentation.spans import AttributeValue, LLMCall, Telemetry

_INSTRUMENTS = ("mistralai >= 2.0",)


# --- requests ----------------------------------------------------------------------------------------------------
_PARAMS: requests.Params = {
    "max_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, requests.INT),
    "temperature": (sc.GEN_AI_REQUEST_TEMPERATURE, requests.FLOAT),
    "top_p": (sc.GEN_AI_REQUEST_TOP_P, requests.FLOAT),
    "random_seed": (sc.GEN_AI_REQUEST_SEED, requests.INT),
    "n": (sc.GEN_AI_REQUEST_CHOICE_COUNT, requests.INT),
    "presence_penalty": (sc.GEN_AI_REQUEST_PRESENCE_PENALTY, requests.FLOAT),
    "frequency_penalty": (sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, requests.FLOAT),
    "stop": (sc.GEN_AI_REQUEST_STOP_SEQUENCES, requests.STOP),
}


def _request_attributes(kwargs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    return requests.request_attributes(kwargs, _PARAMS)  # the SDK's UNSET/OMIT sentinels are none of the kinds


def _target(instance: Any) -> tuple[str | None, int | None]:
    config = getattr(instance, "sdk_configuration", None)
    try:
        url = config.get_server_details()[0] if config is not None else None
    except Exception:
        url = None
    return targets.host_port_of_string(url)


# --- responses ---------------------------------------------------------------------------------------------------
def _read_usage(call: LLMCall, usage: Any) -> bool:
    if usage is None:
        return False
    prompt, completion = int_or_none(get(usage, "prompt_tokens")), int_or_none(get(usage, "completion_tokens"))
    if prompt is None and completion is None:
        return False
    cached = int_or_none(get(get(usage, "prompt_tokens_details"), "cached_tokens"))
    cached = cached or int_or_none(get(usage, "num_cached_tokens"))
    call.set_usage(input_tokens=prompt or 0, output_tokens=completion or 0, cache_read_tokens=cached)
    return True


def _finish_reasons(choices: Any) -> list[str]:
    reasons = []
    for choice in choices or ():
        reason = get(choice, "finish_reason")
        if reason:
            reasons.append(str(getattr(reason, "value", reason)))
    return reasons


def _read_response(call: LLMCall, response: Any) -> None:
    call.set_response(
        model=get(response, "model"),
        response_id=get(response, "id"),
        finish_reasons=_finish_reasons(get(response, "choices")) or None,
    )
    _read_usage(call, get(response, "usage"))


class _StreamState:
    """A ``streams.StreamHandler`` for ``chat.stream`` events (``CompletionEvent`` with ``data`` a chunk)."""

    __slots__ = ("finish_reasons", "texts", "usage")

    def __init__(self, capture: bool = False) -> None:
        self.finish_reasons: list[str] = []
        self.usage: Any = None
        self.texts: list[str] | None = [] if capture else None  # the answer's text pieces, when content is captured

    def on_chunk(self, call: LLMCall, event: Any) -> None:
        chunk = getattr(event, "data", event)
        call.set_response(model=get(chunk, "model"), response_id=get(chunk, "id"))
        choices = get(chunk, "choices")
        self.finish_reasons += _finish_reasons(choices)
        usage = get(chunk, "usage")
        if usage is not None:
            self.usage = usage
        if self.texts is not None:
            for choice in choices or ():
                text = content.text_of(get(get(choice, "delta"), "content"))
                if text:
                    self.texts.append(text)

    def on_finish(self, call: LLMCall) -> None:
        if self.finish_reasons:
            call.set_response(finish_reasons=self.finish_reasons)
        _read_usage(call, self.usage)
        if self.texts is not None:
            reason = self.finish_reasons[-1] if self.finish_reasons else None
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_message("".join(self.texts), reason)])


# --- endpoints ---------------------------------------------------------------------------------------------------
def _provider_target(instance: Any) -> tuple[str, str | None, int | None]:
    return (sc.PROVIDER_MISTRAL_AI, *_target(instance))


def _chat_fingerprint(kwargs: dict[str, Any]) -> str | None:
    return content.messages_fingerprint(kwargs.get("messages"))


def _embeddings_attributes(kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    dims = kwargs.get("output_dimension")
    if isinstance(dims, int) and not isinstance(dims, bool):
        attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
    return attrs


def _read_embeddings(call: LLMCall, result: Any) -> None:
    call.set_response(model=get(result, "model"), response_id=get(result, "id"))
    _read_usage(call, get(result, "usage"))
    data = get(result, "data") or ()
    vector = get(data[0], "embedding") if data else None
    if isinstance(vector, Sequence):
        call.set_attribute(sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, len(vector))


def _capture_output(call: LLMCall, result: Any) -> None:
    messages = []
    for choice in get(result, "choices") or ():
        message = get(choice, "message")
        reason = _finish_reasons([choice])
        text = content.text_of(get(message, "content"))
        messages.append(content.output_message(text, reason[0] if reason else None, get(message, "tool_calls")))
    call.capture(sc.GEN_AI_OUTPUT_MESSAGES, messages)


def _chat_endpoint(telemetry: Telemetry, *, stream: bool) -> endpoint.Endpoint:
    return endpoint.Endpoint(
        telemetry,
        sc.OPERATION_CHAT,
        target=_provider_target,
        attributes=_request_attributes,
        read=_read_response,
        fingerprint=_chat_fingerprint,
        capture_input=content.capture_messages,
        capture_output=_capture_output,
        stream_handler=(lambda: _StreamState(telemetry.capture_content)) if stream else None,
    )


def _sdk_tracing_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``get_traced_request_and_span(tracing_enabled, tracer, span, operation_id, request)``: off inside our calls."""
    if wrappers.in_call():
        if args:
            args = (False, *args[1:])
        else:
            kwargs = {**kwargs, "tracing_enabled": False}
    return wrapped(*args, **kwargs)


def _patches(telemetry: Telemetry) -> list[patching.Patch]:
    complete = _chat_endpoint(telemetry, stream=False)
    stream = _chat_endpoint(telemetry, stream=True)
    embed = endpoint.Endpoint(
        telemetry,
        sc.OPERATION_EMBEDDINGS,
        target=_provider_target,
        attributes=_embeddings_attributes,
        read=_read_embeddings,
    )
    sync, async_ = wrappers.sync_wrapper, wrappers.async_wrapper
    chat, embeddings = "mistralai.client.chat", "mistralai.client.embeddings"
    return [
        patching.Patch(chat, "Chat.complete", sync(telemetry, complete)),
        patching.Patch(chat, "Chat.stream", sync(telemetry, stream)),
        patching.Patch(chat, "Chat.complete_async", async_(telemetry, complete)),
        patching.Patch(chat, "Chat.stream_async", async_(telemetry, stream)),
        patching.Patch(embeddings, "Embeddings.create", sync(telemetry, embed)),
        patching.Patch(embeddings, "Embeddings.create_async", async_(telemetry, embed)),
        patching.Patch("mistralai.client._hooks.tracing", "get_traced_request_and_span", _sdk_tracing_wrapper),
    ]


class MistralInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_mistral`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "mistralai"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        return _patches(telemetry)
