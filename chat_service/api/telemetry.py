"""Per-request telemetry: RED metrics, the ``traceresponse`` header, ids for the access log.

Runs inside the OpenTelemetry server span (that middleware is always outermost), so the
active span here is the request's.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from chat_service.telemetry.context import current_exemplar, current_ids, traceresponse_header
from chat_service.telemetry.logs import REQUEST_ROUTE, REQUEST_TRACE_IDS
from chat_service.telemetry.metrics import UNMATCHED_ROUTE, Metrics, bounded_method

TRACERESPONSE = "traceresponse"


def route_template(request: web.Request) -> str:
    """The matched route's template (``/chat/history``), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def telemetry_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_template(request)
        method = bounded_method(request.method)
        request[REQUEST_ROUTE] = route
        if (ids := current_ids()) is not None:
            request[REQUEST_TRACE_IDS] = ids
        in_flight = metrics.active_requests.labels(method, route)
        in_flight.inc()
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if (header := traceresponse_header()) is not None:
                response.headers[TRACERESPONSE] = header
            return response
        except web.HTTPException as exc:  # redirects; errors are responses by now
            status = exc.status
            raise
        finally:
            in_flight.dec()
            metrics.request_duration.labels(method, route, str(status)).observe(
                time.perf_counter() - started, current_exemplar()
            )

    return observe
