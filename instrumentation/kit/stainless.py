"""The endpoints of an OpenAI-shaped Stainless SDK — openai's, or a clone's such as groq's: chat completions,
legacy completions and embeddings, their streams, ``with_raw_response``/``with_streaming_response`` (``raw``) and the
retry hook (``retries``). A clone's module gives its classes as an ``Sdk`` and lists its methods; the OpenAI API shape
(``ChoicesStreamHandler``) also serves LiteLLM, whose responses are OpenAI-shaped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from promptpulse.instrumentation import patching, streams, wrappers
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import content, endpoint, raw, requests, retries
from promptpulse.instrumentation.kit.usage import apply_completion_usage, apply_usage_dict
from promptpulse.instrumentation.spans import LLMCall, Telemetry

CHAT_PARAMS: Mapping[str, tuple[str, int]] = {
    "max_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, requests.INT),
    "max_completion_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, requests.INT),
    "temperature": (sc.GEN_AI_REQUEST_TEMPERATURE, requests.NUMBER),
    "top_p": (sc.GEN_AI_REQUEST_TOP_P, requests.NUMBER),
    "seed": (sc.GEN_AI_REQUEST_SEED, requests.INT),
    "stop": (sc.GEN_AI_REQUEST_STOP_SEQUENCES, requests.STOP),
    "frequency_penalty": (sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, requests.NUMBER),
    "presence_penalty": (sc.GEN_AI_REQUEST_PRESENCE_PENALTY, requests.NUMBER),
    "n": (sc.GEN_AI_REQUEST_CHOICE_COUNT, requests.INT),
    "response_format": (sc.GEN_AI_OUTPUT_TYPE, requests.RESPONSE_FORMAT),
    "reasoning_effort": (sc.GEN_AI_REQUEST_REASONING_LEVEL, requests.STRING),
    "service_tier": (sc.OPENAI_REQUEST_SERVICE_TIER, requests.STRING),
}

EMBEDDINGS_PARAMS: Mapping[str, tuple[str, int]] = {
    "encoding_format": (sc.GEN_AI_REQUEST_ENCODING_FORMATS, requests.ENCODING),
    "dimensions": (sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, requests.INT),
}


def prompt_fingerprint(prompt: Any) -> str | None:
    """Legacy completions: the prompt string, or the first of a list of them."""
    if isinstance(prompt, list | tuple) and prompt:
        prompt = prompt[0]
    return content.template_fingerprint(None, prompt) if isinstance(prompt, str) else None


def read_json_body(call: LLMCall, body: Any) -> None:
    if not isinstance(body, Mapping):
        return
    model = body.get("model")
    call.set_response(
        model=model if isinstance(model, str) else None,
        response_id=body.get("id") if isinstance(body.get("id"), str) else None,
    )
    apply_usage_dict(call, body.get("usage"))


def take_choice_count(call: LLMCall, kwargs: Mapping[str, Any]) -> None:
    """The request's ``n`` (> 1): a stream then reports a finish reason for each of the n choices, "error" for those it
    was cut before (``ChoicesStreamHandler.on_finish``)."""
    n = kwargs.get("n")
    if type(n) is int and n > 1:
        call.choice_count = n


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


class Endpoint(endpoint.Endpoint):
    """A method of an OpenAI-shaped Stainless SDK: the hooks read its client, its keyword arguments and its result
    types (SDK streams, raw responses); subclasses say how to read the request and the response."""

    operation = sc.OPERATION_CHAT
    params: Mapping[str, tuple[str, int]] = CHAT_PARAMS
    api_type: str | None = None  # openai.api.type: chat_completions / responses

    def __init__(self, telemetry: Telemetry, sdk: Sdk) -> None:
        super().__init__(telemetry)
        self.sdk = sdk

    def target(self, instance: Any) -> tuple[str, str | None, int | None]:
        return self.sdk.target(instance._client)

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        call = super().start(telemetry, instance, args, kwargs)
        take_choice_count(call, kwargs)
        return call

    def streams(self, kwargs: dict[str, Any]) -> bool:
        return kwargs.get("stream") is True

    def attributes(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # Only what the app passed; the common call (model + messages) skips the loop.
        attrs = requests.request_attributes(kwargs, self.params, self.sdk.sentinel_types) if len(kwargs) > 2 else {}
        if self.api_type is not None:
            attrs[sc.OPENAI_API_TYPE] = self.api_type
        return attrs

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
        read_json_body(call, body)

    def finish_raw(self, call: LLMCall, response: Any) -> Any:
        legacy, async_response = self.sdk.legacy_response, self.sdk.async_response
        return raw.finish_raw(
            call,
            response,
            self,
            sync_parse=legacy is not None and isinstance(response, legacy),
            is_async=async_response is not None and isinstance(response, async_response),
        )


class ChatEndpoint(Endpoint):
    operation = sc.OPERATION_CHAT
    params = CHAT_PARAMS
    api_type = "chat_completions"

    def fingerprint(self, kwargs: dict[str, Any]) -> str | None:
        return content.messages_fingerprint(kwargs.get("messages"))

    def capture_input(self, call: LLMCall, kwargs: dict[str, Any]) -> None:
        call.capture(sc.GEN_AI_INPUT_MESSAGES, content.input_messages(kwargs.get("messages")))

    def read(self, call: LLMCall, result: Any) -> None:
        read_chat_completion(call, result, capture=self.telemetry.capture_content)

    def stream_handler(self, call: LLMCall) -> streams.StreamHandler:
        return ChoicesStreamHandler(self.capture, chat=True)


def read_chat_completion(
    call: LLMCall, result: Any, *, capture: bool, apply_usage: Callable[[LLMCall, Any], None] = apply_completion_usage
) -> None:
    """An OpenAI-shaped chat completion (openai's, a clone's, LiteLLM's ``ModelResponse``) into the call."""
    choices = result.choices
    call.set_response(model=result.model, response_id=result.id, finish_reasons=finish_reasons(choices))
    tier = call.service_tier = getattr(result, "service_tier", None)  # its price row: flex, priority...
    if tier:
        call.set_attribute(sc.OPENAI_RESPONSE_SERVICE_TIER, tier)
    call.set_attribute(sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT, getattr(result, "system_fingerprint", None) or None)
    usage = getattr(result, "usage", None)
    if usage is not None:
        apply_usage(call, usage)
    if capture:
        call.capture(
            sc.GEN_AI_OUTPUT_MESSAGES,
            [content.output_message(c.message.content, c.finish_reason, c.message.tool_calls) for c in choices],
        )


def finish_reasons(choices: Any) -> tuple[str, ...] | None:
    if not choices:
        return None
    if len(choices) == 1:  # the usual case, without a list comprehension's frame
        return (choices[0].finish_reason or "",)
    return tuple([c.finish_reason or "" for c in choices])


class CompletionsEndpoint(Endpoint):
    operation = sc.OPERATION_TEXT_COMPLETION
    params = CHAT_PARAMS

    def fingerprint(self, kwargs: dict[str, Any]) -> str | None:
        return prompt_fingerprint(kwargs.get("prompt"))

    def capture_input(self, call: LLMCall, kwargs: dict[str, Any]) -> None:
        prompt = kwargs.get("prompt")
        if isinstance(prompt, str):
            call.capture(sc.GEN_AI_INPUT_MESSAGES, content.input_messages(prompt))

    def read(self, call: LLMCall, result: Any) -> None:
        choices = result.choices
        call.set_response(
            model=result.model,
            response_id=result.id,
            finish_reasons=[c.finish_reason or "" for c in choices] if choices else None,
        )
        usage = result.usage
        if usage is not None:
            apply_completion_usage(call, usage)
        if self.capture:
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_message(c.text, c.finish_reason) for c in choices])

    def stream_handler(self, call: LLMCall) -> streams.StreamHandler:
        return ChoicesStreamHandler(self.capture, chat=False)


