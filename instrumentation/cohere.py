"""Cohere instrumentation: one contract-1 span per v2 call of the ``cohere`` SDK (``cohere.ClientV2`` and
``AsyncClientV2``, and ``client.v2``). Provider ``cohere``.

Wrapped: ``chat``, ``chat_stream`` and ``embed`` of ``V2Client`` / ``AsyncV2Client``. ``chat_stream`` is a generator
(async generator) function: the request is sent on first iteration, so a failing request shows up as the stream's
error. Usage: Cohere reports ``billed_units`` (what is charged) and ``tokens`` (what the model saw, including its
prompt template); the billed numbers are recorded — they are what the price table applies to — and ``tokens`` only
when there are no billed units. ``cached_tokens`` (part of the input) becomes the cache-read count. The stream's
usage arrives in ``message-end``; a stream that ended before it reports ``promptpulse.usage.missing``.
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

_INSTRUMENTS = ("cohere >= 5.0",)
_MODULE = "cohere.v2.client"


# --- requests ----------------------------------------------------------------------------------------------------
_PARAMS: requests.Params = {
    "max_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, requests.INT),
    "temperature": (sc.GEN_AI_REQUEST_TEMPERATURE, requests.FLOAT),
    "p": (sc.GEN_AI_REQUEST_TOP_P, requests.FLOAT),
    "k": (sc.GEN_AI_REQUEST_TOP_K, requests.FLOAT),
    "seed": (sc.GEN_AI_REQUEST_SEED, requests.INT),
    "presence_penalty": (sc.GEN_AI_REQUEST_PRESENCE_PENALTY, requests.FLOAT),
    "frequency_penalty": (sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, requests.FLOAT),
    "stop_sequences": (sc.GEN_AI_REQUEST_STOP_SEQUENCES, requests.STOP),
}


def _request_attributes(kwargs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    return requests.request_attributes(kwargs, _PARAMS)  # the SDK's UNSET/OMIT sentinels are none of the kinds


def _target(instance: Any) -> tuple[str | None, int | None]:
    wrapper = getattr(instance, "_client_wrapper", None) or getattr(
        getattr(instance, "_raw_client", None), "_client_wrapper", None
    )
    try:
        url = wrapper.get_base_url() if wrapper is not None else None
    except Exception:
        url = None
    return targets.host_port_of_string(url)


# --- responses ---------------------------------------------------------------------------------------------------
def _read_usage(call: LLMCall, usage: Any, *, embeddings: bool = False) -> bool:
    if usage is None:
        return False
    counts = get(usage, "billed_units")
    inp, out = int_or_none(get(counts, "input_tokens")), int_or_none(get(counts, "output_tokens"))
    if inp is None and out is None:
        counts = get(usage, "tokens")
        inp, out = int_or_none(get(counts, "input_tokens")), int_or_none(get(counts, "output_tokens"))
    if inp is None and out is None:
        return False
    call.set_usage(
        input_tokens=inp or 0,
        output_tokens=None if embeddings else out or 0,
        cache_read_tokens=int_or_none(get(usage, "cached_tokens")),
    )
    return True


def _finish_reason(value: Any) -> str | None:
    return str(getattr(value, "value", value)) if value else None


class _StreamState:
    """A ``streams.StreamHandler`` for v2 ``chat_stream`` events."""

    __slots__ = ("finish_reason", "texts", "usage")

    def __init__(self, capture: bool = False) -> None:
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.texts: list[str] | None = [] if capture else None  # the answer's text pieces, when content is captured

    def on_chunk(self, call: LLMCall, event: Any) -> None:
        kind = get(event, "type")
        if kind == "content-delta":
            if self.texts is not None:
                text = get(get(get(get(event, "delta"), "message"), "content"), "text")
                if isinstance(text, str):
                    self.texts.append(text)
        elif kind == "message-start":
            call.set_response(response_id=get(event, "id"))
        elif kind == "message-end":
            delta = get(event, "delta")
            self.finish_reason = _finish_reason(get(delta, "finish_reason"))
            self.usage = get(delta, "usage")

    def on_finish(self, call: LLMCall) -> None:
        if self.finish_reason:
            call.set_response(finish_reasons=(self.finish_reason,))
        _read_usage(call, self.usage)
        if self.texts is not None:
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_message("".join(self.texts), self.finish_reason)])


# --- endpoints ---------------------------------------------------------------------------------------------------
def _provider_target(instance: Any) -> tuple[str, str | None, int | None]:
    return (sc.PROVIDER_COHERE, *_target(instance))


def _chat_fingerprint(kwargs: dict[str, Any]) -> str | None:
    return content.messages_fingerprint(kwargs.get("messages"))


def _read_chat(call: LLMCall, result: Any) -> None:
    reason = _finish_reason(get(result, "finish_reason"))
    call.set_response(response_id=get(result, "id"), finish_reasons=(reason,) if reason else None)
    _read_usage(call, get(result, "usage"))


def _capture_output(call: LLMCall, result: Any) -> None:
    message = get(result, "message")
    text = content.text_of(get(message, "content"))
    reason = _finish_reason(get(result, "finish_reason"))
    call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_message(text, reason, get(message, "tool_calls"))])


def _embed_attributes(kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    formats = kwargs.get("embedding_types")
    if isinstance(formats, Sequence) and not isinstance(formats, str) and all(isinstance(f, str) for f in formats):
        attrs[sc.GEN_AI_REQUEST_ENCODING_FORMATS] = tuple(formats)
    dims = kwargs.get("output_dimension")
    if isinstance(dims, int) and not isinstance(dims, bool):
        attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims
    return attrs


def _read_embed(call: LLMCall, result: Any) -> None:
    call.set_response(response_id=get(result, "id"))
    _read_usage(call, get(result, "meta"), embeddings=True)
    embeddings = get(result, "embeddings")
    for name in ("float_", "int8", "uint8", "binary", "ubinary"):
        vectors = get(embeddings, name)
        if isinstance(vectors, Sequence) and vectors and isinstance(vectors[0], Sequence):
            call.set_attribute(sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, len(vectors[0]))
            break


def _chat_endpoint(telemetry: Telemetry, *, stream: bool) -> endpoint.Endpoint:
    return endpoint.Endpoint(
        telemetry,
        sc.OPERATION_CHAT,
        target=_provider_target,
        attributes=_request_attributes,
        read=_read_chat,
        fingerprint=_chat_fingerprint,
        capture_input=content.capture_messages,
        capture_output=_capture_output,
        stream_handler=(lambda: _StreamState(telemetry.capture_content)) if stream else None,
    )


def _patches(telemetry: Telemetry) -> list[patching.Patch]:
    chat = _chat_endpoint(telemetry, stream=False)
    stream = _chat_endpoint(telemetry, stream=True)
    embed = endpoint.Endpoint(
        telemetry, sc.OPERATION_EMBEDDINGS, target=_provider_target, attributes=_embed_attributes, read=_read_embed
    )
    sync, async_ = wrappers.sync_wrapper, wrappers.async_wrapper
    return [
        patching.Patch(_MODULE, "V2Client.chat", sync(telemetry, chat)),
        patching.Patch(_MODULE, "V2Client.chat_stream", sync(telemetry, stream)),
        patching.Patch(_MODULE, "V2Client.embed", sync(telemetry, embed)),
        patching.Patch(_MODULE, "AsyncV2Client.chat", async_(telemetry, chat)),
        # An async generator function: calling it returns the generator at once, so the sync wrapper applies.
        patching.Patch(_MODULE, "AsyncV2Client.chat_stream", sync(telemetry, stream)),
        patching.Patch(_MODULE, "AsyncV2Client.embed", async_(telemetry, embed)),
    ]


class CohereInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_cohere`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "cohere"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        return _patches(telemetry)
