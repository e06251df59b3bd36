"""The application factory: wiring only (state, resources, middlewares, routes)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from chat_service.api import json_errors, setup_routes, telemetry_middleware
from chat_service.api.auth import ApiKeys, auth_middleware
from chat_service.api.docs import load_openapi
from chat_service.api.ratelimit import TokenBuckets, parse_networks, rate_limit_middleware
from chat_service.api.security import add_security_headers
from chat_service.assistant import create_assistant
from chat_service.config import Settings
from chat_service.keys import (
    ASSISTANT,
    LIFECYCLE,
    METRICS,
    OPENAPI_DOCUMENT,
    SETTINGS,
    STORE,
    Lifecycle,
)
from chat_service.store import SQLiteChatStore
from chat_service.telemetry.genai import InstrumentedAssistant
from chat_service.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the database before the first request; commit what is queued and close it last."""
    store = await SQLiteChatStore.open(app[SETTINGS].db_path, observer=app[METRICS])
    app[STORE] = store
    yield
    await store.close()


async def assistant_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assistant = InstrumentedAssistant(
        create_assistant(settings), app[METRICS], capture_content=settings.capture_content
    )
    app[ASSISTANT] = assistant
    yield
    await assistant.close()


# How long stopping may wait for the exporter to hand over the last spans.
EXPORT_FLUSH_TIMEOUT_S = 5.0


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


async def start_draining(app: web.Application) -> None:
    """``on_shutdown``: from now on /readyz answers 503 while in-flight requests finish."""
    app[LIFECYCLE].draining = True
    log.info("draining: finishing in-flight requests")


def create_app(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    tracer_provider: TracerProvider | None = None,
) -> web.Application:
    """Build the service's application for ``settings``; resources open on start-up.

    ``tracer_provider`` is the process's provider (see ``telemetry.tracing``); the app
    shuts it down when it stops. Tests may leave both telemetry arguments out.
    """
    metrics = metrics or Metrics()
    keys = ApiKeys(settings.api_keys)
    instrumented = AioHttpServerInstrumentor().is_instrumented_by_opentelemetry
    middlewares = [telemetry_middleware(metrics, continue_traces=not instrumented), json_errors]
    if settings.rate_limit_rps > 0:
        buckets = TokenBuckets(settings.rate_limit_rps, settings.rate_limit_burst)
        trusted = parse_networks(settings.trusted_proxies)
        middlewares.append(rate_limit_middleware(buckets, keys, trusted))
    if keys:
        middlewares.append(auth_middleware(keys, protect_metrics=settings.metrics_require_key))
    # client_max_size bounds what request.read() buffers; the handler answers 413 above it.
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[LIFECYCLE] = Lifecycle()
    app.on_response_prepare.append(add_security_headers)
    app.on_shutdown.append(start_draining)
    app[OPENAPI_DOCUMENT] = load_openapi()
    if tracer_provider is not None:
        app.cleanup_ctx.append(tracing_ctx(tracer_provider))
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(assistant_ctx)
    setup_routes(app, settings, metrics)
    return app
