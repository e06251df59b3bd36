"""The application factory: wiring only (state, resources, middlewares, routes)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from chat_service.api import json_errors, setup_routes
from chat_service.api.docs import load_openapi
from chat_service.assistant import create_assistant
from chat_service.config import Settings
from chat_service.keys import ASSISTANT, OPENAPI_DOCUMENT, SETTINGS, STORE
from chat_service.store import SQLiteChatStore

log = logging.getLogger(__name__)


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the database before the first request; commit what is queued and close it last."""
    store = await SQLiteChatStore.open(app[SETTINGS].db_path)
    app[STORE] = store
    yield
    await store.close()


async def assistant_ctx(app: web.Application) -> AsyncIterator[None]:
    assistant = create_assistant(app[SETTINGS])
    app[ASSISTANT] = assistant
    yield
    await assistant.close()


def create_app(settings: Settings) -> web.Application:
    """Build the service's application for ``settings``; resources open on start-up."""
    # client_max_size bounds what request.read() buffers; the handler answers 413 above it.
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[json_errors])
    app[SETTINGS] = settings
    app[OPENAPI_DOCUMENT] = load_openapi()
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(assistant_ctx)
    setup_routes(app, settings)
    return app
