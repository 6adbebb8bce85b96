"""Anthropic instrumentation: one contract-1 span per Messages API call of the ``anthropic`` SDK (2.x, on httpx2).

Wrapped, sync and async: ``messages.create`` (plain and ``stream=True``), ``messages.parse``, ``messages.stream()``
(the ``MessageStreamManager``: ``text_stream``, event iteration, ``get_final_message``/``get_final_text``/
``until_done``, ``close`` and context exit all keep working), and the same methods of ``beta.messages``.

Streams. The span of a streamed call follows the SDK's *raw* event stream (``Stream``/``AsyncStream``), which a
``streams.SyncStreamProxy``/``AsyncStreamProxy`` stands in for. ``messages.stream()`` sends its request only when
its manager is entered, so the manager's request callable is wrapped instead of ``stream()`` itself: the span starts
with the request, and the ``MessageStream`` the manager builds reads from our proxy. However the app consumes it —
``text_stream``, events, ``get_final_message()`` without iterating, ``break`` then leaving the ``with`` block,
``close()``, an error, or dropping it (garbage collection) — the proxy ends the span exactly once.

Raw responses. ``with_raw_response``/``with_streaming_response`` results (how ChatAnthropic calls the SDK) go through
``raw.finish_raw``: a non-streamed body already in memory is read at once; otherwise the span ends when the app
parses the response — a parsed stream is proxied like any other, so id, TTFT, usage and cost come from its events —
reads its JSON, closes it (the ``with`` block's exit) or drops it.

Provider. ``gen_ai.provider.name`` follows the client: ``AnthropicBedrock`` (and the other ``anthropic.lib.bedrock``/
``aws`` clients) → ``aws.bedrock``, ``AnthropicVertex`` (and ``google_cloud``) → ``gcp.vertex_ai``,
``AnthropicFoundry`` → ``azure.ai.inference``, every other client → ``anthropic``.

Usage. Anthropic's ``input_tokens`` excludes the cache, so ``gen_ai.usage.input_tokens`` = input + cache read + cache
creation (contract 1). ``message_start`` carries the input and cache numbers; ``message_delta`` usage is cumulative,
so the last one seen replaces — never adds to — what came before. A stream that ended before ``message_delta``
records the input numbers it saw and ``promptpulse.usage.missing``, never an invented output count or cost.

Retries. The SDK calls ``_sleep_for_retry(retries_taken=n)`` before retry n+1; that hook records
``promptpulse.retry.count`` on the call's span. The app always gets exactly the SDK's exception.

The SDK's own spans. anthropic 2.x starts its own CLIENT span (``anthropic.messages.create``, scope
``com.anthropic.sdk.python``) for each API call whenever a tracer provider is set — globally or through the client's
``open_telemetry={"tracer_provider": ...}`` option. PromptPulse *takes its place*, for the calls it instruments only:
``anthropic._base_client.start_api_call_span`` is wrapped, and while one of our call spans is the current span it
returns a non-recording stand-in that carries our span's context instead of starting a span. Everything in the SDK
keeps working against the stand-in: its ``traceparent`` propagation now names our span, HTTP-client spans nest under
ours, and all of its recording (attributes, usage, stream observers) is skipped because the stand-in is not
recording. Every other SDK call (count_tokens, batches, models, files, sessions…) keeps the SDK's own span.
Why replace rather than enrich:
- their span exists only under some configurations, while ours must exist always — enriching would mean two code
  paths, and the span shape would depend on the app's client options;
- their span has another name and scope than contract 1 (``chat {model}``), its tracer provider can differ from the
  one given to this instrumentor, it carries no cost, and it is ended by
  SDK internals at a moment we do not control — cost and usage would have to be squeezed in before that;
- the official switches (``open_telemetry=False``, ``ANTHROPIC_OPEN_TELEMETRY=false``) are read when a client is
  constructed, so they cannot reach clients built before ``instrument()``; they would also turn off the SDK's trace
  propagation and the spans of the endpoints we do not instrument.
If that private hook ever disappears, the patch is skipped (``patching.LazyPatcher``) and the app sees the SDK span as a
child of ours — one more span, never a broken call; the test suite guards the one-span rule.
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext

from promptpulse.instrumentation import common, patching, streams, wrappers
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import content, raw, requests, retries, targets
from promptpulse.instrumentation.kit.anthropic_messages import StreamState, read_message
from promptpulse.instrumentation.spans import AttributeValue, LLMCall, Telemetry

_log = logging.getLogger(__name__)

_INSTRUMENTS = ("anthropic >= 0.43",)

# Filled at instrument time from the installed SDK.
_SENTINEL_TYPES: tuple[type, ...] = ()
_STREAM_TYPES: tuple[type, ...] = ()
_ASYNC_STREAM_TYPES: tuple[type, ...] = ()
_RESPONSE_TYPES: tuple[type, ...] = ()  # with_raw_response / with_streaming_response results
_ASYNC_RESPONSE: tuple[type, ...] = ()

# Our live call spans (weakly held): the SDK-span hook stands in only when one of these is current.
_our_spans: weakref.WeakSet[Span] = weakref.WeakSet()


# --- reading requests --------------------------------------------------------------------------------------------
def _given(value: Any) -> bool:
    return value is not None and type(value) not in _SENTINEL_TYPES


# kwarg → (attribute, kind). temperature/top_p/top_k are not keyword arguments of anthropic 2.x; older SDKs and
# ``extra_body`` still send them, so they are read from either.
_REQUEST_PARAMS: requests.Params = {
    "max_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, requests.INT),
    "temperature": (sc.GEN_AI_REQUEST_TEMPERATURE, requests.FLOAT),
    "top_p": (sc.GEN_AI_REQUEST_TOP_P, requests.FLOAT),
    "top_k": (sc.GEN_AI_REQUEST_TOP_K, requests.INT),
    "stop_sequences": (sc.GEN_AI_REQUEST_STOP_SEQUENCES, requests.STOP),
}


def _request_attributes(kwargs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    attrs = requests.request_attributes(kwargs, _REQUEST_PARAMS, _SENTINEL_TYPES)
    extra = kwargs.get("extra_body")
    if isinstance(extra, Mapping):
        attrs.update(requests.request_attributes(extra, _REQUEST_PARAMS, _SENTINEL_TYPES))
    return attrs


def _fingerprint(kwargs: Mapping[str, Any]) -> str | None:
    system = kwargs.get("system")
    instructions = content.text_of(system) if _given(system) else None
    first = None
    if not instructions:
        messages = kwargs.get("messages")
        # Only a real sequence: indexing a generator the app passed would consume it.
        if isinstance(messages, Sequence) and messages:
            first = content.text_of(content.get(messages[0], "content"))
    return content.template_fingerprint(instructions, first)


# --- where a call went -------------------------------------------------------------------------------------------
def _target(instance: Any) -> tuple[str | None, int | None]:
    return targets.host_port(getattr(getattr(instance, "_client", None), "_base_url", None))


# The SDK's cloud clients (anthropic.lib.*) → gen_ai.provider.name; by module, so no cloud module is imported here.
_PROVIDER_BY_CLIENT_MODULE: tuple[tuple[str, str], ...] = (
    ("anthropic.lib.bedrock", sc.PROVIDER_AWS_BEDROCK),  # AnthropicBedrock, AnthropicBedrockMantle
    ("anthropic.lib.aws", sc.PROVIDER_AWS_BEDROCK),
    ("anthropic.lib.vertex", sc.PROVIDER_GCP_VERTEX_AI),
    ("anthropic.lib.google_cloud", sc.PROVIDER_GCP_VERTEX_AI),
    ("anthropic.lib.foundry", sc.PROVIDER_AZURE_AI_INFERENCE),
)
_providers: dict[type, str] = {}


def _provider(instance: Any) -> str:
    """The provider the client talks to: Anthropic's API, or the cloud that serves Claude."""
    cls = type(getattr(instance, "_client", None))
    found = _providers.get(cls)
    if found is None:
        found = sc.PROVIDER_ANTHROPIC
        for klass in cls.__mro__:
            module = klass.__module__
            match = next((p for prefix, p in _PROVIDER_BY_CLIENT_MODULE if module.startswith(prefix)), None)
            if match is not None:
                found = match
                break
        _providers[cls] = found
    return found


