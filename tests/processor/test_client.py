"""promptpulse.client against a real `promptpulse serve` on loopback (bearer token on): calls and scores searched
with the API's filters and paged, rows and DataFrames, feedback posted, `promptpulse eval run` through the service."""

from __future__ import annotations

import json
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
from promptpulse.client import APIError, Client
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.processor.cli import main
from promptpulse.testing import FakeProvider, RequestInfo, Scenario

pytest.importorskip("chdb")
TOKEN = "s3cret-token"
CONFIG = """
[evaluation]
enabled = false            # no background pass: this test runs them

[[evaluation.rules]]
name = "reply-pii"
metric = "pii"
guardrail = true

[[evaluation.rules]]
name = "reply-length"
metric = "length"
params = { max = 30 }
filters = { prompt_name = "support" }
"""


def answer(req: RequestInfo) -> str:
    return "Reach me at jo@example.com, any time of day." if "mail" in req.prompt_text else "Done."


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("client")
    cfg = tmp / "pp.toml"
    cfg.write_text(CONFIG)
    s = Serve(tmp, "--config", str(cfg), "--auth-token", TOKEN)
    s.config = cfg
    tp = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=s.url,
                                                               headers={"Authorization": f"Bearer {TOKEN}"})))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp, capture_content=True)
    try:
        with FakeProvider(Scenario(text=answer, input_tokens=100, output_tokens=10)) as fake:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0)
            for i in range(7):
                prompt = "support" if i < 5 else "billing"
                with promptpulse.prompt(prompt, version="1.0", tags=["beta"] if i % 2 else None):
                    text = f"mail me {i}" if i in (1, 5) else f"question {i}"
                    client.chat.completions.create(model="gpt-4o-mini",
                                                   messages=[{"role": "user", "content": text}])
    finally:
        inst.uninstrument()
        tp.shutdown()
    pp = Client(f"http://127.0.0.1:{s.api}", token=TOKEN)
    deadline = time.monotonic() + 30
    while pp.query("SELECT count() AS n FROM llm_calls")[0]["n"] != 7:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    yield s
    s.stop()


def test_calls_search_filters_and_pages(serve: Serve) -> None:
    pp = Client(f"http://127.0.0.1:{serve.api}", token=TOKEN)
    every = pp.calls(start="-1h")
    assert len(every) == 7 and [r["prompt_name"] for r in every].count("support") == 5
    assert [r["input_tokens"] for r in every] == [100] * 7
    paged = pp.calls(start="-1h", page_size=2)  # 4 pages
    assert [(r["trace_id"], r["span_id"]) for r in paged] == [(r["trace_id"], r["span_id"]) for r in every]
    assert len(pp.calls(start="-1h", limit=3, page_size=2)) == 3
    assert len(pp.calls(start="-1h", prompt_id="support", tag="beta")) == 2  # calls 1 and 3
    assert len(pp.calls(start="-1h", prompt_id=["support", "billing"], model="gpt-4o-mini")) == 7
    df = pp.calls_df(start="-1h", prompt_id="billing")
    assert list(df["prompt_name"]) == ["billing", "billing"] and str(df["timestamp"].dt.tz) == "UTC"
    with pytest.raises(APIError, match="bad cursor") as e:
        pp.calls(cursor="nope")
    assert e.value.status == 400
    with pytest.raises(APIError) as e:
        Client(f"http://127.0.0.1:{serve.api}").calls()
    assert e.value.status == 401


