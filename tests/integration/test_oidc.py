"""OpenID Connect as whoever runs the service meets it, with the real process and a real issuer:
one line at start-up says whether the issuer can be used, and if not why; ``/readyz`` says the
same until it can, and becomes ready once it can, without a restart.

An issuer that cannot be used never stops start-up: the service serves its probes (and answers
bearer tokens 503), so the readiness probe is where a platform sees why it is not ready.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import StartService
from tests.support.oidc_issuer import OidcIssuer
from tests.support.service import ServiceProcess, free_port

AUDIENCE = "chat-service"
NOT_USABLE_YET = (
    "; the service starts anyway, and /readyz and bearer tokens answer 503 until it is usable "
    "(it is asked again at most every 5 s)"
)


def oidc_env(issuer_url: str) -> dict[str, str]:
    return {"CHAT_OIDC_ISSUER": issuer_url, "CHAT_OIDC_AUDIENCE": AUDIENCE}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def records(service: ServiceProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in service.stdout().splitlines()]


def start_up_lines(service: ServiceProcess, issuer_url: str) -> list[tuple[str, str]]:
    """The level and message of each line saying whether ``issuer_url`` can be used."""
    return [
        (record["level"], record["message"])
        for record in records(service)
        if record["message"].startswith(f"OpenID Connect issuer {issuer_url} is ")
    ]


def not_ready(issuer_url: str, failure: str) -> tuple[int, dict[str, str]]:
    message = f"OpenID Connect issuer {issuer_url} is not usable: {failure}."
    return 503, {"status": "error", "message": message}


def test_a_usable_issuer_is_said_so_once(start_service: StartService) -> None:
    with OidcIssuer(audience=AUDIENCE) as issuer:
        service = start_service(env=oidc_env(issuer.url))  # ready: /readyz answered 200
        assert service.request("GET", "/readyz")[::2] == (200, {"status": "ready"})
        status, _, _ = service.request("GET", "/chat/history", headers=bearer(issuer.token()))
        assert status == 200
        service.stop()
    # The start-up fetch is told by that line alone, not by the verifier's own as well.
    assert [r["message"] for r in records(service) if issuer.url in r["message"]] == [
        f"OpenID Connect issuer {issuer.url} is usable: 2 signing keys"
    ]
    assert start_up_lines(service, issuer.url)[0][0] == "INFO"


@pytest.mark.parametrize("case", ["trailing slash", "another host"])
def test_an_issuer_named_otherwise_is_said_so_and_is_never_ready(
    start_service: StartService, case: str
) -> None:
    """The issue's case: every /chat call answered 503 while /readyz said ready, and only a
    log line of the verifier's telling why. Now the start-up line and /readyz both say it."""
    with OidcIssuer(audience=AUDIENCE) as issuer:
        configured = (
            issuer.url + "/"
            if case == "trailing slash"
            else issuer.url.replace("127.0.0.1", "localhost")
        )
        service = start_service(env=oidc_env(configured), ready_path="/healthz")
        failure = (
            f"it names itself '{issuer.url}' in its discovery document; "
            "set CHAT_OIDC_ISSUER to exactly that"
        )
        assert service.request("GET", "/readyz")[::2] == not_ready(configured, failure)
        token = issuer.token({"iss": configured})
        status, headers, _ = service.request("GET", "/chat/history", headers=bearer(token))
        assert status == 503
        assert int(headers["Retry-After"]) >= 1
        service.stop()
    assert start_up_lines(service, configured) == [
        ("WARNING", f"OpenID Connect issuer {configured} is not usable: {failure}{NOT_USABLE_YET}")
    ]
    assert issuer.jwks_requests == 0


def test_an_issuer_that_comes_up_after_the_service(start_service: StartService) -> None:
    """The issuer not reachable yet at start-up (a stack starting all at once): the service
    starts, is not ready and says why; once the issuer answers, it is ready, no restart."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = start_service(env=oidc_env(url), ready_path="/healthz")
    assert service.request("GET", "/readyz")[::2] == not_ready(
        url, "discovery: ClientConnectorError"
    )
    with OidcIssuer(audience=AUDIENCE, port=port) as issuer:
        service.wait_ready()  # /readyz, polled: the issuer is asked again after the back-off
        status, _, _ = service.request("GET", "/chat/history", headers=bearer(issuer.token()))
        assert status == 200
        service.stop()
    assert start_up_lines(service, url) == [
        (
            "WARNING",
            f"OpenID Connect issuer {url} is not usable: discovery: ClientConnectorError"
            + NOT_USABLE_YET,
        )
    ]
