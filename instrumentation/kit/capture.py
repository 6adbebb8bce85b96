"""Where captured message content goes: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (or
``instrument(capture_content=...)``) takes the official contrib values:

- ``false`` (default), ``no_content``: none;
- ``true``, ``span_only``: ``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions`` as
  span attributes (``true`` keeps PromptPulse's earlier meaning);
- ``event_only``: one ``gen_ai.client.inference.operation.details`` event per call, emitted through the app's
  ``LoggerProvider`` (the global one, or ``instrument(logger_provider=...)``) in the call span's context — the span
  itself carries no content;
- ``span_and_event``: both.
Values are case-insensitive; anything else is off, with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import _logs, trace

from promptpulse.instrumentation import semconv as sc

if TYPE_CHECKING:
    from promptpulse.instrumentation.spans import LLMCall

_log = logging.getLogger(__name__)

EVENT_NAME = "gen_ai.client.inference.operation.details"
# mode → (on the span, in an event)
MODES: Mapping[str, tuple[bool, bool]] = {
    "false": (False, False),
    "no_content": (False, False),
    "0": (False, False),
    "no": (False, False),
    "off": (False, False),
    "": (False, False),
    "true": (True, False),
    "1": (True, False),
    "yes": (True, False),
    "on": (True, False),
    "span_only": (True, False),
    "event_only": (False, True),
    "span_and_event": (True, True),
}
# What the event repeats of the span, so that it can be read on its own.
_EVENT_ATTRIBUTES = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    sc.GEN_AI_RESPONSE_MODEL,
    sc.GEN_AI_RESPONSE_ID,
    sc.GEN_AI_RESPONSE_FINISH_REASONS,
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
)
_warned: set[str] = set()


def parse_mode(value: str | bool | None) -> tuple[bool, bool]:
    """(content on the span, content in an event) for a setting."""
    if value is None or isinstance(value, bool):
        return bool(value), False
    key = value.strip().lower()
    found = MODES.get(key)
    if found is None:
        if key not in _warned:
            _warned.add(key)
            _log.warning(
                "promptpulse: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=%r is not one of %s; content is off",
                value,
                "true, false, span_only, event_only, span_and_event",
            )
        return False, False
    return found


def emit_event(
    logger: _logs.Logger, call: LLMCall, content: Mapping[str, Any], truncate: Callable[[Any], str]
) -> None:
    """The call's content as one event, in the call span's context (it carries the span's trace and span ids)."""
    attributes = getattr(call.span, "attributes", None) or {}
    attrs: dict[str, Any] = {key: attributes[key] for key in _EVENT_ATTRIBUTES if key in attributes}
    for key, value in content.items():
        attrs[key] = truncate(value)
    try:
        logger.emit(
            _logs.LogRecord(
                event_name=EVENT_NAME,
                attributes=attrs,
                context=trace.set_span_in_context(call.span),
            )
        )
    except Exception:
        _log.debug("promptpulse: emitting the content event failed", exc_info=True)
