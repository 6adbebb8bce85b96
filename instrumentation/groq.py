"""Groq instrumentation: one contract-1 span per call of the ``groq`` SDK → ``gen_ai.provider.name = groq``.

The groq SDK is a Stainless clone of openai's, so the kit's OpenAI-shaped endpoints do the work, parameterised with
groq's classes (``kit.stainless.Sdk``): request attributes, fingerprints, content capture, stream proxies, raw
responses and the retry count are the same code. What is Groq's own: every call is ``groq`` whatever the base URL
(a proxy in front of Groq is still Groq), and a stream's usage arrives in the last chunk's ``x_groq.usage`` even
without ``stream_options={"include_usage": True}``.

Wrapped: ``chat.completions.create`` and ``embeddings.create``, sync and async.
"""

from __future__ import annotations

from typing import Any

from promptpulse.instrumentation import common, patching, streams
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.kit import stainless, targets
from promptpulse.instrumentation.spans import LLMCall, Telemetry

_INSTRUMENTS = ("groq >= 0.9",)


def _target(client: Any) -> tuple[str, str | None, int | None]:
    host, port = targets.host_port(client._base_url)
    return sc.PROVIDER_GROQ, host, port


class _GroqStreamHandler(stainless.ChoicesStreamHandler):
    """OpenAI's chunk reading, plus the usage Groq sends in ``x_groq`` on the last chunk."""

    __slots__ = ()

    def on_chunk(self, call: LLMCall, chunk: Any) -> None:
        super().on_chunk(call, chunk)
        x_groq = getattr(chunk, "x_groq", None)
        if x_groq is not None and x_groq.usage is not None and chunk.usage is None:
            self.usage = x_groq.usage


class _ChatEndpoint(stainless.ChatEndpoint):
    def stream_handler(self, call: LLMCall) -> streams.StreamHandler:
        return _GroqStreamHandler(self.capture, chat=True)


def _bind_sdk() -> stainless.Sdk:
    from groq import _types
    from groq._response import AsyncAPIResponse, BaseAPIResponse
    from groq._streaming import AsyncStream, Stream

    return stainless.Sdk(
        stream_types=(Stream, AsyncStream),
        async_stream_types=(AsyncStream,),
        raw_types=(BaseAPIResponse,),
        legacy_response=None,  # groq's with_raw_response gives an APIResponse: read when the app parses it
        async_response=AsyncAPIResponse,
        sentinel_types=stainless.sentinel_types(_types),
        target=_target,
    )


# (module, method, endpoint class, async)
_METHODS: tuple[tuple[str, str, type[stainless.Endpoint], bool], ...] = (
    ("groq.resources.chat.completions", "Completions.create", _ChatEndpoint, False),
    ("groq.resources.chat.completions", "AsyncCompletions.create", _ChatEndpoint, True),
    ("groq.resources.embeddings", "Embeddings.create", stainless.EmbeddingsEndpoint, False),
    ("groq.resources.embeddings", "AsyncEmbeddings.create", stainless.EmbeddingsEndpoint, True),
)


class GroqInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_groq`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "groq"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        return stainless.sdk_patches(telemetry, _bind_sdk(), _METHODS, "groq")
