"""Request keyword arguments → ``gen_ai.request.*`` attributes.

A provider lists its settings as ``{kwarg: (attribute, kind)}``; ``request_attributes`` loops over the (few) keyword
arguments the app passed, not over every known setting, and skips None and the SDK's sentinel types (Omit, NotGiven,
UNSET: values of these types were not passed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptpulse.instrumentation.spans import AttributeValue

# Kinds: how a value is normalised.
NUMBER, INT, FLOAT, STOP, RESPONSE_FORMAT, TEXT_CONFIG, ENCODING, TEXT_FORMAT, STRING, REASONING = range(10)
Params = Mapping[str, tuple[str, int]]


def arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    """An argument the SDK function takes positionally (at ``index``) or by keyword (``name``); None if absent."""
    return args[index] if len(args) > index else kwargs.get(name)


def output_type(fmt: Any) -> str | None:
    """``gen_ai.output.type`` of a response format: a ``{"type": ...}`` mapping or a pydantic model (``.parse()``)."""
    if isinstance(fmt, Mapping):
        kind = fmt.get("type")
        if kind in ("json_object", "json_schema"):
            return "json"
        return "text" if kind == "text" else None
    if isinstance(fmt, type):
        return "json"
    return None


def stop_sequences(value: Any) -> tuple[str, ...] | None:
    """A stop setting as ``gen_ai.request.stop_sequences``: one string, or a sequence of strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _value(value: Any, kind: int) -> AttributeValue | None:
    if isinstance(value, bool):
        return None
    if kind == NUMBER:
        return value if isinstance(value, (int, float)) else None
    if kind == INT:
        return value if isinstance(value, int) else None
    if kind == FLOAT:
        return float(value) if isinstance(value, (int, float)) else None
    if kind == STOP:
        return stop_sequences(value)
    if kind == RESPONSE_FORMAT:
        return output_type(value)
    if kind == TEXT_CONFIG:
        return output_type(value.get("format")) if isinstance(value, Mapping) else None
    if kind == TEXT_FORMAT:
        return "json"
    if kind == ENCODING:
        return (value,) if isinstance(value, str) else None
    if kind == STRING:
        return value if isinstance(value, str) and value else None
    if kind == REASONING:  # {"effort": "low", ...}
        effort = value.get("effort") if isinstance(value, Mapping) else None
        return effort if isinstance(effort, str) and effort else None
    return None


def request_attributes(
    kwargs: Mapping[str, Any], params: Params, sentinels: tuple[type, ...] = ()
) -> dict[str, AttributeValue]:
    """The attributes of the settings in ``params`` that ``kwargs`` holds (the first of two kwargs mapping to one
    attribute wins, e.g. ``max_tokens`` / ``max_completion_tokens``)."""
    attrs: dict[str, AttributeValue] = {}
    for key, value in kwargs.items():
        spec = params.get(key)
        if spec is None or value is None or type(value) in sentinels:
            continue
        attr, kind = spec
        out = _value(value, kind)
        if out is not None and attr not in attrs:
            attrs[attr] = out
    return attrs
