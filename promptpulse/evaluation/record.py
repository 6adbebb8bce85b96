"""What a rule sees of one LLM call (or one conversation): its dimensions, its attributes and its content.

The same :class:`Call` is built in the app (from the span's attributes and the content the instrumentation saw,
captured on the span or not) and in the processor (from a stored span, whose content was captured). Field paths
(rule ``map`` values) are resolved here, so both places read a call the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptpulse.instrumentation import semconv as sc

# Field paths a rule may map a metric parameter to (docs/EVALUATION.md "Field mappings").
ROOTS = ("input", "output", "system", "messages", "transcript", "attributes", "metadata")


@dataclass
class Call:
    trace_id: str  # lower-case hex, 32 digits
    span_id: str  # lower-case hex, 16 digits
    attributes: Mapping[str, Any] = field(default_factory=dict)
    service: str = ""
    environment: str = ""
    input_messages: Any = None  # gen_ai.input.messages as captured (a list of {role, parts}), or text
    output_messages: Any = None
    system: Any = None
    timestamp: Any = None
    failed: bool = False  # the call ended in an error: it has no answer to evaluate
    # A conversation: its calls in time order (this Call is then the last one, the one its scores attach to).
    turns: Sequence[Call] = ()

    def attr(self, key: str) -> str:
        v = self.attributes.get(key)
        if v is None:
            return ""
        if isinstance(v, (list, tuple)):
            return ",".join(str(x) for x in v)
        return str(v)

    @property
    def model(self) -> str:
        return self.attr(sc.GEN_AI_REQUEST_MODEL) or self.attr(sc.GEN_AI_RESPONSE_MODEL)

    @property
    def tags(self) -> tuple[str, ...]:
        v = self.attributes.get(sc.PROMPTPULSE_TAGS)
        if v is None:
            return ()
        if isinstance(v, (list, tuple)):
            return tuple(str(x) for x in v)
        text = str(v)
        if text.startswith("["):  # an array attribute stored as JSON text in otel_traces
            try:
                return tuple(str(x) for x in json.loads(text))
            except ValueError:
                pass
        return tuple(t for t in text.split(",") if t)

    def dimension(self, name: str) -> str:
        """A filter dimension: prompt_name, prompt_version, model, provider, operation, feature, service,
        environment, conversation_id."""
        if name == "model":
            return self.model
        if name == "service":
            return self.service
        if name == "environment":
            return self.environment
        return self.attr(_DIMENSIONS[name])

    @property
    def has_content(self) -> bool:
        if self.turns:
            return any(t.has_content for t in self.turns)
        return self.input_messages is not None or self.output_messages is not None

    # ---------------------------------------------------------------------------------------------------------
    def resolve(self, path: str) -> Any:
        """The value at a field path, or None when the call has none. ``input`` = the last user message's text,
        ``output`` = the answer's text, ``system`` = the system instructions, ``messages`` = the input as
        "role: text" lines, ``transcript`` = every turn of a conversation (input and answer),
        ``attributes.<key>`` (alias ``metadata.<key>``) = a span attribute; ``input.<k>`` / ``output.<k>`` read
        key ``k`` of a JSON text (``output.answer.text``)."""
        root, _, rest = path.partition(".")
        if root in ("attributes", "metadata"):
            return self.attributes.get(rest) if rest else dict(self.attributes)
        if root == "input":
            base = last_user_text(self.input_messages)
        elif root == "output":
            base = text_of_messages(self.output_messages)
        elif root == "system":
            base = text_of_messages(self.system)
        elif root == "messages":
            base = transcript_of(self.input_messages)
        elif root == "transcript":
            base = self.transcript()
        else:
            raise KeyError(f"unknown field {path!r}: a path starts with one of {', '.join(ROOTS)}")
        if not rest or base is None:
            return base
        try:
            value: Any = json.loads(base)
        except ValueError:
            return None
        for key in rest.split("."):
            if isinstance(value, Mapping):
                value = value.get(key)
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return None
        return value

    def transcript(self) -> str | None:
        turns = self.turns or (self,)
        lines = []
        for t in turns:
            q, a = last_user_text(t.input_messages), text_of_messages(t.output_messages)
            if q:
                lines.append(f"user: {q}")
            if a:
                lines.append(f"assistant: {a}")
        return "\n".join(lines) if lines else None


_DIMENSIONS = {
    "prompt_name": sc.GEN_AI_PROMPT_NAME,
    "prompt_version": sc.GEN_AI_PROMPT_VERSION,
    "provider": sc.GEN_AI_PROVIDER_NAME,
    "operation": sc.GEN_AI_OPERATION_NAME,
    "feature": sc.PROMPTPULSE_FEATURE,
    "conversation_id": sc.GEN_AI_CONVERSATION_ID,
}
DIMENSIONS = (*_DIMENSIONS, "model", "service", "environment")


def parse_content(value: Any) -> Any:
    """Captured content as stored in otel_traces (JSON text, maybe cut by the instrumentation's length limit)."""
    if not isinstance(value, str):
        return value
    if value.startswith(("[", "{")):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def _message_text(message: Any) -> str:
    if isinstance(message, str):
        return message
    if not isinstance(message, Mapping):
        return str(message)
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = message.get("parts")
    if parts is None and isinstance(content, list):
        parts = content
    texts = []
    for p in parts or ():
        if isinstance(p, str):
            texts.append(p)
        elif isinstance(p, Mapping):
            t = p.get("content", p.get("text"))
            if isinstance(t, str) and p.get("type", "text") == "text":
                texts.append(t)
    return "\n".join(texts)


def _messages(value: Any) -> list[Any]:
    value = parse_content(value)
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def text_of_messages(value: Any) -> str | None:
    """The text of every message, joined by newlines (None when there is no content)."""
    if value is None:
        return None
    return "\n".join(t for t in (_message_text(m) for m in _messages(value)) if t)


def last_user_text(value: Any) -> str | None:
    if value is None:
        return None
    msgs = _messages(value)
    for m in reversed(msgs):
        if not isinstance(m, Mapping) or m.get("role", "user") == "user":
            return _message_text(m)
    return _message_text(msgs[-1]) if msgs else ""


def transcript_of(value: Any) -> str | None:
    if value is None:
        return None
    lines = []
    for m in _messages(value):
        role = m.get("role", "user") if isinstance(m, Mapping) else "user"
        lines.append(f"{role}: {_message_text(m)}")
    return "\n".join(lines)


def from_span_row(trace_id: str, span_id: str, attributes: Mapping[str, str], *, service: str = "",
                  environment: str = "", timestamp: Any = None) -> Call:
    """A Call from an otel_traces row (processor side)."""
    return Call(trace_id=trace_id, span_id=span_id, attributes=attributes, service=service, environment=environment,
                input_messages=_content(attributes, sc.GEN_AI_INPUT_MESSAGES),
                output_messages=_content(attributes, sc.GEN_AI_OUTPUT_MESSAGES),
                system=_content(attributes, sc.GEN_AI_SYSTEM_INSTRUCTIONS), timestamp=timestamp)


def _content(attributes: Mapping[str, str], key: str) -> Any:
    v = attributes.get(key)
    return None if v in (None, "") else parse_content(v)
