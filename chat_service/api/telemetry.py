"""Per-request telemetry: RED metrics, the ``traceresponse`` header, ids for the access log.

Runs inside the request's server span: the aiohttp-server instrumentation's when spans are
exported (its middleware is always outermost), else the light one below.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from chat_service.telemetry.context import active, exemplar_of, ids_of, traceresponse_of
from chat_service.telemetry.logs import REQUEST_ROUTE, REQUEST_TRACE_IDS
from chat_service.telemetry.metrics import UNMATCHED_ROUTE, Metrics, bounded_method

TRACERESPONSE = "traceresponse"


def route_template(request: web.Request) -> str:
    """The matched route's template (``/chat/history``), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def trace_context_middleware() -> Middleware:
    """Trace ids without recording: used when no span would be exported.

    The aiohttp-server instrumentation collects a dozen attributes for every request before
    it knows the span will not be recorded; with nothing exported that was a fifth of the
    service's CPU (bench/README.md). This continues an incoming ``traceparent`` (or starts a
    trace) with a non-recording span, so logs and ``traceresponse`` still carry the ids.
    """
    tracer = trace.get_tracer(__name__)

    @web.middleware
    async def continue_trace(request: web.Request, handler: Handler) -> web.StreamResponse:
        parent = propagate.extract(request.headers)
        with tracer.start_as_current_span("request", context=parent, kind=SpanKind.SERVER):
            return await handler(request)

    return continue_trace


def telemetry_middleware(metrics: Metrics) -> Middleware:
    # prometheus_client's labels() looks children up under a lock; these are looked up
    # on every request, so keep them at hand (their label values are bounded).
    in_flight_children: dict[tuple[str, str], Any] = {}
    duration_children: dict[tuple[str, str, int], Any] = {}

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_template(request)
        method = bounded_method(request.method)
        request[REQUEST_ROUTE] = route
        span = active()  # the request's span, for its whole life in this middleware
        if (ids := ids_of(span)) is not None:
            request[REQUEST_TRACE_IDS] = ids
        in_flight = in_flight_children.get((method, route))
        if in_flight is None:
            in_flight = metrics.active_requests.labels(method, route)
            in_flight_children[(method, route)] = in_flight
        in_flight.inc()
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if (header := traceresponse_of(span)) is not None:
                response.headers[TRACERESPONSE] = header
            return response
        except web.HTTPException as exc:  # redirects; errors are responses by now
            status = exc.status
            raise
        finally:
            in_flight.dec()
            duration = duration_children.get((method, route, status))
            if duration is None:
                duration = metrics.request_duration.labels(method, route, str(status))
                duration_children[(method, route, status)] = duration
            duration.observe(time.perf_counter() - started, exemplar_of(span))

    return observe
