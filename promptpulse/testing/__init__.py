"""A fake LLM provider for tests and demos: a loopback HTTP server speaking the OpenAI (and Azure OpenAI)
and Anthropic wire protocols well enough for the real SDKs, with deterministic usage, latency and faults.

    from promptpulse.testing import FakeProvider, Scenario
    with FakeProvider(Scenario(output_tokens=7)) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake")

Standalone: ``python -m promptpulse.testing.fake_provider --port 8089``.
"""

from promptpulse.testing.faults import FAULT_HEADER, Fault
from promptpulse.testing.scenario import DEFAULT_TEXT, Latency, RequestInfo, Scenario, Usage, fake_tokens
from promptpulse.testing.server import FakeProvider, RecordedRequest

__all__ = [
    "DEFAULT_TEXT",
    "FAULT_HEADER",
    "FakeProvider",
    "Fault",
    "Latency",
    "RecordedRequest",
    "RequestInfo",
    "Scenario",
    "Usage",
    "fake_tokens",
]
