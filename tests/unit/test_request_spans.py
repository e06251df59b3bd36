"""Each request's span (api/telemetry.py's RequestSpans): the caller's W3C trace continued,
recorded as a SERVER span with the HTTP attributes when spans are exported, with ids and
nothing recorded otherwise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from chat_service.api.telemetry import RequestSpans
from chat_service.telemetry.http_headers import HeaderCapture
from chat_service.telemetry.metrics import UNMATCHED_ROUTE

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def continue_from(**headers: str) -> tuple[trace.SpanContext, Context]:
    """Without an exporter: what a request gets."""
    request = make_mocked_request("GET", "/chat/history", headers=headers)
    span, context = RequestSpans(None).start(request, "GET", "/chat/history")
    return span.get_span_context(), context


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def recording(exported: InMemorySpanExporter) -> RequestSpans:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return RequestSpans(provider.get_tracer("test"), re.compile("^/healthz$|^/metrics$"))


def test_a_recorded_request_is_a_server_span_with_the_http_attributes(
    recording: RequestSpans, exported: InMemorySpanExporter
) -> None:
    request = make_mocked_request(
        "POST",
        "/chat/message?conversation_id=c",
        headers={
            "Host": "chat.example:8443",
            "User-Agent": "curl/8",
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        },
    )
    span, context = recording.start(request, "POST", "/chat/message")
    assert trace.get_current_span(context) is span
    RequestSpans.end(span, 200)
    (finished,) = exported.get_finished_spans()
    assert (finished.name, finished.kind) == ("POST /chat/message", SpanKind.SERVER)
    assert f"{finished.context.trace_id:032x}" == CALLER_TRACE
    assert finished.parent is not None
    assert f"{finished.parent.span_id:016x}" == CALLER_SPAN
    assert dict(finished.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/chat/message",
        "url.scheme": "http",
        "url.path": "/chat/message",
        "url.query": "conversation_id=c",
        "network.protocol.version": "1.1",
        "server.address": "chat.example",
        "server.port": 8443,
        "user_agent.original": "curl/8",
        "http.response.status_code": 200,
    }
    assert finished.status.status_code is StatusCode.UNSET


def test_a_server_error_marks_the_span_and_an_unknown_route_is_not_its_name(
    recording: RequestSpans, exported: InMemorySpanExporter
) -> None:
    request = make_mocked_request("GET", "/users/12345/secret", headers={"Host": "localhost"})
    span, _ = recording.start(request, "GET", UNMATCHED_ROUTE)
    RequestSpans.end(span, 503)
    (finished,) = exported.get_finished_spans()
    assert finished.name == "GET", "never the raw path"
    attributes = dict(finished.attributes or {})
    assert "http.route" not in attributes
    assert (attributes["error.type"], attributes["http.response.status_code"]) == ("503", 503)
    assert attributes["server.address"] == "localhost"
    assert finished.status.status_code is StatusCode.ERROR
    client_error, _ = recording.start(request, "GET", UNMATCHED_ROUTE)
    RequestSpans.end(client_error, 404)
    assert exported.get_finished_spans()[1].status.status_code is StatusCode.UNSET


def test_excluded_paths_and_unsampled_callers_are_not_recorded(
    recording: RequestSpans, exported: InMemorySpanExporter
) -> None:
    probe, _ = recording.start(make_mocked_request("GET", "/healthz"), "GET", "/healthz")
    assert not probe.is_recording()
    assert probe.get_span_context().is_valid, "ids for the logs all the same"
    unsampled = make_mocked_request(
        "GET", "/chat/history", headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}
    )
    span, _ = recording.start(unsampled, "GET", "/chat/history")
    assert not span.is_recording(), "the parent-based sampler follows the caller"
    assert f"{span.get_span_context().trace_id:032x}" == CALLER_TRACE
    for each in (probe, span):
        RequestSpans.end(each, 200)
    assert exported.get_finished_spans() == ()


def test_the_callers_trace_is_continued_with_a_new_unsampled_span() -> None:
    span, context = continue_from(
        traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", tracestate="vendor=abc,other=1"
    )
    assert f"{span.trace_id:032x}" == CALLER_TRACE
    assert f"{span.span_id:016x}" != CALLER_SPAN
    assert span.is_valid
    assert not span.is_remote
    assert not span.trace_flags.sampled, "nothing is recorded here, and the flags say so"
    assert span.trace_state.to_header() == "vendor=abc,other=1"
    current = trace.get_current_span(context)
    assert current.get_span_context() == span
    assert not current.is_recording()


def test_without_a_traceparent_a_new_trace_starts() -> None:
    first, _ = continue_from()
    second, _ = continue_from()
    assert first.is_valid
    assert second.is_valid
    assert first.trace_id != second.trace_id
    assert not first.trace_flags.sampled


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{CALLER_TRACE}-{'0' * 16}-01",  # the parent span id may not be all zeros
        f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01",  # version ff is forbidden
        f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}-01",  # ids are lowercase hex
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace_without_its_tracestate(
    traceparent: str,
) -> None:
    span, _ = continue_from(traceparent=traceparent, tracestate="vendor=abc")
    assert span.is_valid
    # The header named the caller's trace, but invalidly: it is not continued.
    assert f"{span.trace_id:032x}" != CALLER_TRACE
    assert span.trace_state.to_header() == ""


def test_baggage_from_the_caller_stays_in_the_context() -> None:
    _, context = continue_from(
        traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", baggage="tenant=acme"
    )
    assert baggage.get_baggage("tenant", context) == "acme"


@pytest.fixture
def capturing(exported: InMemorySpanExporter) -> RequestSpans:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    headers = HeaderCapture.from_environ(
        {
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-trip,authorization",
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "x-.*,content-length",
        }
    )
    return RequestSpans(provider.get_tracer("test"), re.compile("^/healthz$"), headers)


def app_with_a_hook() -> web.Application:
    """An app whose on_response_prepare hook adds a header, as the service's hooks do."""

    async def add_hooked(_: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Hooked"] = "yes"

    app = web.Application()
    app.on_response_prepare.append(add_hooked)
    app.freeze()
    return app


def header_attributes(span: object) -> dict[str, object]:
    attributes = dict(getattr(span, "attributes", None) or {})
    return {key: value for key, value in attributes.items() if ".header." in key}


async def test_captured_headers_are_on_the_span_with_the_response_as_sent(
    capturing: RequestSpans, exported: InMemorySpanExporter
) -> None:
    request = make_mocked_request(
        "GET",
        "/chat/history",
        headers={"X-Trip": "Lisbon", "Authorization": "Bearer zq-key", "X-Other": "no"},
        app=app_with_a_hook(),
    )
    span, _ = capturing.start(request, "GET", "/chat/history")
    response = web.json_response([], headers={"X-Made": "handler"})
    await capturing.record_response(span, request, response)
    assert response.prepared, "prepared while its span is open, so the hooks have run"
    RequestSpans.end(span, 200)
    (finished,) = exported.get_finished_spans()
    assert header_attributes(finished) == {
        "http.request.header.x-trip": ("Lisbon",),
        "http.request.header.authorization": ("[REDACTED]",),
        "http.response.header.x-made": ("handler",),
        "http.response.header.x-hooked": ("yes",),
        "http.response.header.content-length": ("2",),  # aiohttp's own, set as it prepares
    }


async def test_a_response_its_handler_prepared_is_captured_with_its_hooks_headers(
    capturing: RequestSpans, exported: InMemorySpanExporter
) -> None:
    request = make_mocked_request("GET", "/chat/events", app=app_with_a_hook())
    span, _ = capturing.start(request, "GET", "/chat/events")
    stream = web.StreamResponse(headers={"X-Made": "handler"})  # as an event stream is
    await stream.prepare(request)
    await capturing.record_response(span, request, stream)
    RequestSpans.end(span, 200)
    (finished,) = exported.get_finished_spans()
    attributes = header_attributes(finished)
    assert attributes["http.response.header.x-made"] == ("handler",)
    assert attributes["http.response.header.x-hooked"] == ("yes",)


async def test_unrecorded_spans_and_file_responses_are_left_alone(
    capturing: RequestSpans, exported: InMemorySpanExporter, tmp_path: Path
) -> None:
    probe = make_mocked_request("GET", "/healthz", headers={"X-Trip": "Lisbon"})
    span, _ = capturing.start(probe, "GET", "/healthz")
    response = web.json_response({}, headers={"X-Made": "handler"})
    await capturing.record_response(span, probe, response)
    assert not response.prepared, "nothing captured: aiohttp prepares it as usual"
    RequestSpans.end(span, 200)
    assert exported.get_finished_spans() == ()

    (tmp_path / "page.html").write_text("<p>hi</p>")
    request = make_mocked_request("GET", "/page.html", headers={"X-Trip": "Lisbon"})
    span, _ = capturing.start(request, "GET", "/{path}")
    file = web.FileResponse(tmp_path / "page.html", headers={"X-Made": "handler"})
    await capturing.record_response(span, request, file)
    assert not file.prepared, "a file response sends its file as it is prepared"
    RequestSpans.end(span, 200)
    (finished,) = exported.get_finished_spans()
    assert header_attributes(finished) == {"http.request.header.x-trip": ("Lisbon",)}
