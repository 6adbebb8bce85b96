"""What the fake provider answers: token counts, text, timing, per request and per model.

Token numbers follow contract 1, not one provider's wire: ``Usage.input_tokens`` is the whole prompt
*including* cache-read and cache-creation tokens, ``output_tokens`` includes reasoning tokens.  The wire
modules translate (Anthropic reports ``input_tokens`` without the cache parts), so a test can assert the
same numbers whichever SDK it drove.
"""

from __future__ import annotations

import fnmatch
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from promptpulse.testing.faults import Fault

Provider = Literal["openai", "anthropic"]
Operation = Literal["chat", "text_completion", "embeddings", "responses", "messages", "count_tokens", "models"]

DEFAULT_TEXT = "Hello from the PromptPulse fake provider. This text is deterministic."


def fake_tokens(text: str) -> int:
    """The fake tokenizer: one token per 4 characters, at least 1 — simple enough to compute in a test."""
    return max(1, math.ceil(len(text) / 4))


@dataclass(frozen=True)
class Usage:
    """Token usage of one call, in contract-1 terms (input includes cache, output includes reasoning)."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    cache_creation_1h_tokens: int = 0  # the part of cache_creation_tokens written for one hour (Anthropic)

    def __post_init__(self) -> None:
        # Caught here rather than sent as a negative Anthropic input_tokens nobody would notice.
        if min(self.input_tokens, self.output_tokens, self.cached_tokens) < 0:
            raise ValueError(f"negative token count in {self}")
        if self.cached_tokens + self.cache_creation_tokens > self.input_tokens:
            raise ValueError(f"cached + cache_creation tokens exceed input_tokens in {self}")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(f"reasoning_tokens exceed output_tokens in {self}")
        if not 0 <= self.cache_creation_1h_tokens <= self.cache_creation_tokens:
            raise ValueError(f"cache_creation_1h_tokens not within cache_creation_tokens in {self}")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """What Anthropic calls ``input_tokens``."""
        return self.input_tokens - self.cached_tokens - self.cache_creation_tokens


@dataclass(frozen=True)
class Latency:
    """A delay in seconds: a fixed part plus an optional lognormal part (seeded by the scenario)."""

    seconds: float = 0.0
    median: float | None = None  # lognormal median; None = fixed delay only
    sigma: float = 0.5
    max: float | None = None

    @classmethod
    def fixed(cls, seconds: float) -> Latency:
        return cls(seconds=seconds)

    @classmethod
    def lognormal(cls, median: float, sigma: float = 0.5, max: float | None = None) -> Latency:
        return cls(median=median, sigma=sigma, max=max)

    def sample(self, rng: random.Random) -> float:
        t = self.seconds
        if self.median is not None and self.median > 0:
            t += rng.lognormvariate(math.log(self.median), self.sigma)
        return min(t, self.max) if self.max is not None else t


@dataclass(frozen=True)
class RequestInfo:
    """What scenario callables get to decide on: one parsed request."""

    provider: Provider
    operation: Operation
    model: str
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    prompt_text: str
    prompt_tokens: int | None  # set when the input is already token ids (legacy completions, embeddings)
    max_tokens: int | None
    stream: bool
    seq: int  # 1-based request number on this server


IntOrFn = int | Callable[[RequestInfo], int]


@dataclass(frozen=True)
class Scenario:
    """Configuration of the fake provider. Immutable; swap it with ``FakeProvider.set_scenario``."""

    text: str | Callable[[RequestInfo], str] = DEFAULT_TEXT
    # None: fake_tokens(prompt text). Output is capped by the request's max_tokens (finish reason "length").
    input_tokens: IntOrFn | None = None
    output_tokens: IntOrFn = 20
    cached_tokens: IntOrFn = 0
    cache_creation_tokens: IntOrFn = 0
    cache_creation_1h_tokens: IntOrFn = 0  # the part of cache_creation_tokens written for one hour
    reasoning_tokens: IntOrFn = 0
    # Full control: when set, it decides the usage and the fields above are ignored (max_tokens cap still applies).
    usage: Callable[[RequestInfo], Usage] | None = None
    # Per-model overrides, fnmatch patterns → scenario used for matching models (first match wins).
    models: Mapping[str, Scenario] = field(default_factory=dict)
    # Asked-for model → answering model, e.g. {"gpt-4o": "gpt-4o-2024-08-06"}; unmapped models are echoed.
    response_models: Mapping[str, str] = field(default_factory=dict)
    stream_chunks: int = 4  # content pieces per stream (fewer if the text is shorter)
    latency: Latency = Latency()  # non-stream: before the response
    ttft: Latency | None = None  # stream: before the first event; None = use `latency`
    inter_chunk: Latency = Latency()  # stream: between events
    # Generation time: seconds per output token, added to a non-stream answer's latency and spread evenly over a
    # stream's events after the first (so longer answers take longer, as with real models). 0 = off.
    seconds_per_output_token: float = 0.0
    # Faults consumed one per request, in order, when the scenario is installed (see also fail_next).
    faults: Sequence[Fault] = ()
    fault_rate: float = 0.0  # chance of a random fault per request (demo error bursts)
    random_faults: Sequence[Fault] = (Fault.http(500),)
    seed: int = 0
    embedding_dims: int = 16
    # Anthropic's message_delta has carried cumulative input/cache counts too since 2025; False = output only.
    anthropic_full_delta_usage: bool = True

    def for_model(self, model: str) -> Scenario:
        for pattern, sc in self.models.items():
            if fnmatch.fnmatchcase(model, pattern):
                return sc
        return self

    def with_(self, **changes: Any) -> Scenario:
        return replace(self, **changes)

    def response_model(self, model: str) -> str:
        return self.response_models.get(model, model)

    def reply_text(self, req: RequestInfo) -> str:
        return self.text(req) if callable(self.text) else self.text

    def compute_usage(self, req: RequestInfo) -> tuple[Usage, bool]:
        """Usage for this request, and whether the output was capped by max_tokens."""
        if self.usage is not None:
            u = self.usage(req)
        else:
            if self.input_tokens is not None:
                inp = _resolve(self.input_tokens, req)
            else:
                inp = req.prompt_tokens if req.prompt_tokens is not None else fake_tokens(req.prompt_text)
            u = Usage(
                input_tokens=inp,
                output_tokens=_resolve(self.output_tokens, req),
                cached_tokens=_resolve(self.cached_tokens, req),
                cache_creation_tokens=_resolve(self.cache_creation_tokens, req),
                reasoning_tokens=_resolve(self.reasoning_tokens, req),
                cache_creation_1h_tokens=_resolve(self.cache_creation_1h_tokens, req),
            )
        if req.operation == "embeddings":
            return replace(u, output_tokens=0, reasoning_tokens=0), False
        if req.max_tokens is not None and u.output_tokens > req.max_tokens:
            capped = max(0, req.max_tokens)
            return replace(u, output_tokens=capped, reasoning_tokens=min(u.reasoning_tokens, capped)), True
        return u, False


def _resolve(v: IntOrFn, req: RequestInfo) -> int:
    return int(v(req)) if callable(v) else int(v)


def split_pieces(text: str, n: int) -> list[str]:
    """Cut text into exactly min(n, len(text)) contiguous pieces (one empty piece for empty text)."""
    n = max(1, min(n, len(text)))
    if not text:
        return [""]
    bounds = [round(i * len(text) / n) for i in range(n + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(n)]


@dataclass(frozen=True)
class Reply:
    """Everything a wire module needs to render one successful answer (pure data, no I/O)."""

    req: RequestInfo
    id: str  # unique suffix; each wire adds its own prefix (chatcmpl-, msg_, resp_ …)
    model: str  # answering model
    text: str
    pieces: list[str]  # the text as stream pieces
    usage: Usage
    truncated: bool  # output capped by max_tokens
    created: int
    embedding_dims: int = 16
    anthropic_full_delta_usage: bool = True
