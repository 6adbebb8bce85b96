"""OpenAI instrumentation: one contract-1 span per call of the ``openai`` SDK (3.x, on httpx2).

Wrapped: ``chat.completions.create``/``parse`` (``.stream()`` goes through ``create``), ``completions.create``,
``embeddings.create``, ``responses.create``/``parse`` (``responses.stream()`` goes through ``create``), the beta
responses resource, sync and async. The SDK's retry sleep is hooked to count retries
(``promptpulse.retry.count``). ``with_raw_response`` / ``with_streaming_response`` results are read without taking
the body away from the app: the span ends when the app parses or closes the response.

Where a call went decides ``gen_ai.provider.name``: Azure clients and ``*.openai.azure.com`` are
``azure.ai.openai``; OpenAI-compatible servers are told apart by host (``kit.targets.provider_for_host``); anything
unknown (vLLM, proxies) is ``openai``.

What is OpenAI's here: which methods are patched, the client → provider rule, the Responses API, and closing the
``.stream()`` helpers. Chat completions, completions, embeddings, raw responses and retries are the kit's
(``kit.stainless``), shared with the SDK's clones.

The hot path reads the SDK's pydantic objects attribute by attribute: no ``model_dump``, no JSON, and the request
attributes are built from the keyword arguments the app actually passed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from promptpulse.instrumentation import common, patching, streams
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import content, requests, stainless, targets
from promptpulse.instrumentation.kit.usage import apply_responses_usage
from promptpulse.instrumentation.spans import LLMCall, Telemetry

_log = logging.getLogger(__name__)

_INSTRUMENTS = ("openai >= 1.50",)

# --- where a call went ------------------------------------------------------------------------------------------
# The SDK's own provider plug-ins (openai.providers.*) → provider.
_SDK_PROVIDER_NAMES: Mapping[str, str] = {"bedrock": sc.PROVIDER_AWS_BEDROCK, "vertex": sc.PROVIDER_GCP_VERTEX_AI}
_azure_client_types: tuple[type, ...] = ()
_targets: targets.UrlMemo[tuple[str, str | None, int | None]] = targets.UrlMemo()


def _find_target(client: Any, url: Any) -> tuple[str, str | None, int | None]:
    host, port = targets.host_port(url)
    if _azure_client_types and isinstance(client, _azure_client_types):
        return sc.PROVIDER_AZURE_OPENAI, host, port
    runtime = getattr(client, "_provider_runtime", None)
    provider = _SDK_PROVIDER_NAMES.get(getattr(runtime, "name", None) or "") or targets.provider_for_host(host, port)
    return provider, host, port


def _target(client: Any) -> tuple[str, str | None, int | None]:
    """(provider, host, port) of a client: Azure clients are azure.ai.openai, the SDK's provider plug-ins theirs,
    anything else by host (``targets.provider_for_host``)."""
    url = client._base_url
    return _targets.get(url, _find_target, client, url)


# --- reading requests --------------------------------------------------------------------------------------------
_RESPONSES_PARAMS: Mapping[str, tuple[str, int]] = {
    "max_output_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, requests.INT),
    "temperature": (sc.GEN_AI_REQUEST_TEMPERATURE, requests.NUMBER),
    "top_p": (sc.GEN_AI_REQUEST_TOP_P, requests.NUMBER),
    "text": (sc.GEN_AI_OUTPUT_TYPE, requests.TEXT_CONFIG),
    "text_format": (sc.GEN_AI_OUTPUT_TYPE, requests.TEXT_FORMAT),
    "reasoning": (sc.GEN_AI_REQUEST_REASONING_LEVEL, requests.REASONING),
    "service_tier": (sc.OPENAI_REQUEST_SERVICE_TIER, requests.STRING),
}


# --- the Responses API ---------------------------------------------------------------------------------------------
class _ResponsesEndpoint(stainless.Endpoint):
    operation = sc.OPERATION_CHAT
    params = _RESPONSES_PARAMS
    api_type = "responses"

    def fingerprint(self, kwargs: dict[str, Any]) -> str | None:
        return content.messages_fingerprint(kwargs.get("input"), kwargs.get("instructions"))

    def capture_input(self, call: LLMCall, kwargs: dict[str, Any]) -> None:
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str):
            call.capture(sc.GEN_AI_SYSTEM_INSTRUCTIONS, content.system_instructions(instructions))
        call.capture(sc.GEN_AI_INPUT_MESSAGES, content.input_messages(kwargs.get("input")))

    def read(self, call: LLMCall, result: Any) -> None:
        call.set_response(model=result.model, response_id=result.id, finish_reasons=(_responses_finish(result),))
        _read_service_tier(call, result)
        usage = result.usage
        if usage is not None:
            apply_responses_usage(call, usage)
        if self.capture:
            call.capture(
                sc.GEN_AI_OUTPUT_MESSAGES, [content.output_message(result.output_text, _responses_finish(result))]
            )

    def stream_handler(self, call: LLMCall) -> streams.StreamHandler:
        return _ResponsesStreamHandler(self.capture)


def _read_service_tier(call: LLMCall, response: Any) -> None:
    tier = call.service_tier = getattr(response, "service_tier", None)  # its price row: flex, priority...
    if tier:
        call.set_attribute(sc.OPENAI_RESPONSE_SERVICE_TIER, tier)


def _responses_finish(response: Any) -> str:
    status = response.status
    if status == "incomplete":
        details = response.incomplete_details
        reason = getattr(details, "reason", None)
        return "length" if reason == "max_output_tokens" else (reason or "incomplete")
    if status == "failed":
        return "error"
    for item in response.output or ():
        if item.type == "function_call":
            return "tool_calls"
    return "stop" if status == "completed" else (status or "")


_RESPONSE_EVENTS = frozenset(
    {"response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed"}
)


class _ResponsesStreamHandler:
    """Responses API events: the last event carrying a ``response`` (completed/incomplete/failed) has the usage."""

    __slots__ = ("capture", "response")

    def __init__(self, capture: bool) -> None:
        self.capture = capture
        self.response: Any = None

    def on_chunk(self, call: LLMCall, event: Any) -> None:
        if event.type in _RESPONSE_EVENTS:
            self.response = event.response

    def on_finish(self, call: LLMCall) -> None:
        response = self.response
        if response is None:
            return
        final = response.status in ("completed", "incomplete", "failed")
        call.set_response(
            model=response.model,
            response_id=response.id,
            finish_reasons=(_responses_finish(response),) if final else None,
        )
        _read_service_tier(call, response)
        if response.usage is not None:
            apply_responses_usage(call, response.usage)
        if final and self.capture:
            call.capture(
                sc.GEN_AI_OUTPUT_MESSAGES, [content.output_message(response.output_text, _responses_finish(response))]
            )


# SDK classes, bound at instrument time (the module itself imports without the SDK: its host table is shared).
# --- the SDK's classes, bound when the app imports openai ------------------------------------------------------------
def _bind_sdk_types() -> stainless.Sdk:
    global _azure_client_types
    from openai import _types
    from openai._legacy_response import LegacyAPIResponse
    from openai._response import AsyncAPIResponse, BaseAPIResponse
    from openai._streaming import AsyncStream, Stream

    try:
        from openai.lib.azure import BaseAzureClient

        _azure_client_types = (BaseAzureClient,)
    except ImportError:
        _azure_client_types = ()
    return stainless.Sdk(
        stream_types=(Stream, AsyncStream),
        async_stream_types=(AsyncStream,),
        raw_types=(LegacyAPIResponse, BaseAPIResponse),
        legacy_response=LegacyAPIResponse,
        async_response=AsyncAPIResponse,
        sentinel_types=stainless.sentinel_types(_types),
        target=_target,
    )


# --- the .stream() helpers ----------------------------------------------------------------------------------------
def _helper_close(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``ChatCompletionStream.close`` (and the responses one) closes the HTTP response, not the stream it reads
    from: end our proxy's span too, so leaving ``with client.chat.completions.stream(...)`` early ends the span."""
    try:
        return wrapped(*args, **kwargs)
    finally:
        raw = getattr(instance, "_raw_stream", None)
        if isinstance(raw, streams.SyncStreamProxy):
            try:
                raw.close()
            except Exception:
                _log.debug("promptpulse: closing a helper stream failed", exc_info=True)


