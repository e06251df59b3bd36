"""Typed application state (``web.AppKey``): every key the app factory sets and the handlers
read, in one module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chat_service.api.event_stream import KeepAlive
from chat_service.api.stream_limits import StreamLimits
from chat_service.chat.facade import Chat
from chat_service.config import Settings
from chat_service.identity.oidc import OidcVerifier
from chat_service.telemetry.metrics import Metrics


@dataclass
class Lifecycle:
    """Where the process is in its life: ``started`` once start-up opened every resource
    (the port is bound before, so requests are being served), ``draining`` once a stop
    signal arrived."""

    started: bool = False
    draining: bool = False


SETTINGS = web.AppKey("settings", Settings)
CHAT = web.AppKey("chat", Chat)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict[str, Any])
# Streams held open per caller and per address, counted where /chat is built.
STREAM_LIMITS = web.AppKey("stream_limits", StreamLimits)
# The keep-alive comments of every open event stream (api/event_stream.py).
KEEPALIVE = web.AppKey("keepalive", KeepAlive)
# Set only with CHAT_OIDC_ISSUER: the verifier of its tokens, whose state readiness reports.
OIDC_VERIFIER = web.AppKey("oidc_verifier", OidcVerifier)


def service_app(request: web.Request) -> web.Application:
    """The service's own (outermost) application, which holds every key above but
    STREAM_LIMITS: a key read from it is one dict lookup. ``request.config_dict`` builds a
    chain of the nested applications each time it is read, and raises KeyError in each inner
    one before it reaches this one; the hot paths read it several times per request
    (bench/README.md, issue 26). So ``create_app``'s application must be the one served, as
    ``python -m chat_service`` and the tests serve it, not mounted inside another."""
    return request.match_info.apps[0]
