"""Security headers on every response the service itself sends.

The same policy NGINX sets in ``frontend/nginx.conf.template`` (NGINX hides these upstream
headers and sends its own, so nothing is doubled), so ``make run`` without NGINX is as
strict as the stack: no inline script or style, Trusted Types, no framing, no sniffing.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from aiohttp import hdrs
from yarl import URL

_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src {connect}; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types dompurify"
)
CONTENT_SECURITY_POLICY = _PAGE_POLICY.format(connect="'self'")


def page_content_security_policy(oidc_issuer: str | None) -> str:
    """The chat page's policy: ``CONTENT_SECURITY_POLICY``, whose ``connect-src`` also admits
    the origin of CHAT_OIDC_ISSUER when one is set, since the page signs in there (discovery,
    token and end-session endpoints) and nowhere else. Every other response keeps 'self'."""
    if oidc_issuer is None:
        return CONTENT_SECURITY_POLICY
    # config.py accepts only http(s) URLs with a host, so the origin holds no CSP syntax.
    return _PAGE_POLICY.format(connect=f"'self' {URL(oidc_issuer).origin()}")


# The API docs page (frontend/docs.html, Swagger UI 5) breaks two rules of the page's policy,
# so it gets its own, which differs in exactly these: Swagger UI's stylesheet draws its icons
# as data: images (img-src data:), and it writes sanitized Markdown through innerHTML, which
# Trusted Types refuse unless a "default" policy converts the string. frontend/docs.js
# creates that policy (it sanitizes again with DOMPurify, and converts nothing but HTML) and
# one for its DOMPurify to parse with; "dompurify" is the one Swagger UI's own copy creates.
# Trusted Types stay enforced; no inline script or style, no other origin.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; "
    "trusted-types default dompurify docs-dompurify"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": (
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        "microphone=(), payment=(), usb=()"
    ),
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Instead of aiohttp's "Python/3.x aiohttp/3.x": versions tell an attacker which known flaws
# to try. (NGINX sends "nginx" alone, with server_tokens off, in front of it.)
SERVER = "chat-service"


def secure(headers: MutableMapping[str, str]) -> None:
    """The security headers (those already set stay: the API docs have a policy of their
    own) and the service's name for itself: on every response, including those answered
    before any route runs (api/server.py)."""
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    # aiohttp sets its own only where none is set, after this hook.
    headers[hdrs.SERVER] = SERVER
