"""How the page signs in, and who it signed in as.

``GET /chat/auth`` refuses nobody (api/__init__.py mounts it without ``require_identity``),
since a caller asks it before it has a credential: it names the ways this deployment accepts
callers (no credential at all, API keys, OpenID Connect tokens), for OpenID Connect what the
page's public client needs to start the authorization code flow, and whom the request's own
credential names, if anyone: a page behind a sign-in proxy (or NGINX adding a key) is signed
in without holding a credential itself. It holds nothing secret: the issuer, the client id
and the scopes are what any sign-in redirect shows anyway. ``GET /chat/me`` answers the
caller the identity middleware placed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chat_service.api.identity import PRINCIPAL
from chat_service.api.jsonio import json_response
from chat_service.api.keys import SETTINGS, service_app
from chat_service.config import Settings
from chat_service.identity.principal import Principal, PrincipalKind

sign_in_routes = web.RouteTableDef()  # mounted at /chat/auth, for anyone
me_routes = web.RouteTableDef()  # in /chat, for identified callers


def sign_in_options(settings: Settings) -> dict[str, Any]:
    """``modes``: "anonymous" alone, or "api_key" and/or "oidc"; ``oidc``: the page's
    client at the issuer (``client_id`` null when none is configured), or null. The same for
    every caller."""
    modes = []
    if settings.api_keys:
        modes.append("api_key")
    if settings.oidc_issuer is not None:
        modes.append("oidc")
    oidc = None
    if settings.oidc_issuer is not None:
        oidc = {
            "issuer": settings.oidc_issuer,
            "client_id": settings.oidc_client_id,
            "scopes": settings.oidc_scopes,
            # The API's identifier: Auth0 issues a token for it only when the sign-in
            # request names it; other providers ignore the parameter.
            "audience": settings.oidc_audience,
        }
    return {"modes": modes or ["anonymous"], "oidc": oidc}


def caller_body(principal: Principal) -> dict[str, Any]:
    """Who a principal is, as ``/chat/me`` says it."""
    anonymous = principal.kind is PrincipalKind.ANONYMOUS
    return {
        "kind": principal.kind.value,
        "subject": None if anonymous else principal.name,
        "name": principal.display_name,
    }


@sign_in_routes.get("")
async def get_sign_in_options(request: web.Request) -> web.Response:
    principal = request.get(PRINCIPAL)  # absent when the credential was refused, or missing
    body = sign_in_options(service_app(request)[SETTINGS])
    body["caller"] = caller_body(principal) if principal is not None else None
    return json_response(body)


@me_routes.get("/me")
async def get_me(request: web.Request) -> web.Response:
    return json_response(caller_body(request[PRINCIPAL]))
