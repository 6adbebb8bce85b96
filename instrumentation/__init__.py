"""promptpulse.instrumentation: OpenTelemetry auto-instrumentation for LLM client libraries."""
