"""OpenAI instrumentation: one contract-1 span per call of the ``openai`` SDK (3.x, on httpx2).

Wrapped: ``chat.completions.create``/``parse`` (``.stream()`` goes through ``create``), ``completions.create``,
``embeddings.create``, ``responses.create``/``parse`` (``responses.stream()`` goes through ``create``), the beta
responses resource, sync and async. The SDK's retry sleep is hooked to count retries
(``promptpulse.retry.count``). ``with_raw_response`` / ``with_streaming_response`` results are read without taking
the body away from the app: the span ends when the app parses or closes the response.

Where a call went decides ``gen_ai.provider.name``: Azure clients and ``*.openai.azure.com`` are
``azure.ai.openai``; OpenAI-compatible servers are told apart by host (``PROVIDER_BY_HOST``, reusable through
``provider_for_host``); anything unknown (vLLM, proxies) is ``openai``.

The hot path reads the SDK's pydantic objects attribute by attribute: no ``model_dump``, no JSON, and the request
attributes are built from the keyword arguments the app actually passed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from promptpulse.instrumentation import common, patching, raw, streams, wrappers
from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.spans import LLMCall, Telemetry

_log = logging.getLogger(__name__)

_INSTRUMENTS = ("openai >= 1.0",)

# --- where a call went ------------------------------------------------------------------------------------------
# Exact host → gen_ai.provider.name. Shared: other modules (and the processor) may import this table.
PROVIDER_BY_HOST: Mapping[str, str] = {
    "api.openai.com": sc.PROVIDER_OPENAI,
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.together.xyz": "together_ai",
    "api.together.ai": "together_ai",
    "api.mistral.ai": "mistral_ai",
    "openrouter.ai": "openrouter",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.fireworks.ai": "fireworks_ai",
    "api.cohere.ai": "cohere",
    "api.cohere.com": "cohere",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.anthropic.com": sc.PROVIDER_ANTHROPIC,
}
# Host suffix → provider, for hosts that carry a tenant or region.
PROVIDER_BY_HOST_SUFFIX: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", sc.PROVIDER_AZURE_OPENAI),
    (".cognitiveservices.azure.com", sc.PROVIDER_AZURE_OPENAI),
    (".services.ai.azure.com", "azure.ai.inference"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    (".amazonaws.com", "aws.bedrock"),  # bedrock-runtime.<region>.amazonaws.com, bedrock-mantle…
)
# Well-known local servers by port (loopback hosts only).
PROVIDER_BY_LOCAL_PORT: Mapping[int, str] = {11434: "ollama"}
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0", "host.docker.internal"})
# The SDK's own provider plug-ins (openai.providers.*) → provider.
_SDK_PROVIDER_NAMES: Mapping[str, str] = {"bedrock": "aws.bedrock", "vertex": "gcp.vertex_ai"}


def provider_for_host(host: str | None, port: int | None = None, default: str = sc.PROVIDER_OPENAI) -> str:
    """``gen_ai.provider.name`` for an OpenAI-compatible server at ``host:port``; ``default`` when unknown."""
    if not host:
        return default
    host = host.lower()
    found = PROVIDER_BY_HOST.get(host)
    if found is not None:
        return found
    for suffix, provider in PROVIDER_BY_HOST_SUFFIX:
        if host.endswith(suffix):
            return provider
    if port is not None and host in _LOOPBACK:
        return PROVIDER_BY_LOCAL_PORT.get(port, default)
    return default


# Per base-URL object: (url, provider, host, port). Keyed by id() and checked by identity — hashing an httpx2.URL
# costs more than the rest of a lookup. The URL is kept alive by the entry, so the id cannot be reused meanwhile.
_targets: dict[int, tuple[Any, str, str | None, int | None]] = {}
_azure_client_types: tuple[type, ...] = ()


def host_port(url: Any) -> tuple[str | None, int | None]:
    """Host and port of an httpx/httpx2 URL, the port defaulted from the scheme."""
    port = url.port
    if port is None:
        port = 443 if url.scheme == "https" else 80 if url.scheme == "http" else None
    return url.host or None, port


def _target(client: Any) -> tuple[str, str | None, int | None]:
    url = client._base_url
    entry = _targets.get(id(url))
    if entry is not None and entry[0] is url:
        return entry[1], entry[2], entry[3]
    host, port = host_port(url)
    if _azure_client_types and isinstance(client, _azure_client_types):
        provider = sc.PROVIDER_AZURE_OPENAI
    else:
        runtime = getattr(client, "_provider_runtime", None)
        provider = _SDK_PROVIDER_NAMES.get(getattr(runtime, "name", None) or "") or provider_for_host(host, port)
    if len(_targets) > 256:
        _targets.clear()
    _targets[id(url)] = (url, provider, host, port)
    return provider, host, port


# --- reading requests --------------------------------------------------------------------------------------------
# kwarg → (attribute, kind): kinds normalise the value.
_NUMBER, _INT, _STOP, _RESPONSE_FORMAT, _TEXT_CONFIG, _ENCODING, _TEXT_FORMAT = range(7)
_CHAT_PARAMS: Mapping[str, tuple[str, int]] = {
    "max_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, _INT),
    "max_completion_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, _INT),
    "temperature": (sc.GEN_AI_REQUEST_TEMPERATURE, _NUMBER),
    "top_p": (sc.GEN_AI_REQUEST_TOP_P, _NUMBER),
    "seed": (sc.GEN_AI_REQUEST_SEED, _INT),
    "stop": (sc.GEN_AI_REQUEST_STOP_SEQUENCES, _STOP),
    "frequency_penalty": (sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, _NUMBER),
    "presence_penalty": (sc.GEN_AI_REQUEST_PRESENCE_PENALTY, _NUMBER),
    "n": (sc.GEN_AI_REQUEST_CHOICE_COUNT, _INT),
    "response_format": (sc.GEN_AI_OUTPUT_TYPE, _RESPONSE_FORMAT),
}
_RESPONSES_PARAMS: Mapping[str, tuple[str, int]] = {
    "max_output_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, _INT),
    "temperature": (sc.GEN_AI_REQUEST_TEMPERATURE, _NUMBER),
    "top_p": (sc.GEN_AI_REQUEST_TOP_P, _NUMBER),
    "text": (sc.GEN_AI_OUTPUT_TYPE, _TEXT_CONFIG),
    "text_format": (sc.GEN_AI_OUTPUT_TYPE, _TEXT_FORMAT),
}
_EMBEDDINGS_PARAMS: Mapping[str, tuple[str, int]] = {
    "encoding_format": (sc.GEN_AI_REQUEST_ENCODING_FORMATS, _ENCODING),
    "dimensions": (sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, _INT),
}


def _output_type(fmt: Any) -> str | None:
    if isinstance(fmt, Mapping):
        kind = fmt.get("type")
        if kind in ("json_object", "json_schema"):
            return "json"
        return "text" if kind == "text" else None
    if isinstance(fmt, type):  # a pydantic model for .parse()
        return "json"
    return None


def _request_attributes(
    kwargs: Mapping[str, Any], params: Mapping[str, tuple[str, int]], sentinels: tuple[type, ...] = ()
) -> dict[str, Any]:
    """Only what the app passed: the loop runs over its (few) keyword arguments, not over every known setting.
    ``sentinels``: the SDK's Omit/NotGiven types (values of these types were not passed)."""
    attrs: dict[str, Any] = {}
    for key, value in kwargs.items():
        spec = params.get(key)
        if spec is None or value is None or type(value) in sentinels:
            continue
        attr, kind = spec
        if kind == _NUMBER:
            if isinstance(value, (int, float)):
                attrs[attr] = value
        elif kind == _INT:
            if isinstance(value, int):
                attrs[attr] = value
        elif kind == _STOP:
            if isinstance(value, str):
                attrs[attr] = (value,)
            elif isinstance(value, list | tuple):
                attrs[attr] = tuple(str(v) for v in value)
        elif kind == _RESPONSE_FORMAT:
            out = _output_type(value)
            if out:
                attrs[attr] = out
        elif kind == _TEXT_CONFIG:
            out = _output_type(value.get("format")) if isinstance(value, Mapping) else None
            if out:
                attrs[attr] = out
        elif kind == _TEXT_FORMAT:
            attrs[attr] = "json"
        elif kind == _ENCODING and isinstance(value, str):
            attrs[attr] = (value,)
    return attrs


