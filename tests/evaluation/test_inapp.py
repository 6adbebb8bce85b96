"""The in-app evaluator with the real openai SDK over loopback against the fake provider: content capture off, the
rules still see the answers, only score spans leave; sampling, conversations after inactivity, a full queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import promptpulse
from promptpulse.evaluation import inapp
from promptpulse.evaluation.rules import parse_rule
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation import spans
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.testing import FakeProvider, RequestInfo, Scenario


def answer(req: RequestInfo) -> str:
    if "card" in req.prompt_text:
        return "Your card 4111 1111 1111 1111 is on file."
    if "forbidden" in req.prompt_text:
        return "I'm sorry, but I can't help with that."
    return "Your order ships today."


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv(spans.CAPTURE_CONTENT_ENV, raising=False)
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp)
    with FakeProvider(Scenario(text=answer)) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0)
        yield tp, exporter, client
    inapp.disable()
    inst.uninstrument()
    tp.shutdown()


def _ask(client: openai.OpenAI, text: str) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])


def test_rules_run_in_the_app_with_capture_off(env: Any) -> None:
    tp, exporter, client = env
    ev = inapp.enable(rules=[{"name": "card-guard", "metric": "pii", "guardrail": True, "params": {"types": ["card"]}},
                             {"name": "refusals", "metric": "refusal", "filters": {"prompt_name": "support"}}],
                      tracer_provider=tp)
    with promptpulse.prompt("support"):
        r = _ask(client, "where is my order?")
        _ask(client, "read my card back")
        _ask(client, "something forbidden")
    _ask(client, "untagged: forbidden and card")  # card-guard only (refusals filters on the prompt)
    assert r.choices[0].message.content == "Your order ships today."  # the SDK's answer is untouched
    assert ev.flush()
    calls = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    evals = [s for s in exporter.get_finished_spans() if s.name.startswith("gen_ai.evaluation ")]
    assert len(calls) == 4
    for s in calls:  # content capture is off: nothing of the conversation is on the call spans
        assert not {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES} & set(s.attributes)
    got = sorted((s.attributes[sc.GEN_AI_EVALUATION_NAME], s.attributes[sc.GEN_AI_EVALUATION_SCORE_VALUE],
                  s.attributes.get("promptpulse.evaluation.guardrail", ""),
                  s.attributes[sc.GEN_AI_EVALUATION_EXPLANATION]) for s in evals)
    assert got == [("card-guard", 0.0, "pii", "found 1 card"), ("card-guard", 0.0, "pii", "found 1 card"),
                   ("card-guard", 1.0, "pii", "no PII found"), ("card-guard", 1.0, "pii", "no PII found"),
                   ("refusals", 0.0, "", "the answer is a refusal"), ("refusals", 1.0, "", "not a refusal"),
                   ("refusals", 1.0, "", "not a refusal")]
    call_ids = {(s.context.trace_id, s.context.span_id) for s in calls}
    assert {(s.context.trace_id, s.parent.span_id) for s in evals} <= call_ids  # each names its call
    assert ev.stats == {"queued": 4, "dropped": 0, "scored": 7, "errors": 0, "conversations_dropped": 0}


def test_sampling_by_trace_id(env: Any) -> None:
    tp, exporter, client = env
    ev = inapp.enable(rules=[{"name": "half", "metric": "refusal", "sampling": 0.5}], tracer_provider=tp)
    for i in range(20):
        _ask(client, f"question {i}")
    assert ev.flush()
    calls = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    evals = [s for s in exporter.get_finished_spans() if s.name.startswith("gen_ai.evaluation ")]
    rule = parse_rule({"name": "half", "metric": "refusal", "sampling": 0.5})
    expected = {s.context.trace_id for s in calls if rule.sampled(f"{s.context.trace_id:032x}")}
    assert {s.context.trace_id for s in evals} == expected
    assert ev.stats["queued"] == len(expected) == len(evals)


def test_conversation_scored_after_inactivity(env: Any) -> None:
    tp, exporter, client = env
    now = [1000.0]
    rule = parse_rule({"name": "conv-card", "metric": "pii", "target": "conversation", "idle": "10m"})
    ev = inapp.InAppEvaluator([rule], tracer_provider=tp, clock=lambda: now[0])
    spans.end_hook = ev.hook
    try:
        with promptpulse.prompt("chat", conversation_id="conv-1"):
            _ask(client, "hello")
            _ask(client, "read my card back")
        assert ev.flush()
        assert ev.check_idle(now=1000.0 + 599) == 0
        assert ev.check_idle(now=1000.0 + 600) == 1
        assert ev.check_idle(now=1000.0 + 6000) == 0  # once per idle episode
    finally:
        spans.end_hook = None
        ev.close()
    calls = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    (score,) = [s for s in exporter.get_finished_spans() if s.name.startswith("gen_ai.evaluation ")]
    assert score.parent.span_id == calls[-1].context.span_id  # attached to the conversation's last call
    assert (score.attributes[sc.GEN_AI_EVALUATION_SCORE_VALUE], score.attributes[sc.GEN_AI_EVALUATION_EXPLANATION]) \
        == (0.0, "found 1 card")


def test_full_queue_drops_and_never_raises(env: Any) -> None:
    tp, _exporter, client = env
    ev = inapp.InAppEvaluator([parse_rule({"name": "r", "metric": "refusal"})], tracer_provider=tp, queue_size=2,
                              start=False)  # no worker: the queue only fills
    spans.end_hook = ev.hook
    try:
        for i in range(5):
            assert _ask(client, f"q{i}").choices[0].message.content == "Your order ships today."
        ev.hook(object())  # not an LLMCall: ignored, no exception
    finally:
        spans.end_hook = None
    assert (ev.stats["queued"], ev.stats["dropped"]) == (2, 3)


def test_missing_field_is_an_error_span(env: Any) -> None:
    tp, exporter, client = env
    ev = inapp.enable(rules=[{"name": "ctx-json", "metric": "valid_json", "map": {"output": "attributes.nope"}}],
                      tracer_provider=tp)
    _ask(client, "hi")
    assert ev.flush()
    (s,) = [s for s in exporter.get_finished_spans() if s.name.startswith("gen_ai.evaluation ")]
    assert sc.GEN_AI_EVALUATION_SCORE_VALUE not in s.attributes
    assert s.attributes["promptpulse.evaluation.error"].startswith("no output")
    assert ev.stats["errors"] == 1


def test_enabled_after_instrument_anthropic_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Endpoints read the content switch per call: enabling the evaluator after instrument() is enough, and a
    streamed answer is evaluated once the stream is read."""
    import anthropic

    from promptpulse.instrumentation.anthropic import AnthropicInstrumentor

    monkeypatch.delenv(spans.CAPTURE_CONTENT_ENV, raising=False)
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=tp)
    try:
        ev = inapp.enable(rules=[{"name": "card-guard", "metric": "pii", "params": {"types": ["card"]}}],
                          tracer_provider=tp)
        with FakeProvider(Scenario(text=answer)) as fake:
            client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-fake", max_retries=0)
            events = client.messages.create(model="claude-3-5-haiku", max_tokens=100, stream=True,
                                            messages=[{"role": "user", "content": "read my card back"}])
            text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
        assert text == "Your card 4111 1111 1111 1111 is on file."
        assert ev.flush()
    finally:
        inapp.disable()
        inst.uninstrument()
    (call,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    (score,) = [s for s in exporter.get_finished_spans() if s.name.startswith("gen_ai.evaluation ")]
    assert sc.GEN_AI_OUTPUT_MESSAGES not in call.attributes
    assert (score.parent.span_id, score.attributes[sc.GEN_AI_EVALUATION_EXPLANATION]) == \
        (call.context.span_id, "found 1 card")


def test_counts_are_exact_under_concurrent_calls() -> None:
    import threading
    from types import SimpleNamespace

    tracer = TracerProvider().get_tracer("t")
    ev = inapp.InAppEvaluator([parse_rule({"name": "r", "metric": "refusal"})], queue_size=100, start=False)
    ended = []
    for _ in range(400):
        s = tracer.start_span("chat x")
        s.end()
        ended.append(SimpleNamespace(span=s, content={}))
    threads = [threading.Thread(target=lambda part=ended[i::8]: [ev.hook(c) for c in part]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (ev.stats["queued"], ev.stats["dropped"]) == (100, 300)


def test_failed_calls_are_not_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(spans.CAPTURE_CONTENT_ENV, raising=False)
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp)
    try:
        ev = inapp.enable(rules=[{"name": "card-guard", "metric": "pii"}], tracer_provider=tp)
        with FakeProvider(Scenario(text=answer)) as fake:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0)
            fake.fail_next(1, 500)
            with pytest.raises(openai.InternalServerError):
                _ask(client, "read my card back")
            _ask(client, "read my card back")
        assert ev.flush()
    finally:
        inapp.disable()
        inst.uninstrument()
    evals = [s for s in exporter.get_finished_spans() if s.name.startswith("gen_ai.evaluation ")]
    assert [s.attributes[sc.GEN_AI_EVALUATION_EXPLANATION] for s in evals] == ["found 1 card"]
    assert (ev.stats["scored"], ev.stats["errors"]) == (1, 0)  # the failed call: neither a score nor an error
