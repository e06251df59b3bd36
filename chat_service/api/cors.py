"""CORS: scripts on the origins CHAT_CORS_ORIGINS lists may call the API from a browser.

Only the API and its description, the ``/chat`` and ``/openapi.json`` mounts it is put on
(api/__init__.py), not the page, the probes or the metrics. On ``/chat`` the middleware
comes before identity and rate limits, because a browser's preflight (``OPTIONS`` with
``Access-Control-Request-Method``) carries no ``Authorization`` and must be answered before
they refuse it; it is answered here and goes no further. The headers of the actual requests
are added while their responses are prepared, so errors (401, 429, ...) and streams carry
them too: without them the browser hides the response from the calling script, which then
cannot tell a bad key from a network failure.

An origin is allowed when it equals an entry exactly (config.py checks that entries are
written as browsers send ``Origin``); ``*`` allows any. The service sets and reads no
cookies: callers authenticate with an ``Authorization`` header, which a page on another
origin can send only if it holds the key. So ``Access-Control-Allow-Credentials`` is never
sent, and ``*`` lets no site act with a visitor's ambient credentials. A preflight from an
origin that is not allowed gets 403 with the error shape (a readable answer for whoever
debugs it with curl; the browser only sees that the preflight failed), and an actual request
from one is served without CORS headers, which the browser then withholds from its script.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from chat_service.api.errors import refuse

ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Last-Event-ID, X-Request-ID, traceparent, tracestate"
# What a script may read besides the CORS-safelisted headers: paging, created resources,
# back-off, rate limits and the ids to quote in a bug report.
EXPOSE_HEADERS = (
    "Link, Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-ID, traceresponse"
)
# How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours).
MAX_AGE_S = 600
ANY_ORIGIN = "*"
# The Access-Control-Allow-Origin of a request from an allowed origin.
ALLOWED_ORIGIN = web.RequestKey("cors_allowed_origin", str)


class CorsOrigins:
    """The origins CHAT_CORS_ORIGINS allows: exact ones, or any (``*``)."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self._any = ANY_ORIGIN in origins
        self._origins = frozenset(origins)

    def lists(self, origin: str) -> bool:
        """Whether ``origin`` is listed by name (``*`` lists none: it lets any page read
        what it asks, not act as a visitor)."""
        return origin in self._origins and origin != ANY_ORIGIN

    def allow_origin(self, origin: str) -> str | None:
        """The Access-Control-Allow-Origin for a request from ``origin``; None: not allowed."""
        if self._any:
            return ANY_ORIGIN
        return origin if origin in self._origins else None


def cors_middleware(origins: CorsOrigins) -> Middleware:
    """Answer preflights for the API; note which requests come from an allowed origin."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return await handler(request)
        allowed = origins.allow_origin(origin)
        if allowed is not None:
            request[ALLOWED_ORIGIN] = allowed
        if (
            request.method != hdrs.METH_OPTIONS
            or hdrs.ACCESS_CONTROL_REQUEST_METHOD not in request.headers
        ):
            return await handler(request)
        if allowed is None:
            return refuse(request, 403, "This origin may not call the API (CHAT_CORS_ORIGINS).")
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOW_METHODS,
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOW_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: str(MAX_AGE_S),
            },
        )

    return cors


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` (with CORS on): the headers an allowed origin's script needs
    to read the response, and ``Vary: Origin`` on every API response, since they differ by
    origin."""
    response.headers.add(hdrs.VARY, hdrs.ORIGIN)
    if (allowed := request.get(ALLOWED_ORIGIN)) is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = allowed
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSE_HEADERS
