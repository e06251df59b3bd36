"""Typed application state (``web.AppKey``), shared by the app factory and the handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chat_service.config import Settings
from chat_service.replies import ReplyService
from chat_service.store import ChatStore
from chat_service.telemetry.metrics import Metrics


@dataclass
class Lifecycle:
    """Where the process is in its life: ``started`` once start-up opened every resource
    (the port is bound before, so requests are being served), ``draining`` once a stop
    signal arrived."""

    started: bool = False
    draining: bool = False


SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", ChatStore)
REPLIES = web.AppKey("replies", ReplyService)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict[str, Any])
