"""The HTTP layer: where every route is mounted, and what applies to it.

Cross-cutting policy applies by mount, never by matching paths:

- the service (every request): the telemetry middleware (trace ids, metrics) outermost,
  then the contract's JSON errors; security headers, ``traceresponse`` and the request id
  on every response;
- ``/chat`` (:func:`chat_app`): CORS, the refusal of cross-site writes (csrf.py), who is
  calling, rate limits and the refusal of callers who could not be placed, in that order
  (the store's failures become the contract's 500s with the other errors, in errors.py);
- ``/chat/auth`` (:func:`sign_in_app`): the same, but refusing nobody, since it is read
  before signing in;
- ``/openapi.json`` (:func:`document_app`): CORS;
- ``/metrics``: an API key when CHAT_METRICS_REQUIRE_KEY is true;
- probes and the page: nothing more.

Each list below is the one place its order is decided. Nothing below this package knows
HTTP.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client.aiohttp import make_aiohttp_handler

from chat_service.api import (
    chat,
    conversation_events,
    conversations,
    docs,
    events,
    health,
    models,
    search,
    sign_in,
)
from chat_service.api.cors import CorsOrigins, add_cors_headers, cors_middleware
from chat_service.api.csrf import csrf_middleware
from chat_service.api.errors import json_errors
from chat_service.api.frontend import add_frontend_routes
from chat_service.api.identity import Identity, identify_middleware, require_identity
from chat_service.api.keys import STREAM_LIMITS
from chat_service.api.ratelimit import (
    TokenBuckets,
    add_rate_limit_headers,
    rate_limit_middleware,
)
from chat_service.api.request_id import add_request_id
from chat_service.api.security import secure
from chat_service.api.stream_limits import StreamLimits
from chat_service.api.telemetry import RequestSpans, add_traceresponse, telemetry_middleware
from chat_service.config import Settings
from chat_service.telemetry.metrics import Metrics


def service_middlewares(metrics: Metrics, spans: RequestSpans) -> list[Middleware]:
    """Every request's, outermost first."""
    return [telemetry_middleware(metrics, spans), json_errors]


def add_service_hooks(app: web.Application) -> None:
    """What every response carries, errors and static files included."""
    app.on_response_prepare.append(add_service_headers)


async def add_service_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the security headers, ``traceresponse`` and the request id.
    One hook for the three: each hook is a coroutine run for every response (issue 26)."""
    secure(response.headers)
    add_traceresponse(request, response)
    add_request_id(request, response)


def chat_app(settings: Settings, identity: Identity) -> web.Application:
    """``/chat``: the API, for callers it can name, within their rate limits."""
    middlewares = caller_middlewares(settings, identity)
    if identity.required:
        middlewares.append(require_identity)
    app = web.Application(middlewares=middlewares)
    if settings.cors_origins:
        app.on_response_prepare.append(add_cors_headers)
    app.on_response_prepare.append(add_rate_limit_headers)
    app[STREAM_LIMITS] = StreamLimits(
        settings.max_streams_per_caller, settings.max_streams_per_address
    )
    app.router.add_routes(chat.routes)
    app.router.add_routes(events.routes)
    app.router.add_routes(conversation_events.routes)
    app.router.add_routes(conversations.routes)
    app.router.add_routes(models.routes)
    app.router.add_routes(search.routes)
    app.router.add_routes(sign_in.me_routes)
    return app


def caller_middlewares(settings: Settings, identity: Identity) -> list[Middleware]:
    """What places a caller: CORS, the refusal of cross-site writes, who is calling, and
    their rate limit, in that order."""
    middlewares: list[Middleware] = []
    origins = CorsOrigins(settings.cors_origins) if settings.cors_origins else None
    if origins is not None:
        # First: a preflight carries no credentials, so it is answered before the identity
        # and rate-limit middlewares could refuse it.
        middlewares.append(cors_middleware(origins))
    # Before identity: a forged request is refused whatever credential the browser attached.
    middlewares.append(csrf_middleware(origins))
    middlewares.append(identify_middleware(identity))
    if settings.rate_limit_rps > 0:
        buckets = TokenBuckets(settings.rate_limit_rps, settings.rate_limit_burst)
        middlewares.append(rate_limit_middleware(buckets))
    return middlewares


def sign_in_app(settings: Settings, identity: Identity) -> web.Application:
    """``/chat/auth``: how to sign in, for anyone; it names the caller when it can, within
    the same rate limits as ``/chat``, but refuses nobody."""
    app = web.Application(middlewares=caller_middlewares(settings, identity))
    if settings.cors_origins:
        app.on_response_prepare.append(add_cors_headers)
    app.on_response_prepare.append(add_rate_limit_headers)
    app.router.add_routes(sign_in.sign_in_routes)
    return app


def document_app(settings: Settings) -> web.Application:
    """``/openapi.json``: the API's description, readable by the same origins as the API."""
    middlewares: list[Middleware] = []
    if settings.cors_origins:
        middlewares.append(cors_middleware(CorsOrigins(settings.cors_origins)))
    app = web.Application(middlewares=middlewares)
    if settings.cors_origins:
        app.on_response_prepare.append(add_cors_headers)
    app.router.add_routes(docs.routes)
    return app


def metrics_app(metrics: Metrics, identity: Identity) -> web.Application:
    """``/metrics``, behind the API keys (CHAT_METRICS_REQUIRE_KEY)."""
    app = web.Application(
        middlewares=[identify_middleware(identity, tokens=False), require_identity]
    )
    app.router.add_get("", metrics_handler(metrics))
    return app


def metrics_handler(metrics: Metrics) -> Handler:
    """``/metrics``: the text format, or OpenMetrics when the scraper asks for it."""
    return make_aiohttp_handler(metrics.registry)


def add_routes(
    app: web.Application, settings: Settings, metrics: Metrics, identity: Identity
) -> None:
    """Mount the API and register the service's own routes, then the frontend (last, so
    the API always wins)."""
    # /chat/auth before /chat: a more specific mount, without the identity /chat requires.
    app.add_subapp("/chat/auth", sign_in_app(settings, identity))
    app.add_subapp("/chat", chat_app(settings, identity))
    app.add_subapp("/openapi.json", document_app(settings))
    if settings.metrics_require_key and identity.required:
        app.add_subapp("/metrics", metrics_app(metrics, identity))
    else:
        app.router.add_get("/metrics", metrics_handler(metrics))
    app.router.add_routes(health.routes)
    if settings.frontend_dir is not None:
        add_frontend_routes(app, settings.frontend_dir, oidc_issuer=settings.oidc_issuer)


__all__ = ["add_routes", "add_service_hooks", "service_middlewares"]
