"""Groq instrumentation: one contract-1 span per call of the ``groq`` SDK → ``gen_ai.provider.name = groq``.

The groq SDK is a Stainless clone of openai's, so the OpenAI endpoints do the work, parameterised with groq's
classes (``openai.Sdk``): request attributes, fingerprints, content capture, stream proxies, raw responses and the
retry count are the same code. What is Groq's own: every call is ``groq`` whatever the base URL (a proxy in front
of Groq is still Groq), and a stream's usage arrives in the last chunk's ``x_groq.usage`` even without
``stream_options={"include_usage": True}``.

Wrapped: ``chat.completions.create`` and ``embeddings.create``, sync and async.
"""

from __future__ import annotations

from typing import Any

from promptpulse.instrumentation import common, patching, streams
from promptpulse.instrumentation import openai as oa
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.spans import LLMCall, Telemetry

_INSTRUMENTS = ("groq >= 0.9",)


def _target(client: Any) -> tuple[str, str | None, int | None]:
    host, port = oa.host_port(client._base_url)
    return sc.PROVIDER_GROQ, host, port


class _GroqStreamHandler(oa._ChoicesStreamHandler):
    """OpenAI's chunk reading, plus the usage Groq sends in ``x_groq`` on the last chunk."""

    __slots__ = ()

    def on_chunk(self, call: LLMCall, chunk: Any) -> None:
        super().on_chunk(call, chunk)
        x_groq = getattr(chunk, "x_groq", None)
        if x_groq is not None and x_groq.usage is not None and chunk.usage is None:
            self.usage = x_groq.usage


class _ChatEndpoint(oa._ChatEndpoint):
    def stream_handler(self, call: LLMCall) -> streams.StreamHandler:
        return _GroqStreamHandler(self.capture, chat=True)


def _bind_sdk() -> oa.Sdk:
    from groq import _types
    from groq._response import AsyncAPIResponse, BaseAPIResponse
    from groq._streaming import AsyncStream, Stream

    return oa.Sdk(
        stream_types=(Stream, AsyncStream),
        async_stream_types=(AsyncStream,),
        raw_types=(BaseAPIResponse,),
        legacy_response=None,  # groq's with_raw_response gives an APIResponse: read when the app parses it
        async_response=AsyncAPIResponse,
        sentinel_types=oa.sentinel_types(_types),
        target=_target,
    )


# (module, method, endpoint class, async)
_METHODS: tuple[tuple[str, str, type[oa._Endpoint], bool], ...] = (
    ("groq.resources.chat.completions", "Completions.create", _ChatEndpoint, False),
    ("groq.resources.chat.completions", "AsyncCompletions.create", _ChatEndpoint, True),
    ("groq.resources.embeddings", "Embeddings.create", oa._EmbeddingsEndpoint, False),
    ("groq.resources.embeddings", "AsyncEmbeddings.create", oa._EmbeddingsEndpoint, True),
)


class GroqInstrumentor(common.Instrumentor):
    """``opentelemetry-instrument`` loads this through the ``promptpulse_groq`` entry point."""

    _INSTRUMENTS = _INSTRUMENTS
    _SDK_MODULE = "groq"

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        return oa.sdk_patches(telemetry, _bind_sdk(), _METHODS, "groq")
