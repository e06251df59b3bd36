"""Telemetry set-up: exporter choice, resource, JSON log records, trace headers."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from chat_service.config import ConfigError
from chat_service.telemetry.context import active, current_exemplar, span_ids
from chat_service.telemetry.logs import TraceJsonFormatter
from chat_service.telemetry.metrics import bounded_method
from chat_service.telemetry.tracing import (
    CountingExporter,
    build_exporter,
    build_resource,
    configure_tracing,
)

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        (ENDPOINT, HttpExporter),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, HttpExporter),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, GrpcExporter),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:4317",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            },
            GrpcExporter,
        ),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, None),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, None),
    ],
)
def test_exporter_follows_the_standard_variables(
    env: dict[str, str], expected: type[SpanExporter] | None
) -> None:
    exporter = build_exporter(env)
    if expected is None:
        assert exporter is None
    else:
        assert isinstance(exporter, expected)
        exporter.shutdown()


@pytest.mark.parametrize(
    "env",
    [
        {**ENDPOINT, "OTEL_TRACES_EXPORTER": "zipkin"},
        {**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
    ],
)
def test_unsupported_exporter_settings_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        build_exporter(env)


@pytest.mark.parametrize(("env", "exported"), [({}, False), (ENDPOINT, True)])
def test_the_process_traces_with_the_sdk_only_when_spans_are_exported(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], exported: bool
) -> None:
    """Without an exporter the spans the process still asks for (the group commit's) come
    from the API's no-op tracer, not from the SDK making each one to throw away."""
    installed: list[trace.TracerProvider] = []
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    tracing = configure_tracing(env, lambda dropped: None)
    try:
        assert tracing.exporting is exported
        [provider] = installed
        if exported:
            assert provider is tracing.provider
        else:
            assert isinstance(provider, trace.NoOpTracerProvider)
            assert not provider.get_tracer("x").start_span("commit").get_span_context().is_valid
    finally:
        tracing.provider.shutdown()


def test_resource_defaults_to_our_name_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    attributes = build_resource().attributes
    assert attributes["service.name"] == "chat-service"
    assert attributes["service.version"]


def test_resource_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chat-eu")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,service.version=9"
    )
    attributes = build_resource().attributes
    assert attributes["service.name"] == "chat-eu"
    assert attributes["service.version"] == "9"
    assert attributes["deployment.environment.name"] == "prod"


class _Result(SpanExporter):
    def __init__(self, result: SpanExportResult | Exception) -> None:
        self.result = result

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.mark.parametrize(
    ("result", "dropped"),
    [(SpanExportResult.SUCCESS, 0), (SpanExportResult.FAILURE, 3), (OSError("refused"), 3)],
)
def test_counting_exporter_counts_undelivered_spans(
    result: SpanExportResult | Exception, dropped: int
) -> None:
    counted: list[int] = []
    spans = [ReadableSpan(name=f"s{i}") for i in range(3)]
    CountingExporter(_Result(result), counted.append).export(spans)
    assert sum(counted) == dropped


def format_record(message: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("chat_service.test", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    parsed: dict[str, object] = json.loads(TraceJsonFormatter("svc").format(record))
    return parsed


def test_log_record_fields_outside_a_span() -> None:
    record = format_record('hello "quoted" \n line', route="/chat/history")
    assert record["message"] == 'hello "quoted" \n line'
    assert record["level"] == "WARNING"
    assert record["logger"] == "chat_service.test"
    assert record["service"] == "svc"
    assert record["route"] == "/chat/history"
    assert str(record["timestamp"]).endswith("Z")
    assert "trace_id" not in record


def test_log_record_carries_the_active_span_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        record = format_record("inside")
        context = span.get_span_context()
        assert record["trace_id"] == f"{context.trace_id:032x}"
        assert record["span_id"] == f"{context.span_id:016x}"
        ids = span_ids(active())
        assert ids is not None
        assert ids.traceresponse == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
        assert ids.exemplar == {"trace_id": f"{context.trace_id:032x}"}
        assert current_exemplar() == {"trace_id": f"{context.trace_id:032x}"}


def test_no_span_no_header_no_exemplar() -> None:
    assert span_ids(active()) is None
    assert current_exemplar() is None


@pytest.mark.parametrize(
    ("method", "label"),
    [("GET", "GET"), ("PATCH", "PATCH"), ("PROPFIND", "_OTHER"), ("get", "_OTHER")],
)
def test_methods_are_bounded(method: str, label: str) -> None:
    assert bounded_method(method) == label


def test_an_unsampled_span_has_ids_but_no_exemplar() -> None:
    """Its trace was not recorded: an exemplar would link to nothing."""
    unsampled = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(unsampled)):
        ids = span_ids(active())
        assert ids is not None
        assert ids.trace_id == f"{0xABC:032x}"
        assert ids.exemplar is None
        assert current_exemplar() is None
