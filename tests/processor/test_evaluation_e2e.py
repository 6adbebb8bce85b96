"""Online evaluation end to end: the real openai SDK against the fake provider, instrumented, content capture off,
the in-app evaluator exporting through the official OTLP/HTTP exporter into `promptpulse serve`, which also runs a
processor rule on calls whose content was captured. Exact rows in llm_scores, guardrail_failures, and no content
stored for the calls made with capture off."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from test_service_e2e import Serve

import promptpulse
from promptpulse.evaluation import inapp
from promptpulse.instrumentation import spans
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.testing import FakeProvider, RequestInfo, Scenario

pytest.importorskip("chdb")

CONFIG = """
[evaluation]
interval_s = 0.5
settle = "3s"  # calls reach llm_calls within a batch (0.2 s here)
lookback = "10m"

[[evaluation.rules]]
name = "card-guard"
metric = "pii"
runs = "app"
guardrail = true
params = { types = ["card"] }

[[evaluation.rules]]
name = "stored-refusal"
metric = "refusal"
filters = { prompt_name = "captured" }
"""


def answer(req: RequestInfo) -> str:
    if "QUESTION:" in req.prompt_text:  # the judge's prompt
        return '{"score": 0.75, "reason": "Mostly on topic."}'
    if "card" in req.prompt_text:
        return "Your card 4111 1111 1111 1111 is on file."
    if "forbidden" in req.prompt_text:
        return "I'm sorry, but I can't help with that."
    return "Your order ships today."


def _wait(serve: Serve, sql: str, want: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (n := serve.query(sql)[0][0]) != want:
        assert n < want and time.monotonic() < deadline, (n, sql)
        time.sleep(0.2)


def test_in_app_and_processor_rules_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(spans.CAPTURE_CONTENT_ENV, raising=False)
    monkeypatch.setenv("JUDGE_KEY", "sk-judge")
    cfg = tmp_path / "pp.toml"
    cfg.write_text(CONFIG)
    serve = Serve(tmp_path, "--config", str(cfg))
    tp = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=serve.url)))
    inst = OpenAIInstrumentor()
    try:
        inst.instrument(tracer_provider=tp)
        with FakeProvider(Scenario(text=answer, input_tokens=1000, output_tokens=50)) as fake:
            judge = {"name": "relevance", "metric": "answer_relevance", "filters": {"prompt_name": "private"},
                     "judge": {"model": "gpt-4o-mini", "base_url": fake.openai_base_url, "api_key_env": "JUDGE_KEY"}}
            ev = inapp.enable(rules=[judge], config=cfg, tracer_provider=tp)
            assert [r.name for r in ev.rules] == ["relevance", "card-guard"]
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0)
            with promptpulse.prompt("private"):
                for text in ("where is my order?", "read my card back", "my card again", "hello"):
                    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
            assert ev.flush()
            inapp.disable()
            inst.uninstrument()
            # A second app that captures content: the processor's rule evaluates its calls.
            inst.instrument(tracer_provider=tp, capture_content=True)
            with promptpulse.prompt("captured"):
                for text in ("something forbidden", "where is my order?"):
                    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        tp.force_flush()
        _wait(serve, "SELECT count() FROM llm_calls", 10)  # 6 of the apps, 4 of the judge
        _wait(serve, "SELECT count() FROM llm_scores", 10)
        rows = serve.query("SELECT s.rule, s.metric, s.guardrail, s.source, s.value, s.reason, c.prompt_name "
                           "FROM llm_scores AS s JOIN llm_calls AS c ON c.trace_id = s.trace_id AND "
                           "c.span_id = s.span_id WHERE s.rule != 'relevance' "
                           "ORDER BY s.rule, c.prompt_name, s.value, s.reason")
        assert rows == [
            ["card-guard", "pii", "pii", "evaluation", 0.0, "found 1 card", "private"],
            ["card-guard", "pii", "pii", "evaluation", 0.0, "found 1 card", "private"],
            ["card-guard", "pii", "pii", "evaluation", 1.0, "no PII found", "private"],
            ["card-guard", "pii", "pii", "evaluation", 1.0, "no PII found", "private"],
            ["stored-refusal", "refusal", "", "evaluation", 0.0, "the answer is a refusal", "captured"],
            ["stored-refusal", "refusal", "", "evaluation", 1.0, "not a refusal", "captured"],
        ]
        cost = (1000 * 0.15 + 50 * 0.60) / 1e6  # gpt-4o-mini per Mtok (instrumentation/prices)
        assert serve.query("SELECT count(), any(value), any(judge_model), round(sum(judge_cost_usd), 12) FROM "
                           "llm_scores WHERE rule = 'relevance'") == [[4, 0.75, "gpt-4o-mini", round(4 * cost, 12)]]
        # The judge's calls are counted apart (feature promptpulse.evaluation), with the same cost.
        assert serve.query("SELECT service, model, calls, errors, round(toFloat64(cost_usd), 12) FROM "
                           "evaluation_cost") == [["shop", "gpt-4o-mini", 4, 0, round(4 * cost, 12)]]
        assert serve.query("SELECT count() FROM llm_calls WHERE feature != 'promptpulse.evaluation'") == [[6]]
        assert serve.query("SELECT guardrail, service, prompt_name, sum(checks), sum(failures) FROM "
                           "guardrail_failures GROUP BY guardrail, service, prompt_name") == [
            ["pii", "shop", "private", 4, 2]]
        # Nothing of the private calls' content was stored; the captured ones carry theirs.
        assert serve.query("SELECT SpanAttributes['gen_ai.prompt.name'] AS p, countIf(mapContains(SpanAttributes, "
                           "'gen_ai.input.messages') OR mapContains(SpanAttributes, 'gen_ai.output.messages')) "
                           "FROM otel_traces WHERE SpanName LIKE 'chat %' GROUP BY p ORDER BY p") == [
            ["captured", 2], ["private", 0], ["promptpulse.evaluation", 0]]
        assert serve.query("SELECT count() FROM otel_traces WHERE positionCaseInsensitive(toString(SpanAttributes), "
                           "'4111') > 0") == [[0]]
    finally:
        inapp.disable()
        inst.uninstrument()
        tp.shutdown()
        serve.stop()
    assert serve.proc.returncode == 0
