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
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

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


class CallRef(NamedTuple):
    """Names one LLM call for ``score(call=...)``: its span's trace and span ids."""

    trace_id: int
    span_id: int


def last_call() -> CallRef | None:
    """The last LLM call started in this context (this thread or task; not calls made in child tasks or threads)."""
    span_context = _last_call.get()
    return None if span_context is None else CallRef(span_context.trace_id, span_context.span_id)


# What the SDK returned → its call's span context, so score(call=response) finds the call wherever the response went
# (across asyncio.gather, queues, threads). Two maps, because neither alone covers every object an app holds:
# - by identity, for the object the app got back (a response, a stream proxy, a raw response): a weak reference
#   drops the entry when the object dies (SDK models are weak-referenceable but not hashable, so not a
#   WeakKeyDictionary);
# - by response id, for objects the SDK builds later from the same response (``parse()`` of a raw response, the
#   final message of a stream helper): the last RESPONSE_IDS_MAX ids.
RESPONSE_IDS_MAX = 10_000
_by_response_id: dict[str, trace.SpanContext] = {}
# Their order, oldest first (a dict's first key, after many deletions from its front, is found by scanning the
# deleted slots; an OrderedDict costs ~3x a dict per insert).
_response_id_order: deque[str] = deque()


class _ResultRef(weakref.ref):  # type: ignore[type-arg]
    __slots__ = ("key", "span_context")


_by_object: dict[int, _ResultRef] = {}


def _forget(ref: _ResultRef) -> None:
    if _by_object.get(ref.key) is ref:
        del _by_object[ref.key]


def remember_result(result: object, span_context: trace.SpanContext) -> None:
    """Map what an instrumented call returned to the app onto the call (objects without weak references: skipped)."""
    try:
        ref = _ResultRef(result, _forget)
    except TypeError:
        return
    ref.key = key = id(result)
    ref.span_context = span_context
    _by_object[key] = ref


def remember_response_id(response_id: str, span_context: trace.SpanContext) -> None:
    known = response_id in _by_response_id
    _by_response_id[response_id] = span_context
    if known:  # a server that repeats ids: queued again, the old slot's eviction would drop the newest call
        return
    order = _response_id_order
    order.append(response_id)
    if len(order) > RESPONSE_IDS_MAX:
        try:
            _by_response_id.pop(order.popleft(), None)
        except IndexError:  # another thread trimmed it first
            pass


def call_of(obj: object) -> CallRef | None:
    """The LLM call behind ``obj``: a response (or stream, raw response, parsed or final message) an instrumented
    SDK call returned, a ``CallRef``, or a span / span context. None when it is none of these."""
    if isinstance(obj, CallRef):
        return obj
    if isinstance(obj, trace.Span):
        obj = obj.get_span_context()
    if isinstance(obj, trace.SpanContext):
        return CallRef(obj.trace_id, obj.span_id) if obj.is_valid else None
    # The SDKs' stream helpers (anthropic MessageStream, openai ChatCompletionStream) read the stream the patched
    # create() returned; they keep it as ``_raw_stream``.
    for candidate in (obj, getattr(obj, "_raw_stream", None)):
        if candidate is None:
            continue
        ref = _by_object.get(id(candidate))
        if ref is not None and ref() is candidate:
            return CallRef(ref.span_context.trace_id, ref.span_context.span_id)
    response_id = getattr(obj, "id", None)
    if isinstance(response_id, str):
        span_context = _by_response_id.get(response_id)
        if span_context is not None:
            return CallRef(span_context.trace_id, span_context.span_id)
    return None


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
    call: object | None = None,
    trace_id: int | str | None = None,
    span_id: int | str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> bool:
    """Record a quality score or user feedback for an LLM call.

    Which call: ``call=`` the response the SDK returned (or its stream, raw response, parsed or final message), a
    ``CallRef`` from ``last_call()``, or a span; else ``trace_id``/``span_id``; else the last LLM call started in
    this context — the current thread or asyncio task, never a call made in a child task (``asyncio.gather``,
    ``create_task``) or another thread.

    The score travels as a tiny span named ``gen_ai.evaluation {name}`` whose parent is the evaluated call and whose
    attributes are
    ``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``, ``.score.label`` and ``.explanation``.
    The processor stores these in ``llm_scores``. Returns False (and logs) when there is no call to attach to.
    """
    try:
        if call is not None:
            if trace_id is not None or span_id is not None:
                raise ValueError("score(): give call= or trace_id/span_id, not both")
            target = call_of(call)
            if target is None:
                _log.warning(
                    "promptpulse.score(%r): %s is not a response of an instrumented LLM call", name, type(call).__name__
                )
                return False
        else:
            target = _resolve_target(trace_id, span_id)
        if target is None:
            _log.warning(
                "promptpulse.score(%r): no LLM call in this context; pass call=<the response> (e.g. after "
                "asyncio.gather) or trace_id/span_id",
                name,
            )
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
    except ValueError as exc:  # a misuse: say so plainly, still without raising into the app
        _log.warning("promptpulse.score(%r): %s", name, exc)
        return False
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
