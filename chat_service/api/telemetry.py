"""Per-request telemetry: the request's span, RED metrics, the ``traceresponse`` header.

One middleware, the outermost, and a response-prepare hook for the header (so streamed
responses, whose headers leave before the handler returns, carry it too). It is the one path
by which a request gets its span (:class:`RequestSpans`): the caller's trace is continued
(W3C ``traceparent``, through the global propagators), and the span is the SDK's SERVER span
``METHOD /route`` with the stable HTTP attributes when spans are exported and the route is
traced, or a non-recording span with its own ids otherwise, so logs, stored rows and
``traceresponse`` always carry ids. It replaces opentelemetry-instrumentation-aiohttp-server,
whose middleware cost (b) a quarter of its CPU gathering attributes even for requests its
sampler dropped, and which is configured by rewriting ``web.Application`` and the process's
environment (bench/README.md); the attributes are the same, set only on recorded spans, and
so are the request and response headers its variables ask for (telemetry/http_headers.py).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace import Tracer as OtelTracer

from chat_service.api.access_log import REQUEST_ROUTE, REQUEST_TRACE_IDS
from chat_service.api.errors import CLIENT_CLOSED_REQUEST, error_response
from chat_service.api.request_id import request_id
from chat_service.telemetry.context import span_ids
from chat_service.telemetry.http_headers import HeaderCapture
from chat_service.telemetry.metrics import UNMATCHED_ROUTE, Metrics, bounded_method

TRACERESPONSE = "traceresponse"
# The request's X-Request-ID on its span, to find a trace from a caller's id. The conventions
# have no name for it (http.request.header.* would claim the caller sent it).
REQUEST_ID_ATTRIBUTE = "chat_service.request_id"


def route_template(request: web.Request) -> str:
    """The matched route's template (``/chat/history``), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


class RequestSpans:
    """Each request's span. ``tracer``: the provider's, when spans are exported (None: none
    are, and no request's span is recorded). ``untraced``: paths that never get a recorded
    span (probes and scrapes, which would drown the real traffic). ``headers``: the request
    and response headers a recorded span carries (None: none)."""

    def __init__(
        self,
        tracer: OtelTracer | None,
        untraced: re.Pattern[str] | None = None,
        headers: HeaderCapture | None = None,
    ) -> None:
        self._tracer = tracer
        self._untraced = untraced
        self._headers = headers
        # Set only when response headers are captured: most configurations capture none.
        self._response_headers = headers if headers is not None and headers.response else None
        self._propagator = propagate.get_global_textmap()
        # The header names the propagators read: most requests carry none of them, and
        # then there is nothing to extract.
        self._fields = tuple(self._propagator.fields)
        self._ids = RandomIdGenerator()

    def start(
        self, request: web.Request, method: str, route: str
    ) -> tuple[Span, otel_context.Context]:
        """The request's span, and the context to run the request in (the caller's, baggage
        and all, with this span current); :meth:`end` the span."""
        parent = self._parent(request)
        span = self._span(request, method, route, parent)
        return span, trace.set_span_in_context(span, parent)

    def _parent(self, request: web.Request) -> otel_context.Context | None:
        headers = request.headers
        if any(field in headers for field in self._fields):
            return self._propagator.extract(headers)
        return None

    def _span(
        self,
        request: web.Request,
        method: str,
        route: str,
        parent: otel_context.Context | None,
    ) -> Span:
        if self._tracer is None or (
            self._untraced is not None and self._untraced.search(request.path)
        ):
            return self._unrecorded(parent)
        span = self._tracer.start_span(
            f"{method} {route}" if route != UNMATCHED_ROUTE else method,
            context=parent,
            kind=SpanKind.SERVER,
        )
        if span.is_recording():  # the sampler's choice: attributes only for what is kept
            span.set_attributes(_request_attributes(request, method, route))
            if self._headers is not None:
                span.set_attributes(self._headers.request_attributes(request.headers.items()))
        return span

    @property
    def records_responses(self) -> bool:
        """Whether :meth:`record_response` has anything to do (the middleware skips the
        call, and its coroutine, otherwise)."""
        return self._response_headers is not None

    async def record_response(
        self, span: Span, request: web.Request, response: web.StreamResponse
    ) -> None:
        """The response's headers on a recorded span, when they are captured. They are final
        once the response is prepared (aiohttp's own, then every on_response_prepare hook's,
        sub-applications' last), which for a plain response happens only after the
        telemetry middleware has returned and ended the span: such a response is prepared
        here instead (its headers still leave with its body). A file response, which sends
        its file as it is prepared, carries no response headers on its span."""
        capture = self._response_headers
        if capture is None or not span.is_recording():
            return
        if not response.prepared:
            if not isinstance(response, web.Response):
                return
            try:
                await response.prepare(request)
            except ConnectionError:
                return  # the client is gone: aiohttp finds out again when it ends the response
        span.set_attributes(capture.response_attributes(response.headers.items()))

    def _unrecorded(self, parent: otel_context.Context | None) -> Span:
        """A span of the caller's trace (or a new one), never sampled: ``traceresponse``
        says so (flags ``00``)."""
        trace_id, trace_state = 0, None
        if parent is not None:
            caller = trace.get_current_span(parent).get_span_context()
            if caller.is_valid:
                trace_id, trace_state = caller.trace_id, caller.trace_state
        return NonRecordingSpan(
            SpanContext(
                trace_id or self._ids.generate_trace_id(),
                self._ids.generate_span_id(),
                is_remote=False,
                trace_state=trace_state,  # flags: the default, not sampled
            )
        )

    @staticmethod
    def end(span: Span, status: int) -> None:
        if span.is_recording():
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()


