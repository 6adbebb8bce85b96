"""PromptPulse: LLM observability on OpenTelemetry, ClickHouse and Grafana.

Public API: ``promptpulse.prompt(...)`` tags the LLM calls inside it; ``promptpulse.score(...)`` records feedback
(``call=`` the response it is about, or a ``CallRef`` from ``promptpulse.last_call()``).
"""

from promptpulse.instrumentation.tagging import CallRef, last_call, prompt, score

__all__ = ["CallRef", "__version__", "last_call", "prompt", "score"]
__version__ = "0.1.0"
