"""Captured content cut to size stays JSON (instrumentation/kit/content.py)."""

from __future__ import annotations

import json

import pytest

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


def test_get_reads_dicts_mappings_and_objects_by_their_type(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import UserDict
    from types import MappingProxyType, SimpleNamespace

    from promptpulse.instrumentation.kit import content

    content._is_mapping.clear()
    for _ in range(2):  # the second pass answers from the per-type memo
        assert content.get({"k": 1}, "k") == 1
        assert content.get(UserDict({"k": 2}), "k") == 2
        assert content.get(MappingProxyType({"k": 3}), "k") == 3
        assert content.get(SimpleNamespace(k=4), "k") == 4
        assert content.get(SimpleNamespace(), "k") is None
        assert content.get(None, "k") is None
        assert content.get(UserDict(), "k") is None
    assert content._is_mapping == {UserDict: True, MappingProxyType: True, SimpleNamespace: False, type(None): False}
    monkeypatch.setattr(content, "_IS_MAPPING_MAX", 2)
    content.get(1, "k")  # full: the memo starts over rather than grow
    assert content._is_mapping == {int: False}
