"""Instrumenting imports no SDK and opens no socket; a patch is applied when the app imports its SDK, and not at all
when uninstrument() came first. Each case runs in a fresh interpreter (this process has every SDK imported)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from promptpulse.testing import FakeProvider, Scenario

pytestmark = pytest.mark.slow

# Top-level modules of every supported SDK and of the HTTP stacks they bring.
SDK_MODULES = (
    "openai",
    "anthropic",
    "google.genai",
    "boto3",
    "botocore",
    "mistralai",
    "cohere",
    "litellm",
    "ollama",
    "groq",
    "langchain_core",
    "langchain_openai",
    "langchain_anthropic",
    "httpx",
    "httpx2",
    "aiohttp",
    "requests",
)

PRELUDE = """
import json, socket, sys
connects = []
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
def _record(method):
    def record(self, address, *rest):
        connects.append(repr(address))
        return method(self, address, *rest)
    return record
socket.socket.connect, socket.socket.connect_ex = _record(_connect), _record(_connect_ex)

from importlib.metadata import entry_points
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
group = entry_points(group="opentelemetry_instrumentor")
instrumentors = {ep.name: ep.load()() for ep in group if ep.name.startswith("promptpulse_")}
for instrumentor in instrumentors.values():
    instrumentor.instrument(tracer_provider=provider)
SDK_MODULES = %r
out = {
    "instrumentors": sorted(instrumentors),
    "loaded": [m for m in SDK_MODULES if m in sys.modules],
    "connects": list(connects),
}
"""

CALL = """
import openai
from wrapt import FunctionWrapper
client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-fake", max_retries=0)
create = vars(type(client.chat.completions))["create"]
out["patched"] = isinstance(create, FunctionWrapper)
out["layers"] = 0
while isinstance(create, FunctionWrapper):
    out["layers"], create = out["layers"] + 1, create.__wrapped__
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
out["spans"] = [
    [s.name, s.attributes.get("gen_ai.usage.output_tokens")]
    for s in exporter.get_finished_spans()
]
print("RESULT" + json.dumps(out))
"""


def run(tmp_path: Path, body: str, fake: FakeProvider) -> dict[str, Any]:
    fake.set_scenario(Scenario(output_tokens=7))
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(PRELUDE % (SDK_MODULES,)) + textwrap.dedent(body))
    done = subprocess.run(
        [sys.executable, str(script), fake.openai_base_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


ALL_TEN = [
    "promptpulse_anthropic",
    "promptpulse_bedrock",
    "promptpulse_cohere",
    "promptpulse_google_genai",
    "promptpulse_groq",
    "promptpulse_langchain",
    "promptpulse_litellm",
    "promptpulse_mistral",
    "promptpulse_ollama",
    "promptpulse_openai",
]


def test_instrument_imports_no_sdk_and_opens_no_socket_then_patches_on_import(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    out = run(tmp_path, CALL, fake_provider)
    assert out["instrumentors"] == ALL_TEN
    assert out["loaded"] == []
    assert out["connects"] == []
    assert out["patched"] is True
    assert out["spans"] == [["chat gpt-4o-mini", 7]]


def test_uninstrument_before_the_import_leaves_the_sdk_unpatched(tmp_path: Path, fake_provider: FakeProvider) -> None:
    body = "for instrumentor in instrumentors.values():\n    instrumentor.uninstrument()\n" + CALL
    out = run(tmp_path, body, fake_provider)
    assert out["loaded"] == []
    assert out["patched"] is False
    assert out["spans"] == []


def test_instrument_again_after_uninstrument_patches_once(tmp_path: Path, fake_provider: FakeProvider) -> None:
    """The first cycle's hook is disarmed, not removed: a second instrument() must not add a second wrapper."""
    body = (
        "instrumentors['promptpulse_openai'].uninstrument()\n"
        "instrumentors['promptpulse_openai'].instrument(tracer_provider=provider)\n" + CALL
    )
    out = run(tmp_path, body, fake_provider)
    assert out["layers"] == 1
    assert out["spans"] == [["chat gpt-4o-mini", 7]]
