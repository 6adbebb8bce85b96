"""Ollama instrumentation: one contract-1 span per ``chat``/``generate``/``embed`` of the ``ollama`` SDK.

``gen_ai.provider.name`` is ``ollama`` (a local server or Ollama's cloud). Usage is Ollama's ``prompt_eval_count``
(input) and ``eval_count`` (output), read from the response or, streamed, from the final ``done`` chunk. Ollama
runs models locally, so the price table prices every ``ollama`` model at 0 (one ``ollama,*`` row): cost is a
recorded 0, not missing. (Models Ollama proxies to a paid cloud are not priced apart.)

Wrapped: ``Client``/``AsyncClient`` ``chat``, ``generate``, ``embed``; the module-level ``ollama.chat`` & co.,
which are bound methods of a default client taken at import, are re-bound while instrumented. A sync stream is a
generator that sends the request on its first ``next()``: an HTTP error then surfaces from the iteration and ends
the span as an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from promptpulse.instrumentation import common, patching, streams, wrappers
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import content, requests, targets
from promptpulse.instrumentation.spans import LLMCall, Telemetry

_log = logging.getLogger(__name__)

_INSTRUMENTS = ("ollama >= 0.4",)

# options key → (attribute, kind)
_OPTIONS: Mapping[str, tuple[str, int]] = {
    "num_predict": (sc.GEN_AI_REQUEST_MAX_TOKENS, requests.INT),
    "temperature": (sc.GEN_AI_REQUEST_TEMPERATURE, requests.NUMBER),
    "top_p": (sc.GEN_AI_REQUEST_TOP_P, requests.NUMBER),
    "top_k": (sc.GEN_AI_REQUEST_TOP_K, requests.NUMBER),
    "seed": (sc.GEN_AI_REQUEST_SEED, requests.INT),
    "stop": (sc.GEN_AI_REQUEST_STOP_SEQUENCES, requests.STOP),
    "frequency_penalty": (sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, requests.NUMBER),
    "presence_penalty": (sc.GEN_AI_REQUEST_PRESENCE_PENALTY, requests.NUMBER),
}


def _request_attributes(options: Any, fmt: Any) -> dict[str, Any] | None:
    if options is not None and not isinstance(options, Mapping):  # ollama.Options
        options = {k: v for k, v in vars(options).items() if v is not None}
    attrs = requests.request_attributes(options, _OPTIONS) if options else {}
    if fmt == "json" or isinstance(fmt, Mapping):
        attrs[sc.GEN_AI_OUTPUT_TYPE] = "json"
    return attrs or None


def _apply_usage(call: LLMCall, response: Any) -> None:
    prompt, output = response.prompt_eval_count, getattr(response, "eval_count", None)
    if prompt is not None or output is not None:
        call.set_usage(input_tokens=prompt or 0, output_tokens=output or 0)


def _read_final(call: LLMCall, response: Any) -> None:
    reason = response.done_reason
    call.set_response(model=response.model, finish_reasons=(reason,) if reason else None)
    _apply_usage(call, response)


class _StreamHandler:
    """Chunks carry text; the last (``done``) one carries the model, done_reason and the counts."""

    __slots__ = ("chat", "final", "texts")

    def __init__(self, capture: bool, *, chat: bool) -> None:
        self.chat = chat
        self.final: Any = None
        self.texts: list[str] | None = [] if capture else None

    def on_chunk(self, call: LLMCall, chunk: Any) -> None:
        if chunk.done:
            self.final = chunk
        if self.texts is not None:
            text = chunk.message.content if self.chat else chunk.response
            if text:
                self.texts.append(text)

    def on_finish(self, call: LLMCall) -> None:
        if self.final is not None:
            _read_final(call, self.final)
        if self.texts is not None:
            reason = self.final.done_reason if self.final is not None else None
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_message("".join(self.texts), reason)])


class _Endpoint:
    operation = sc.OPERATION_CHAT
    chat = True

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        host, port = targets.host_port(instance._client.base_url)
        model = requests.arg(args, kwargs, 0, "model")
        call = telemetry.start(
            self.operation,
            sc.PROVIDER_OLLAMA,
            model if isinstance(model, str) else "",
            stream=kwargs.get("stream") is True,
            server_address=host,
            server_port=port,
            attributes=_request_attributes(kwargs.get("options"), kwargs.get("format")),
            fingerprint=self.fingerprint(args, kwargs),
        )
        if telemetry.capture_content:
            self.capture_input(call, args, kwargs)
        return call

    def fingerprint(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        return content.messages_fingerprint(requests.arg(args, kwargs, 1, "messages"))

    def capture_input(self, call: LLMCall, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        call.capture(sc.GEN_AI_INPUT_MESSAGES, content.input_messages(requests.arg(args, kwargs, 1, "messages")))

    def read(self, call: LLMCall, result: Any) -> None:
        _read_final(call, result)
        if self.telemetry.capture_content:
            call.capture(sc.GEN_AI_OUTPUT_MESSAGES, [content.output_message(self.text_of(result), result.done_reason)])

    def text_of(self, result: Any) -> str | None:
        return result.message.content

    def finish(self, call: LLMCall, result: Any) -> Any:
        if call.stream:
            handler = _StreamHandler(self.telemetry.capture_content, chat=self.chat)
            if hasattr(result, "__anext__") or hasattr(result, "__next__"):
                return streams.proxy(result, call, handler)
        self.read(call, result)
        call.end()
        return result


class _GenerateEndpoint(_Endpoint):
    operation = sc.OPERATION_TEXT_COMPLETION
    chat = False

    def fingerprint(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        system, prompt = kwargs.get("system"), requests.arg(args, kwargs, 1, "prompt")
        return content.template_fingerprint(
            system if isinstance(system, str) else None, prompt if isinstance(prompt, str) else None
        )

    def capture_input(self, call: LLMCall, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        system = kwargs.get("system")
        if isinstance(system, str) and system:
            call.capture(sc.GEN_AI_SYSTEM_INSTRUCTIONS, content.system_instructions(system))
        prompt = requests.arg(args, kwargs, 1, "prompt")
        if isinstance(prompt, str):
            call.capture(sc.GEN_AI_INPUT_MESSAGES, content.input_messages(prompt))

    def text_of(self, result: Any) -> str | None:
        return result.response


class _EmbedEndpoint(_Endpoint):
    operation = sc.OPERATION_EMBEDDINGS

    def fingerprint(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        return None

    def capture_input(self, call: LLMCall, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        pass

    def read(self, call: LLMCall, result: Any) -> None:
        call.set_response(model=result.model)
        if result.prompt_eval_count is not None:
            call.set_usage(input_tokens=result.prompt_eval_count)
        embeddings = result.embeddings
        if embeddings:
            call.set_attribute(sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, len(embeddings[0]))


_METHODS: tuple[tuple[str, type[_Endpoint], bool], ...] = (
    ("Client.chat", _Endpoint, False),
    ("Client.generate", _GenerateEndpoint, False),
    ("Client.embed", _EmbedEndpoint, False),
    ("AsyncClient.chat", _Endpoint, True),
    ("AsyncClient.generate", _GenerateEndpoint, True),
    ("AsyncClient.embed", _EmbedEndpoint, True),
)
_MODULE_FUNCTIONS = ("chat", "generate", "embed")


def _rebind_module_functions() -> None:
    """``ollama.chat`` is ``ollama._client.chat`` taken at import: take it again, so it is (un)wrapped too."""
    try:
        import ollama

        default = getattr(ollama, "_client", None)
        if default is None:
            return
        for name in _MODULE_FUNCTIONS:
            current = getattr(ollama, name, None)
            if getattr(current, "__self__", None) is default:  # still the default client's; not the app's own
                setattr(ollama, name, getattr(default, name))
    except Exception:
        _log.debug("promptpulse: could not re-bind ollama's module functions", exc_info=True)


class OllamaInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_ollama`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "ollama"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        patches = []
        for name, endpoint_cls, is_async in _METHODS:
            make = wrappers.async_wrapper if is_async else wrappers.sync_wrapper
            patches.append(patching.Patch("ollama._client", name, make(telemetry, endpoint_cls(telemetry))))
        return patches

    def _on_sdk_import(self, telemetry: Telemetry, patcher: patching.LazyPatcher) -> None:
        super()._on_sdk_import(telemetry, patcher)  # ollama imports ollama._client: patched by now
        _rebind_module_functions()

    def _uninstrument(self, **kwargs: Any) -> None:
        patcher, self._patcher = self._patcher, None
        if patcher is not None and patcher.revert():
            _rebind_module_functions()
