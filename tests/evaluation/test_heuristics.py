"""The built-in heuristic metrics on known text, and rule parsing, filters, mappings and sampling."""

from __future__ import annotations

import json

import pytest

from promptpulse.evaluation import heuristics as h
from promptpulse.evaluation.metrics import evaluate
from promptpulse.evaluation.record import Call
from promptpulse.evaluation.rules import RuleError, load_evaluation, parse_rule, sample_fraction
from promptpulse.instrumentation import semconv as sc


def _run(metric: str, output: str | None, **params: object) -> h.Result:
    rule = parse_rule({"name": "r", "metric": metric, "params": params})
    call = Call("a" * 32, "b" * 16, output_messages=None if output is None else
                [{"role": "assistant", "parts": [{"type": "text", "content": output}]}])
    return evaluate(rule, rule.inputs(call))


def test_valid_json_and_schema() -> None:
    assert _run("valid_json", '{"a": 1}').value == 1.0
    assert _run("valid_json", '```json\n{"a": 1}\n```').value == 1.0
    bad = _run("valid_json", '{"a": 1')
    assert (bad.value, bad.label) == (0.0, "fail")
    schema = {"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "integer"}}}
    assert _run("json_schema", '{"a": 1, "b": 2}', schema=schema).value == 1.0
    r = _run("json_schema", '{"a": "x"}', schema=schema)
    assert r.value == 0.0 and r.reason.startswith("2 schema error(s)")
    assert _run("json_schema", "not json", schema=json.dumps(schema)).reason == "not valid JSON"


def test_regex_contains_length() -> None:
    assert _run("regex", "Order #12345 shipped", pattern=r"#\d{5}\b").value == 1.0
    assert _run("regex", "Order shipped", pattern=r"#\d{5}\b").value == 0.0
    assert _run("regex", "Order #12345", pattern=r"#\d+", must_not_match=True).value == 0.0
    assert _run("contains", "Thanks, refund issued", value=["REFUND", "credit"]).reason == "1 of 2 value(s) found"
    assert _run("contains", "Thanks, refund issued", value=["refund", "credit"], all=True).value == 0.0
    assert _run("contains", "Refund", value="refund", case_sensitive=True).value == 0.0
    assert _run("not_contains", "our competitor Acme is worse", value=["acme", "globex"]).value == 0.0
    assert _run("not_contains", "all good", value=["acme"]).value == 1.0
    assert _run("length", "one two three", min=1, max=2, unit="words").reason == "3 words (bounds 1..2)"
    assert _run("length", "abcd", max=4).value == 1.0


def test_refusal() -> None:
    for text in ("I'm sorry, but I can't help with that.", "I cannot assist with this request.",
                 "Sure. As an AI language model, I cannot browse the web.", "I must decline."):
        assert _run("refusal", text).value == 0.0, text
    for text in ("Sure! I can't stress enough how easy it is.", "Here is your refund: $20.",
                 "x" * 500 + ". I cannot help with that."):
        assert _run("refusal", text).value == 1.0, text


def test_pii() -> None:
    text = ("mail jo.doe@example.com or ann@corp.co.uk, call +1 415-555-0132 or 06 12 34 56 78, "
            "card 4111 1111 1111 1111 (valid) and 4111 1111 1111 1112 (fails Luhn), order 12345")
    assert h.find_pii(text) == {"email": 2, "phone": 2, "card": 1}
    r = _run("pii", text, types=["card"])
    assert (r.value, r.reason) == (0.0, "found 1 card")
    assert "4111" not in _run("pii", text).reason  # the reason never repeats the PII
    assert _run("pii", "nothing here, order 12345, year 2026").value == 1.0
    assert h.luhn_ok("79927398713") and not h.luhn_ok("79927398710")


def test_language() -> None:
    assert h.detect_language("The cat is on the table and it is happy") == "en"
    assert h.detect_language("Le chat est sur la table et il est content") == "fr"
    assert h.detect_language("Der Hund ist nicht mit dem Ball im Garten") == "de"
    assert h.detect_language("Привет, как дела?") == "ru"
    assert h.detect_language("今日はいい天気ですね") == "ja"
    r = _run("language", "Le chat est sur la table", expected=["en"])
    assert (r.value, r.label, r.reason) == (0.0, "fr", "detected fr, expected en")
    assert _run("language", "zzz qqq", expected="en").error.startswith("language: the text is too short")


def test_missing_content_is_an_error_not_a_score() -> None:
    r = _run("pii", None)
    assert r.value is None and r.error.startswith("no output (content not captured")


def test_rule_validation() -> None:
    with pytest.raises(RuleError, match="metric must be one of"):
        parse_rule({"name": "x", "metric": "nope"})
    with pytest.raises(RuleError, match="sampling is a number"):
        parse_rule({"name": "x", "metric": "pii", "sampling": 1.5})
    with pytest.raises(RuleError, match=r"needs params\.pattern"):
        parse_rule({"name": "x", "metric": "regex"})
    with pytest.raises(RuleError, match="unknown filter 'colour'"):
        parse_rule({"name": "x", "metric": "pii", "filters": {"colour": "red"}})
    with pytest.raises(RuleError, match="judge metrics are not guardrails"):
        parse_rule({"name": "x", "metric": "moderation", "guardrail": "safety"})
    with pytest.raises(RuleError, match="coherence scores a conversation"):
        parse_rule({"name": "x", "metric": "coherence"})
    with pytest.raises(RuleError, match="duplicate rule name"):
        load_evaluation({"rules": [{"name": "a", "metric": "pii"}, {"name": "a", "metric": "refusal"}]})
    assert parse_rule({"name": "x", "metric": "pii", "guardrail": True}).guardrail == "pii"
    assert parse_rule({"name": "x", "metric": "valid_json", "guardrail": True}).guardrail == "format"


def test_filters_and_mapping() -> None:
    rule = parse_rule({"name": "r", "metric": "contains", "params": {"value": "42"},
                       "filters": {"prompt": "support", "model": ["gpt-4o", "gpt-4o-mini"], "tags": ["beta"]},
                       "map": {"output": "output.answer"}})
    attrs = {sc.GEN_AI_PROMPT_NAME: "support", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.PROMPTPULSE_TAGS: ("beta", "x")}
    call = Call("a" * 32, "b" * 16, attrs, output_messages=[{"role": "assistant", "content": '{"answer": "42"}'}])
    assert rule.matches(call)
    assert rule.inputs(call)["output"] == "42"
    assert not rule.matches(Call("a" * 32, "b" * 16, {**attrs, sc.PROMPTPULSE_TAGS: ("prod",)}))
    assert not rule.matches(Call("a" * 32, "b" * 16, {**attrs, sc.GEN_AI_REQUEST_MODEL: "claude"}))
    judge_call = Call("a" * 32, "b" * 16, {**attrs, sc.PROMPTPULSE_FEATURE: "promptpulse.evaluation"})
    assert not rule.matches(judge_call)  # the judge's own calls are never evaluated


def test_sampling_is_deterministic_and_nested() -> None:
    ids = [f"{i:032x}" for i in range(1, 1001)]
    r10 = parse_rule({"name": "a", "metric": "pii", "sampling": 0.1})
    r25 = parse_rule({"name": "b", "metric": "pii", "sampling": 0.25})
    s10 = {t for t in ids if r10.sampled(t)}
    s25 = {t for t in ids if r25.sampled(t)}
    assert (len(s10), len(s25)) == (102, 244)
    assert s10 <= s25
    # SHA-256("abc") starts ba7816bf8f01cfea
    assert sample_fraction("ABC") == sample_fraction("abc") == 0xBA7816BF8F01CFEA / 2**64
    assert parse_rule({"name": "c", "metric": "pii", "sampling": 0.0}).sampled(ids[0]) is False
