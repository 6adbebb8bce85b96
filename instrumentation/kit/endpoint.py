"""``Endpoint``: one patched method described by a few functions — where the call goes, the request's attributes and
fingerprint, how to read the result or its stream — which ``wrappers.sync_wrapper``/``async_wrapper`` run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptpulse.instrumentation import streams
from promptpulse.instrumentation.spans import LLMCall, Telemetry

Target = Callable[[Any], "tuple[str, str | None, int | None]"]  # instance -> (provider, host, port)
KwargsReader = Callable[[dict[str, Any]], Any]


class Endpoint:
    """A ``wrappers.Endpoint`` put together from functions of the request keyword arguments and of the result.

    ``start``: ``target(instance)`` gives provider, host and port; ``attributes(kwargs)`` the request attributes;
    ``fingerprint(kwargs)`` the prompt fingerprint; ``capture_input(call, kwargs)`` runs when content capture is on.
    ``finish``: with a ``stream_handler`` factory the call is a stream and the result is proxied; otherwise
    ``read(call, result)`` reads it (and ``capture_output(call, result)`` when content capture is on) and the call ends.
    """

    __slots__ = (
        "attributes",
        "capture_input",
        "capture_output",
        "fingerprint",
        "operation",
        "read",
        "stream_handler",
        "target",
        "telemetry",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        operation: str,
        *,
        target: Target,
        attributes: KwargsReader,
        read: Callable[[LLMCall, Any], None],
        fingerprint: KwargsReader | None = None,
        capture_input: Callable[[LLMCall, dict[str, Any]], None] | None = None,
        capture_output: Callable[[LLMCall, Any], None] | None = None,
        stream_handler: Callable[[], streams.StreamHandler] | None = None,
    ) -> None:
        self.operation = operation
        self.telemetry = telemetry
        self.target = target
        self.attributes = attributes
        self.read = read
        self.fingerprint = fingerprint
        self.capture_input = capture_input
        self.capture_output = capture_output
        self.stream_handler = stream_handler

    @property
    def capture(self) -> bool:
        # read per call: the in-app evaluator (promptpulse.evaluation.inapp) may be enabled after instrument()
        return self.telemetry.capture_content

    def start(self, telemetry: Telemetry, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
        model = kwargs.get("model")
        provider, host, port = self.target(instance)
        call = telemetry.start(
            self.operation,
            provider,
            model if isinstance(model, str) else "",
            stream=self.stream_handler is not None,
            server_address=host,
            server_port=port,
            attributes=self.attributes(kwargs),
            fingerprint=self.fingerprint(kwargs) if self.fingerprint is not None else None,
        )
        if self.capture and self.capture_input is not None:
            self.capture_input(call, kwargs)
        return call

    def finish(self, call: LLMCall, result: Any) -> Any:
        if self.stream_handler is not None:
            return streams.proxy(result, call, self.stream_handler())
        self.read(call, result)
        if self.capture and self.capture_output is not None:
            self.capture_output(call, result)
        call.end()
        return result
