"""What one caller's connections can cost the others (the real process).

The attacks: one key opens hundreds of live subscriptions against a process allowed 200
file descriptors, which used to leave every other caller's requests and the health probe
without an answer; a client declares a body and sends a few bytes of it, which used to hold
its connection for ever. With the default caps, the subscriptions past a caller's share,
and the connections past an address's, are refused and everyone else is served; a body
that does not arrive in time is 408. And at start-up the process raises its own soft
descriptor limit to the hard one.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import StartService
from tests.support.service import ServiceProcess

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
KEYS = {"CHAT_API_KEYS": f"alice:{ALICE},bob:{BOB}"}
SUBSCRIPTIONS = 300
PER_CALLER = 16  # CHAT_MAX_STREAMS_PER_CALLER's default


async def subscribe(
    session: aiohttp.ClientSession, service: ServiceProcess, n: int
) -> aiohttp.ClientResponse | BaseException:
    try:
        return await session.get(
            f"{service.base_url}/chat/events?conversation_id=c{n}",
            headers={"Authorization": f"Bearer {ALICE}", "Accept": "text/event-stream"},
        )
    except (aiohttp.ClientError, OSError) as exc:  # refused by the gate before it was read
        return exc


def answered(service: ServiceProcess, path: str, key: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        return service.request("GET", path, headers=headers)[0]
    except OSError:  # no answer at all: the process could not accept the connection
        return 0


async def test_a_caller_with_hundreds_of_subscriptions_cannot_starve_the_others(
    start_service: StartService,
) -> None:
    """alice, from an address of her own (127.0.0.2), opens 300 subscriptions on as many
    connections and keeps every connection open; the process may hold 200 descriptors.
    She keeps her share of streams (16); every other connection of hers is refused; the
    probe and bob (from 127.0.0.1) are served throughout."""
    service = start_service(env=KEYS, file_limit=(200, 200))
    connector = aiohttp.TCPConnector(limit=0, local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=20)
    ) as session:
        results = await asyncio.gather(
            *(subscribe(session, service, n) for n in range(SUBSCRIPTIONS))
        )
        responses = [r for r in results if isinstance(r, aiohttp.ClientResponse)]
        opened = [r for r in responses if r.status == 200]
        assert len(opened) == PER_CALLER
        # The rest: refused with 429, by the stream cap or the connection gate, or (when
        # the gate closed the connection before the request was read) a reset.
        assert {r.status for r in responses if r.status != 200} <= {429}
        assert len(results) - len(opened) == SUBSCRIPTIONS - PER_CALLER
        # While alice holds all she can: the others are served, the probe answers.
        assert await asyncio.to_thread(answered, service, "/healthz") == 200
        assert await asyncio.to_thread(answered, service, "/chat/history", BOB) == 200
        status, _, body = await asyncio.to_thread(
            service.request,
            "POST",
            "/chat/message",
            {"message": "hi"},
            {"Authorization": f"Bearer {BOB}"},
        )
        assert (status, body["status"]) == (200, "Success")
        for response in responses:
            response.close()


def test_a_body_that_does_not_arrive_in_time_is_408(start_service: StartService) -> None:
    service = start_service(env={"CHAT_BODY_TIMEOUT_S": "1"})
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(
            b"POST /chat/message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"message":'
        )
        received = b""
        while b"\r\n\r\n" not in received or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, f"closed without an answer: {received!r}"
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    # The connection is not kept for another request: what the client still sends is not
    # one (aiohttp reads it for at most its lingering time, 10 s, then closes).
    assert b"\r\nConnection: close\r\n" in head
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body) == {
        "status": "error",
        "message": "The request body did not arrive within 1 s (CHAT_BODY_TIMEOUT_S).",
    }
    assert service.request("GET", "/chat/history")[2] == [], "nothing was stored"


def test_start_up_raises_the_soft_file_limit_to_the_hard_one(
    start_service: StartService,
) -> None:
    service = start_service(file_limit=(256, 4096))
    limits = Path(f"/proc/{service.process.pid}/limits").read_text()
    row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert row.split()[3:5] == ["4096", "4096"]
    logged: list[dict[str, Any]] = [
        json.loads(line) for line in service.stdout().splitlines() if "open-file" in line
    ]
    assert [(e["message"], e["from"], e["to"]) for e in logged] == [
        ("open-file limit raised", 256, 4096)
    ]
