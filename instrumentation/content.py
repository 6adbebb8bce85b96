"""Captured message content as JSON that stays JSON when it is cut to size.

``to_json(value, limit)`` gives at most about ``limit`` characters: when the whole does not fit, the longest strings
inside are shortened (each ending in ``MARK``) and, if that is not enough, trailing list items are replaced by one
``{"type": "truncated", "omitted": n}`` entry. The structure — roles, part types, tool-call ids — survives; a reader
can always ``json.loads`` the attribute. Off the hot path: only runs when content capture is on.
"""

from __future__ import annotations

import json
from typing import Any

MARK = "…[truncated]"
# Structural fields: never shortened (they are short, and a reader needs them whole).
_KEEP = frozenset({"role", "type", "id", "name", "finish_reason", "mime_type", "modality"})


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _cap_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= cap else value[:cap] + MARK
    if isinstance(value, dict):
        return {k: v if k in _KEEP and isinstance(v, str) else _cap_strings(v, cap) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cap_strings(v, cap) for v in value]
    return value


def _longest_string(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_string(v) for k, v in value.items() if k not in _KEEP), default=0)
    if isinstance(value, list | tuple):
        return max((_longest_string(v) for v in value), default=0)
    return 0


def _drop_tail(value: list[Any], limit: int) -> list[Any]:
    """Keep the leading items that fit, then one marker saying how many were left out."""
    for keep in range(len(value) - 1, -1, -1):
        candidate = [*value[:keep], {"type": "truncated", "omitted": len(value) - keep}]
        if len(_dumps(candidate)) <= limit:
            return candidate
    return [{"type": "truncated", "omitted": len(value)}]


def to_json(value: Any, limit: int) -> str:
    """``value`` as JSON of at most ``limit`` characters where possible (a bare string is cut as text)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + MARK
    text = _dumps(value)
    if len(text) <= limit:
        return text
    # The largest per-string cap that fits, by bisection over 0..longest string.
    low, high = 0, _longest_string(value)
    best: Any = None
    while low <= high:
        cap = (low + high) // 2
        candidate = _cap_strings(value, cap)
        if len(_dumps(candidate)) <= limit:
            best, low = candidate, cap + 1
        else:
            high = cap - 1
    if best is not None:
        return _dumps(best)
    shortest = _cap_strings(value, 0)
    if isinstance(shortest, list):
        return _dumps(_drop_tail(shortest, limit))
    return _dumps({"type": "truncated"})
