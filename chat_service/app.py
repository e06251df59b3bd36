"""The application factory: wiring only (state, resources, the application layer, routes)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from chat_service.api import add_routes, add_service_hooks, service_middlewares
from chat_service.api.docs import load_openapi
from chat_service.api.event_stream import KeepAlive
from chat_service.api.identity import Identity, parse_networks
from chat_service.api.keys import (
    CHAT,
    KEEPALIVE,
    LIFECYCLE,
    METRICS,
    OIDC_VERIFIER,
    OPENAPI_DOCUMENT,
    SETTINGS,
    Lifecycle,
)
from chat_service.api.telemetry import RequestSpans
from chat_service.assistant import Assistant, create_assistant
from chat_service.chat.facade import Chat
from chat_service.chat.history import HistoryCache
from chat_service.chat.list_updates import ListUpdates
from chat_service.chat.live import LiveUpdates
from chat_service.chat.model_slots import ModelSlots
from chat_service.chat.models import ModelCatalogue
from chat_service.chat.replies import ReplyService
from chat_service.chat.reply_cache import ReplyCache
from chat_service.config import Settings
from chat_service.identity.api_keys import ApiKeys
from chat_service.identity.oidc import OidcVerifier
from chat_service.store import ChatStore
from chat_service.store.postgres import PostgresChatStore
from chat_service.store.sqlite import SQLiteChatStore
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


def oidc_ctx(verifier: OidcVerifier) -> Callable[[web.Application], AsyncIterator[None]]:
    """Fetch the issuer's keys early and say in one line whether the issuer can be used,
    and if not why (a failure only warns: the service starts, tokens and /readyz wait for
    the issuer), and close the verifier's HTTP client last."""

    async def run_verifier(app: web.Application) -> AsyncIterator[None]:
        await verifier.start()
        announce_issuer(verifier)
        yield
        await verifier.close()

    return run_verifier


def announce_issuer(verifier: OidcVerifier) -> None:
    """The start-up line about the issuer: an issuer configured wrong (a trailing slash, a
    host name not the one it calls itself) would otherwise show only as 503s."""
    if (problem := verifier.problem) is None:
        log.info(
            "OpenID Connect issuer %s is usable: %d signing keys",
            verifier.issuer,
            len(verifier.keys),
        )
    else:
        log.warning(
            "%s; the service starts anyway, and /readyz and bearer tokens answer 503 until it is "
            "usable (it is asked again at most every %g s)",
            problem,
            verifier.retry_interval_s,
        )


def chat_ctx(
    assistant: Assistant | None, tracing: Tracing | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The application layer: the store (opened before the first request; what is queued
    is committed and it is closed last), its history cache and live updates, and the reply
    service on the configured assistant (or ``assistant``), with its telemetry, reply cache
    and model slots (the assistant's connections close on exit)."""

    async def open_chat(app: web.Application) -> AsyncIterator[None]:
        settings, metrics = app[SETTINGS], app[METRICS]
        store = await open_store(settings, metrics)
        try:
            history = HistoryCache(store, store)
            telemetry: GenAITelemetry | None = None

            def retried() -> None:
                if telemetry is not None:
                    telemetry.retried()

            model = assistant or create_assistant(settings, on_retry=retried)
            telemetry = GenAITelemetry(
                metrics,
                provider=model.provider,
                model=model.model,
                server_url=model.server_url,
                system_prompt=settings.system_prompt,
                tracer_provider=tracing.provider if tracing is not None else None,
            )
            replies = ReplyService(
                store,
                store,
                model,
                telemetry,
                context_turns=settings.context_turns,
                slots=ModelSlots(
                    settings.model_max_concurrency,
                    settings.model_timeout_s,
                    settings.max_replies_per_caller,
                ),
                system_prompt=settings.system_prompt,
                cache=ReplyCache(settings.reply_cache_ttl_s)
                if settings.reply_cache_ttl_s
                else None,
                context=history.newest,
            )
            models = ModelCatalogue(
                model, default=settings.model or model.model, configured=settings.models
            )
            live, lists = LiveUpdates(store, store), ListUpdates(store, store)
            app[CHAT] = Chat(store, history, live, lists, replies, models)
            try:
                yield
            finally:
                await replies.close()
        finally:
            await store.close()

    return open_chat


async def watch_gc(app: web.Application) -> AsyncIterator[None]:
    """Time the garbage collector's pauses while the app runs (chat_gc_pause_seconds)."""
    with app[METRICS].gc_pauses.watching():
        yield


async def stop_keepalive(app: web.Application) -> None:
    """``on_cleanup``: the streams are closed; their keep-alive timer goes with them."""
    app[KEEPALIVE].close()


async def mark_started(app: web.Application) -> None:
    """``on_startup``, after the cleanup contexts opened every resource: serving."""
    app[LIFECYCLE].started = True


async def start_draining(app: web.Application) -> None:
    """``on_shutdown``: from now on /readyz answers 503 while in-flight requests finish."""
    app[LIFECYCLE].draining = True
    if CHAT in app:  # end the live streams: their clients reconnect elsewhere
        app[CHAT].stop_following()
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
    )
    # Requests' spans are recorded when spans are exported (api/telemetry.py).
    spans = (
        RequestSpans(
            tracing.provider.get_tracer("chat_service.api"), tracing.untraced, tracing.headers
        )
        if tracing is not None and tracing.exporting
        else RequestSpans(None)
    )
    # client_max_size bounds what request.read() buffers (the root application's is the one
    # requests are made with); the handlers answer 413 above it.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=service_middlewares(metrics, spans),
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[LIFECYCLE] = Lifecycle()
    app[KEEPALIVE] = KeepAlive(settings.stream_keepalive_s)
    app[OPENAPI_DOCUMENT] = load_openapi()
    add_service_hooks(app)
    app.on_startup.append(mark_started)
    app.on_shutdown.append(start_draining)
    app.on_cleanup.append(stop_keepalive)
    app.cleanup_ctx.append(watch_gc)
    if tracing is not None:
        app.cleanup_ctx.append(tracing_ctx(tracing.provider))
    if identity.oidc is not None:
        app[OIDC_VERIFIER] = identity.oidc
        app.cleanup_ctx.append(oidc_ctx(identity.oidc))
    app.cleanup_ctx.append(chat_ctx(assistant, tracing))
    add_routes(app, settings, metrics, identity)
    return app
