"""What a caller sees of its exchanges' positions (the ``done`` id of a streamed reply, the
event ids of ``GET /chat/events``, the history's ``Link`` cursor) says nothing of anyone
else's traffic: were those ids the store's global ones, a caller watching the gaps between
its own would count how busy the other tenants are (issue 23)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chat_service.api.keys import CHAT
from chat_service.app import create_app
from chat_service.config import Settings
from tests.support.sse import parse_events, read_events

Client = TestClient[Any, Any]

KEY_ALICE = "alice-key-0123456789abcdef"
KEY_BOB = "bob-key-0123456789abcdef"
ALICE = {"Authorization": f"Bearer {KEY_ALICE}"}
BOB = {"Authorization": f"Bearer {KEY_BOB}"}
ROUNDS = 3


@pytest.fixture
async def client(aiohttp_client: Any, backend_settings: Settings) -> Client:
    settings = backend_settings.replace(
        api_keys=(f"alice:{KEY_ALICE}", f"bob:{KEY_BOB}"), rate_limit_rps=0
    )
    made: Client = await aiohttp_client(create_app(settings))
    return made


@dataclass(frozen=True)
class Seen:
    """Every id a caller was given for its own exchanges in one conversation."""

    done: list[str]
    events: list[str | None]
    link: str | None


async def followers(client: Client, count: int) -> None:
    """Wait until ``count`` streams follow (the handler joins after the request returned)."""
    chat = client.app[CHAT]
    for _ in range(1000):
        if chat.followers == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not {count} followers within 10 s")


async def streamed(client: Client, headers: dict[str, str], message: str, conversation: str) -> str:
    """A streamed reply's ``done`` id."""
    response = await client.post(
        "/chat/message",
        json={"message": message, "conversation_id": conversation},
        headers={**headers, "Accept": "text/event-stream"},
    )
    assert response.status == 200, await response.text()
    (done,) = [event for event in parse_events(await response.text()) if event.event == "done"]
    assert done.id is not None
    return done.id


async def plain(client: Client, headers: dict[str, str], message: str, conversation: str) -> None:
    response = await client.post(
        "/chat/message",
        json={"message": message, "conversation_id": conversation},
        headers=headers,
    )
    assert response.status == 200, await response.text()


async def alices_round_trip(client: Client, conversation: str, *, bob_writes: bool) -> Seen:
    """Alice follows ``conversation`` and writes to it ``ROUNDS`` times, with Bob writing to
    his own conversations (one of the same name) before each of hers when ``bob_writes``;
    then she asks for her newest exchange, which has older ones before it."""
    events = await client.get(f"/chat/events?conversation_id={conversation}", headers=ALICE)
    assert events.status == 200
    await followers(client, 1)
    done = []
    for i in range(ROUNDS):
        if bob_writes:
            await plain(client, BOB, f"bob {i}", conversation)
            await streamed(client, BOB, f"bob elsewhere {i}", "bobs-own")
        done.append(await streamed(client, ALICE, f"alice {i}", conversation))
    received = await read_events(events, ROUNDS)
    events.close()
    await followers(client, 0)
    assert [event.data["user"] for event in received] == [f"alice {i}" for i in range(ROUNDS)]
    history = await client.get(
        f"/chat/history?conversation_id={conversation}&limit=1", headers=ALICE
    )
    assert history.status == 200
    return Seen(done, [event.id for event in received], history.headers.get("Link"))


async def test_a_callers_ids_do_not_move_when_others_write(client: Client) -> None:
    """Alice does the same thing twice, in two conversations of hers: once while nobody
    else writes, once with Bob writing between each of her messages. What she is told is
    the same both times, so she learns nothing of Bob's traffic."""
    quiet = await alices_round_trip(client, "quiet", bob_writes=False)
    busy = await alices_round_trip(client, "busy", bob_writes=True)
    assert busy.done == quiet.done
    assert busy.events == quiet.events
    assert busy.link is not None
    assert busy.link.replace("busy", "quiet") == quiet.link
    # They are still cursors of her exchanges: each distinct, each done id its event's.
    assert quiet.done == quiet.events
    assert len(set(quiet.done)) == ROUNDS


async def test_the_cursors_page_and_resume_in_their_own_conversation(client: Client) -> None:
    """The ids are positions in the caller's conversation: the Link's cursor pages back
    from the newest exchange and an event id resumes the stream, whoever wrote meanwhile."""
    seen = await alices_round_trip(client, "talk", bob_writes=True)
    assert seen.link is not None
    first = seen.events[0]
    assert first is not None
    target = seen.link.removeprefix("<").split(">")[0]
    older = await client.get(target, headers=ALICE)
    assert [item["user"] for item in await older.json()] == [f"alice {ROUNDS - 2}"]
    await plain(client, BOB, "bob again", "talk")
    await plain(client, ALICE, "alice again", "talk")
    resumed = await client.get(
        "/chat/events?conversation_id=talk", headers={**ALICE, "Last-Event-ID": first}
    )
    received = await read_events(resumed, ROUNDS)
    resumed.close()
    assert [event.data["user"] for event in received] == [
        *(f"alice {i}" for i in range(1, ROUNDS)),
        "alice again",
    ]