def test_eval_run_through_the_service_and_scores_search(serve: Serve, capsys: pytest.CaptureFixture[str]) -> None:
    api = ["--api", f"http://127.0.0.1:{serve.api}", "--auth-token", TOKEN, "--config", str(serve.config)]
    assert main(["eval", "run", "--since", "1h", "--dry-run", "--format", "json", *api]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and dry["calls"] == 7
    assert dry["rules"]["reply-pii"] == {"matched": 7, "sampled": 7, "no_content": 0, "already": 0, "scored": 7,
                                         "errors": 0, "judge_cost_usd": 0.0}
    pp = Client(f"http://127.0.0.1:{serve.api}", token=TOKEN)
    assert pp.scores(start="-1h") == []  # a dry run writes nothing
    assert main(["eval", "run", "--since", "1h", *api]) == 0
    assert "(7 call(s) read; 12 result(s) written)" in capsys.readouterr().err
    assert main(["eval", "run", "--since", "1h", "--format", "json", *api]) == 0
    assert json.loads(capsys.readouterr().out)["rules"]["reply-pii"]["already"] == 7  # never twice
    rows = pp.scores(start="-1h")
    assert len(rows) == 12 and {r["source"] for r in rows} == {"evaluation"}
    pii = pp.scores(rule="reply-pii", start="-1h")
    assert sorted((r["prompt_name"], r["value"], r["reason"]) for r in pii) == [
        ("billing", 0.0, "found 1 email"), ("billing", 1.0, "no PII found"), ("support", 0.0, "found 1 email"),
        *[("support", 1.0, "no PII found")] * 4]
    assert all(r["guardrail"] == "pii" and r["metric"] == "pii" and r["judge_cost_usd"] is None for r in pii)
    assert len(pp.scores(guardrail="any", prompt_id="support", start="-1h")) == 5
    # "Reach me at jo@example.com, any time of day." is 44 characters: the support call 1 fails reply-length.
    assert [r["value"] for r in pp.scores(rule="reply-length", start="-1h")].count(0.0) == 1
    paged = pp.scores(start="-1h", page_size=5)
    assert [(r["rule"], r["trace_id"]) for r in paged] == [(r["rule"], r["trace_id"]) for r in rows]
    df = pp.scores_df(start="-1h", metric="length")
    assert len(df) == 5 and df["value"].sum() == 4.0


def test_post_feedback_and_read_it_back(serve: Serve) -> None:
    pp = Client(f"http://127.0.0.1:{serve.api}", token=TOKEN)
    call = pp.calls(start="-1h", prompt_id="billing", limit=1)[0]
    assert pp.post_scores([{"trace_id": call["trace_id"], "span_id": call["span_id"], "name": "thumbs_up",
                            "value": 1, "label": "up", "comment": "helpful"}]) == 1
    (row,) = pp.scores(name="thumbs_up", start="-1h")
    assert (row["value"], row["label"], row["reason"], row["source"], row["rule"], row["prompt_name"]) == \
        (1.0, "up", "helpful", "api", "", "billing")
    with pytest.raises(APIError, match="value must be a finite number"):
        pp.post_scores({"trace_id": call["trace_id"], "name": "x", "value": "high"})
    assert pp.rules()["rules"][0]["name"] == "reply-pii"


def test_dataframe_needs_pandas_only_when_asked(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def no_pandas(name: str, *a: object, **k: object) -> object:
        if name == "pandas":
            raise ImportError("no pandas")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    pp = Client(f"http://127.0.0.1:{serve.api}", token=TOKEN)
    assert len(pp.calls(start="-1h", limit=2)) == 2
    with pytest.raises(ImportError, match="a DataFrame needs pandas"):
        pp.calls_df(start="-1h")


def test_the_documented_example_runs(serve: Serve) -> None:
    """docs/EVALUATION.md's client example, as written, against this service (its port and token)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "EVALUATION.md").read_text()
    block = text.split("```python\nfrom promptpulse.client import Client\n", 1)[1].split("```", 1)[0]
    code = "from promptpulse.client import Client\n" + block.replace("127.0.0.1:8321", f"127.0.0.1:{serve.api}") \
        .replace("token=None", f"token={TOKEN!r}")
    ns: dict = {}
    exec(compile(code, "docs/EVALUATION.md", "exec"), ns)
    assert len(ns["support"]) == 5 and len(ns["first_two"]) == 2
    assert [f["reason"] for f in ns["failures"]] == ["found 1 email", "found 1 email"]
    assert list(ns["df"].columns[:5]) == ["timestamp", "trace_id", "span_id", "name", "value"] and len(ns["df"]) == 7
    assert len(Client(f"http://127.0.0.1:{serve.api}", token=TOKEN).scores(name="thumbs_up", start="-1h")) == 2
