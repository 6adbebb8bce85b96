"""Manual tagging: ``promptpulse.prompt(...)`` and ``promptpulse.score(...)``.

Tags live in a ContextVar, so they follow asyncio tasks and ``contextvars.copy_context()`` into threads, and nested
``prompt()`` blocks override their outer block key by key. Every LLM span started inside a block copies the block's
precomputed attribute dict (one ``dict.update`` on the hot path). With ``propagate=True`` (or
``PROMPTPULSE_TAG_BAGGAGE=true``) the tags also go into OpenTelemetry baggage, so a downstream service's LLM calls
carry them too.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import baggage, context, trace

from promptpulse.instrumentation import semconv as sc

_log = logging.getLogger(__name__)

BAGGAGE_ENV = "PROMPTPULSE_TAG_BAGGAGE"
SCORE_TRACER_NAME = "promptpulse.score"

AttributeValue = str | bool | int | float | tuple[str, ...]
F = TypeVar("F", bound=Callable[..., Any])

# The attributes every LLM span inside the current prompt() block gets.
_current: contextvars.ContextVar[Mapping[str, AttributeValue] | None] = contextvars.ContextVar(
    "promptpulse_tags", default=None
)
# The prompt() blocks open in this context, innermost last: (block, tags to restore, baggage context token or None).
_open: contextvars.ContextVar[tuple[tuple[prompt, Mapping[str, AttributeValue] | None, object | None], ...]] = (
    contextvars.ContextVar("promptpulse_open_blocks", default=())
)
# The span context of the last LLM call made in this context: the default target of score().
_last_call: contextvars.ContextVar[trace.SpanContext | None] = contextvars.ContextVar(
    "promptpulse_last_call", default=None
)

# Tag attributes that may travel in baggage (string-valued only; tags are comma-joined).
_BAGGAGE_KEYS = (
    sc.GEN_AI_PROMPT_NAME,
    sc.GEN_AI_PROMPT_VERSION,
    sc.USER_ID,
    sc.SESSION_ID,
    sc.GEN_AI_CONVERSATION_ID,
    sc.PROMPTPULSE_FEATURE,
    sc.PROMPTPULSE_TAGS,
)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def current_attributes() -> Mapping[str, AttributeValue] | None:
    """The tag attributes in force here, from prompt() blocks or, when enabled, incoming baggage."""
    tags = _current.get()
    if tags is not None:
        return tags
    if _baggage_enabled:
        return _attributes_from_baggage()
    return None


def _attributes_from_baggage() -> Mapping[str, AttributeValue] | None:
    entries = baggage.get_all()
    if not entries:
        return None
    found: dict[str, AttributeValue] = {}
    for key in _BAGGAGE_KEYS:
        value = entries.get(key)
        if isinstance(value, str) and value:
            found[key] = tuple(value.split(",")) if key == sc.PROMPTPULSE_TAGS else value
    return found or None


# ``remember_call(span_context)``: the ids are read only when score() asks, so a call pays one ContextVar.set (bound
# here rather than wrapped: every LLM call makes it).
remember_call: Callable[[trace.SpanContext], object] = _last_call.set


def last_call() -> tuple[int, int] | None:
    """(trace_id, span_id) of the last LLM call in this context."""
    span_context = _last_call.get()
    return None if span_context is None else (span_context.trace_id, span_context.span_id)


def _build(
    name: str | None,
    version: str | None,
    user_id: str | None,
    session_id: str | None,
    conversation_id: str | None,
    feature: str | None,
    tags: Iterable[str] | None,
    extra: Mapping[str, Any],
) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    for key, value in (
        (sc.GEN_AI_PROMPT_NAME, name),
        (sc.GEN_AI_PROMPT_VERSION, version),
        (sc.USER_ID, user_id),
        (sc.SESSION_ID, session_id),
        (sc.GEN_AI_CONVERSATION_ID, conversation_id),
        (sc.PROMPTPULSE_FEATURE, feature),
    ):
        if value is not None:
            attrs[key] = str(value)
    if tags is not None:
        attrs[sc.PROMPTPULSE_TAGS] = tuple(str(t) for t in tags)
    for key, value in extra.items():
        if isinstance(value, str | bool | int | float):
            attrs[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            attrs[key] = tuple(value)
        else:
            attrs[key] = str(value)
    return attrs


class prompt:  # lower-case: reads as a function at the call site, `with promptpulse.prompt(...)`
    """Tag every LLM call inside with a prompt name, version and cohort attributes.

    Use as ``with prompt("support_reply", version="2.1.0", user_id=u):`` or as a decorator on sync and async
    functions. Inner blocks override outer ones key by key; ``tags`` of an inner block replace the outer tags.
    One object may be entered by many tasks and threads at once: what a block restores on exit is kept per context.
    """

    __slots__ = ("_own", "_propagate")

    def __init__(
        self,
        name: str | None = None,
        version: str | None = None,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        conversation_id: str | None = None,
        feature: str | None = None,
        tags: Iterable[str] | None = None,
        propagate: bool | None = None,
        **attributes: Any,
    ) -> None:
        self._own = _build(name, version, user_id, session_id, conversation_id, feature, tags, attributes)
        self._propagate = _baggage_enabled if propagate is None else propagate

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        return dict(self._own)

    def __enter__(self) -> prompt:
        outer = _current.get()
        merged = {**outer, **self._own} if outer else dict(self._own)
        ctx_token = None
        if self._propagate:
            ctx = context.get_current()
            for key in _BAGGAGE_KEYS:
                value = merged.get(key)
                if value is not None:
                    ctx = baggage.set_baggage(key, ",".join(value) if isinstance(value, tuple) else str(value), ctx)
            ctx_token = context.attach(ctx)
        _open.set((*_open.get(), (self, outer, ctx_token)))
        _current.set(merged)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(self._own)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._leave()
        except Exception:  # the app must never see our failure
            _log.debug("promptpulse.prompt: leaving the block failed", exc_info=True)

    def _leave(self) -> None:
        # This context's innermost open block of this object: another task or thread that entered the same object
        # has its own entry in its own context, so leaving never touches (or resets a token of) another context.
        frames = _open.get()
        for i in range(len(frames) - 1, -1, -1):
            if frames[i][0] is self:
                break
        else:
            _log.debug("promptpulse.prompt: left a block that was not entered in this context")
            return
        _, outer, ctx_token = frames[i]
        _open.set(frames[:i] + frames[i + 1 :])
        _current.set(outer)
        if ctx_token is not None:
            context.detach(ctx_token)  # type: ignore[arg-type]

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return (yield from func(*args, **kwargs))

            return gen_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def score(
    name: str,
    value: float,
    *,
    label: str | None = None,
    comment: str | None = None,
    trace_id: int | str | None = None,
    span_id: int | str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> bool:
    """Record a quality score or user feedback for an LLM call.

    The score travels as a tiny span named ``gen_ai.evaluation {name}`` whose parent is the evaluated call (the last
    LLM call in this context unless ``trace_id``/``span_id`` say otherwise) and whose attributes are
    ``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``, ``.score.label`` and ``.explanation``.
    The processor stores these in ``llm_scores``. Returns False (and logs) when there is no call to attach to.
    """
    try:
        target = _resolve_target(trace_id, span_id)
        if target is None:
            _log.warning("promptpulse.score(%r): no LLM call in this context and no trace_id/span_id given", name)
            return False
        parent = trace.NonRecordingSpan(
            trace.SpanContext(target[0], target[1], is_remote=True, trace_flags=trace.TraceFlags(0x01))
        )
        attrs: dict[str, AttributeValue] = {
            sc.GEN_AI_EVALUATION_NAME: name,
            sc.GEN_AI_EVALUATION_SCORE_VALUE: float(value),
        }
        if label is not None:
            attrs[sc.GEN_AI_EVALUATION_SCORE_LABEL] = label
        if comment is not None:
            attrs[sc.GEN_AI_EVALUATION_EXPLANATION] = comment
        tracer = trace.get_tracer(SCORE_TRACER_NAME, tracer_provider=tracer_provider)
        span = tracer.start_span(
            f"gen_ai.evaluation {name}",
            context=trace.set_span_in_context(parent),
            kind=trace.SpanKind.INTERNAL,
            attributes=attrs,
        )
        span.add_event(sc.GEN_AI_EVALUATION_RESULT_EVENT, attributes=attrs)
        span.end()
        return True
    except Exception:  # the app must never see our failure
        _log.debug("promptpulse.score failed", exc_info=True)
        return False


def _resolve_target(trace_id: int | str | None, span_id: int | str | None) -> tuple[int, int] | None:
    if trace_id is None and span_id is None:
        return last_call()
    if trace_id is None or span_id is None:
        raise ValueError("score(): give both trace_id and span_id, or neither")
    t = int(trace_id, 16) if isinstance(trace_id, str) else trace_id
    s = int(span_id, 16) if isinstance(span_id, str) else span_id
    return t, s


_baggage_enabled = _env_flag(BAGGAGE_ENV)
