"""Raw responses (``with_raw_response`` / ``with_streaming_response`` of Stainless SDKs: openai, anthropic, groq…):
the span follows the body, not the headers.

The SDK hands the app a response object before the body is read. ``finish_raw`` reads it when the body is already in
memory (``with_raw_response`` of a non-streamed call); otherwise a proxy stands in for the response and the span ends
when the app takes the body: ``parse()`` (a stream is then proxied by the provider's stream handler, so id, TTFT,
usage and cost come from its events), ``json()``, ``close()`` (also the ``with`` block's exit), or garbage
collection. Nothing here reads the body on the app's behalf, and the app's own ``parse()`` returns the SDK's object.

A provider supplies a ``RawReader``: which parsed results are streams, how to proxy one, and how to read a parsed
result or a JSON body.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import wrapt

from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation import streams
from promptpulse.instrumentation.spans import LLMCall

_log = logging.getLogger(__name__)


class RawReader(Protocol):
    """What the raw-response proxies need of a provider's endpoint."""

    def is_stream(self, result: Any) -> bool:
        """True when ``result`` (what ``parse()`` returned) is the SDK's event stream."""
        ...

    def wrap_stream(self, call: LLMCall, stream: Any) -> Any:
        """The stream proxy that ends ``call``."""
        ...

    def read(self, call: LLMCall, result: Any) -> None:
        """Read a parsed, non-streamed result into the call."""
        ...

    def read_json(self, call: LLMCall, body: Any) -> None:
        """Read a JSON body (the app read it as bytes/JSON, or the body is in memory) into the call."""
        ...


def _end_quietly(call: LLMCall, state: str | None = None) -> None:
    try:
        call.end(stream_state=state)
    except Exception:
        _log.debug("promptpulse: ending a raw-response span failed", exc_info=True)


def _end_abandoned(call: LLMCall, reader: Any) -> None:
    _end_quietly(call, streams.ABANDONED)


def body_in_memory(raw: Any) -> Any:
    """The JSON body when the SDK already read it; None when it is still on the wire (never reads it)."""
    try:
        return raw.http_response.json()  # httpx raises ResponseNotRead rather than reading
    except Exception:
        return None


def finish_raw(call: LLMCall, raw: Any, reader: RawReader, *, sync_parse: bool, is_async: bool) -> Any:
    """What the app gets for a raw response: the response itself once read, else a proxy that ends the call.

    ``sync_parse``: ``parse()`` is a plain method even on the async client (openai's ``LegacyAPIResponse``).
    ``is_async``: ``parse``/``json``/``close`` are coroutines."""
    call.set_attribute(sc.HTTP_RESPONSE_STATUS_CODE, getattr(raw, "status_code", None))
    retries = getattr(raw, "retries_taken", 0)
    if retries:
        call.set_attribute(sc.PROMPTPULSE_RETRY_COUNT, retries)
    if not call.stream:
        body = body_in_memory(raw)
        if body is not None:
            try:
                if sync_parse:
                    # parse() caches its result on the response: the app's own parse() returns this very object.
                    reader.read(call, raw.parse())
                else:
                    reader.read_json(call, body)
            except Exception:
                # e.g. a post-parser refusing a truncated answer: the app sees that error from its own parse();
                # usage still comes from the body.
                try:
                    reader.read_json(call, body)
                except Exception:
                    _log.debug("promptpulse: reading a raw response failed", exc_info=True)
            call.end()
            return raw
    if sync_parse:
        return LegacyRawProxy(raw, call, reader)
    if is_async:
        return AsyncRawProxy(raw, call, reader)
    return SyncRawProxy(raw, call, reader)


class _RawProxyBase(wrapt.ObjectProxy):  # type: ignore[misc]
    """Stands in for an SDK raw response; ends the call when the app parses, reads JSON, closes, or drops it."""

    def __init__(self, wrapped: Any, call: LLMCall, reader: RawReader) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_reader = reader
        self._self_stream: Any = None
        self._self_guard = streams.Guard(call, reader, _end_abandoned)

    def _self_parsed(self, result: Any) -> Any:
        call = self._self_call
        if call.ended:
            return result
        try:
            reader = self._self_reader
            if reader.is_stream(result):
                if self._self_stream is None or self._self_stream.__wrapped__ is not result:
                    self._self_guard.disarm()
                    self._self_stream = reader.wrap_stream(call, result)
                return self._self_stream
            if not call.stream:
                self._self_guard.disarm()
                reader.read(call, result)
                call.end()
        except Exception:
            _log.debug("promptpulse: reading a raw response failed", exc_info=True)
        return result

    def _self_json(self, body: Any) -> None:
        call = self._self_call
        if call.ended or call.stream:
            return
        try:
            self._self_guard.disarm()
            self._self_reader.read_json(call, body)
            call.end()
        except Exception:
            _log.debug("promptpulse: reading a raw response failed", exc_info=True)

    def _self_closed(self) -> None:
        call = self._self_call
        if call.ended:
            return
        self._self_guard.disarm()
        stream = self._self_stream
        if stream is not None:
            # The stream was parsed but not read to its end: closing the response closes it.
            try:
                stream._self_finish(streams.CLOSED)
            except Exception:
                _end_quietly(call, streams.CLOSED)
            return
        if not call.stream:
            # The app read the body itself (read()/text()/iter_*): take the usage from it if it is in memory.
            body = body_in_memory(self.__wrapped__)
            if body is not None:
                try:
                    self._self_reader.read_json(call, body)
                except Exception:
                    _log.debug("promptpulse: reading a raw response failed", exc_info=True)
        _end_quietly(call, streams.CLOSED if call.stream else None)


class LegacyRawProxy(_RawProxyBase):
    """A raw response whose ``parse()`` is sync on either client (openai's ``LegacyAPIResponse``)."""

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_parsed(self.__wrapped__.parse(*args, **kwargs))


class SyncRawProxy(_RawProxyBase):
    """``APIResponse`` (sync): nothing is read until the app asks."""

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_parsed(self.__wrapped__.parse(*args, **kwargs))

    def json(self) -> Any:
        body = self.__wrapped__.json()
        self._self_json(body)
        return body

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_closed()


class AsyncRawProxy(_RawProxyBase):
    """``AsyncAPIResponse``."""

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_parsed(await self.__wrapped__.parse(*args, **kwargs))

    async def json(self) -> Any:
        body = await self.__wrapped__.json()
        self._self_json(body)
        return body

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_closed()
