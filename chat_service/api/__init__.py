"""HTTP layer: route table, handlers and middlewares. Nothing below it knows about HTTP."""

from __future__ import annotations

from aiohttp import web

from chat_service.api import chat, conversations, docs, events, health
from chat_service.api.errors import json_errors
from chat_service.api.frontend import add_frontend_routes
from chat_service.api.telemetry import telemetry_middleware
from chat_service.config import Settings
from chat_service.telemetry.metrics import Metrics


def setup_routes(app: web.Application, settings: Settings, metrics: Metrics) -> None:
    """Register the API routes, then the frontend (last, so the API always wins)."""
    chat.setup_chat(app)
    app.router.add_routes(events.routes)
    app.router.add_routes(conversations.routes)
    app.router.add_routes(health.routes)
    app.router.add_routes(docs.routes)
    app.router.add_get("/metrics", metrics.handler())
    if settings.frontend_dir is not None:
        add_frontend_routes(app, settings.frontend_dir)


__all__ = ["json_errors", "setup_routes", "telemetry_middleware"]
