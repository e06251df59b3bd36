"""Per-request telemetry: trace ids, RED metrics, the ``traceresponse`` header.

One middleware, outermost of ours but CORS's (whose preflights it does not see), and a
response-prepare hook for the header (so streamed responses, whose headers leave before the
handler returns, carry it too). When spans are exported the middleware runs inside the
server span of the aiohttp-server instrumentation (whose middleware is outermost of all),
reads its ids and names the request's X-Request-ID on it. When nothing is exported the
instrumentation is not installed (its per-request attribute work would be for nobody) and
this middleware continues the caller's trace itself, with a non-recording span: logs and
``traceresponse`` still carry the ids, at a fraction of the cost (bench/README.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext

from chat_service.api.access_log import REQUEST_ROUTE, REQUEST_TRACE_IDS
from chat_service.api.errors import CLIENT_CLOSED_REQUEST, error_response
from chat_service.api.request_id import request_id
from chat_service.telemetry.context import active, span_ids
from chat_service.telemetry.metrics import UNMATCHED_ROUTE, Metrics, bounded_method

TRACERESPONSE = "traceresponse"
# The request's X-Request-ID on its span, to find a trace from a caller's id. The conventions
# have no name for it (http.request.header.* would claim the caller sent it).
REQUEST_ID_ATTRIBUTE = "chat_service.request_id"


def route_template(request: web.Request) -> str:
    """The matched route's template (``/chat/history``), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


class TraceContinuation:
    """Gives each request a span context without recording a span.

    Continues the caller's trace when its headers carry one (through the configured
    propagators, W3C ``traceparent`` by default), else starts a new one. The span is
    never sampled: nothing is exported, and ``traceresponse`` says so (flags ``00``).
    """

    def __init__(self) -> None:
        self._propagator = propagate.get_global_textmap()
        # The header names the propagators read: most requests carry none of them, and
        # then there is nothing to extract.
        self._fields = tuple(self._propagator.fields)
        self._ids = RandomIdGenerator()

    def start(self, request: web.Request) -> tuple[SpanContext, otel_context.Context]:
        headers = request.headers
        parent: otel_context.Context | None = None
        trace_id = 0
        trace_state = None
        if any(field in headers for field in self._fields):
            parent = self._propagator.extract(headers)
            caller = trace.get_current_span(parent).get_span_context()
            if caller.is_valid:
                trace_id, trace_state = caller.trace_id, caller.trace_state
        span_context = SpanContext(
            trace_id or self._ids.generate_trace_id(),
            self._ids.generate_span_id(),
            is_remote=False,
            trace_state=trace_state,  # flags: the default, not sampled
        )
        return span_context, trace.set_span_in_context(NonRecordingSpan(span_context), parent)


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def add_traceresponse(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the request's trace in a W3C ``traceresponse`` header."""
    if (ids := request.get(REQUEST_TRACE_IDS)) is not None:
        response.headers[TRACERESPONSE] = ids.traceresponse


def telemetry_middleware(metrics: Metrics, *, continue_traces: bool) -> Middleware:
    """RED metrics and trace ids for every request; ``continue_traces`` when no
    instrumentation provides the request's span (see the module's docstring)."""
    continuation = TraceContinuation() if continue_traces else None
    # prometheus_client's labels() looks children up under a lock; this one is looked up
    # on every request, so keep them at hand (their label values are bounded).
    duration_children: dict[tuple[str, str, int], Any] = {}

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_template(request)
        method = bounded_method(request.method)
        request[REQUEST_ROUTE] = route
        token = None
        if continuation is not None:
            span, request_context = continuation.start(request)
            token = otel_context.attach(request_context)
        else:
            span = active()  # the instrumentation's server span
            trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, request_id(request))
        ids = span_ids(span)
        if ids is not None:
            request[REQUEST_TRACE_IDS] = ids
        in_flight = metrics.in_flight(method, route)
        in_flight.count += 1
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
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
            if token is not None:
                otel_context.detach(token)

    return observe
