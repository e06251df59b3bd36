"""The connection gate's arithmetic: how many connections, from whom, and what a refused
one is told. (The gate in the real process: tests/security/test_connection_limits.py.)"""

from __future__ import annotations

import ipaddress
import json
import logging

import pytest
from aiohttp import web

from chat_service.api.security import SECURITY_HEADERS
from chat_service.api.server import (
    KEEPALIVE_TIMEOUT_S,
    RESERVED_DESCRIPTORS,
    ConnectionGate,
    ServiceRunner,
    connection_gate,
)


def parse(raw: bytes) -> tuple[str, dict[str, str], object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body)
    return status, headers, json.loads(body)


def test_a_connection_past_the_total_is_refused_with_503() -> None:
    gate = ConnectionGate(total=2, per_address=10)
    assert gate.admit("10.0.0.1") is None
    assert gate.admit("10.0.0.2") is None
    refusal = gate.admit("10.0.0.3")
    assert refusal is not None
    status, headers, body = parse(refusal)
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert body == {
        "status": "error",
        "message": "The service has too many connections open; try again shortly.",
    }
    assert headers["Connection"] == "close"
    assert headers["Retry-After"] == "5"
    assert headers["Server"] == "chat-service"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    assert gate.open == 2, "a refused connection is not counted"
    gate.leave("10.0.0.1")
    assert gate.open == 1
    assert gate.admit("10.0.0.3") is None


def test_one_address_gets_its_share_and_no_more() -> None:
    gate = ConnectionGate(total=100, per_address=2)
    assert [gate.admit("10.0.0.1") for _ in range(2)] == [None, None]
    refusal = gate.admit("10.0.0.1")
    assert refusal is not None
    status, _, body = parse(refusal)
    assert status == "HTTP/1.1 429 Too Many Requests"
    assert body == {
        "status": "error",
        "message": "Too many connections from this address; close some first.",
    }
    assert gate.admit("10.0.0.2") is None, "another address has its own share"
    assert gate.open == 3
    gate.leave("10.0.0.1")
    assert gate.admit("10.0.0.1") is None, "a closed connection frees its place"
    gate.leave("10.0.0.1")
    gate.leave("10.0.0.1")
    assert [gate.admit("10.0.0.1") for _ in range(2)] == [None, None]


def test_trusted_proxies_and_unknown_peers_have_no_per_address_share() -> None:
    gate = ConnectionGate(total=10, per_address=1, trusted=[ipaddress.ip_network("10.1.0.0/16")])
    assert [gate.admit("10.1.2.3") for _ in range(5)] == [None] * 5  # NGINX: many users
    assert gate.admit(None) is None  # a Unix socket: no address
    assert gate.admit("not-an-address") is None
    assert gate.admit("not-an-address") is not None, "an untrusted peer has a share"
    assert gate.open == 7
    for _ in range(5):
        gate.leave("10.1.2.3")
    gate.leave(None)
    assert gate.open == 1


def test_the_gate_fits_the_descriptors_it_has() -> None:
    roomy = connection_gate(4096, 256, descriptors=1_048_576)
    assert (roomy.total, roomy.per_address) == (4096, 256)
    tight = connection_gate(4096, 256, descriptors=200)
    assert tight.total == 200 - RESERVED_DESCRIPTORS == 136
    assert tight.per_address == 34, "a quarter of what there is"
    tiny = connection_gate(4096, 256, descriptors=10)
    assert (tiny.total, tiny.per_address) == (1, 1)
    configured = connection_gate(100, 5, descriptors=1_048_576)
    assert (configured.total, configured.per_address) == (100, 5)


def test_refusals_are_logged_at_most_every_ten_seconds_with_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    gate = ConnectionGate(total=1, per_address=1, clock=lambda: now[0])
    assert gate.admit("10.0.0.1") is None
    with caplog.at_level(logging.WARNING, "chat_service.api.server"):
        for _ in range(3):
            assert gate.admit("10.0.0.2") is not None
        now[0] += 9.9
        assert gate.admit("10.0.0.3") is not None
        now[0] += 0.1
        assert gate.admit("10.0.0.4") is not None
    lines = [r for r in caplog.records if r.getMessage() == "refusing connections"]
    assert [(r.limit, r.refused, r.open, r.max_connections) for r in lines] == [  # type: ignore[attr-defined]
        ("total", 1, 1, 1),
        ("total", 4, 1, 1),
    ]
    assert gate.refusals == 5


async def test_a_connection_without_a_whole_request_is_closed_after_75_seconds() -> None:
    """web.run_app's bound on idle and slow-header connections, which aiohttp's handlers on
    their own put at an hour."""
    runner = ServiceRunner(web.Application(), ConnectionGate(10, 10))
    await runner.setup()
    try:
        server = runner.server
        assert server is not None
        handler = server()
        assert handler._keepalive_timeout == KEEPALIVE_TIMEOUT_S == 75.0  # aiohttp's field
    finally:
        await runner.cleanup()
