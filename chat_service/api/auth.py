"""Optional API keys: with CHAT_API_KEYS (or CHAT_API_KEYS_FILE) set, ``/chat/*`` needs
``Authorization: Bearer <key>``.

Keys are compared in constant time, against every configured key, so neither the match
nor its position leaks through timing; keys are never logged. Probes, ``/openapi.json``
and the page stay open; ``/metrics`` too unless CHAT_METRICS_REQUIRE_KEY is true.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from chat_service.api.errors import ApiError

CLIENT_ID = web.RequestKey("client_id", str)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="chat-service"'}


class ApiKeys:
    """The configured keys; answers which one (if any) a presented token is."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = [key.encode() for key in keys]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def identify(self, token: str) -> str | None:
        """A stable, non-secret id of the matching key (for rate limiting), or None."""
        # aiohttp keeps undecodable header bytes as surrogates: such a token matches no key.
        presented = token.encode("utf-8", "surrogateescape")
        match: bytes | None = None
        for key in self._keys:
            if hmac.compare_digest(presented, key):  # no early exit: same work either way
                match = key
        if match is None:
            return None
        return "key:" + hashlib.sha256(match).hexdigest()[:16]

    def identify_request(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.identify(token.strip())


def is_protected(path: str, *, metrics: bool) -> bool:
    return path.startswith("/chat/") or (metrics and path == "/metrics")


def auth_middleware(keys: ApiKeys, *, protect_metrics: bool) -> Middleware:
    @web.middleware
    async def require_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_protected(request.path, metrics=protect_metrics):
            client = keys.identify_request(request)
            if client is None:
                raise ApiError(401, "A valid API key is required.", headers=CHALLENGE)
            request[CLIENT_ID] = client
        return await handler(request)

    return require_key
