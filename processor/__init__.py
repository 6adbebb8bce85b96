"""promptpulse.processor: OTLP receiver, ClickHouse store, API, alerts and reports."""
