"""Observability: OpenTelemetry tracing, JSON logs, Prometheus metrics."""
