"""LLM-as-judge metrics through the real openai and anthropic SDKs against the fake provider: good, bad and failing
answers, judge cost, and the judge's own calls tagged as evaluation calls and never evaluated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptpulse.evaluation import inapp
from promptpulse.evaluation.metrics import evaluate
from promptpulse.evaluation.record import Call
from promptpulse.evaluation.rules import parse_rule
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation import spans
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.testing import FakeProvider, RequestInfo, Scenario

ANSWERS: dict[str, str] = {}


def judge_text(req: RequestInfo) -> str:
    for key, text in ANSWERS.items():
        if key in req.prompt_text:
            return text
    return "Your order ships today."


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("JUDGE_KEY", "sk-judge")
    ANSWERS.clear()
    with FakeProvider(Scenario(text=judge_text, input_tokens=1000, output_tokens=50)) as f:
        yield f


def _rule(fake: FakeProvider, metric: str, provider: str = "openai", **extra: Any) -> Any:
    base = fake.openai_base_url if provider == "openai" else fake.anthropic_base_url
    model = "gpt-4o-mini" if provider == "openai" else "claude-3-5-haiku"
    return parse_rule({"name": f"j-{metric}", "metric": metric, **extra,
                       "judge": {"provider": provider, "model": model, "base_url": base, "api_key_env": "JUDGE_KEY"}})


def _call(question: str, answer: str, **attrs: Any) -> Call:
    return Call("a" * 32, "b" * 16, attrs, input_messages=[{"role": "user", "content": question}],
                output_messages=[{"role": "assistant", "content": answer}])


GPT_4O_MINI_COST = (1000 * 0.15 + 50 * 0.60) / 1_000_000  # prices per Mtok from instrumentation/prices


def test_hallucination_against_a_context_field(fake: FakeProvider) -> None:
    ANSWERS["CONTEXT:"] = 'Here you go: {"score": 0.25, "reason": "The refund amount is not in the context."}'
    rule = _rule(fake, "hallucination", map={"context": "attributes.retrieval.context"})
    r = evaluate(rule, rule.inputs(_call("How much is my refund?", "$500", **{"retrieval.context": "Refunds: $20"})))
    assert (r.value, r.label, r.reason, r.error) == (0.25, "hallucinated", "The refund amount is not in the context.",
                                                      "")
    assert r.judge_model == "gpt-4o-mini" and r.judge_cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    (req,) = fake.requests_to("chat")
    body = req.body if isinstance(req.body, dict) else json.loads(req.body)
    prompt = body["messages"][1]["content"]
    assert "CONTEXT:\nRefunds: $20" in prompt and "ANSWER:\n$500" in prompt and body["temperature"] == 0
    # No context mapped / present: an evaluation error without calling the judge.
    r = evaluate(rule, rule.inputs(_call("q", "a")))
    assert r.error.startswith("no context") and len(fake.requests_to("chat")) == 1


def test_bad_and_failing_judges_give_errors_not_scores(fake: FakeProvider) -> None:
    rule = _rule(fake, "answer_relevance")
    call = _call("Where is my order?", "It ships today.")
    for answer, error in (("I think it is fine.", "judge answered badly: no JSON object in the answer"),
                          ('{"score": 1.7, "reason": "x"}', "judge answered badly: score 1.7 outside 0..1"),
                          ('{"score": "high"}', "judge answered badly: score is not a number: 'high'"),
                          ('{"score": 0.5', "judge answered badly: no JSON object in the answer")):
        ANSWERS["QUESTION:"] = answer
        r = evaluate(rule, rule.inputs(call))
        assert (r.value, r.error) == (None, error)
        assert r.judge_cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)  # the judge was paid all the same
    fake.fail_next(2, 500)  # the SDK retries once
    r = evaluate(rule, rule.inputs(call))
    assert r.value is None and r.error.startswith("judge call failed: InternalServerError")
    assert r.judge_cost_usd is None


def test_rubric_and_moderation_through_anthropic(fake: FakeProvider) -> None:
    ANSWERS["Rate the politeness"] = '{"score": 4, "reason": "Polite, a little curt."}'
    rule = _rule(fake, "rubric", "anthropic",
                 params={"template": "Rate the politeness of: {output}", "min": 1, "max": 5})
    r = evaluate(rule, rule.inputs(_call("q", "Fine, here it is.")))
    assert (r.value, r.reason, r.judge_model) == (4.0, "Polite, a little curt.", "claude-3-5-haiku")
    assert r.judge_cost_usd == pytest.approx((1000 * 0.80 + 50 * 4.00) / 1_000_000, rel=1e-12)
    (req,) = fake.requests_to("messages")
    body = req.body if isinstance(req.body, dict) else json.loads(req.body)
    assert body["messages"][0]["content"] == "Rate the politeness of: Fine, here it is."
    ANSWERS["TEXT:"] = '{"score": 0.0, "reason": "harassment"}'
    r = evaluate(_rule(fake, "moderation", "anthropic"), {"output": "you are an idiot"})
    assert (r.value, r.label, r.reason) == (0.0, "flagged", "harassment")


def test_coherence_of_a_conversation(fake: FakeProvider) -> None:
    ANSWERS["CONVERSATION:"] = '{"score": 0.9, "reason": "Consistent."}'
    rule = _rule(fake, "coherence", target="conversation")
    turns = (_call("hi", "Hello! How can I help?"), _call("my order?", "It ships today."))
    conv = Call("a" * 32, "b" * 16, turns=turns)
    r = evaluate(rule, rule.inputs(conv))
    assert (r.value, r.reason) == (0.9, "Consistent.")
    body = fake.requests_to("chat")[0].body
    body = body if isinstance(body, dict) else json.loads(body)
    assert body["messages"][1]["content"].endswith(
        "CONVERSATION:\nuser: hi\nassistant: Hello! How can I help?\nuser: my order?\nassistant: It ships today.")


def test_in_app_judge_calls_are_evaluation_calls(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(spans.CAPTURE_CONTENT_ENV, raising=False)
    ANSWERS["QUESTION:"] = '{"score": 0.8, "reason": "On topic."}'
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp)
    try:
        rule = _rule(fake, "answer_relevance")
        ev = inapp.enable(rules=[rule], tracer_provider=tp)
        app = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-app", max_retries=0)
        app.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Where is my order?"}])
        assert ev.flush()
    finally:
        inapp.disable()
        inst.uninstrument()
    finished = exporter.get_finished_spans()
    app_call, judge_call = [s for s in finished if s.name.startswith("chat ")]
    (score,) = [s for s in finished if s.name.startswith("gen_ai.evaluation ")]
    assert app_call.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert sc.PROMPTPULSE_FEATURE not in app_call.attributes
    assert judge_call.attributes[sc.PROMPTPULSE_FEATURE] == "promptpulse.evaluation"  # counted apart
    assert judge_call.attributes[sc.PROMPTPULSE_COST_USD] == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert judge_call.context.trace_id != app_call.context.trace_id  # its own trace, not the app's
    assert score.parent.span_id == app_call.context.span_id
    assert score.attributes[sc.GEN_AI_EVALUATION_SCORE_VALUE] == 0.8
    assert score.attributes["promptpulse.evaluation.judge.model"] == "gpt-4o-mini"
    assert score.attributes["promptpulse.evaluation.judge.cost_usd"] == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert ev.stats["queued"] == 1  # the judge's call was not queued for evaluation


def test_judge_calls_not_recorded_when_asked(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(spans.CAPTURE_CONTENT_ENV, raising=False)
    ANSWERS["QUESTION:"] = '{"score": 0.8, "reason": "On topic."}'
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp)
    try:
        rule = parse_rule({"name": "rel", "metric": "answer_relevance", "judge": {
            "model": "gpt-4o-mini", "base_url": fake.openai_base_url, "api_key_env": "JUDGE_KEY",
            "record_calls": False}})
        ev = inapp.enable(rules=[rule], tracer_provider=tp)
        app = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-app", max_retries=0)
        app.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Where is my order?"}])
        assert ev.flush()
    finally:
        inapp.disable()
        inst.uninstrument()
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert names == ["chat gpt-4o", "gen_ai.evaluation rel"]  # no span of the judge's call
    (score,) = [s for s in exporter.get_finished_spans() if s.name.startswith("gen_ai.evaluation ")]
    assert score.attributes["promptpulse.evaluation.judge.cost_usd"] == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert len(fake.requests_to("chat")) == 2  # the judge was asked all the same
