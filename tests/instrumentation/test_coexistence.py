"""PromptPulse next to OpenLLMetry (traceloop's opentelemetry-instrumentation-openai, a dev dependency): whichever
instruments first, each call gets exactly one PromptPulse span (theirs comes on top), and when theirs was there first
one warning says both record the call. In a fresh interpreter: OpenLLMetry's uninstrument() leaves a wrapper behind
(its raw-response path still makes spans), which must not leak into the other tests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from promptpulse.testing import FakeProvider, Scenario

pytestmark = pytest.mark.slow

APP = """
import json, logging, sys
import openai
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from promptpulse.instrumentation.openai import OpenAIInstrumentor

warnings = []
class Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
logging.getLogger("promptpulse").addHandler(Keep(logging.WARNING))

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
ours, theirs = OpenAIInstrumentor(), OpenLLMetry()
for instrumentor in ([theirs, ours] if sys.argv[2] == "openllmetry" else [ours, theirs]):
    instrumentor.instrument(tracer_provider=provider)

client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-fake", max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
for _ in client.chat.completions.create(
    model="gpt-4o-mini", messages=msgs, stream=True, stream_options={"include_usage": True}
):
    pass
spans = [
    {
        "scope": s.instrumentation_scope.name,
        "name": s.name,
        "id": s.context.span_id,
        "parent": s.parent.span_id if s.parent else None,
        "usage": [s.attributes.get("gen_ai.usage.input_tokens"), s.attributes.get("gen_ai.usage.output_tokens")],
    }
    for s in exporter.get_finished_spans()
]
print("RESULT" + json.dumps({"spans": spans, "warnings": warnings}))
"""
OURS = "promptpulse.instrumentation.openai"


@pytest.mark.parametrize("first", ["openllmetry", "promptpulse"])
def test_one_promptpulse_span_per_call_beside_openllmetry(
    first: str, fake_provider: FakeProvider, tmp_path: Path
) -> None:
    fake_provider.set_scenario(Scenario(input_tokens=30, output_tokens=7))
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP))
    done = subprocess.run(
        [sys.executable, str(script), fake_provider.openai_base_url, first],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("RESULT")).removeprefix("RESULT"))
    mine = [s for s in out["spans"] if s["scope"] == OURS]
    others = [s for s in out["spans"] if s["scope"] != OURS]
    assert [(s["name"], s["usage"]) for s in mine] == [("chat gpt-4o-mini", [30, 7])] * 2
    assert len(others) == 2  # OpenLLMetry's own span of each call
    outer, inner = (others, mine) if first == "promptpulse" else (mine, others)
    assert [i["parent"] for i in inner] == [o["id"] for o in outer]  # the inner wrapper's span is the child
    if first == "openllmetry":
        assert len(out["warnings"]) == 1
        assert out["warnings"][0].startswith(
            "promptpulse: openai.resources.chat.completions.Completions.create is already instrumented by "
            "opentelemetry.instrumentation.openai"
        )
    else:
        assert out["warnings"] == []
