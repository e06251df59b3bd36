"""One caller cannot take the model from the others (the real process, default limits).

The attack: alice, within her rate limit, opens as many streamed replies as the model has
slots (CHAT_MODEL_MAX_CONCURRENCY, 32), each slow (CHAT_ASSISTANT_TOKEN_MS=500: a reply of
the dummy takes about six seconds). Before the per-caller cap and the fair queue, bob's one
message then waited for one of hers to end. Now alice has her share
(CHAT_MAX_REPLIES_PER_CALLER, 4) and the rest of her calls are refused at once with 429; she
then holds every other stream she may (live subscriptions, up to CHAT_MAX_STREAMS_PER_CALLER,
16), and still bob's reply starts before any of hers has ended, and the health probe
answers. Order, not time, is asserted: bob's first piece arrives while every one of alice's
replies is still streaming.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.conftest import StartService
from tests.support.service import ServiceProcess

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
SLOTS = 32  # CHAT_MODEL_MAX_CONCURRENCY's default
STREAMS = 16  # CHAT_MAX_STREAMS_PER_CALLER's default
SSE = {"Accept": "text/event-stream"}


async def open_stream(
    session: aiohttp.ClientSession, service: ServiceProcess, key: str, conversation: str
) -> aiohttp.ClientResponse:
    return await session.post(
        f"{service.base_url}/chat/message",
        json={"message": "hello", "conversation_id": conversation},
        headers={**SSE, "Authorization": f"Bearer {key}"},
    )


async def subscribe(
    session: aiohttp.ClientSession, service: ServiceProcess, key: str, conversation: str
) -> aiohttp.ClientResponse:
    """A subscription, as a client within its rate limit makes it: told to slow down, it
    waits the Retry-After it was given and asks again (any other answer is the answer)."""
    while True:
        response = await session.get(
            f"{service.base_url}/chat/events?conversation_id={conversation}",
            headers={**SSE, "Authorization": f"Bearer {key}"},
        )
        if response.status != 429 or "slow down" not in (await response.json())["message"]:
            return response
        response.close()
        await asyncio.sleep(int(response.headers["Retry-After"]))


async def next_event(response: aiohttp.ClientResponse, event: bytes) -> None:
    """Read the stream line by line up to the next ``event`` (whichever line ends it uses)."""
    async for line in response.content:
        if line.rstrip(b"\r\n") == b"event: " + event:
            return
    raise AssertionError(f"the stream ended without {event.decode()}")


async def first_delta(response: aiohttp.ClientResponse) -> None:
    await next_event(response, b"delta")


async def until_done(response: aiohttp.ClientResponse, finished: list[str], name: str) -> None:
    await next_event(response, b"done")
    finished.append(name)


async def test_a_caller_holding_its_share_does_not_delay_another(
    start_service: StartService,
) -> None:
    service = start_service(
        env={"CHAT_API_KEYS": f"alice:{ALICE},bob:{BOB}", "CHAT_ASSISTANT_TOKEN_MS": "500"}
    )
    finished: list[str] = []
    async with aiohttp.ClientSession() as session:
        alices = await asyncio.gather(
            *(open_stream(session, service, ALICE, f"a{n}") for n in range(SLOTS))
        )
        accepted = [r for r in alices if r.status == 200]
        refused = [r for r in alices if r.status != 200]
        assert len(accepted) == 4, "her share: CHAT_MAX_REPLIES_PER_CALLER"
        assert {r.status for r in refused} == {429}
        body: Any = await refused[0].json()
        assert body["status"] == "error"
        assert "CHAT_MAX_REPLIES_PER_CALLER" in body["message"]
        assert refused[0].headers["Retry-After"] == "1"
        assert "RateLimit" in refused[0].headers
        await asyncio.gather(*(first_delta(r) for r in accepted))
        # And she holds every stream she may besides: subscriptions up to her share of 16.
        subscriptions = [
            await subscribe(session, service, ALICE, f"s{n}") for n in range(STREAMS - 4 + 1)
        ]
        assert [r.status for r in subscriptions] == [200] * (STREAMS - 4) + [429]
        over: Any = await subscriptions[-1].json()
        assert "CHAT_MAX_STREAMS_PER_CALLER" in over["message"]
        assert (await asyncio.to_thread(service.request, "GET", "/healthz"))[0] == 200
        hers = [
            asyncio.create_task(until_done(r, finished, f"alice{n}"))
            for n, r in enumerate(accepted)
        ]
        bobs = await open_stream(session, service, BOB, "b")
        assert bobs.status == 200
        await first_delta(bobs)
        assert finished == [], "bob's reply started while all of alice's were still running"
        await until_done(bobs, finished, "bob")
        await asyncio.gather(*hers)
        for response in [*alices, *subscriptions]:
            response.close()
        bobs.close()
    # Her share is free again once her replies ended.
    status, _, _ = service.request(
        "POST", "/chat/message", {"message": "again"}, {"Authorization": f"Bearer {ALICE}"}
    )
    assert status == 200
