"""Probes: ``/healthz`` says the process serves requests, ``/readyz`` that the store answers
and, with an OpenID Connect issuer configured, that its tokens can be verified (why not, when
they cannot: the issuer's URL and what is wrong with it, which are no secret)."""

from __future__ import annotations

import logging

from aiohttp import web

from chat_service.api.errors import error_response
from chat_service.api.jsonio import json_response
from chat_service.api.keys import CHAT, LIFECYCLE, OIDC_VERIFIER, service_app
from chat_service.chat.domain import StoreError

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    app = service_app(request)
    if app[LIFECYCLE].draining:
        return error_response(503, "The service is shutting down.")
    try:
        await app[CHAT].ready()
    except StoreError as exc:
        log.warning("not ready: %s", exc)
        return error_response(503, "The store is not available.")
    # The verifier's own back-off bounds what probes cost the issuer; it logs its fetches.
    verifier = app.get(OIDC_VERIFIER)
    if verifier is not None and (problem := await verifier.probe()) is not None:
        return error_response(503, f"{problem}.")
    return json_response({"status": "ready"})
