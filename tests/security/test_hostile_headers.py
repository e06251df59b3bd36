"""Header bytes that are not UTF-8, and clients that hang up mid-request."""

from __future__ import annotations

import json
import socket

from tests.conftest import StartService
from tests.support.service import ServiceProcess

KEY = "valid-key-0123456789abcdef"


def raw_request(
    service: ServiceProcess, head: bytes, body: bytes = b"", *, hang_up: bool = False
) -> bytes:
    """Send bytes as they are (no client library cleans them up); read until closed."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(head + b"\r\n" + body)
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_undecodable_authorization_is_401(start_service: StartService) -> None:
    service = start_service(env={"CHAT_API_KEYS": KEY})
    response = raw_request(
        service,
        b"GET /chat/history HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe" + KEY.encode() + b"\r\n",
    )
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 401")
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["status"] == "error"
    service.stop()
    assert '"level":"ERROR"' not in service.stdout()


def test_undecodable_user_agent_is_still_logged(start_service: StartService) -> None:
    service = start_service()
    response = raw_request(
        service,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nUser-Agent: evil\xff\r\n",
    )
    assert response.startswith(b"HTTP/1.1 200")
    service.stop()
    access = [
        json.loads(line)
        for line in service.stdout().splitlines()
        if '"logger":"chat_service.access"' in line
    ]
    agents = [line["user_agent"] for line in access if line["path"] == "/healthz"]
    assert "evil\ufffd" in agents, "the line is written, the bad byte replaced"
    assert "Logging error" not in service.stderr()


def test_a_client_hanging_up_mid_body_is_not_a_server_error(start_service: StartService) -> None:
    service = start_service()
    raw_request(
        service,
        b"POST /chat/message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n",
        b'{"message": "cut',
        hang_up=True,
    )
    assert service.request("GET", "/healthz")[0] == 200
    _, _, metrics = service.request("GET", "/metrics")
    assert 'http_response_status_code="500"' not in metrics
    assert service.request("GET", "/chat/history")[2] == []
    service.stop()
    assert '"level":"ERROR"' not in service.stdout()
