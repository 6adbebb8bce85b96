"""PromptPulse: LLM observability on OpenTelemetry, ClickHouse and Grafana.

Public API: ``promptpulse.prompt(...)`` tags the LLM calls inside it; ``promptpulse.score(...)`` records feedback.
"""

from promptpulse.instrumentation.tagging import prompt, score

__all__ = ["__version__", "prompt", "score"]
__version__ = "0.1.0"