# --- endpoints ---------------------------------------------------------------------------------------------------
class _MessagesEndpoint:
    """``messages.create``/``parse`` and, with ``always_streams``, the request of a ``messages.stream()`` manager."""

    __slots__ = ("always_streams", "telemetry")

    def __init__(self, telemetry: Telemetry, *, always_streams: bool = False) -> None:
        self.always_streams = always_streams
        self.telemetry = telemetry

    @property
    def capture(self) -> bool:
        # read per call: the in-app evaluator (promptpulse.evaluation.inapp) may be enabled after instrument()
        return self.telemetry.capture_content

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        model = kwargs.get("model")
        model = model if isinstance(model, str) else ""
        stream = self.always_streams or kwargs.get("stream") is True
        host, port = _target(instance)
        call = telemetry.start(
            sc.OPERATION_CHAT,
            _provider(instance),
            model,
            stream=stream,
            server_address=host,
            server_port=port,
            attributes=_request_attributes(kwargs),
            fingerprint=_fingerprint(kwargs),
        )
        if call.span.get_span_context().is_valid:  # a no-op tracer's span is a shared singleton: never ours
            try:
                _our_spans.add(call.span)
            except TypeError:  # a span type without weak references: the SDK's own span then stays (as a child)
                pass
        if self.capture:
            system = kwargs.get("system")
            if _given(system):
                call.capture(sc.GEN_AI_SYSTEM_INSTRUCTIONS, content.system_instructions(system))
            messages = kwargs.get("messages")
            if isinstance(messages, Sequence):
                call.capture(sc.GEN_AI_INPUT_MESSAGES, content.messages(messages))
        return call

    def finish(self, call: LLMCall, result: Any) -> Any:
        if isinstance(result, _STREAM_TYPES):
            return self.wrap_stream(call, result)
        if _RESPONSE_TYPES and isinstance(result, _RESPONSE_TYPES):
            # with_raw_response / with_streaming_response (ChatAnthropic calls the SDK this way, sync and async).
            return raw.finish_raw(call, result, self, sync_parse=False, is_async=isinstance(result, _ASYNC_RESPONSE))
        # A Message (or ParsedMessage / BetaMessage).
        read_message(call, result, self.capture)
        call.end()
        return result

    # raw.RawReader
    def is_stream(self, result: Any) -> bool:
        return isinstance(result, _STREAM_TYPES)

    def wrap_stream(self, call: LLMCall, stream: Any) -> Any:
        if isinstance(stream, _ASYNC_STREAM_TYPES):
            return streams.AsyncStreamProxy(stream, call, StreamState(self.capture))
        return streams.SyncStreamProxy(stream, call, StreamState(self.capture))

    def read(self, call: LLMCall, result: Any) -> None:
        read_message(call, result, self.capture)

    def read_json(self, call: LLMCall, body: Any) -> None:
        if _MESSAGE_TYPE is not None and isinstance(body, Mapping):
            read_message(call, _MESSAGE_TYPE.model_validate(body), self.capture)


