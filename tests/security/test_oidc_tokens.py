"""Tokens that name nobody, against the real process and a real issuer: a 401 with the
contract's error shape and ``error="invalid_token"``, never a 500, and nothing in the logs but
the access log's line for each.

A token's claims are JSON, whose ``\\ud800`` escape is a lone surrogate: a Python string that
is no text, since it cannot be encoded as UTF-8. A ``sub`` like that used to reach the store
(whose driver cannot encode it: a 500 on every call, with a traceback in the log).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import StartService
from tests.support.oidc_issuer import OidcIssuer
from tests.support.service import ServiceProcess

AUDIENCE = "chat-service"
CALLS = [
    ("GET", "/chat/history", None),
    ("POST", "/chat/message", {"message": "hi"}),
    ("GET", "/chat/conversations", None),
    ("POST", "/chat/conversations", {"title": "mine"}),
    ("GET", "/chat/events?conversation_id=default", None),
    ("GET", "/chat/conversation-events", None),
]


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(audience=AUDIENCE) as running:
        yield running


def refusals(service: ServiceProcess, token: str) -> list[tuple[int, Any, str | None]]:
    """Each call's status, body and challenge, made with ``token``."""
    answers = []
    for method, path, body in CALLS:
        status, headers, answer = service.request(
            method, path, body, headers={"Authorization": f"Bearer {token}"}
        )
        answers.append((status, answer, headers.get("WWW-Authenticate")))
    return answers


@pytest.mark.parametrize(
    "subject",
    [chr(0xD800), chr(0xDFFF), "alice" + chr(0xDC00), chr(0xD83D) + "x"],
    ids=["high", "low", "after text", "half a pair"],
)
def test_a_subject_that_is_not_text_is_a_401_and_no_traceback(
    start_service: StartService, issuer: OidcIssuer, subject: str
) -> None:
    service = start_service(
        env={
            "CHAT_OIDC_ISSUER": issuer.url,
            "CHAT_OIDC_AUDIENCE": AUDIENCE,
            "CHAT_RATE_LIMIT_RPS": "0",
        }
    )
    refused = {"status": "error", "message": "The bearer token is not valid: invalid subject."}
    challenge = 'Bearer realm="chat-service", error="invalid_token"'
    expected = [(401, refused, challenge)] * len(CALLS)
    assert refusals(service, issuer.token({"sub": subject})) == expected
    # A subject that is text goes through: the refusal is the subject's.
    text = {"Authorization": f"Bearer {issuer.token({'sub': 'x'})}"}
    assert service.request("POST", "/chat/message", {"message": "hi"}, headers=text)[0] == 200
    service.stop()
    lines = [json.loads(line) for line in service.stdout().splitlines()]
    assert [line for line in lines if line["level"] not in ("INFO", "DEBUG")] == []
    assert "Traceback" not in service.stdout() + service.stderr()
    calls = [line for line in lines if line.get("route", "").startswith("/chat/")]
    assert [line["status"] for line in calls] == [401] * len(CALLS) + [200]


def test_a_large_organisations_token_is_accepted_and_never_logged(
    start_service: StartService, issuer: OidcIssuer
) -> None:
    """An RS256 access token carrying 300 group claims, as providers issue to users of large
    organisations: about 11.7 KB, over aiohttp's default limit of 8 KiB for a header field,
    which used to answer it with a plain-text 400 and write its start to the log. A 40 KB
    one is 431 with the error shape. Neither appears in any log line."""
    service = start_service(env={"CHAT_OIDC_ISSUER": issuer.url, "CHAT_OIDC_AUDIENCE": AUDIENCE})
    groups = [f"org-unit-{n:03d}-team-members" for n in range(300)]
    large = issuer.token({"sub": "alice", "groups": groups})
    assert 11_000 < len(large) < 12_500
    status, _, body = service.request(
        "POST", "/chat/message", {"message": "hi"}, headers={"Authorization": f"Bearer {large}"}
    )
    assert (status, body["status"]) == (200, "Success")
    huge = issuer.token({"sub": "alice", "groups": groups * 4})
    assert len(huge) > 40_000
    status, _, body = service.request(
        "GET", "/chat/history", headers={"Authorization": f"Bearer {huge}"}
    )
    assert (status, body) == (
        431,
        {
            "status": "error",
            "message": "The request line or a header field is larger than 32 KiB.",
        },
    )
    service.stop()
    output = service.stdout() + service.stderr()
    for token in (large, huge):
        for piece in (token[:40], token[-40:], token.split(".")[1][:40]):
            assert piece not in output
