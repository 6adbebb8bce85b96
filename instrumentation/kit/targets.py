"""Where a call went: ``server.address``/``server.port`` from a client's base URL, and the provider of an
OpenAI-compatible server by its host."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from promptpulse.instrumentation import semconv as sc

T = TypeVar("T")

# Exact host → gen_ai.provider.name. Shared: other modules (and the processor) may import this table.
PROVIDER_BY_HOST: Mapping[str, str] = {
    "api.openai.com": sc.PROVIDER_OPENAI,
    "api.groq.com": sc.PROVIDER_GROQ,
    "api.deepseek.com": sc.PROVIDER_DEEPSEEK,
    "api.together.xyz": "together_ai",
    "api.together.ai": "together_ai",
    "api.mistral.ai": sc.PROVIDER_MISTRAL_AI,
    "openrouter.ai": "openrouter",
    "api.x.ai": sc.PROVIDER_X_AI,
    "api.perplexity.ai": "perplexity",
    "api.fireworks.ai": "fireworks_ai",
    "api.cohere.ai": sc.PROVIDER_COHERE,
    "api.cohere.com": sc.PROVIDER_COHERE,
    "generativelanguage.googleapis.com": sc.PROVIDER_GCP_GEMINI,
    "api.anthropic.com": sc.PROVIDER_ANTHROPIC,
}
# Host suffix → provider, for hosts that carry a tenant or region.
PROVIDER_BY_HOST_SUFFIX: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", sc.PROVIDER_AZURE_OPENAI),
    (".cognitiveservices.azure.com", sc.PROVIDER_AZURE_OPENAI),
    (".services.ai.azure.com", sc.PROVIDER_AZURE_AI_INFERENCE),
    ("aiplatform.googleapis.com", sc.PROVIDER_GCP_VERTEX_AI),
    (".amazonaws.com", sc.PROVIDER_AWS_BEDROCK),  # bedrock-runtime.<region>.amazonaws.com, bedrock-mantle…
)
# Well-known local servers by port (loopback hosts only).
PROVIDER_BY_LOCAL_PORT: Mapping[int, str] = {11434: sc.PROVIDER_OLLAMA}
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0", "host.docker.internal"})


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


def _default_port(scheme: str | None) -> int | None:
    return 443 if scheme == "https" else 80 if scheme == "http" else None


@functools.lru_cache(maxsize=256)
def host_port_of_string(url: str | None) -> tuple[str | None, int | None]:
    """Host and port of a base URL string (scheme-less means https), memoised: a client's URL rarely changes."""
    if not url:
        return None, None
    try:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        port = parts.port
    except ValueError:
        return None, None
    return parts.hostname or None, port if port is not None else _default_port(parts.scheme)


class UrlMemo(Generic[T]):
    """A value per base-URL object. Keyed by id() and checked by identity — hashing an httpx2.URL costs more than the
    rest of a lookup; the entry keeps the URL alive, so its id cannot be reused meanwhile."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Any, T]] = {}

    def get(self, url: Any, compute: Callable[..., T], *args: Any) -> T:
        """The memoised value for ``url``, ``compute(*args)`` the first time."""
        entry = self._entries.get(id(url))
        if entry is not None and entry[0] is url:
            return entry[1]
        value = compute(*args)
        if len(self._entries) > 256:
            self._entries.clear()
        self._entries[id(url)] = (url, value)
        return value


def _url_host_port(url: Any) -> tuple[str | None, int | None]:
    port = url.port
    return url.host or None, port if port is not None else _default_port(url.scheme)


_host_ports: UrlMemo[tuple[str | None, int | None]] = UrlMemo()


def host_port(url: Any) -> tuple[str | None, int | None]:
    """Host and port of a base URL: an httpx/httpx2 ``URL`` (the port defaulted from the scheme), a string, or None."""
    if url is None or isinstance(url, str):
        return host_port_of_string(url)
    return _host_ports.get(url, _url_host_port, url)
