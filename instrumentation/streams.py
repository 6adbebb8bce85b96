"""Stream proxies that end a call's span exactly once.

A proxy stands in for the SDK's stream object (``isinstance`` and every attribute still work — wrapt's ObjectProxy)
and ends the span on whichever comes first: exhaustion, ``break`` (the iterator we hand to ``for`` is a generator,
so CPython closes it the moment the loop drops it), ``close()``/``aclose()``, context-manager exit, an exception from
the stream, or garbage collection of an abandoned stream (a ``Guard`` the proxy alone holds: its ``__del__`` ends
the span; streams still open at interpreter exit are ended by an ``atexit`` hook, registered with the first proxy so
that it runs before the app's providers shut down).
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import wrapt

from promptpulse.instrumentation.spans import LLMCall

_log = logging.getLogger(__name__)

COMPLETE = "complete"
INTERRUPTED = "interrupted"  # the consumer stopped early (break, aclose of the iterator)
CLOSED = "closed"
ERROR = "error"
ABANDONED = "abandoned"  # garbage-collected before it ended


class StreamHandler(Protocol):
    """What a provider knows about its chunks: how to read each, and what to report at the end."""

    def on_chunk(self, call: LLMCall, chunk: Any) -> None: ...

    def on_finish(self, call: LLMCall) -> None: ...


def _finish(call: LLMCall, handler: StreamHandler, state: str) -> None:
    if call.ended:
        return
    try:
        handler.on_finish(call)
    except Exception:
        _log.debug("promptpulse: stream handler failed at finish", exc_info=True)
    try:
        call.end(stream_state=state)
    except Exception:
        _log.debug("promptpulse: ending stream span failed", exc_info=True)


def _fail(call: LLMCall, handler: StreamHandler, exc: BaseException) -> None:
    if call.ended:
        return
    try:
        call.record_error(exc)
    except Exception:
        _log.debug("promptpulse: recording stream error failed", exc_info=True)
    _finish(call, handler, ERROR)


def _on_chunk(call: LLMCall, handler: StreamHandler, chunk: Any) -> None:
    try:
        call.first_chunk()
        handler.on_chunk(call, chunk)
    except Exception:
        _log.debug("promptpulse: stream handler failed on a chunk", exc_info=True)


# What each armed guard ends, by the guard's id: ``(end, call, handler)``. A guard's id is here only while the guard
# lives (disarm() or its __del__ pops it), and the exit hook ends what is left. A dict insert and pop per stream:
# weakref.finalize cost about twice the guard and this together.
_armed: dict[int, tuple[Callable[[LLMCall, Any], None], LLMCall, Any]] = {}
_exit_hook_registered = False


def _end_armed_at_exit() -> None:
    while _armed:
        _, (end, call, handler) = _armed.popitem()
        try:
            end(call, handler)
        except Exception:
            _log.debug("promptpulse: ending an open stream at exit failed", exc_info=True)


def _abandoned(call: LLMCall, handler: StreamHandler) -> None:
    _finish(call, handler, ABANDONED)


class Guard:
    """Ends a call as abandoned (``end(call, handler)``) when the proxy holding the guard — its only reference — is
    garbage-collected. Holds nothing itself (never the proxy); ``disarm()`` when the call ended otherwise."""

    __slots__ = ()

    def __init__(self, call: LLMCall, handler: Any, end: Callable[[LLMCall, Any], None] = _abandoned) -> None:
        global _exit_hook_registered
        if not _exit_hook_registered:  # with the first proxy, after the app's providers: runs before they shut down
            _exit_hook_registered = True
            atexit.register(_end_armed_at_exit)
        _armed[id(self)] = (end, call, handler)

    def disarm(self) -> None:
        _armed.pop(id(self), None)

    def __del__(self) -> None:
        try:  # never out of a destructor (late in interpreter shutdown even this module's globals may be gone)
            armed = _armed.pop(id(self), None)
            if armed is not None:
                armed[0](armed[1], armed[2])
        except Exception:
            pass


class _ProxyBase(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, call: LLMCall, handler: StreamHandler) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_handler = handler
        self._self_guard = Guard(call, handler)

    def _self_finish(self, state: str) -> None:
        self._self_guard.disarm()
        _finish(self._self_call, self._self_handler, state)

    def _self_fail(self, exc: BaseException) -> None:
        self._self_guard.disarm()
        _fail(self._self_call, self._self_handler, exc)

    def _self_exited(self, exc: BaseException | None) -> None:
        """Context-manager exit: an error if the block raised, else closed."""
        if exc is not None:
            self._self_fail(exc)
        else:
            self._self_finish(CLOSED)


class SyncStreamProxy(_ProxyBase):
    def __iter__(self) -> Iterator[Any]:
        return self._self_iterate()

    def _self_iterate(self) -> Iterator[Any]:
        call, handler = self._self_call, self._self_handler
        try:
            chunks = iter(self.__wrapped__)
            # The first chunk sets the time to first chunk; the loop over the rest pays one handler call per chunk.
            for chunk in chunks:
                _on_chunk(call, handler, chunk)
                yield chunk
                break
            on_chunk = handler.on_chunk
            for chunk in chunks:
                try:
                    on_chunk(call, chunk)
                except Exception:
                    _log.debug("promptpulse: stream handler failed on a chunk", exc_info=True)
                yield chunk
        except GeneratorExit:
            self._self_finish(INTERRUPTED)
            raise
        except BaseException as exc:
            self._self_fail(exc)
            raise
        self._self_finish(COMPLETE)

    def __next__(self) -> Any:
        try:
            chunk = next(self.__wrapped__)
        except StopIteration:
            self._self_finish(COMPLETE)
            raise
        except BaseException as exc:
            self._self_fail(exc)
            raise
        _on_chunk(self._self_call, self._self_handler, chunk)
        return chunk

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_finish(CLOSED)

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_exited(exc)


class AsyncStreamProxy(_ProxyBase):
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._self_iterate()

    async def _self_iterate(self) -> AsyncIterator[Any]:
        call, handler = self._self_call, self._self_handler
        try:
            chunks = aiter(self.__wrapped__)
            async for chunk in chunks:
                _on_chunk(call, handler, chunk)
                yield chunk
                break
            on_chunk = handler.on_chunk
            async for chunk in chunks:
                try:
                    on_chunk(call, chunk)
                except Exception:
                    _log.debug("promptpulse: stream handler failed on a chunk", exc_info=True)
                yield chunk
        except GeneratorExit:
            self._self_finish(INTERRUPTED)
            raise
        except BaseException as exc:
            self._self_fail(exc)
            raise
        self._self_finish(COMPLETE)

    async def __anext__(self) -> Any:
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_finish(COMPLETE)
            raise
        except BaseException as exc:
            self._self_fail(exc)
            raise
        _on_chunk(self._self_call, self._self_handler, chunk)
        return chunk

    async def close(self) -> None:
        try:
            wrapped = self.__wrapped__
            # SDK streams have close(); a plain async generator (ollama's stream) has only aclose().
            await (wrapped.close() if hasattr(wrapped, "close") else wrapped.aclose())
        finally:
            self._self_finish(CLOSED)

    async def aclose(self) -> None:
        await self.close()

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_exited(exc)


def proxy(result: Any, call: LLMCall, handler: StreamHandler) -> SyncStreamProxy | AsyncStreamProxy:
    """The proxy for an SDK stream: async when the stream is an async iterator, else sync."""
    if hasattr(result, "__anext__"):
        return AsyncStreamProxy(result, call, handler)
    return SyncStreamProxy(result, call, handler)