def _get(item: Any, key: str) -> Any:
    # type() first: messages are usually plain dicts, and an ABC isinstance costs a Python-level __instancecheck__.
    if type(item) is dict or isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def _text_of(content: Any) -> str | None:
    """The text of a message's content: a string, or the first text part of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        for part in content:
            if isinstance(part, str):
                return part
            text = _get(part, "text")
            if isinstance(text, str):
                return text
    return None


def _messages_fingerprint(messages: Any, instructions: Any = None) -> str | None:
    """Fingerprint of the system/developer instructions, else of the first message. Never iterates a one-shot
    iterable the SDK still has to read (only lists and tuples are looked into)."""
    if isinstance(instructions, str) and instructions:
        return fp.fingerprint(instructions)
    if isinstance(messages, str):
        template = fp.template_of(None, messages)
        return fp.fingerprint(template) if template else None
    if not isinstance(messages, list | tuple) or not messages:
        return None
    for message in messages:
        plain = type(message) is dict  # the usual case, without a call per key
        if (message.get("role") if plain else _get(message, "role")) in ("system", "developer"):
            content = message.get("content") if plain else _get(message, "content")
            text = content if type(content) is str else _text_of(content)
            if text:
                return fp.fingerprint(text)
            break
    template = fp.template_of(None, _text_of(_get(messages[0], "content")))
    return fp.fingerprint(template) if template else None


def _prompt_fingerprint(prompt: Any) -> str | None:
    if isinstance(prompt, str):
        template = fp.template_of(None, prompt)
        return fp.fingerprint(template) if template else None
    if isinstance(prompt, list | tuple) and prompt and isinstance(prompt[0], str):
        template = fp.template_of(None, prompt[0])
        return fp.fingerprint(template) if template else None
    return None


# --- content capture (opt-in; off the hot path) -------------------------------------------------------------------
def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list | tuple):
        for part in content:
            text = part if isinstance(part, str) else _get(part, "text")
            if isinstance(text, str):
                parts.append({"type": "text", "content": text})
            else:
                parts.append({"type": str(_get(part, "type") or "unknown")})
    return parts


def _input_messages(messages: Any) -> list[dict[str, Any]] | None:
    if isinstance(messages, str):
        return [{"role": "user", "parts": _parts(messages)}]
    if not isinstance(messages, list | tuple):
        return None
    out = []
    for message in messages:
        if isinstance(message, str):
            out.append({"role": "user", "parts": _parts(message)})
            continue
        parts = _parts(_get(message, "content"))
        for call in _get(message, "tool_calls") or ():
            function = _get(call, "function")
            parts.append(
                {
                    "type": "tool_call",
                    "id": _get(call, "id"),
                    "name": _get(function, "name"),
                    "arguments": _get(function, "arguments"),
                }
            )
        role = _get(message, "role") or _get(message, "type") or "user"
        entry: dict[str, Any] = {"role": str(role), "parts": parts}
        if role == "tool":
            entry["parts"] = [{"type": "tool_call_response", "id": _get(message, "tool_call_id"), "response": parts}]
        out.append(entry)
    return out


def _output_message(text: str | None, finish_reason: str | None, tool_calls: Any = None) -> dict[str, Any]:
    parts = _parts(text)
    for call in tool_calls or ():
        function = _get(call, "function")
        parts.append(
            {
                "type": "tool_call",
                "id": _get(call, "id"),
                "name": _get(function, "name"),
                "arguments": _get(function, "arguments"),
            }
        )
    return {"role": "assistant", "parts": parts, "finish_reason": finish_reason or ""}


# --- reading usage ------------------------------------------------------------------------------------------------
def _apply_usage(call: LLMCall, input_tokens: Any, output_tokens: Any, input_details: Any, output_details: Any) -> None:
    cache_read = cache_write = reasoning = None
    if input_details is not None:
        cache_read = input_details.cached_tokens
        cache_write = getattr(input_details, "cache_write_tokens", None)
    if output_details is not None:
        reasoning = output_details.reasoning_tokens
    call.set_usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_creation_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def _apply_completion_usage(call: LLMCall, usage: Any) -> None:
    """Chat/completions usage: prompt_tokens already includes cached tokens (contract 1's input_tokens)."""
    _apply_usage(
        call, usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details, usage.completion_tokens_details
    )


def _apply_responses_usage(call: LLMCall, usage: Any) -> None:
    _apply_usage(call, usage.input_tokens, usage.output_tokens, usage.input_tokens_details, usage.output_tokens_details)


def _apply_usage_dict(call: LLMCall, usage: Any) -> None:
    """Usage from a JSON body (raw responses the app read as bytes/JSON), either API's shape."""
    if not isinstance(usage, Mapping):
        return
    if "prompt_tokens" in usage:
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        call.set_usage(
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            cache_read_tokens=prompt_details.get("cached_tokens"),
            cache_creation_tokens=prompt_details.get("cache_write_tokens"),
            reasoning_tokens=completion_details.get("reasoning_tokens"),
        )
    elif "input_tokens" in usage:
        input_details = usage.get("input_tokens_details") or {}
        output_details = usage.get("output_tokens_details") or {}
        call.set_usage(
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            cache_read_tokens=input_details.get("cached_tokens"),
            cache_creation_tokens=input_details.get("cache_write_tokens"),
            reasoning_tokens=output_details.get("reasoning_tokens"),
        )


def _read_json_body(call: LLMCall, body: Any) -> None:
    if not isinstance(body, Mapping):
        return
    model = body.get("model")
    call.set_response(
        model=model if isinstance(model, str) else None,
        response_id=body.get("id") if isinstance(body.get("id"), str) else None,
    )
    _apply_usage_dict(call, body.get("usage"))


# --- endpoints ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Sdk:
    """What the endpoints need to know of a Stainless-generated SDK: openai's, or a clone's such as groq's."""

    stream_types: tuple[type, ...]
    async_stream_types: tuple[type, ...]
    raw_types: tuple[type, ...]  # with_raw_response / with_streaming_response results
    legacy_response: type | None  # openai's LegacyAPIResponse (body already read); clones may have none
    async_response: type | None
    sentinel_types: tuple[type, ...]  # Omit / NotGiven
    target: Callable[[Any], tuple[str, str | None, int | None]]  # client -> (provider, host, port)


class _Endpoint:
    """Shared start/finish logic; subclasses say how to read the request and the response."""

    operation = sc.OPERATION_CHAT
    params: Mapping[str, tuple[str, int]] = _CHAT_PARAMS

    def __init__(self, telemetry: Telemetry, sdk: Sdk) -> None:
        self.telemetry = telemetry
        self.sdk = sdk

    @property
    def capture(self) -> bool:
        return self.telemetry.capture_content

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        sdk = self.sdk
        provider, host, port = sdk.target(instance._client)
        model = kwargs.get("model")
        stream = kwargs.get("stream") is True
        attrs = _request_attributes(kwargs, self.params, sdk.sentinel_types) if len(kwargs) > 2 else None
        call = LLMCall(
            telemetry,
            self.operation,
            provider,
            model if isinstance(model, str) else "",
            stream=stream,
            server_address=host,
            server_port=port,
            attributes=attrs,
            fingerprint=self.fingerprint(kwargs),
        )
        if telemetry.capture_content:
            self.capture_input(call, kwargs)
        return call

    def fingerprint(self, kwargs: dict[str, Any]) -> str | None:
        return None

    def capture_input(self, call: LLMCall, kwargs: dict[str, Any]) -> None:
        pass

    def read(self, call: LLMCall, result: Any) -> None:
        """Read a parsed, non-streamed result into the call."""

    def stream_handler(self, call: LLMCall) -> streams.StreamHandler | None:
        return None

    def finish(self, call: LLMCall, result: Any) -> Any:
        sdk = self.sdk
        if isinstance(result, sdk.stream_types):
            return self.wrap_stream(call, result)
        if isinstance(result, sdk.raw_types):
            return self.finish_raw(call, result)
        self.read(call, result)
        call.end()
        return result

    def wrap_stream(self, call: LLMCall, stream: Any) -> Any:
        handler = self.stream_handler(call)
        if handler is None:
            call.end()
            return stream
        if isinstance(stream, self.sdk.async_stream_types):
            return streams.AsyncStreamProxy(stream, call, handler)
        return streams.SyncStreamProxy(stream, call, handler)

    # with_raw_response / with_streaming_response: raw.RawReader
    def is_stream(self, result: Any) -> bool:
        return isinstance(result, self.sdk.stream_types)

    def read_json(self, call: LLMCall, body: Any) -> None:
        _read_json_body(call, body)

    def finish_raw(self, call: LLMCall, response: Any) -> Any:
        legacy, async_response = self.sdk.legacy_response, self.sdk.async_response
        return raw.finish_raw(
            call,
            response,
            self,
            sync_parse=legacy is not None and isinstance(response, legacy),
            is_async=async_response is not None and isinstance(response, async_response),
        )


class _ChatEndpoint(_Endpoint):
    operation = sc.OPERATION_CHAT
    params = _CHAT_PARAMS

    def fingerprint(self, kwargs: dict[str, Any]) -> str | None:
        return _messages_fingerprint(kwargs.get("messages"))

    def capture_input(self, call: LLMCall, kwargs: dict[str, Any]) -> None:
        call.capture(sc.GEN_AI_INPUT_MESSAGES, _input_messages(kwargs.get("messages")))

    def read(self, call: LLMCall, result: Any) -> None:
        choices = result.choices
        call.set_response(model=result.model, response_id=result.id, finish_reasons=_finish_reasons(choices))
        call.service_tier = getattr(result, "service_tier", None)  # its price row: flex, priority...
        usage = result.usage
        if usage is not None:
            _apply_completion_usage(call, usage)
        if self.telemetry.capture_content:
            call.capture(
                sc.GEN_AI_OUTPUT_MESSAGES,
                [_output_message(c.message.content, c.finish_reason, c.message.tool_calls) for c in choices],
            )

    def stream_handler(self, call: LLMCall) -> streams.StreamHandler:
        return _ChoicesStreamHandler(self.capture, chat=True)


def _finish_reasons(choices: Any) -> tuple[str, ...] | None:
    if not choices:
        return None
    if len(choices) == 1:  # the usual case, without a list comprehension's frame
        return (choices[0].finish_reason or "",)
    return tuple([c.finish_reason or "" for c in choices])


class _CompletionsEndpoint(_Endpoint):
    operation = sc.OPERATION_TEXT_COMPLETION
    params = _CHAT_PARAMS

    def fingerprint(self, kwargs: dict[str, Any]) -> str | None:
        return _prompt_fingerprint(kwargs.get("prompt"))

    def capture_input(self, call: LLMCall, kwargs: dict[str, Any]) -> None:
        prompt = kwargs.get("prompt")
        if isinstance(prompt, str):
            call.capture(sc.GEN_AI_INPUT_MESSAGES, _input_messages(prompt))

    def read(self, call: LLMCall, result: Any) -> None:
        choices = result.choices
        call.set_response(
            model=result.model,
            response_id=result.id,
            finish_reasons=[c.finish_reason or "" for c in choices] if choices else None,
        )
        usage = result.usage
        if usage is not None:
            _apply_completion_usage(call, usage)
        if self.capture:
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [_output_message(c.text, c.finish_reason) for c in choices])

    def stream_handler(self, call: LLMCall) -> streams.StreamHandler:
        return _ChoicesStreamHandler(self.capture, chat=False)


