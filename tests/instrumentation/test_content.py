"""Captured content cut to size stays JSON (instrumentation/kit/content.py)."""

from __future__ import annotations

import json

from promptpulse.instrumentation.kit.content import MARK, to_json

MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "You are support agent 7."}]},
    {"role": "user", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "x" * 500}]},
]


def test_fits_untouched() -> None:
    assert to_json(MESSAGES, 10_000) == json.dumps(MESSAGES, ensure_ascii=False)


def test_long_strings_are_cut_inside_the_structure() -> None:
    text = to_json(MESSAGES, 250)
    assert len(text) <= 250
    cut = json.loads(text)
    assert [m["role"] for m in cut] == ["system", "user"]
    assert cut[1]["parts"][0]["id"] == "call_1"  # structural fields are never shortened
    assert cut[1]["parts"][0]["response"].endswith(MARK)
    assert cut[0]["parts"][0]["content"] == "You are support agent 7."  # short enough under the common cap


def test_trailing_items_give_way_to_a_marker() -> None:
    cut = json.loads(to_json(MESSAGES, 120))
    assert cut == [
        {"role": "system", "parts": [{"type": "text", "content": MARK}]},
        {"type": "truncated", "omitted": 1},
    ]


def test_a_bare_string_is_cut_as_text() -> None:
    assert to_json("abcdef", 3) == "abc" + MARK
