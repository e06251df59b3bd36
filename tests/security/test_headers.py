"""The service's own responses carry the security headers (for `make run` without NGINX)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chat_service.api.security import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from tests.conftest import StartService

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", ["/", "/app.js", "/chat/history", "/no/such/page", "/healthz"])
def test_every_response_has_the_headers(start_service: StartService, path: str) -> None:
    service = start_service(env={"CHAT_FRONTEND_DIR": str(REPO / "frontend")})
    _, headers, _ = service.request("GET", path)
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name


def test_policy_is_the_one_nginx_sends() -> None:
    template = (REPO / "frontend" / "nginx.conf.template").read_text()
    match = re.search(r'add_header Content-Security-Policy "([^"]+)" always;', template)
    assert match
    assert match.group(1) == CONTENT_SECURITY_POLICY
    for name, value in SECURITY_HEADERS.items():
        assert f'add_header {name} "{value}" always;' in template, name