class _EmbeddingsEndpoint(_Endpoint):
    operation = sc.OPERATION_EMBEDDINGS
    params = _EMBEDDINGS_PARAMS

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        provider, host, port = self.sdk.target(instance._client)
        model = kwargs.get("model")
        return telemetry.start(
            self.operation,
            provider,
            model if isinstance(model, str) else "",
            server_address=host,
            server_port=port,
            attributes=_request_attributes(kwargs, self.params, self.sdk.sentinel_types) if len(kwargs) > 2 else None,
        )

    def read(self, call: LLMCall, result: Any) -> None:
        call.set_response(model=result.model)
        usage = result.usage
        if usage is not None:
            call.set_usage(input_tokens=usage.prompt_tokens)


class _ResponsesEndpoint(_Endpoint):
    operation = sc.OPERATION_CHAT
    params = _RESPONSES_PARAMS

    def fingerprint(self, kwargs: dict[str, Any]) -> str | None:
        return _messages_fingerprint(kwargs.get("input"), kwargs.get("instructions"))

    def capture_input(self, call: LLMCall, kwargs: dict[str, Any]) -> None:
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str):
            call.capture(sc.GEN_AI_SYSTEM_INSTRUCTIONS, [{"type": "text", "content": instructions}])
        call.capture(sc.GEN_AI_INPUT_MESSAGES, _input_messages(kwargs.get("input")))

    def read(self, call: LLMCall, result: Any) -> None:
        call.set_response(model=result.model, response_id=result.id, finish_reasons=(_responses_finish(result),))
        call.service_tier = getattr(result, "service_tier", None)
        usage = result.usage
        if usage is not None:
            _apply_responses_usage(call, usage)
        if self.capture:
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [_output_message(result.output_text, _responses_finish(result))])

    def stream_handler(self, call: LLMCall) -> streams.StreamHandler:
        return _ResponsesStreamHandler(self.capture)


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