def _request_attributes(request: web.Request, method: str, route: str) -> dict[str, Any]:
    """The stable HTTP server span attributes, for a span that is recorded."""
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": request.scheme,
        "url.path": request.path,
        "network.protocol.version": f"{request.version.major}.{request.version.minor}",
    }
    if method == "_OTHER":
        attributes["http.request.method_original"] = request.method
    if route != UNMATCHED_ROUTE:
        attributes["http.route"] = route
    if request.query_string:
        attributes["url.query"] = request.query_string
    host, _, port = (request.host or "").rpartition(":")
    if host and port.isdigit():
        attributes["server.address"], attributes["server.port"] = host, int(port)
    elif request.host:
        attributes["server.address"] = request.host
    if request.remote:
        attributes["client.address"] = request.remote
    if user_agent := request.headers.get("User-Agent"):
        attributes["user_agent.original"] = user_agent
    return attributes


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def add_traceresponse(request: web.Request, response: web.StreamResponse) -> None:
    """The request's trace in a W3C ``traceresponse`` header (on every response)."""
    if (ids := request.get(REQUEST_TRACE_IDS)) is not None:
        response.headers[TRACERESPONSE] = ids.traceresponse


def telemetry_middleware(metrics: Metrics, spans: RequestSpans) -> Middleware:
    """The request's span, RED metrics and trace ids for every request."""
    # prometheus_client's labels() looks children up under a lock; this one is looked up
    # on every request, so keep them at hand (their label values are bounded).
    duration_children: dict[tuple[str, str, int], Any] = {}
    records_responses = spans.records_responses

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_template(request)
        method = bounded_method(request.method)
        request[REQUEST_ROUTE] = route
        span, request_context = spans.start(request, method, route)
        if span.is_recording():
            span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id(request))
        token = otel_context.attach(request_context)
        ids = span_ids(span.get_span_context())
        if ids is not None:
            request[REQUEST_TRACE_IDS] = ids
        in_flight = metrics.in_flight(method, route)
        in_flight.count += 1
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if records_responses:
                await spans.record_response(span, request, response)
            return response
        except web.HTTPException as exc:  # redirects; errors are responses by now
            status = exc.status
            raise
        except asyncio.CancelledError:
            if not client_gone(request):
                raise  # the server is stopping: let the cancellation run its course
            # The client closed the connection (aiohttp cancels the handler then): a 499
            # for the metrics, the span and the access log, not an error of ours.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            status = CLIENT_CLOSED_REQUEST
            return error_response(CLIENT_CLOSED_REQUEST, "Client closed the request.")
        finally:
            in_flight.count -= 1
            duration = duration_children.get((method, route, status))
            if duration is None:
                duration = metrics.request_duration.labels(method, route, str(status))
                duration_children[(method, route, status)] = duration
            duration.observe(
                time.perf_counter() - started, ids.exemplar if ids is not None else None
            )
            otel_context.detach(token)
            spans.end(span, status)

    return observe