def _async_helper_close(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    async def run() -> Any:
        try:
            return await wrapped(*args, **kwargs)
        finally:
            raw = getattr(instance, "_raw_stream", None)
            if isinstance(raw, streams.AsyncStreamProxy):
                try:
                    await raw.close()
                except Exception:
                    _log.debug("promptpulse: closing a helper stream failed", exc_info=True)

    return run()


_HELPER_CLOSES: tuple[tuple[str, str, Any], ...] = (
    ("openai.lib.streaming.chat._completions", "ChatCompletionStream.close", _helper_close),
    ("openai.lib.streaming.chat._completions", "AsyncChatCompletionStream.close", _async_helper_close),
    ("openai.lib.streaming.responses._responses", "ResponseStream.close", _helper_close),
    ("openai.lib.streaming.responses._responses", "AsyncResponseStream.close", _async_helper_close),
)


# --- the instrumentor ------------------------------------------------------------------------------------------------
_CHAT, _COMPLETIONS, _EMBEDDINGS = stainless.ChatEndpoint, stainless.CompletionsEndpoint, stainless.EmbeddingsEndpoint
_RESPONSES = _ResponsesEndpoint

# (module, method, endpoint class, async). Classes are named through the package that re-exports them, which every
# supported version has (1.x's chat/completions.py became a package in 1.6x; the class is the same object).
_METHODS: tuple[tuple[str, str, type[stainless.Endpoint], bool], ...] = (
    ("openai.resources.chat.completions", "Completions.create", _CHAT, False),
    ("openai.resources.chat.completions", "Completions.parse", _CHAT, False),
    ("openai.resources.chat.completions", "AsyncCompletions.create", _CHAT, True),
    ("openai.resources.chat.completions", "AsyncCompletions.parse", _CHAT, True),
    ("openai.resources.completions", "Completions.create", _COMPLETIONS, False),
    ("openai.resources.completions", "AsyncCompletions.create", _COMPLETIONS, True),
    ("openai.resources.embeddings", "Embeddings.create", _EMBEDDINGS, False),
    ("openai.resources.embeddings", "AsyncEmbeddings.create", _EMBEDDINGS, True),
    ("openai.resources.responses.responses", "Responses.create", _RESPONSES, False),
    ("openai.resources.responses.responses", "Responses.parse", _RESPONSES, False),
    ("openai.resources.responses.responses", "AsyncResponses.create", _RESPONSES, True),
    ("openai.resources.responses.responses", "AsyncResponses.parse", _RESPONSES, True),
    ("openai.resources.beta.responses.responses", "Responses.create", _RESPONSES, False),
    ("openai.resources.beta.responses.responses", "AsyncResponses.create", _RESPONSES, True),
)
# Newer than the oldest supported version (chat parse left beta in 1.9x; responses parse came after create): missing
# is no warning. A module missing altogether (responses before 1.66) is never imported, so never patched.
OPTIONAL = frozenset((module, name) for module, name, _, _ in _METHODS if name.endswith(".parse") or ".beta." in module)


class OpenAIInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_openai`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "openai"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        patches = stainless.sdk_patches(telemetry, _bind_sdk_types(), _METHODS, "openai", OPTIONAL)
        patches.extend(patching.Patch(module, name, wrapper) for module, name, wrapper in _HELPER_CLOSES)
        return patches
