"""What the provider modules share: duck-typed field access, the instrumentor skeleton, and a generic endpoint for
SDKs whose calls are described by a few functions (read the request, read the response, read a stream)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from promptpulse import __version__
from promptpulse.instrumentation import fingerprint as fp
from promptpulse.instrumentation import patching, streams
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.spans import AttributeValue, LLMCall, Telemetry

_log = logging.getLogger(__name__)


def get(obj: Any, key: str) -> Any:
    """A field of an SDK object or of the plain dict the SDK also accepts; None when absent."""
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


# --- instrumentors -------------------------------------------------------------------------------------------------
class Instrumentor(BaseInstrumentor):  # type: ignore[misc]
    """An instrumentor that wraps SDK methods: subclasses name their SDK requirement, the module whose import means
    the SDK is in use, and list their patches.

    ``instrument()`` imports no SDK: ``patches()`` runs when the app imports ``_SDK_MODULE`` (now, if it already
    has), and each patch is applied when its own module is imported (``patching.LazyPatcher``). An installed SDK
    outside ``_INSTRUMENTS`` gets one warning and no patches. Telemetry is scoped to the subclass's module. Never
    instantiated itself (``BaseInstrumentor`` is a singleton per class).
    """

    _INSTRUMENTS: tuple[str, ...] = ()
    _SDK_MODULE: str = ""
    _patcher: patching.LazyPatcher | None = None
    telemetry: Telemetry | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return self._INSTRUMENTS

    def _check_dependency_conflicts(self) -> None:
        return None  # checked in _instrument, the same way for instrument() and opentelemetry-instrument

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        raise NotImplementedError

    def _instrument(self, **kwargs: Any) -> None:
        if self._patcher is not None:  # never wrap twice, whatever BaseInstrumentor's bookkeeping says
            return
        if not supported(type(self).__name__, self._INSTRUMENTS):
            return
        telemetry = self.telemetry = Telemetry(
            type(self).__module__,
            __version__,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            capture_content=kwargs.get("capture_content"),
        )
        patcher = self._patcher = patching.LazyPatcher(type(self).__name__)
        patcher.when_imported(self._SDK_MODULE, lambda _module: self._on_sdk_import(telemetry, patcher))

    def _on_sdk_import(self, telemetry: Telemetry, patcher: patching.LazyPatcher) -> None:
        """The app imported the SDK: register its patches (each applied when its module is imported)."""
        patcher.apply(self.patches(telemetry))

    def _uninstrument(self, **kwargs: Any) -> None:
        patcher, self._patcher = self._patcher, None
        if patcher is not None:
            patcher.revert()


def supported(owner: str, requirements: Collection[str]) -> bool:
    """False, with one warning, when an SDK in ``requirements`` is installed at a version outside its range. Reads
    package metadata only (no SDK import). Not installed is not a warning: nothing will import it."""
    conflict = get_dependency_conflicts(requirements)
    if conflict is None:
        return True
    if conflict.found:
        _log.warning(
            "promptpulse: %s supports %s, but %s is installed: nothing is instrumented",
            owner,
            conflict.required,
            conflict.found,
        )
        return False
    return True


# --- a generic endpoint --------------------------------------------------------------------------------------------
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
        "capture",
        "capture_input",
        "capture_output",
        "fingerprint",
        "operation",
        "read",
        "stream_handler",
        "target",
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
        self.capture = telemetry.capture_content
        self.target = target
        self.attributes = attributes
        self.read = read
        self.fingerprint = fingerprint
        self.capture_input = capture_input
        self.capture_output = capture_output
        self.stream_handler = stream_handler

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


# --- shared request reading ----------------------------------------------------------------------------------------
def number_attributes(kwargs: Mapping[str, Any], params: Sequence[tuple[str, str, type]]) -> dict[str, AttributeValue]:
    """``(key, attribute, int or float)`` numeric settings the app passed: floats normalised, ints kept as ints; bools,
    None and SDK sentinels (neither int nor float) skipped."""
    attrs: dict[str, AttributeValue] = {}
    for key, attr, kind in params:
        value = kwargs.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if kind is float:
            attrs[attr] = float(value)
        elif isinstance(value, int):
            attrs[attr] = value
    return attrs


def capture_messages(call: LLMCall, kwargs: Mapping[str, Any]) -> None:
    """``messages`` as given (dicts kept, SDK objects as their string) into ``gen_ai.input.messages``."""
    messages = kwargs.get("messages")
    if isinstance(messages, Sequence):
        call.capture(sc.GEN_AI_INPUT_MESSAGES, [m if isinstance(m, Mapping) else str(m) for m in messages])


def text_of(content: Any) -> str | None:
    """A message's text: a string, or the text of a list of strings and text parts (joined by newlines)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [t for t in (c if isinstance(c, str) else get(c, "text") for c in content) if isinstance(t, str)]
        return "\n".join(texts) if texts else None
    return None


def messages_fingerprint(messages: Any) -> str | None:
    """Fingerprint of the system messages' text (joined), else of the first message's text."""
    if not isinstance(messages, Sequence) or not messages:
        return None
    system = [text_of(get(m, "content")) for m in messages if get(m, "role") == "system"]
    instructions = "\n".join(t for t in system if t) or None
    first = None if instructions else text_of(get(messages[0], "content"))
    template = fp.template_of(instructions, first)
    return fp.fingerprint(template) if template else None
