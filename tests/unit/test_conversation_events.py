"""``GET /chat/conversation-events`` in process, on both stores: the caller's list as it
changes (created, renamed, written to, deleted), only the caller's, from other replicas too
(PostgreSQL); and the hub behind it (chat/list_updates.py): reads after the last change,
one at a time per owner, reloads when changes may have been missed, slow followers dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from chat_service.api.keys import CHAT, METRICS
from chat_service.app import create_app
from chat_service.chat.domain import Conversation, ConversationRef, StoreError
from chat_service.chat.list_updates import (
    QUEUE_SIZE,
    RELOAD,
    Deleted,
    ListChange,
    ListUpdates,
)
from chat_service.config import Settings
from chat_service.store.sqlite import SQLiteChatStore
from tests.support.openapi import validate_response
from tests.support.refs import ref
from tests.support.sse import Received, read_events
from tests.unit.conftest import MakeClient

Client = TestClient[Any, Any]
READ_TIMEOUT_S = 10
PATH = "/chat/conversation-events"
ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-0123456789abcdef"
ALICE = {"Authorization": f"Bearer {ALICE_KEY}"}
BOB = {"Authorization": f"Bearer {BOB_KEY}"}


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings.replace(
        rate_limit_rps=0, api_keys=(f"alice:{ALICE_KEY}", f"bob:{BOB_KEY}")
    )


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(READ_TIMEOUT_S * 100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not met in time")


async def subscribe(client: Client, headers: dict[str, str]) -> ClientResponse:
    """A stream of the caller's list, once it has said ``ready``."""
    response = await client.get(PATH, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/event-stream"
    (ready,) = await read_events(response, 1)
    assert (ready.event, ready.data, ready.id) == ("ready", {}, None)
    return response


WARM_UP = "warm-up"


async def next_change(stream: ClientResponse) -> Received:
    """The next event other than ``ready`` (PostgreSQL's listener says it again when its
    connection comes up, which may be after the stream started) and a warm-up's."""
    while True:
        (event,) = await read_events(stream, 1)
        if event.event != "ready" and event.data.get("title") != WARM_UP:
            return event


async def create(client: Client, headers: dict[str, str], title: str | None) -> dict[str, Any]:
    response = await client.post("/chat/conversations", json={"title": title}, headers=headers)
    assert response.status == 201
    body: dict[str, Any] = await response.json()
    return body


async def listening(client: Client, headers: dict[str, str]) -> ClientResponse:
    """A stream that is known to hear changes: one of the caller's own creations came through
    it. (On PostgreSQL, a change notified before the replica's LISTEN began is heard only as
    a ``ready``: then another is made.)"""
    stream = await subscribe(client, headers)
    made = await create(client, headers, WARM_UP)
    while True:
        (event,) = await read_events(stream, 1)
        if event.event == "conversation" and event.data["id"] == made["id"]:
            assert event.data == made
            return stream
        if event.event == "ready":
            made = await create(client, headers, WARM_UP)


async def test_each_change_of_the_callers_list_is_an_event(make_client: MakeClient) -> None:
    client = await make_client()
    stream = await listening(client, ALICE)

    made = await create(client, ALICE, "Plans")
    created = await next_change(stream)
    assert (created.event, created.data, created.id) == ("conversation", made, None)
    validate_response("/chat/conversations/{conversation_id}", "GET", 200, created.data)

    path = f"/chat/conversations/{made['id']}"
    renamed = await client.patch(path, json={"title": "Holiday plans"}, headers=ALICE)
    assert renamed.status == 200
    assert (await next_change(stream)).data == await renamed.json()

    posted = await client.post(
        "/chat/message", json={"message": "hi", "conversation_id": made["id"]}, headers=ALICE
    )
    assert posted.status == 200
    written = await next_change(stream)
    assert written.event == "conversation"
    assert written.data == await (await client.get(path, headers=ALICE)).json()
    assert (written.data["exchanges"], written.data["title"]) == (1, "Holiday plans")
    assert written.data["updated_at"] > made["updated_at"]

    assert (await client.delete(path, headers=ALICE)).status == 204
    deleted = await next_change(stream)
    assert (deleted.event, deleted.data) == ("deleted", {"id": made["id"]})
    stream.close()


async def test_a_first_message_creates_and_titles_a_conversation(
    make_client: MakeClient,
) -> None:
    """Posting to an id that does not exist yet starts it: the list hears of it with its
    title, the start of the message."""
    client = await make_client()
    stream = await listening(client, ALICE)
    posted = await client.post(
        "/chat/message",
        json={"message": "What is a monad?", "conversation_id": "new-one"},
        headers=ALICE,
    )
    assert posted.status == 200
    event = await next_change(stream)
    assert (event.data["id"], event.data["title"], event.data["exchanges"]) == (
        "new-one",
        "What is a monad?",
        1,
    )
    stream.close()


async def test_another_principals_stream_hears_nothing_of_it(make_client: MakeClient) -> None:
    """Bob's stream, open while alice creates, renames, writes to and deletes a conversation
    (with an id bob uses too): the first thing it hears is bob's own creation."""
    client = await make_client()
    bobs = await listening(client, BOB)
    alices = await listening(client, ALICE)
    made = await create(client, ALICE, "alice's secret")
    path = f"/chat/conversations/{made['id']}"
    assert (await client.patch(path, json={"title": "still secret"}, headers=ALICE)).status == 200
    for conversation in (made["id"], "shared"):
        posted = await client.post(
            "/chat/message",
            json={"message": "alice's secret", "conversation_id": conversation},
            headers=ALICE,
        )
        assert posted.status == 200
    assert (await client.delete(path, headers=ALICE)).status == 204
    # Alice hears the last of it before bob acts: her "shared", and the deletion (changes that
    # come while a read is under way are read together, so she may hear fewer than five).
    last: dict[str, Received] = {}
    while set(last) != {made["id"], "shared"} or last[made["id"]].event != "deleted":
        event = await next_change(alices)
        last[event.data["id"]] = event
    assert last["shared"].data["exchanges"] == 1
    posted = await client.post(
        "/chat/message", json={"message": "mine", "conversation_id": "shared"}, headers=BOB
    )
    assert posted.status == 200
    first = await next_change(bobs)
    assert (first.data["id"], first.data["title"], first.data["exchanges"]) == (
        "shared",
        "mine",
        1,
    )
    bobs.close()
    alices.close()


async def test_every_stream_of_the_caller_hears_each_change(make_client: MakeClient) -> None:
    client = await make_client()
    streams = [await listening(client, ALICE) for _ in range(3)]
    gauge = client.app[METRICS].list_subscriptions
    assert gauge._value.get() == 3
    made = await create(client, ALICE, "for everyone")
    for stream in streams:
        assert (await next_change(stream)).data == made
        stream.close()
    await eventually(lambda: client.app[CHAT].list_followers == 0)
    await eventually(lambda: gauge._value.get() == 0)


async def test_stopping_the_service_ends_every_stream(make_client: MakeClient) -> None:
    client = await make_client()
    stream = await subscribe(client, ALICE)
    await eventually(lambda: client.app[CHAT].list_followers == 1)
    client.app[CHAT].stop_following()
    async with asyncio.timeout(READ_TIMEOUT_S):
        rest = await stream.content.read()
    assert b"event: conversation" not in rest
    refused = await client.get(PATH, headers=ALICE)
    assert refused.status == 500
    assert await refused.json() == {
        "status": "error",
        "message": "Failed to follow the conversations.",
    }


async def test_without_credentials_it_is_a_401(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get(PATH)
    assert response.status == 401
    validate_response(PATH, "GET", 401, await response.json())


async def test_too_many_streams_of_one_caller_are_refused(make_client: MakeClient) -> None:
    client = await make_client(max_streams_per_caller=2)
    streams = [await subscribe(client, ALICE) for _ in range(2)]
    refused = await client.get(PATH, headers=ALICE)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "5"
    assert (await subscribe(client, BOB)).status == 200  # another caller's own share
    for stream in streams:
        stream.close()


async def test_another_replicas_changes_arrive(aiohttp_client: Any, postgres_url: str) -> None:
    """Two apps on one PostgreSQL database, whose only link is the database: what one
    creates, renames, writes to and deletes, the other's streams hear."""
    settings = Settings(database_url=postgres_url, rate_limit_rps=0, api_keys=(ALICE_KEY,))
    mine: Client = await aiohttp_client(create_app(settings))
    theirs: Client = await aiohttp_client(create_app(settings))
    alice = {"Authorization": f"Bearer {ALICE_KEY}"}
    stream = await listening(mine, alice)
    made = await create(theirs, alice, "over there")
    assert (await next_change(stream)).data == made
    path = f"/chat/conversations/{made['id']}"
    renamed = await theirs.patch(path, json={"title": "renamed there"}, headers=alice)
    assert (await next_change(stream)).data == await renamed.json()
    posted = await theirs.post(
        "/chat/message", json={"message": "hi", "conversation_id": made["id"]}, headers=alice
    )
    assert posted.status == 200
    assert (await next_change(stream)).data["exchanges"] == 1
    assert (await theirs.delete(path, headers=alice)).status == 204
    assert (await next_change(stream)).data == {"id": made["id"]}
    stream.close()


# -- the hub -------------------------------------------------------------------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteChatStore]:
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    yield store
    await store.close()


async def take(changes: AsyncIterator[ListChange], count: int) -> list[ListChange]:
    taken: list[ListChange] = []
    async with asyncio.timeout(READ_TIMEOUT_S):
        async for change in changes:
            taken.append(change)
            if len(taken) == count:
                break
    return taken


async def nothing_more(changes: AsyncIterator[ListChange]) -> bool:
    """True when no further change comes within a moment (the wait ends the iterator)."""
    try:
        await asyncio.wait_for(anext(changes), 0.3)
    except TimeoutError:
        return True
    return False


class HeldReads:
    """The store as the hub reads it, counting reads; a read can be held after it read the
    conversation and before the hub gets it (the moment a change that lands is one the read
    did not see), or made to fail."""

    def __init__(self, store: SQLiteChatStore) -> None:
        self.store = store
        self.reads: list[ConversationRef] = []
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()
        self.failing = False

    async def conversation(self, conversation: ConversationRef) -> Conversation | None:
        self.reads.append(conversation)
        if self.failing:
            raise StoreError("the disk is on fire")
        found = await self.store.conversation(conversation)
        if self.hold is not None:
            hold, self.hold = self.hold, None
            self.holding.set()
            await hold.wait()
        return found

    def hold_next_read(self) -> asyncio.Event:
        self.hold = release = asyncio.Event()
        self.holding.clear()
        return release

    async def reached(self) -> None:
        await asyncio.wait_for(self.holding.wait(), READ_TIMEOUT_S)


@pytest.fixture
def held(sqlite_store: SQLiteChatStore) -> HeldReads:
    return HeldReads(sqlite_store)


@pytest.fixture
def lists(held: HeldReads, sqlite_store: SQLiteChatStore) -> ListUpdates:
    return ListUpdates(held, sqlite_store)


async def test_a_stream_starts_with_a_reload_then_hears_its_owner_only(
    sqlite_store: SQLiteChatStore, held: HeldReads, lists: ListUpdates
) -> None:
    async with lists.follow("key:alice") as changes:
        assert await take(changes, 1) == [RELOAD]
        await sqlite_store.create_conversation(ref("x", "key:bob"), "bob's")
        await sqlite_store.append(ref("y", "key:bob"), "bob's", "r")
        await sqlite_store.create_conversation(ref("x", "key:alice"), "alice's")
        (change,) = await take(changes, 1)
        assert isinstance(change, Conversation)
        assert (change.id, change.title) == ("x", "alice's")
        assert await nothing_more(changes)
    assert held.reads == [ref("x", "key:alice")], "nobody follows bob: nothing read"
    assert lists.followers == 0
    assert lists._owners == {}, "nothing kept of an owner nobody follows"


async def test_changes_during_a_read_are_read_once_after_it(
    sqlite_store: SQLiteChatStore, held: HeldReads, lists: ListUpdates
) -> None:
    """One read at a time per owner; every conversation that changed meanwhile is read once
    more, after the last change: what the follower hears last is how it stands."""
    await sqlite_store.create_conversation(ref("a"), None)
    async with lists.follow("") as changes:
        await take(changes, 1)
        release = held.hold_next_read()
        await sqlite_store.append(ref("a"), "first", "r")
        await held.reached()
        for n in range(5):
            await sqlite_store.append(ref("a"), f"more {n}", "r")
        await sqlite_store.rename_conversation(ref("b"), "none such")  # changes nothing
        await sqlite_store.append(ref("b"), "b", "r")
        release.set()
        stale, fresh, other = await take(changes, 3)
        assert isinstance(stale, Conversation)
        assert isinstance(fresh, Conversation)
        assert (stale.id, stale.exchanges, fresh.id, fresh.exchanges) == ("a", 1, "a", 6)
        assert isinstance(other, Conversation)
        assert other.id == "b"
        assert await nothing_more(changes)
    assert held.reads == [ref("a"), ref("a"), ref("b")]


async def test_a_read_that_raced_a_deletion_is_followed_by_the_deletion(
    sqlite_store: SQLiteChatStore, held: HeldReads, lists: ListUpdates
) -> None:
    async with lists.follow("") as changes:
        await take(changes, 1)
        release = held.hold_next_read()
        await sqlite_store.create_conversation(ref("doomed"), "doomed")
        await held.reached()
        assert await sqlite_store.delete_conversation(ref("doomed"))
        release.set()
        stale, gone = await take(changes, 2)
        assert isinstance(stale, Conversation)
        assert stale.id == "doomed"
        assert gone == Deleted("doomed")
        assert await nothing_more(changes)


async def test_missed_changes_and_failed_reads_make_every_follower_reload(
    sqlite_store: SQLiteChatStore, held: HeldReads, lists: ListUpdates
) -> None:
    async with lists.follow("") as mine, lists.follow("key:bob") as bobs:
        assert await take(mine, 1) == await take(bobs, 1) == [RELOAD]
        lists.changed(None)  # a notification channel came back: anything may have changed
        assert await take(mine, 1) == await take(bobs, 1) == [RELOAD]
        held.failing = True
        await sqlite_store.create_conversation(ref("lost"), None)
        assert await take(mine, 1) == [RELOAD]
        assert await nothing_more(bobs)
        held.failing = False
        await sqlite_store.create_conversation(ref("found"), None)
        (found,) = await take(mine, 1)
        assert isinstance(found, Conversation)
        assert found.id == "found"


async def test_a_follower_that_falls_behind_is_dropped(
    sqlite_store: SQLiteChatStore, lists: ListUpdates
) -> None:
    async with lists.follow("") as changes, lists.follow("") as reader:
        await take(reader, 1)
        for n in range(QUEUE_SIZE + 20):  # the first follower reads nothing meanwhile
            await sqlite_store.create_conversation(ref(f"c{n}"), None)
            await take(reader, 1)  # the second keeps up
        received = [change async for change in changes]
    assert len(received) == QUEUE_SIZE, "what it held, then the end"
    assert received[0] == RELOAD
    assert [c.id for c in received[1:] if isinstance(c, Conversation)] == [
        f"c{n}" for n in range(QUEUE_SIZE - 1)
    ]


async def test_closing_ends_every_stream_and_refuses_new_ones(
    sqlite_store: SQLiteChatStore, lists: ListUpdates
) -> None:
    async with lists.follow("") as changes:
        await take(changes, 1)
        lists.close()
        assert [change async for change in changes] == []
    with pytest.raises(StoreError):
        async with lists.follow(""):
            pass


async def test_nothing_is_read_or_kept_for_an_owner_nobody_follows_any_more(
    sqlite_store: SQLiteChatStore, held: HeldReads, lists: ListUpdates
) -> None:
    """The last follower leaves while a read is under way and more changes wait: they are
    not read, and the hub keeps nothing of the owner (its memory is for owners followed)."""
    async with lists.follow("") as changes:
        await take(changes, 1)
        release = held.hold_next_read()
        await sqlite_store.create_conversation(ref("a"), None)
        await held.reached()
        await sqlite_store.create_conversation(ref("b"), None)
    assert lists.reads == 1
    # Named, as asyncio's own reports (a task destroyed pending, one never awaited) show it.
    assert "chat-list-refresh" in {task.get_name() for task in asyncio.all_tasks()}
    release.set()
    await eventually(lambda: lists.reads == 0)
    assert lists._owners == {}
    await sqlite_store.create_conversation(ref("c"), None)
    assert held.reads == [ref("a")]