def _manager_request_attr(manager: Any) -> str | None:
    """The name-mangled attribute holding a stream manager's request (``self.__api_request`` in the SDK)."""
    for cls in type(manager).__mro__:
        name = f"_{cls.__name__.lstrip('_')}__api_request"
        if name in getattr(manager, "__dict__", ()):
            return name
    return None


def _identity(value: Any, *_args: Any, **_kwargs: Any) -> Any:
    return value


def _call(fn: Any, *_args: Any, **_kwargs: Any) -> Any:
    return fn()


def _stream_helper_wrapper(telemetry: Telemetry, *, is_async: bool) -> wrappers.WrapperFn:
    """``messages.stream()``: returns the SDK's manager, whose request now runs through the call wrapper."""
    endpoint = _MessagesEndpoint(telemetry, always_streams=True)
    request_wrapper = (wrappers.async_wrapper if is_async else wrappers.sync_wrapper)(telemetry, endpoint)

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        try:
            attr = _manager_request_attr(manager)
            if attr is not None:
                request = getattr(manager, attr)
                if is_async:
                    # The SDK's request is a coroutine: ours awaits it when the manager is entered.
                    send = functools.partial(_identity, request)
                    setattr(manager, attr, request_wrapper(send, instance, args, kwargs))
                else:
                    send = functools.partial(_call, request)
                    setattr(manager, attr, functools.partial(request_wrapper, send, instance, args, kwargs))
        except Exception:
            _log.debug("promptpulse: could not instrument a message stream manager", exc_info=True)
        return manager

    return wrapper


