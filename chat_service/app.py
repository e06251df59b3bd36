"""The application factory: wiring only (state, resources, middlewares, routes)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from chat_service.api import json_errors, setup_routes, telemetry_middleware
from chat_service.api.chat import HISTORY_CACHE
from chat_service.api.cors import CorsOrigins, add_cors_headers, cors_middleware
from chat_service.api.docs import load_openapi
from chat_service.api.events import LIVE_UPDATES
from chat_service.api.history_cache import HistoryCache
from chat_service.api.identity import (
    Identity,
    identify_middleware,
    parse_networks,
    require_identity,
)
from chat_service.api.ratelimit import (
    TokenBuckets,
    add_rate_limit_headers,
    rate_limit_middleware,
)
from chat_service.api.request_id import add_request_id
from chat_service.api.security import add_security_headers
from chat_service.api.telemetry import add_traceresponse
from chat_service.assistant import Assistant, create_assistant
from chat_service.config import Settings
from chat_service.identity.api_keys import ApiKeys
from chat_service.identity.oidc import OidcVerifier
from chat_service.keys import (
    LIFECYCLE,
    METRICS,
    OPENAPI_DOCUMENT,
    REPLIES,
    SETTINGS,
    STORE,
    Lifecycle,
)
from chat_service.live import LiveUpdates
from chat_service.replies import ModelSlots, ReplyCache, ReplyService
from chat_service.store import ChatStore, SQLiteChatStore
from chat_service.store.postgres import PostgresChatStore
from chat_service.telemetry.genai import GenAITelemetry
from chat_service.telemetry.metrics import Metrics
from chat_service.telemetry.tracing import Tracing, tracing_ctx

log = logging.getLogger(__name__)


async def open_store(settings: Settings, metrics: Metrics) -> ChatStore:
    """PostgreSQL when CHAT_DATABASE_URL names one, SQLite at CHAT_DB_PATH otherwise."""
    if settings.database_url is None:
        return await SQLiteChatStore.open(settings.db_path, observer=metrics)
    store = await PostgresChatStore.open(
        settings.database_url,
        pool_size=settings.database_pool_size,
        connect_timeout_s=settings.database_connect_timeout_s,
        shred_interval_s=settings.database_shred_interval_s,
        observer=metrics,
    )
    metrics.watch_pool(store.pool_stats)
    return store


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the database before the first request; commit what is queued and close it last."""
    store = await open_store(app[SETTINGS], app[METRICS])
    app[STORE] = store
    app[HISTORY_CACHE] = HistoryCache(store)
    app[LIVE_UPDATES] = LiveUpdates(store)
    yield
    await store.close()


def oidc_ctx(verifier: OidcVerifier) -> Callable[[web.Application], AsyncIterator[None]]:
    """Fetch the issuer's keys early (a failure only warns: tokens wait for the issuer),
    and close the verifier's HTTP client last."""

    async def run_verifier(app: web.Application) -> AsyncIterator[None]:
        await verifier.start()
        yield
        await verifier.close()

    return run_verifier


def replies_ctx(
    assistant: Assistant | None, tracing: Tracing | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The reply service: the configured assistant (or ``assistant``), its telemetry, the
    reply cache and the model slots; the assistant's connections close on exit."""

    async def open_replies(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        telemetry: GenAITelemetry | None = None

        def retried() -> None:
            if telemetry is not None:
                telemetry.retried()

        model = assistant or create_assistant(settings, on_retry=retried)
        telemetry = GenAITelemetry(
            app[METRICS],
            provider=model.provider,
            model=model.model,
            server_url=model.server_url,
            system_prompt=settings.system_prompt,
            tracer_provider=tracing.provider if tracing is not None else None,
        )
        service = ReplyService(
            app[STORE],
            model,
            telemetry,
            context_turns=settings.context_turns,
            slots=ModelSlots(settings.model_max_concurrency, settings.model_timeout_s),
            system_prompt=settings.system_prompt,
            cache=ReplyCache(settings.reply_cache_ttl_s) if settings.reply_cache_ttl_s else None,
            context=app[HISTORY_CACHE].newest,
        )
        app[REPLIES] = service
        yield
        await service.close()

    return open_replies


async def mark_started(app: web.Application) -> None:
    """``on_startup``, after the cleanup contexts opened every resource: serving."""
    app[LIFECYCLE].started = True


async def start_draining(app: web.Application) -> None:
    """``on_shutdown``: from now on /readyz answers 503 while in-flight requests finish."""
    app[LIFECYCLE].draining = True
    if LIVE_UPDATES in app:  # end the live streams: their clients reconnect elsewhere
        app[LIVE_UPDATES].close()
    # aiohttp shuts down after a failed start-up too, when nothing was ever served.
    if app[LIFECYCLE].started:
        log.info("draining: finishing in-flight requests")


def create_app(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
    assistant: Assistant | None = None,
) -> web.Application:
    """Build the service's application for ``settings``; resources open on start-up.

    ``tracing`` is how the process set tracing up (``telemetry.tracing.configure_tracing``);
    the app shuts its provider down when it stops. Tests may leave the telemetry arguments
    out, and pass an ``assistant`` instead of the one the settings name.
    """
    metrics = metrics or Metrics()
    identity = Identity(
        ApiKeys(settings.api_keys),
        oidc=OidcVerifier(settings.oidc_issuer, settings.oidc_audience)
        if settings.oidc_issuer is not None and settings.oidc_audience is not None
        else None,
        trusted_proxies=parse_networks(settings.trusted_proxies),
        protect_metrics=settings.metrics_require_key,
    )
    # With spans exported, the aiohttp instrumentation's middleware provides each request's
    # span; otherwise ours continues the caller's trace itself.
    exporting = tracing is not None and tracing.exporting
    middlewares = [
        telemetry_middleware(metrics, continue_traces=not exporting),
        json_errors,
        identify_middleware(identity),
    ]
    if settings.cors_origins:
        # Outermost: a preflight carries no credentials, so it is answered before the
        # identity and rate-limit middlewares could refuse it.
        middlewares.insert(0, cors_middleware(CorsOrigins(settings.cors_origins)))
    if settings.rate_limit_rps > 0:
        buckets = TokenBuckets(settings.rate_limit_rps, settings.rate_limit_burst)
        middlewares.append(rate_limit_middleware(buckets))
    if identity.required:
        middlewares.append(require_identity)
    # client_max_size bounds what request.read() buffers; the handler answers 413 above it.
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[LIFECYCLE] = Lifecycle()
    app.on_response_prepare.append(add_security_headers)
    app.on_response_prepare.append(add_traceresponse)
    app.on_response_prepare.append(add_request_id)
    if settings.cors_origins:
        app.on_response_prepare.append(add_cors_headers)
    app.on_response_prepare.append(add_rate_limit_headers)
    app.on_startup.append(mark_started)
    app.on_shutdown.append(start_draining)
    app[OPENAPI_DOCUMENT] = load_openapi()
    if tracing is not None:
        app.cleanup_ctx.append(tracing_ctx(tracing.provider))
    if identity.oidc is not None:
        app.cleanup_ctx.append(oidc_ctx(identity.oidc))
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(replies_ctx(assistant, tracing))
    setup_routes(app, settings, metrics)
    return app