class EmbeddingsEndpoint(Endpoint):
    operation = sc.OPERATION_EMBEDDINGS
    params = EMBEDDINGS_PARAMS

    def read(self, call: LLMCall, result: Any) -> None:
        call.set_response(model=result.model)
        usage = result.usage
        if usage is not None:
            call.set_usage(input_tokens=usage.prompt_tokens)


class ChoicesStreamHandler:
    """Chat and legacy-completions chunks: id/model from the first chunk, finish reasons per choice, usage from the
    final chunk (only sent with ``stream_options={"include_usage": True}``; without it the span says
    ``promptpulse.usage.missing`` — the request is never changed to ask for it)."""

    __slots__ = ("chat", "finish_reasons", "model", "response_id", "texts", "tools", "usage")

    apply_usage = staticmethod(apply_completion_usage)  # a subclass for another SDK's usage object replaces it

    def __init__(self, capture: bool, *, chat: bool) -> None:
        self.chat = chat
        self.response_id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.finish_reasons: dict[int, str] | None = None
        self.texts: dict[int, list[str]] | None = {} if capture else None
        # Streamed tool calls by (choice, tool index), when content is captured: id, name, arguments as they arrive.
        self.tools: dict[tuple[int, int], dict[str, Any]] | None = {} if capture else None

    def on_chunk(self, call: LLMCall, chunk: Any) -> None:
        if self.response_id is None and chunk.id:
            self.response_id = chunk.id
        if self.model is None and chunk.model:
            self.model = chunk.model
            tier = call.service_tier = getattr(chunk, "service_tier", None)
            if tier:
                call.set_attribute(sc.OPENAI_RESPONSE_SERVICE_TIER, tier)
            fingerprint = getattr(chunk, "system_fingerprint", None)
            call.set_attribute(sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT, fingerprint or None)
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
                if self.chat and self.tools is not None:
                    self._take_tool_calls(choice)

    def _take_tool_calls(self, choice: Any) -> None:
        for delta in getattr(choice.delta, "tool_calls", None) or ():
            key = (choice.index, getattr(delta, "index", 0) or 0)
            tool = self.tools.setdefault(key, {"id": None, "function": {"name": None, "arguments": ""}})  # type: ignore[union-attr]
            function = getattr(delta, "function", None)
            if getattr(delta, "id", None):
                tool["id"] = delta.id
            if getattr(function, "name", None):
                tool["function"]["name"] = function.name
            if getattr(function, "arguments", None):
                tool["function"]["arguments"] += function.arguments

    def on_finish(self, call: LLMCall) -> None:
        reasons = self.finish_reasons
        # The request's n, or more if the provider sent more; indexes are 0..count-1.
        count = max(call.choice_count, max(reasons) + 1) if reasons else call.choice_count
        if reasons and len(reasons) == count:  # every choice finished: the usual case
            call.set_response(
                model=self.model, response_id=self.response_id, finish_reasons=[reasons[i] for i in sorted(reasons)]
            )
        else:  # some choice did not: "error" for it if the stream was cut short (LLMCall.end decides)
            call.set_response(model=self.model, response_id=self.response_id)
            call.set_choice_finish_reasons([(reasons or {}).get(i) for i in range(count)])
        if self.usage is not None:
            self.apply_usage(call, self.usage)
        if self.texts is not None:
            tools = self.tools or {}
            indexes = sorted(set(self.texts) | set(reasons or ()) | {i for i, _ in tools})
            messages = []
            for i in indexes:
                calls = [tools[key] for key in sorted(tools) if key[0] == i]
                text = "".join(self.texts[i]) if i in self.texts else None if calls else ""
                messages.append(content.output_message(text, (reasons or {}).get(i), calls))
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, messages)


def sentinel_types(types_module: Any) -> tuple[type, ...]:
    return tuple(t for t in (getattr(types_module, "Omit", None), getattr(types_module, "NotGiven", None)) if t)


def sdk_patches(
    telemetry: Telemetry,
    sdk: Sdk,
    methods: tuple[tuple[str, str, type[Endpoint], bool], ...],
    package: str,
    optional: frozenset[tuple[str, str]] = frozenset(),
) -> list[patching.Patch]:
    """Patches for a Stainless SDK (openai's or a clone's): its ``(module, method, endpoint class, async)`` methods,
    one endpoint per class, and the retry hook of ``package``'s base client. ``optional``: the ``(module, method)``
    pairs some supported versions lack (no warning when missing)."""
    endpoints: dict[type[Endpoint], Endpoint] = {}
    patches = []
    for module, name, endpoint_cls, is_async in methods:
        endpoint = endpoints.get(endpoint_cls) or endpoints.setdefault(endpoint_cls, endpoint_cls(telemetry, sdk))
        make = wrappers.async_wrapper if is_async else wrappers.sync_wrapper
        patches.append(patching.Patch(module, name, make(telemetry, endpoint), optional=(module, name) in optional))
    patches.extend(retries.retry_patches(package))
    return patches
