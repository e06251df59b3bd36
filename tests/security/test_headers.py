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


@pytest.mark.parametrize("path", ["/", "/app.js", "/chat/history", "/no/such/page", "/healthz"])
def test_every_response_has_the_headers(start_service: StartService, path: str) -> None:
    service = start_service(env={"CHAT_FRONTEND_DIR": str(REPO / "frontend")})
    _, headers, _ = service.request("GET", path)
    for name, value in EXPECTED.items():
        assert headers.get(name) == value, name


def test_nginx_and_the_page_send_the_same_policy() -> None:
    template = (REPO / "frontend" / "nginx.conf.template").read_text()
    for name, value in EXPECTED.items():
        assert f'add_header {name} "{value}" always;' in template, name
    # The page's <meta> copy, for when it is opened from the service: the same policy,
    # less frame-ancestors, which only works as a header.
    page = (REPO / "frontend" / "frontend.html").read_text()
    match = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert match
    assert match.group(1) == EXPECTED["Content-Security-Policy"].replace(
        "frame-ancestors 'none'; ", ""
    )
