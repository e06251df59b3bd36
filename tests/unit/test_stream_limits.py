"""Streams per caller and per address: streamed replies and live subscriptions count
together; one past either cap is refused with 429 before it opens, and a closed stream frees
its place. (The real process under attack: tests/security/test_connection_limits.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.conftest import MakeClient

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
KEYS = (f"alice:{ALICE}", f"bob:{BOB}")
SSE = {"Accept": "text/event-stream"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def subscribe(client: Any, key: str, conversation: str = "c") -> Any:
    return await client.get(
        f"/chat/events?conversation_id={conversation}", headers={**SSE, **auth(key)}
    )


async def test_a_callers_streams_and_subscriptions_share_one_cap(make_client: MakeClient) -> None:
    client = await make_client(
        api_keys=KEYS,
        max_streams_per_caller=3,
        max_streams_per_address=10,
        assistant_token_ms=200,
    )
    reply = await client.post(
        "/chat/message", json={"message": "a long one"}, headers={**SSE, **auth(ALICE)}
    )
    assert reply.status == 200
    held = [reply, await subscribe(client, ALICE), await subscribe(client, ALICE, "d")]
    assert [r.status for r in held] == [200, 200, 200]
    refused = await subscribe(client, ALICE)
    assert refused.status == 429
    assert await refused.json() == {
        "status": "error",
        "message": "Too many open streams (3, CHAT_MAX_STREAMS_PER_CALLER); close one first.",
    }
    assert refused.headers["Retry-After"] == "5"
    streamed = await client.post(
        "/chat/message", json={"message": "one more"}, headers={**SSE, **auth(ALICE)}
    )
    assert streamed.status == 429, "a streamed reply is a stream too"
    plain = await client.post("/chat/message", json={"message": "plain"}, headers=auth(ALICE))
    assert plain.status == 200, "a plain reply holds no stream"
    assert (await subscribe(client, BOB)).status == 200, "bob has his own share"
    held[1].close()
    for _ in range(100):  # the server sees the subscription go
        again = await subscribe(client, ALICE)
        if again.status == 200:
            break
        await asyncio.sleep(0.02)
    assert again.status == 200, "a closed stream frees its place"
    for response in [*held, again]:
        response.close()


async def test_one_address_is_capped_whoever_it_signs_in_as(make_client: MakeClient) -> None:
    client = await make_client(api_keys=KEYS, max_streams_per_caller=2, max_streams_per_address=3)
    opened = [await subscribe(client, ALICE), await subscribe(client, ALICE)]
    opened.append(await subscribe(client, BOB))
    assert [r.status for r in opened] == [200, 200, 200]
    refused = await subscribe(client, BOB)
    assert refused.status == 429
    assert "CHAT_MAX_STREAMS_PER_ADDRESS" in (await refused.json())["message"]
    for response in opened:
        response.close()


async def test_anonymous_callers_are_told_apart_by_address(make_client: MakeClient) -> None:
    client = await make_client(
        trusted_proxies=("127.0.0.1/32",), max_streams_per_caller=1, max_streams_per_address=1
    )

    async def from_address(address: str) -> Any:
        return await client.get("/chat/events", headers={**SSE, "X-Forwarded-For": address})

    first = await from_address("203.0.113.1")
    other = await from_address("203.0.113.2")
    refused = await from_address("203.0.113.1")
    assert [first.status, other.status, refused.status] == [200, 200, 429]
    for response in (first, other):
        response.close()
