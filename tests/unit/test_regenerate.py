"""Regenerate and edit through the API, on both stores: ``replace_turn`` on
``POST /chat/message`` (plain and streamed), its refusals, and the ``cut`` event that
``GET /chat/events`` sends live and to a follower that resumes after missing it."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from chat_service.config import Settings
from tests.support.openapi import validate_response
from tests.support.sse import parse_events, read_events
from tests.unit.conftest import MakeClient
from tests.unit.test_events import follow, wait_for_followers

Client = TestClient[Any, Any]
SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings.replace(rate_limit_rps=0)


async def send(client: Client, message: str, replace_turn: int | None = None) -> Any:
    body: dict[str, Any] = {"message": message, "conversation_id": "room"}
    if replace_turn is not None:
        body["replace_turn"] = replace_turn
    return await client.post("/chat/message", json=body)


async def history(client: Client) -> list[tuple[str, str, int, str]]:
    response = await client.get("/chat/history?conversation_id=room")
    body = await response.json()
    validate_response("/chat/history", "GET", 200, body)
    return [(item["user"], item["AI"], item["turn"], item["id"]) for item in body]


def said(message: str, turn: int) -> str:
    """The dummy assistant's reply: it counts the exchanges it was given as context."""
    return f'You said: "{message}". This is turn {turn} of our conversation.'


async def test_regenerating_the_last_reply_replaces_it(make_client: MakeClient) -> None:
    client = await make_client()
    for message in ("first", "second"):
        assert (await send(client, message)).status == 200
    response = await send(client, "second", replace_turn=2)
    assert await response.json() == {"status": "Success", "response": said("second", 2)}
    assert await history(client) == [
        ("first", said("first", 1), 1, "t1"),
        ("second", said("second", 2), 2, "t2.1"),
    ]


async def test_editing_an_earlier_message_cuts_everything_after_it(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    for message in ("one", "two", "three", "four"):
        await send(client, message)
    assert (await send(client, "two, edited", replace_turn=2)).status == 200
    assert [item[:3] for item in await history(client)] == [
        ("one", said("one", 1), 1),
        ("two, edited", said("two, edited", 2), 2),
    ]
    conversation = await (await client.get("/chat/conversations/room")).json()
    assert conversation["exchanges"] == 2
    assert (await send(client, "after the edit")).status == 200
    assert [item[2:] for item in await history(client)] == [(1, "t1"), (2, "t2.1"), (3, "t3.1")]


async def test_a_streamed_regeneration_is_done_with_the_new_cursor(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    await send(client, "only")
    response = await client.post(
        "/chat/message",
        json={"message": "only", "conversation_id": "room", "replace_turn": 1},
        headers=SSE,
    )
    assert response.status == 200
    events = parse_events(await response.text())
    assert (events[-1].event, events[-1].id) == ("done", "t1.1")
    assert [item[3] for item in await history(client)] == ["t1.1"]


async def test_a_turn_the_conversation_lacks_is_a_409_and_changes_nothing(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    empty = await send(client, "nothing to replace", replace_turn=1)
    assert empty.status == 409
    validate_response("/chat/message", "POST", 409, await empty.json())
    await send(client, "one")
    refused = await send(client, "edited", replace_turn=2)
    assert refused.status == 409
    assert await refused.json() == {
        "status": "error",
        "message": "The conversation has no turn 2. Load the history again.",
    }
    assert await history(client) == [("one", said("one", 1), 1, "t1")]


@pytest.mark.parametrize("value", [0, -1, "2", True, 1.5, None, 1_000_000_000])
async def test_replace_turn_must_be_a_turn(make_client: MakeClient, value: object) -> None:
    client = await make_client()
    await send(client, "one")
    response = await client.post(
        "/chat/message", json={"message": "x", "conversation_id": "room", "replace_turn": value}
    )
    assert response.status == 400
    assert await response.json() == {
        "status": "error",
        "message": "Field 'replace_turn' must be a turn of the conversation (1-999999999).",
    }
    assert len(await history(client)) == 1


async def test_a_whole_number_written_with_a_point_is_a_turn(make_client: MakeClient) -> None:
    """JSON Schema's integers include 2.0, and so does the API document's ``replace_turn``."""
    client = await make_client()
    await send(client, "one")
    response = await client.post(
        "/chat/message", json={"message": "uno", "conversation_id": "room", "replace_turn": 1.0}
    )
    assert response.status == 200
    assert [item[0] for item in await history(client)] == ["uno"]


async def test_a_follower_is_told_of_the_cut_then_gets_what_replaces_it(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    for message in ("one", "two", "three"):
        await send(client, message)
    stream = await follow(client)
    await wait_for_followers(client, 1)
    await send(client, "two, edited", replace_turn=2)
    await send(client, "next")
    cut, replaced, after = await read_events(stream, 3)
    assert (cut.event, cut.id, cut.data) == ("cut", None, {"turn": 2})
    assert (replaced.event, replaced.id, replaced.data["user"]) == (
        "exchange",
        "t2.1",
        "two, edited",
    )
    assert (after.id, after.data["user"]) == ("t3.1", "next")
    stream.close()


async def test_a_follower_that_missed_a_cut_is_told_when_it_resumes(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    for message in ("one", "two", "three"):
        await send(client, message)
    await send(client, "one, edited", replace_turn=1)
    await send(client, "two again")
    # It held the first three exchanges; it resumes with the last id it had.
    stream = await follow(client, "conversation_id=room", **{"Last-Event-ID": "t3"})
    cut, first, second = await read_events(stream, 3)
    assert (cut.event, cut.data) == ("cut", {"turn": 1})
    assert [(e.id, e.data["user"]) for e in (first, second)] == [
        ("t1.1", "one, edited"),
        ("t2.1", "two again"),
    ]
    stream.close()
    # One that knows the cut resumes with no cut at all.
    stream = await follow(client, "conversation_id=room&last_event_id=t2.1")
    await send(client, "three again")
    (event,) = await read_events(stream, 1)
    assert (event.event, event.id) == ("exchange", "t3.1")
    stream.close()