# --- stream handlers ----------------------------------------------------------------------------------------------
class _ChoicesStreamHandler:
    """Chat and legacy-completions chunks: id/model from the first chunk, finish reasons per choice, usage from the
    final chunk (only sent with ``stream_options={"include_usage": True}``; without it the span says
    ``promptpulse.usage.missing`` — the request is never changed to ask for it)."""

    __slots__ = ("chat", "finish_reasons", "model", "response_id", "texts", "usage")

    apply_usage = staticmethod(_apply_completion_usage)  # a subclass for another SDK's usage object replaces it

    def __init__(self, capture: bool, *, chat: bool) -> None:
        self.chat = chat
        self.response_id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.finish_reasons: dict[int, str] | None = None
        self.texts: dict[int, list[str]] | None = {} if capture else None

    def on_chunk(self, call: LLMCall, chunk: Any) -> None:
        if self.response_id is None and chunk.id:
            self.response_id = chunk.id
        if self.model is None and chunk.model:
            self.model = chunk.model
            call.service_tier = getattr(chunk, "service_tier", None)
        usage = chunk.usage
        if usage is not None:
            self.usage = usage
        texts = self.texts
        for choice in chunk.choices:
            reason = choice.finish_reason
            if reason:
                if self.finish_reasons is None:
                    self.finish_reasons = {}
                self.finish_reasons[choice.index] = reason
            if texts is not None:
                text = choice.delta.content if self.chat else choice.text
                if text:
                    texts.setdefault(choice.index, []).append(text)

    def on_finish(self, call: LLMCall) -> None:
        reasons = self.finish_reasons
        call.set_response(
            model=self.model,
            response_id=self.response_id,
            finish_reasons=[reasons[i] for i in sorted(reasons)] if reasons else None,
        )
        if self.usage is not None:
            self.apply_usage(call, self.usage)
        if self.texts is not None:
            indexes = sorted(set(self.texts) | set(reasons or ()))
            call.capture(
                sc.GEN_AI_OUTPUT_MESSAGES,
                [_output_message("".join(self.texts.get(i, ())), (reasons or {}).get(i)) for i in indexes],
            )


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
        call.service_tier = getattr(response, "service_tier", None)
        if response.usage is not None:
            _apply_responses_usage(call, response.usage)
        if final and self.capture:
            call.capture(
                sc.GEN_AI_OUTPUT_MESSAGES, [_output_message(response.output_text, _responses_finish(response))]
            )


