"""OpenTelemetry tracing: the SDK and its OTLP exporter.

Everything is configured by the standard OTEL_* variables, so the service drops into any
OpenTelemetry setup: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG),
OTEL_TRACES_EXPORTER (``otlp`` or ``none``), OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL
(``http/protobuf`` or ``grpc``), and the exporter's own endpoint/headers/timeout variables.

Spans are recorded and exported only when an OTLP endpoint is configured. Without one,
every request still gets a (non-recording) span context, so logs, the ``traceresponse``
header and stored rows carry trace ids; requests' spans are made in chat_service/api/
telemetry.py, which paths in OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS never record (the
variable of the aiohttp-server instrumentation this replaces; probes and /metrics by
default), and which carry the headers OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* name
(telemetry/http_headers.py; credentials always redacted). Export happens in the
BatchSpanProcessor's thread, never on the event loop: a slow or dead collector costs the
requests nothing; spans it could not take are counted instead. The GenAI spans of model
calls are the service's own (telemetry/genai.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from chat_service import __version__
from chat_service.config import ConfigError, parse_bool
from chat_service.telemetry.http_headers import HeaderCapture

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "chat-service"
# Probes and scrapes would drown the real traffic in Jaeger; users can override this.
EXCLUDED_URLS_VARIABLE = "OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS"
DEFAULT_EXCLUDED_URLS = "^/healthz$,^/readyz$,^/metrics$"
PROTOCOLS = ("http/protobuf", "grpc")
# What CHAT_CAPTURE_CONTENT=true means to opentelemetry-util-genai: content on the span.
CAPTURE_CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# How long stopping may wait for the exporter to hand over the last spans.
EXPORT_FLUSH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Tracing:
    """How tracing was set up: the process's provider, whether spans are exported (then
    requests' spans are recorded), the paths whose requests are never recorded, and the
    headers recorded spans carry."""

    provider: TracerProvider
    exporting: bool
    untraced: re.Pattern[str] | None = None
    headers: HeaderCapture | None = None


def excluded_urls(environ: Mapping[str, str]) -> re.Pattern[str] | None:
    """OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS: comma-separated regular expressions, any of
    which found in a request's path leaves it unrecorded; empty: every path is traced."""
    raw = environ.get(EXCLUDED_URLS_VARIABLE, DEFAULT_EXCLUDED_URLS)
    patterns = [pattern.strip() for pattern in raw.split(",") if pattern.strip()]
    if not patterns:
        return None
    try:
        return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))
    except re.error as exc:
        raise ConfigError(
            f"{EXCLUDED_URLS_VARIABLE} is not a list of regular expressions: {exc}"
        ) from None


class CountingExporter(SpanExporter):
    """Delegates to the real exporter and reports how many spans it failed to deliver."""

    def __init__(self, inner: SpanExporter, on_dropped: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_dropped = on_dropped

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception:
            log.exception("span export raised")
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self._on_dropped(len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def build_resource() -> Resource:
    """``Resource.create({})`` (reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES), with
    our service name and version filled in where those variables do not set them."""
    resource = Resource.create({})
    defaults: dict[str, str] = {}
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        defaults[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    if SERVICE_VERSION not in resource.attributes:
        defaults[SERVICE_VERSION] = __version__
    return resource.merge(Resource(defaults)) if defaults else resource


def sdk_disabled(environ: Mapping[str, str]) -> bool:
    return _flag(environ, "OTEL_SDK_DISABLED")


def build_exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    """The OTLP span exporter the environment asks for, or None when nothing is to be sent."""
    exporters = {
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if name.strip()
    }
    if unsupported := exporters - {"otlp", "none"}:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER supports 'otlp' and 'none', got {', '.join(sorted(unsupported))}"
            " (stdout carries the JSON logs)"
        )
    if "otlp" not in exporters or sdk_disabled(environ):
        return None
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None
    protocol = otlp_protocol(environ)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise ConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
    )


def otlp_protocol(environ: Mapping[str, str]) -> str:
    return (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()


def configure_tracing(
    environ: Mapping[str, str],
    on_spans_dropped: Callable[[int], None],
    *,
    capture_content: bool = False,
) -> Tracing:
    """Install the global tracer provider."""
    # Built before anything is installed, so a bad variable is one clear start-up error.
    exporter = build_exporter(environ)
    untraced = excluded_urls(environ)
    headers = HeaderCapture.from_environ(environ)
    sampler = None  # the SDK's, from OTEL_TRACES_SAMPLER
    if exporter is None:
        # Nothing would leave the process, so nothing is recorded whatever the sampler:
        # requests get their ids from the app's own trace continuation (api/telemetry.py).
        sampler = ALWAYS_OFF
    provider = TracerProvider(resource=build_resource(), sampler=sampler)
    if exporter is not None:
        provider.add_span_processor(
            BatchSpanProcessor(CountingExporter(exporter, on_spans_dropped))
        )
    # Without an exporter, the spans the rest of the process asks for (the group commit's)
    # come from the API's no-op tracer: the SDK would make each one, non-recording, with
    # ids no one sees, at twice the cost per commit (issue 26).
    trace.set_tracer_provider(provider if exporter is not None else trace.NoOpTracerProvider())
    log.info(
        "tracing configured",
        extra={
            "exporter": f"otlp {otlp_protocol(environ)}" if exporter else "none",
            "service_name": provider.resource.attributes.get(SERVICE_NAME),
        },
    )
    if capture_content:
        # opentelemetry-util-genai reads its content switch from the process's environment,
        # and from nowhere else: CHAT_CAPTURE_CONTENT's one way through to it.
        os.environ.setdefault(CAPTURE_CONTENT_VARIABLE, "span_only")
    exporting = exporter is not None
    return Tracing(provider, exporting=exporting, untraced=untraced, headers=headers)


def tracing_ctx(provider: TracerProvider) -> Callable[[web.Application], AsyncIterator[None]]:
    """Flush and shut the exporter down last, off the event loop, for a bounded time: a dead
    collector must not hold the process past the orchestrator's grace period."""

    async def flush_on_exit(app: web.Application) -> AsyncIterator[None]:
        yield
        done = asyncio.get_running_loop().create_future()

        def shutdown() -> None:
            try:
                provider.shutdown()
            finally:
                done.get_loop().call_soon_threadsafe(_set_done, done)

        # A daemon thread, so an exporter stuck past the timeout cannot block the exit.
        threading.Thread(target=shutdown, name="otel-shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(done, EXPORT_FLUSH_TIMEOUT_S)
        except TimeoutError:
            log.warning("span exporter did not flush within %.0f s", EXPORT_FLUSH_TIMEOUT_S)

    return flush_on_exit


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip()
    try:
        return parse_bool(raw) if raw else False
    except ValueError:
        raise ConfigError(f"{name} must be true or false, got {raw!r}") from None
