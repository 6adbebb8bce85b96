"""LiteLLM instrumentation: one contract-1 span per ``litellm.completion``/``acompletion``/``embedding`` call.

Which layer owns the span: this one. litellm reaches a provider either through that provider's SDK (openai,
azure, …) or through its own HTTP handlers (anthropic, bedrock, ollama, …), so only the litellm layer sees every call
the same way. The span is current and marked active while litellm runs, so an instrumented SDK underneath
(``OpenAIInstrumentor``) passes through (``wrappers``' rule) — one span per call, never two.

``gen_ai.provider.name`` comes from litellm's own provider resolution (``get_llm_provider``), mapped to the
semantic-convention names (``bedrock`` → ``aws.bedrock``, ``vertex_ai`` → ``gcp.vertex_ai``, …); for litellm's
OpenAI-compatible providers the base URL's host decides, as for the openai SDK (``kit.targets.provider_for_host``).
``gen_ai.request.model`` is the model litellm asks the provider for (``openai/gpt-4o-mini`` → ``gpt-4o-mini``).
Usage is litellm's normalised ``Usage`` (``prompt_tokens`` includes cached tokens for every provider). A stream
reports usage only when the app asked for it (``stream_options={"include_usage": True}``); otherwise the span says
``promptpulse.usage.missing`` — litellm's own token *estimate* is not reported as usage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from promptpulse.instrumentation import common, patching, streams, wrappers
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import content, requests, stainless, targets
from promptpulse.instrumentation.spans import LLMCall, Telemetry

_log = logging.getLogger(__name__)

_INSTRUMENTS = ("litellm >= 1.50",)

# litellm's provider names → gen_ai.provider.name; unlisted names are kept as litellm spells them.
PROVIDER_BY_LITELLM_NAME: Mapping[str, str] = {
    "openai": sc.PROVIDER_OPENAI,
    "text-completion-openai": sc.PROVIDER_OPENAI,
    "custom_openai": sc.PROVIDER_OPENAI,
    "azure": sc.PROVIDER_AZURE_OPENAI,
    "azure_text": sc.PROVIDER_AZURE_OPENAI,
    "azure_ai": "azure.ai.inference",
    "anthropic": sc.PROVIDER_ANTHROPIC,
    "anthropic_text": sc.PROVIDER_ANTHROPIC,
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "sagemaker": "aws.sagemaker",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "text-completion-codestral": "mistral_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "groq": sc.PROVIDER_GROQ,
    "ollama": sc.PROVIDER_OLLAMA,
    "ollama_chat": sc.PROVIDER_OLLAMA,
    "deepseek": sc.PROVIDER_DEEPSEEK,
    "xai": sc.PROVIDER_X_AI,
    "watsonx": "ibm.watsonx.ai",
    "watsonx_text": "ibm.watsonx.ai",
    "perplexity": "perplexity",
}
# litellm providers that are "some OpenAI-compatible server": the host says which.
_OPENAI_COMPATIBLE = frozenset({"openai", "custom_openai", "text-completion-openai"})


def _resolve(model: str, kwargs: Mapping[str, Any]) -> tuple[str, str, str | None, int | None]:
    """(provider, model asked of it, host, port) by litellm's own resolution."""
    from litellm import get_llm_provider

    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    custom = kwargs.get("custom_llm_provider")
    try:
        model, litellm_provider, _, resolved_base = get_llm_provider(
            model=model, custom_llm_provider=custom, api_base=api_base
        )
    except Exception:  # litellm will raise its own error for this call; the span still records it
        litellm_provider, resolved_base = custom or "litellm", api_base
    base = api_base or resolved_base
    host, port = targets.host_port(base if isinstance(base, str) else None)
    if litellm_provider in _OPENAI_COMPATIBLE:
        provider = targets.provider_for_host(host, port, default=sc.PROVIDER_OPENAI)
    else:
        provider = PROVIDER_BY_LITELLM_NAME.get(litellm_provider, litellm_provider)
    return provider, model, host, port


def _apply_usage(call: LLMCall, usage: Any) -> None:
    """litellm's ``Usage``: ``prompt_tokens`` already includes cache reads and writes, for every provider."""
    details = getattr(usage, "prompt_tokens_details", None)
    cache_read = getattr(details, "cached_tokens", None)
    cache_write = getattr(details, "cache_creation_tokens", None) or getattr(details, "cache_write_tokens", None)
    reasoning = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
    call.set_usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cache_read_tokens=cache_read,
        cache_creation_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