# --- the SDK's own span and its retries --------------------------------------------------------------------------
class _StandIn(NonRecordingSpan):
    """Given to the SDK instead of its own call span: our span's context, recording nothing."""

    def __init__(self, context: SpanContext, ours: Span) -> None:
        super().__init__(context)
        self.promptpulse_span = ours


def _sdk_span_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``anthropic._base_client.start_api_call_span``: inside one of our calls, a stand-in instead of a second span."""
    try:
        current = trace.get_current_span()
        if current in _our_spans:
            context = current.get_span_context()
            if context.is_valid:
                return _StandIn(context, current)
    except Exception:
        _log.debug("promptpulse: could not stand in for the SDK's span", exc_info=True)
    return wrapped(*args, **kwargs)


# --- the instrumentor --------------------------------------------------------------------------------------------
_MESSAGE_TYPE: Any = None


def _load_sdk_types() -> None:
    global _SENTINEL_TYPES, _STREAM_TYPES, _ASYNC_STREAM_TYPES, _MESSAGE_TYPE, _RESPONSE_TYPES, _ASYNC_RESPONSE
    from anthropic import _types
    from anthropic._response import AsyncAPIResponse, BaseAPIResponse
    from anthropic._streaming import AsyncStream, Stream
    from anthropic.types import Message

    _MESSAGE_TYPE = Message
    _STREAM_TYPES = (Stream, AsyncStream)
    _ASYNC_STREAM_TYPES = (AsyncStream,)
    _RESPONSE_TYPES = (BaseAPIResponse,)
    _ASYNC_RESPONSE = (AsyncAPIResponse,)
    _SENTINEL_TYPES = tuple(t for t in (getattr(_types, "Omit", None), getattr(_types, "NotGiven", None)) if t)


# Named through the packages that re-export the classes (the defining module's path is an SDK detail).
_MESSAGES_MODULES = ("anthropic.resources.messages", "anthropic.resources.beta.messages")


def _patches(telemetry: Telemetry) -> list[patching.Patch]:
    create = _MessagesEndpoint(telemetry)
    create_sync = wrappers.sync_wrapper(telemetry, create)
    create_async = wrappers.async_wrapper(telemetry, create)
    stream_sync = _stream_helper_wrapper(telemetry, is_async=False)
    stream_async = _stream_helper_wrapper(telemetry, is_async=True)
    patches = []
    # optional: newer than the oldest supported version (parse; beta's stream helper; the SDK's own span): missing
    # there is no warning.
    for module in _MESSAGES_MODULES:
        beta = ".beta." in module
        patches += [
            patching.Patch(module, "Messages.create", create_sync),
            patching.Patch(module, "Messages.parse", create_sync, optional=True),
            patching.Patch(module, "Messages.stream", stream_sync, optional=beta),
            patching.Patch(module, "AsyncMessages.create", create_async),
            patching.Patch(module, "AsyncMessages.parse", create_async, optional=True),
            patching.Patch(module, "AsyncMessages.stream", stream_async, optional=beta),
        ]
    patches += [
        patching.Patch("anthropic._base_client", "start_api_call_span", _sdk_span_wrapper, optional=True),
        *retries.retry_patches("anthropic"),
    ]
    return patches


class AnthropicInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_anthropic`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "anthropic"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        _load_sdk_types()
        return _patches(telemetry)
