"""OTLP receivers (gRPC and HTTP) and the OTLP → otel_traces decoder."""
