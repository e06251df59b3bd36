"""The application factory: wiring only (state, resources, middlewares, routes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from chat_service.api import json_errors, setup_routes, telemetry_middleware
from chat_service.api.docs import load_openapi
from chat_service.assistant import create_assistant
from chat_service.config import Settings
from chat_service.keys import ASSISTANT, METRICS, OPENAPI_DOCUMENT, SETTINGS, STORE
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


def tracing_ctx(provider: TracerProvider) -> Callable[[web.Application], AsyncIterator[None]]:
    """Flush and shut the exporter down last, off the event loop (it may block on network)."""

    async def flush_on_exit(app: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(provider.shutdown)

    return flush_on_exit


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
    # client_max_size bounds what request.read() buffers; the handler answers 413 above it.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[telemetry_middleware(metrics), json_errors],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[OPENAPI_DOCUMENT] = load_openapi()
    if tracer_provider is not None:
        app.cleanup_ctx.append(tracing_ctx(tracer_provider))
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(assistant_ctx)
    setup_routes(app, settings, metrics)
    return app