class _StreamHandler(stainless.ChoicesStreamHandler):
    """``ModelResponseStream`` chunks: id/model from the first, finish reasons, usage when litellm sends it (read
    leniently; the end is openai's, with litellm's usage: one finish reason per choice of the request's ``n``).

    litellm's stream wrapper passes on the finish reason of one choice only (the first to finish) and drops the other
    choices' finish chunks, so the provider's own chunks are read too (``upstream``, fed by ``_tap_upstream``): a
    choice litellm did not say the end of takes the finish reason the provider sent for it."""

    __slots__ = ("upstream",)

    apply_usage = staticmethod(_apply_usage)

    def __init__(self, capture: bool) -> None:
        super().__init__(capture, chat=True)
        self.finish_reasons = {}
        self.upstream: dict[int, str] = {}

    def take_upstream(self, chunk: Any) -> None:
        """A provider chunk litellm is about to process: an OpenAI-shaped one's finish reasons, by choice index."""
        for choice in getattr(chunk, "choices", None) or ():
            reason, index = getattr(choice, "finish_reason", None), getattr(choice, "index", None)
            if reason and isinstance(reason, str) and type(index) is int:
                self.upstream[index] = reason

    def on_finish(self, call: LLMCall) -> None:
        reasons = self.finish_reasons
        assert reasons is not None
        for index, reason in self.upstream.items():
            reasons.setdefault(index, reason)
        super().on_finish(call)

    def on_chunk(self, call: LLMCall, chunk: Any) -> None:
        if self.response_id is None:
            self.response_id = getattr(chunk, "id", None)
        if self.model is None:
            self.model = getattr(chunk, "model", None)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            if choice.finish_reason:
                self.finish_reasons[choice.index] = choice.finish_reason
            if self.texts is not None:
                text = getattr(choice.delta, "content", None)
                if text:
                    self.texts.setdefault(choice.index, []).append(text)
                self._take_tool_calls(choice)


def _tap_upstream(stream: Any, handler: _StreamHandler) -> None:
    """Let ``handler`` see each provider chunk of litellm's ``CustomStreamWrapper`` before litellm turns it into its
    own (``chunk_creator``, called once per provider chunk on the sync and async paths; shadowed on this stream
    object only). A litellm without that method keeps only the finish reasons litellm passes on."""
    creator = getattr(stream, "chunk_creator", None)
    if not callable(creator):
        return

    def chunk_creator(chunk: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            handler.take_upstream(chunk)
        except Exception:
            _log.debug("promptpulse: could not read a litellm provider chunk", exc_info=True)
        return creator(chunk, *args, **kwargs)

    try:
        stream.chunk_creator = chunk_creator
    except Exception:
        _log.debug("promptpulse: could not follow litellm's provider chunks", exc_info=True)


class _CompletionEndpoint:
    operation = sc.OPERATION_CHAT

    def __init__(self, telemetry: Telemetry, *, is_async: bool) -> None:
        self.telemetry = telemetry
        self.is_async = is_async

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        model = requests.arg(args, kwargs, 0, "model")
        provider, request_model, host, port = _resolve(model if isinstance(model, str) else "", kwargs)
        messages = requests.arg(args, kwargs, 1, "messages")
        call = telemetry.start(
            self.operation,
            provider,
            request_model,
            stream=kwargs.get("stream") is True,
            server_address=host,
            server_port=port,
            attributes=requests.request_attributes(kwargs, stainless.CHAT_PARAMS) or None,
            fingerprint=self.fingerprint(messages),
        )
        stainless.take_choice_count(call, kwargs)
        if telemetry.capture_content:
            call.capture(sc.GEN_AI_INPUT_MESSAGES, content.input_messages(messages))
        return call

    def fingerprint(self, messages: Any) -> str | None:
        return content.messages_fingerprint(messages)

    def read(self, call: LLMCall, result: Any) -> None:
        stainless.read_chat_completion(call, result, capture=self.telemetry.capture_content, apply_usage=_apply_usage)

    def finish(self, call: LLMCall, result: Any) -> Any:
        if call.stream and hasattr(result, "__iter__" if not self.is_async else "__aiter__"):
            handler = _StreamHandler(self.telemetry.capture_content)
            if call.choice_count > 1:
                _tap_upstream(result, handler)
            proxy = streams.AsyncStreamProxy if self.is_async else streams.SyncStreamProxy
            return proxy(result, call, handler)
        self.read(call, result)
        call.end()
        return result


class _EmbeddingEndpoint(_CompletionEndpoint):
    operation = sc.OPERATION_EMBEDDINGS

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        model = requests.arg(args, kwargs, 0, "model")
        provider, request_model, host, port = _resolve(model if isinstance(model, str) else "", kwargs)
        return telemetry.start(self.operation, provider, request_model, server_address=host, server_port=port)

    def read(self, call: LLMCall, result: Any) -> None:
        call.set_response(model=getattr(result, "model", None))
        usage = getattr(result, "usage", None)
        if usage is not None:
            call.set_usage(input_tokens=usage.prompt_tokens or 0)


# (module, function, endpoint class, async). litellm re-exports main's functions at the package top level, and
# acompletion calls main's completion: both names are wrapped; the inner call passes through.
_FUNCTIONS: tuple[tuple[str, str, type[_CompletionEndpoint], bool], ...] = tuple(
    (module, name, endpoint, is_async)
    for module in ("litellm", "litellm.main")
    for name, endpoint, is_async in (
        ("completion", _CompletionEndpoint, False),
        ("acompletion", _CompletionEndpoint, True),
        ("embedding", _EmbeddingEndpoint, False),
        ("aembedding", _EmbeddingEndpoint, True),
    )
)


class LiteLLMInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_litellm`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "litellm"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        patches = []
        for module, name, endpoint_cls, is_async in _FUNCTIONS:
            endpoint = endpoint_cls(telemetry, is_async=is_async)
            make = wrappers.async_wrapper if is_async else wrappers.sync_wrapper
            patches.append(patching.Patch(module, name, make(telemetry, endpoint)))
        return patches