# SDK classes, bound at instrument time (the module itself imports without the SDK: its host table is shared).
def sentinel_types(types_module: Any) -> tuple[type, ...]:
    return tuple(t for t in (getattr(types_module, "Omit", None), getattr(types_module, "NotGiven", None)) if t)


def _bind_sdk_types() -> Sdk:
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
    return Sdk(
        stream_types=(Stream, AsyncStream),
        async_stream_types=(AsyncStream,),
        raw_types=(LegacyAPIResponse, BaseAPIResponse),
        legacy_response=LegacyAPIResponse,
        async_response=AsyncAPIResponse,
        sentinel_types=sentinel_types(_types),
        target=_target,
    )


# --- retries --------------------------------------------------------------------------------------------------------
def _retry_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The SDK calls ``_sleep_for_retry(retries_taken=n, …)`` before retry n+1: record n+1 on the current call's
    span. Runs only on retries, never on the plain path; works for the async client too (the coroutine is returned
    unawaited)."""
    try:
        if wrappers._active.get():
            retries_taken = kwargs.get("retries_taken")
            if isinstance(retries_taken, int):
                span = trace.get_current_span()
                if span.is_recording():
                    span.set_attribute(sc.PROMPTPULSE_RETRY_COUNT, retries_taken + 1)
    except Exception:
        _log.debug("promptpulse: counting a retry failed", exc_info=True)
    return wrapped(*args, **kwargs)


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
_CHAT, _COMPLETIONS, _EMBEDDINGS = _ChatEndpoint, _CompletionsEndpoint, _EmbeddingsEndpoint
_RESPONSES = _ResponsesEndpoint

# (module, method, endpoint class, async)
_METHODS: tuple[tuple[str, str, type[_Endpoint], bool], ...] = (
    ("openai.resources.chat.completions.completions", "Completions.create", _CHAT, False),
    ("openai.resources.chat.completions.completions", "Completions.parse", _CHAT, False),
    ("openai.resources.chat.completions.completions", "AsyncCompletions.create", _CHAT, True),
    ("openai.resources.chat.completions.completions", "AsyncCompletions.parse", _CHAT, True),
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


def sdk_patches(
    telemetry: Telemetry,
    sdk: Sdk,
    methods: tuple[tuple[str, str, type[_Endpoint], bool], ...],
    package: str,
) -> list[patching.Patch]:
    """Patches for a Stainless SDK (openai's or a clone's): its ``(module, method, endpoint class, async)`` methods,
    one endpoint per class, and the retry hook of ``package``'s base client."""
    endpoints: dict[type[_Endpoint], _Endpoint] = {}
    patches = []
    for module, name, endpoint_cls, is_async in methods:
        endpoint = endpoints.get(endpoint_cls) or endpoints.setdefault(endpoint_cls, endpoint_cls(telemetry, sdk))
        make = wrappers.async_wrapper if is_async else wrappers.sync_wrapper
        patches.append(patching.Patch(module, name, make(telemetry, endpoint)))
    patches.append(patching.Patch(f"{package}._base_client", "SyncAPIClient._sleep_for_retry", _retry_wrapper))
    patches.append(patching.Patch(f"{package}._base_client", "AsyncAPIClient._sleep_for_retry", _retry_wrapper))
    return patches


class OpenAIInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_openai`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "openai"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        patches = sdk_patches(telemetry, _bind_sdk_types(), _METHODS, "openai")
        patches.extend(patching.Patch(module, name, wrapper) for module, name, wrapper in _HELPER_CLOSES)
        return patches
