"""Requests that aiohttp's parser refuses before the application runs (the real process).

Each used to get aiohttp's own plain-text 400, echoing the bytes it could not parse, with
``Server: Python/3.x aiohttp/3.x``, none of the security headers, and an ERROR log line with
a traceback. Each now gets the contract's error shape, the security headers, nothing of the
request, and one access-log line that says why without quoting it. Header fields up to
32 KiB are accepted (an access token carrying a large organisation's groups is often over
aiohttp's default of 8 KiB); larger ones are 431.
"""

from __future__ import annotations

import json
import socket

import pytest

from chat_service.api.security import SECURITY_HEADERS
from tests.conftest import StartService
from tests.support.service import ServiceProcess

MARKER = "MARKER7f3a"  # never to be seen again: not in the answer, not in any log line
NOT_HTTP = {"status": "error", "message": "The request is not valid HTTP."}
TOO_LARGE = {
    "status": "error",
    "message": "The request line or a header field is larger than 32 KiB.",
}


def exchange(service: ServiceProcess, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` on a connection of its own; the answer's status, headers and body."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("raw", "status", "answer"),
    [
        (f"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon {MARKER}\r\n\r\n", 400, NOT_HTTP),
        (f"GET /chat/hi\x00{MARKER} HTTP/1.1\r\nHost: x\r\n\r\n", 400, NOT_HTTP),
        (f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-{MARKER}: {'a' * 40_000}\r\n\r\n", 431, TOO_LARGE),
        (
            f"GET /chat/history HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MARKER}{'a' * 40_000}"
            "\r\n\r\n",
            431,
            TOO_LARGE,
        ),
        (f"GET /{MARKER}{'a' * 40_000} HTTP/1.1\r\nHost: x\r\n\r\n", 431, TOO_LARGE),
    ],
    ids=["malformed-header", "nul-in-path", "40k-header", "40k-token", "40k-path"],
)
def test_a_request_the_parser_refuses_gets_the_error_shape_and_leaks_nothing(
    start_service: StartService, raw: str, status: int, answer: dict[str, str]
) -> None:
    service = start_service()
    got, headers, body = exchange(service, raw.encode("latin-1"))
    assert got == status
    assert json.loads(body) == answer
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["server"] == "chat-service"
    for name, value in SECURITY_HEADERS.items():
        assert headers[name.lower()] == value
    assert MARKER.encode() not in body
    output = service.stdout() + service.stderr()
    assert MARKER not in output, "no log line quotes the request"
    assert "Traceback" not in output
    lines = [json.loads(line) for line in service.stdout().splitlines()]
    refused = [line for line in lines if line.get("status") == status]
    assert len(refused) == 1, "one line for the refusal"
    assert refused[0]["error"] == answer["message"]


def test_header_fields_up_to_32_kib_are_accepted(start_service: StartService) -> None:
    key = "k" * 24
    service = start_service(env={"CHAT_API_KEYS": key})
    token = "t" * 30_000  # a bearer token of 30 KB: parsed, then refused as a bad key
    status, _, body = service.request(
        "GET", "/chat/history", headers={"Authorization": f"Bearer {token}"}
    )
    assert (status, body["status"]) == (401, "error")
    status, _, _ = service.request(
        "GET", "/chat/history", headers={"Authorization": f"Bearer {key}", "X-Pad": "p" * 30_000}
    )
    assert status == 200
    assert token not in service.stdout() + service.stderr()
