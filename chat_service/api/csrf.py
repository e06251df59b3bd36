"""Cross-site request forgery: a page on another site cannot change anything through a
visitor's browser.

A browser lets any page send a POST anywhere, without a preflight, when it uses a "simple"
content type (``text/plain``, a form) or ``mode: "no-cors"``; it only hides the answer. The
service reads JSON whatever the content type says (the README's ``curl -d`` example relies on
it), so without this check such a request would act, with whatever credential the browser
holds ambiently: the anonymous mode, NGINX injecting a key, a sign-in proxy's cookie.

Every state-changing request to ``/chat`` (anything but GET, HEAD and OPTIONS) is checked
against what the browser says about where it comes from, the way browsers intend:

- ``Sec-Fetch-Site`` (every current browser sends it): ``same-origin`` (the page itself) and
  ``none`` (the user typed it) pass; ``same-site`` and ``cross-site`` pass only from an
  origin CHAT_CORS_ORIGINS lists by name (``*`` lets every page read the API, and no page
  write through a visitor's ambient credential);
- without it (older browsers), ``Origin``: it must name the service's own host (the ``Host``
  the request was sent to; NGINX forwards it as the browser sent it) or a listed origin;
- with neither, the request did not come from a page (curl, SDKs, servers), and passes.

A refusal is 403 with the contract's error shape. Nothing here trusts a header a page could
set: browsers do not let scripts set ``Origin`` or ``Sec-Fetch-*``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from chat_service.api.cors import CorsOrigins
from chat_service.api.errors import refuse

SEC_FETCH_SITE = "Sec-Fetch-Site"
# What Sec-Fetch-Site says of a request the page itself or the user made.
FIRST_PARTY = frozenset({"same-origin", "none"})
SAFE_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})
CROSS_SITE_REFUSED = (
    "Cross-site requests may not change anything here: "
    "this page's origin is not allowed (CHAT_CORS_ORIGINS)."
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_host(origin: str, host: str | None) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) names ``host`` (the request's ``Host``
    header, ``host[:port]``). The scheme is not compared: behind a TLS-terminating proxy the
    service sees plain HTTP while the page's origin is https."""
    if not host:
        return False
    try:
        parts = urlsplit(origin)
        origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        target = urlsplit("//" + host)
        target_port = target.port
    except ValueError:  # a port that is not a number, an unbalanced bracket: not ours
        return False
    if parts.hostname is None or parts.hostname != target.hostname:
        return False
    return target_port is None or target_port == origin_port


def csrf_middleware(origins: CorsOrigins | None) -> Middleware:
    """Refuse state-changing requests that a browser says come from a page elsewhere.
    ``origins``: CHAT_CORS_ORIGINS, whose pages may also write (None: no other origin)."""

    def allowed(origin: str | None) -> bool:
        return origin is not None and origins is not None and origins.lists(origin)

    @web.middleware
    async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in SAFE_METHODS:
            return await handler(request)
        headers = request.headers
        origin = headers.get(hdrs.ORIGIN)
        site = headers.get(SEC_FETCH_SITE)
        if site is not None:
            first_party = site.strip().lower() in FIRST_PARTY
        elif origin is not None:
            first_party = same_host(origin, headers.get(hdrs.HOST))
        else:
            return await handler(request)  # not sent by a page
        if first_party or allowed(origin):
            return await handler(request)
        return refuse(request, 403, CROSS_SITE_REFUSED)

    return csrf
