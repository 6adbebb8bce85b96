"""``Endpoint``: one patched method described by a few functions — where the call goes, the request's attributes and
fingerprint, how to read the result or its stream — which ``wrappers.sync_wrapper``/``async_wrapper`` run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation import streams
from promptpulse.instrumentation.spans import AttributeValue, LLMCall, Telemetry

Target = Callable[[Any], "tuple[str, str | None, int | None]"]  # instance -> (provider, host, port)
KwargsReader = Callable[[dict[str, Any]], Any]


class Endpoint:
    """The one endpoint abstraction: a ``wrappers.Endpoint`` whose steps are hooks, each given as a function or
    overridden by a subclass (``kit.stainless.Endpoint`` does for OpenAI-shaped SDKs).

    ``start``: ``target(instance)`` gives provider, host and port; ``request_model(args, kwargs)`` the model;
    ``streams(kwargs)`` whether the call streams (default: a ``stream_handler`` factory was given);
    ``attributes(kwargs)`` the request attributes; ``fingerprint(kwargs)`` the prompt fingerprint;
    ``capture_input(call, kwargs)`` runs when content is captured.
    ``finish``: a streamed call's result is proxied with ``stream_handler(call)``; otherwise ``read(call, result)``
    reads it (and ``capture_output(call, result)`` when content is captured) and the call ends.
    """

    operation: str = sc.OPERATION_CHAT

    def __init__(
        self,
        telemetry: Telemetry,
        operation: str | None = None,
        *,
        target: Target | None = None,
        attributes: KwargsReader | None = None,
        read: Callable[[LLMCall, Any], None] | None = None,
        fingerprint: KwargsReader | None = None,
        capture_input: Callable[[LLMCall, dict[str, Any]], None] | None = None,
        capture_output: Callable[[LLMCall, Any], None] | None = None,
        stream_handler: Callable[[], streams.StreamHandler] | None = None,
    ) -> None:
        self.telemetry = telemetry
        if operation is not None:
            self.operation = operation
        self._target = target
        self._attributes = attributes
        self._read = read
        self._fingerprint = fingerprint
        self._capture_input = capture_input
        self._capture_output = capture_output
        self._stream_handler = stream_handler

    @property
    def capture(self) -> bool:
        # read per call: the in-app evaluator (promptpulse.evaluation.inapp) may be enabled after instrument()
        return self.telemetry.capture_content

    # --- hooks ------------------------------------------------------------------------------------------------------
    def target(self, instance: Any) -> tuple[str, str | None, int | None]:
        if self._target is None:
            raise NotImplementedError("an Endpoint needs a target")
        return self._target(instance)

    def request_model(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        model = kwargs.get("model")
        return model if isinstance(model, str) else ""

    def streams(self, kwargs: dict[str, Any]) -> bool:
        return self._stream_handler is not None

    def attributes(self, kwargs: dict[str, Any]) -> Mapping[str, AttributeValue] | None:
        return self._attributes(kwargs) if self._attributes is not None else None

    def fingerprint(self, kwargs: dict[str, Any]) -> str | None:
        return self._fingerprint(kwargs) if self._fingerprint is not None else None

    def capture_input(self, call: LLMCall, kwargs: dict[str, Any]) -> None:
        if self._capture_input is not None:
            self._capture_input(call, kwargs)

    def read(self, call: LLMCall, result: Any) -> None:
        """Read a parsed, non-streamed result into the call."""
        if self._read is not None:
            self._read(call, result)

    def capture_output(self, call: LLMCall, result: Any) -> None:
        if self._capture_output is not None:
            self._capture_output(call, result)

    def stream_handler(self, call: LLMCall) -> streams.StreamHandler | None:
        return self._stream_handler() if self._stream_handler is not None else None

    # --- wrappers.Endpoint ------------------------------------------------------------------------------------------
    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        provider, host, port = self.target(instance)
        call = telemetry.start(
            self.operation,
            provider,
            self.request_model(args, kwargs),
            stream=self.streams(kwargs),
            server_address=host,
            server_port=port,
            attributes=self.attributes(kwargs),
            fingerprint=self.fingerprint(kwargs),
        )
        if self.capture:
            self.capture_input(call, kwargs)
        return call

    def finish(self, call: LLMCall, result: Any) -> Any:
        if call.stream:
            handler = self.stream_handler(call)
            if handler is not None:
                return streams.proxy(result, call, handler)
        self.read(call, result)
        if self.capture:
            self.capture_output(call, result)
        call.end()
        return result
