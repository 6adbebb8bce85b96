"""The one wrapper discipline every patched SDK method goes through.

A provider module describes a method as an ``Endpoint`` (how to start the call's span from the arguments, how to read
the result); ``sync_wrapper``/``async_wrapper`` turn it into a wrapt wrapper that:
- never lets an exception of ours reach the app (if starting fails, the SDK runs untouched);
- re-raises exactly the SDK's exception after recording it;
- makes the call's span current while the SDK runs, and passes through when another PromptPulse call is already
  active (an SDK helper calling a patched method) or instrumentation is suppressed (no double spans).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from opentelemetry import context
from opentelemetry.instrumentation.utils import _SUPPRESS_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY_PLAIN

from promptpulse.instrumentation import tagging
from promptpulse.instrumentation.spans import LLMCall, Telemetry

_log = logging.getLogger(__name__)

_active: contextvars.ContextVar[bool] = contextvars.ContextVar("promptpulse_call_active", default=False)

WrapperFn = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def in_call() -> bool:
    """True while a PromptPulse-instrumented SDK call runs (its request is being sent): an SDK's own tracing hook
    can then stand down instead of starting a second span for the same call."""
    return _active.get()


class Endpoint(Protocol):
    """One patched method of a client library."""

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        """Start the call's span from the request. May raise: the method then runs uninstrumented."""
        ...

    def finish(self, call: LLMCall, result: Any) -> Any:
        """Read the result into the call and end it — or return a stream proxy that ends it later.

        Returns what the app receives (the result itself, or its proxy).
        """
        ...


def _start(telemetry: Telemetry, endpoint: Endpoint, instance: Any, args: Any, kwargs: Any) -> LLMCall | None:
    """The call's started, current span; None when the call is to run uninstrumented (nested, suppressed, or our
    start failed)."""
    if _active.get():
        return None
    current = context.get_current()
    if current and (current.get(_SUPPRESS_INSTRUMENTATION_KEY) or current.get(_SUPPRESS_INSTRUMENTATION_KEY_PLAIN)):
        return None
    try:
        call = endpoint.start(telemetry, instance, args, kwargs)
        call.activate()
        return call
    except Exception:
        _log.debug("promptpulse: could not start a span; the call runs uninstrumented", exc_info=True)
        return None


def _fail(call: LLMCall, exc: BaseException) -> None:
    try:
        call.record_error(exc)
        call.end()
    except Exception:
        _log.debug("promptpulse: recording an error failed", exc_info=True)


def _finish(endpoint: Endpoint, call: LLMCall, result: Any) -> Any:
    try:
        returned = endpoint.finish(call, result)
        tagging.remember_result(returned, call.span.get_span_context())  # for score(call=<what the app got>)
        return returned
    except Exception:
        _log.debug("promptpulse: reading the result failed", exc_info=True)
        try:
            call.end()
        except Exception:
            pass
        return result


def sync_wrapper(telemetry: Telemetry, endpoint: Endpoint) -> WrapperFn:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _start(telemetry, endpoint, instance, args, kwargs)
        if call is None:  # outside _start's except block: the app's exception must not chain to ours
            return wrapped(*args, **kwargs)
        token = _active.set(True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _fail(call, exc)
            raise
        finally:
            _active.reset(token)
            call.deactivate()
        return _finish(endpoint, call, result)

    return wrapper


def async_wrapper(telemetry: Telemetry, endpoint: Endpoint) -> WrapperFn:
    def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        async def run() -> Any:
            call = _start(telemetry, endpoint, instance, args, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            token = _active.set(True)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                _fail(call, exc)
                raise
            finally:
                _active.reset(token)
                call.deactivate()
            return _finish(endpoint, call, result)

        return run()

    return wrapper
