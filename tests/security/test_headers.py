"""The service's own responses carry the security headers (for `make run` without NGINX)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import StartService

REPO = Path(__file__).resolve().parents[2]

# The policy, written out: what the page may load and do, and nothing more.
EXPECTED = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types dompurify"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": (
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        "microphone=(), payment=(), usb=()"
    ),
    "Cross-Origin-Opener-Policy": "same-origin",
}
# The API docs' (Swagger UI's) policy: the page's, but data: images (Swagger UI's icons) and
# the "default" and "docs-dompurify" Trusted Types policies of frontend/docs.js.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; "
    "trusted-types default dompurify docs-dompurify"
)
# The page's policy in the NGINX template: after connect-src 'self', the variable the image's
# start-up script (frontend/nginx-oidc-origin.sh) sets, empty without CHAT_OIDC_ISSUER
# (tests/e2e/test_nginx.py runs the script and NGINX with and without one).
TEMPLATE_PAGE_POLICY = EXPECTED["Content-Security-Policy"].replace(
    "connect-src 'self';", "connect-src 'self'$chat_csp_oidc_origin;"
)


@pytest.mark.parametrize("path", ["/", "/app.js", "/chat/history", "/no/such/page", "/healthz"])
def test_every_response_has_the_headers(start_service: StartService, path: str) -> None:
    service = start_service(env={"CHAT_FRONTEND_DIR": str(REPO / "frontend")})
    _, headers, _ = service.request("GET", path)
    for name, value in EXPECTED.items():
        assert headers.get(name) == value, name
    assert headers["Server"] == "chat-service", "no versions to look flaws up by"


@pytest.mark.parametrize("path", ["/docs", "/docs.html"])
def test_the_api_docs_have_their_own_policy(start_service: StartService, path: str) -> None:
    service = start_service(env={"CHAT_FRONTEND_DIR": str(REPO / "frontend")})
    status, headers, _ = service.request("GET", path)
    assert status == 200
    assert headers["Content-Security-Policy"] == DOCS_POLICY
    for name, value in EXPECTED.items():
        if name != "Content-Security-Policy":
            assert headers.get(name) == value, name


def test_nginx_and_the_page_send_the_same_policy() -> None:
    template = (REPO / "frontend" / "nginx.conf.template").read_text()
    for name, value in EXPECTED.items():
        if name != "Content-Security-Policy":
            assert f'add_header {name} "{value}" always;' in template, name
    # The policy comes from a map on the URI: the page's by default, the docs' for the docs.
    assert "add_header Content-Security-Policy $chat_content_security_policy always;" in template
    policies = re.search(r"map \$uri \$chat_content_security_policy \{([^}]*)\}", template)
    assert policies
    entries = dict(re.findall(r'^\s*(\S+)\s+"([^"]*)";$', policies.group(1), re.MULTILINE))
    assert entries == {
        "default": TEMPLATE_PAGE_POLICY,
        "/docs": DOCS_POLICY,
        "/docs.html": DOCS_POLICY,
    }
    assert "server_tokens off;" in template
    # No <meta> copy in the page: a second policy only narrows the first, and a fixed one
    # could not name the OpenID Connect issuer the page signs in at. Both servers send it.
    page = (REPO / "frontend" / "frontend.html").read_text()
    assert "Content-Security-Policy" not in page
