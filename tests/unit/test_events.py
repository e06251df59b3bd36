"""``GET /chat/events`` in process, on both stores: live exchanges, resuming without gaps
or repeats, errors before the stream, slow followers, and (PostgreSQL) other replicas."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from chat_service.api.keys import CHAT, METRICS
from chat_service.app import create_app
from chat_service.chat.domain import ConversationRef, Exchange, Position
from chat_service.chat.live import QUEUE_SIZE, LiveChange, LiveUpdates
from chat_service.config import Settings
from chat_service.store.sqlite import SQLiteChatStore
from tests.support.openapi import validate_response
from tests.support.refs import ref
from tests.support.sse import parse_events, read_events
from tests.support.store_observer import CountingObserver
from tests.unit.conftest import MakeClient

Client = TestClient[Any, Any]
READ_TIMEOUT_S = 10


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings.replace(rate_limit_rps=0)


async def post(client: Client, message: str, conversation: str = "room") -> None:
    response = await client.post(
        "/chat/message", json={"message": message, "conversation_id": conversation}
    )
    assert response.status == 200


async def follow(
    client: Client, query: str = "conversation_id=room", **headers: str
) -> ClientResponse:
    response = await client.get(f"/chat/events?{query}", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/event-stream"
    return response


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(READ_TIMEOUT_S * 100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not met in time")


async def wait_for_followers(client: Client, count: int) -> None:
    chat = client.app[CHAT]
    await eventually(lambda: chat.followers == count)


async def test_a_follower_gets_each_new_exchange_with_its_cursor(make_client: MakeClient) -> None:
    client = await make_client()
    await post(client, "before anyone followed")
    stream = await follow(client)
    await wait_for_followers(client, 1)
    await post(client, "one")
    await post(client, "elsewhere", conversation="other-room")
    await post(client, "two")
    one, two = await read_events(stream, 2)
    assert (one.event, one.data["user"], two.data["user"]) == ("exchange", "one", "two")
    assert set(one.data) == {"user", "AI", "id", "turn", "created_at", "model", "usage"}
    assert one.data["id"] == one.id
    assert (one.data["turn"], one.data["model"]) == (2, "dummy-1")
    assert one.data["AI"].startswith('You said: "one".')
    # The id is the exchange's cursor, its turn in the conversation (the other room's
    # exchange counts for nothing): a history page before it ends with "before anyone".
    assert (one.id, two.id) == ("t2", "t3")
    page = await client.get(f"/chat/history?conversation_id=room&limit=5&before={one.id}")
    assert [item["user"] for item in await page.json()] == ["before anyone followed"]
    stream.close()


async def test_resuming_after_an_id_misses_nothing_and_repeats_nothing(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    stream = await follow(client)
    await wait_for_followers(client, 1)
    await post(client, "m1")
    (first,) = await read_events(stream, 1)
    stream.close()
    await wait_for_followers(client, 0)
    for text in ("m2", "m3"):  # while nobody follows
        await post(client, text)
    resumed = await follow(client, **{"Last-Event-ID": first.id or ""})
    await post(client, "m4")
    received = await read_events(resumed, 3)
    assert [r.data["user"] for r in received] == ["m2", "m3", "m4"]
    assert len({r.id for r in received}) == 3
    resumed.close()


async def test_last_event_id_t0_in_the_query_starts_at_the_beginning(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    for text in ("a", "b"):
        await post(client, text)
    stream = await follow(client, "conversation_id=room&last_event_id=t0")
    assert [r.data["user"] for r in await read_events(stream, 2)] == ["a", "b"]
    stream.close()


async def test_a_long_catch_up_is_read_page_by_page_in_order(make_client: MakeClient) -> None:
    client = await make_client()
    for i in range(230):  # more than two pages of the catch-up's reads (100)
        await post(client, f"m{i}")
    stream = await follow(client, "conversation_id=room&last_event_id=t0")
    received = await read_events(stream, 230)
    assert [r.data["user"] for r in received] == [f"m{i}" for i in range(230)]
    stream.close()


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        ("conversation_id=-bad", {}, "'conversation_id' must be"),
        ("last_event_id=abc", {}, "last_event_id must be the id of an exchange's event"),
        ("last_event_id=-1", {}, "last_event_id must be"),
        ("", {"Last-Event-ID": "12x"}, "Last-Event-ID must be the id of an exchange's event"),
        ("", {"Last-Event-ID": "t-1"}, "Last-Event-ID must be"),
        ("last_event_id=t1234567890", {}, "last_event_id must be"),  # past any turn
        ("last_event_id=1234567890123456789", {}, "last_event_id must be"),
        # A header that would be followed is still refused when the query is garbage.
        ("last_event_id=t", {"Last-Event-ID": "t1"}, "last_event_id must be"),
    ],
)
async def test_bad_requests_are_json_errors_before_any_stream(
    make_client: MakeClient, query: str, headers: dict[str, str], message: str
) -> None:
    client = await make_client()
    response = await client.get(f"/chat/events?{query}", headers=headers)
    assert response.status == 400
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["status"] == "error"
    assert message in body["message"]
    validate_response("/chat/events", "GET", 400, body)


async def test_the_header_wins_over_the_query(make_client: MakeClient) -> None:
    client = await make_client()
    for text in ("a", "b", "c"):
        await post(client, text)
    first = await (await client.get("/chat/history?conversation_id=room")).json()
    assert [item["user"] for item in first] == ["a", "b", "c"]
    everything = await follow(client, "conversation_id=room&last_event_id=t0")
    ids = [r.id for r in await read_events(everything, 3)]
    everything.close()
    assert ids == ["t1", "t2", "t3"]
    stream = await follow(
        client, "conversation_id=room&last_event_id=t0", **{"Last-Event-ID": ids[1] or ""}
    )
    assert [r.data["user"] for r in await read_events(stream, 1)] == ["c"]
    stream.close()


@pytest.mark.parametrize(
    ("query", "headers", "named"),
    [
        ("conversation_id=room", {"Last-Event-ID": "41"}, "Last-Event-ID"),
        ("conversation_id=room&last_event_id=0", {}, "last_event_id"),
        ("conversation_id=room&last_event_id=t1", {"Last-Event-ID": "7"}, "Last-Event-ID"),
    ],
)
async def test_a_cursor_of_an_earlier_version_restarts_the_stream_from_now(
    make_client: MakeClient, query: str, headers: dict[str, str], named: str
) -> None:
    """Earlier versions' ids were bare numbers: a page loaded before an update reconnects
    with one, again and again, so it is not refused (a 400 would be retried for as long as
    the page stays open). The stream starts from now, with a ``restart`` event that says so
    and whose id is the new cursor of where it starts."""
    client = await make_client()
    for text in ("a", "b"):
        await post(client, text)
    stream = await follow(client, query, **headers)
    await post(client, "c")
    restart, new = await read_events(stream, 2)
    stream.close()
    assert (restart.event, restart.id) == ("restart", "t2")
    assert restart.data["message"].startswith(f"{named} is a cursor from an earlier version")
    assert "load the history again" in restart.data["message"]
    assert (new.event, new.id, new.data["user"]) == ("exchange", "t3", "c")


async def test_the_restart_id_resumes_exactly_where_the_stream_started(
    make_client: MakeClient,
) -> None:
    """An EventSource takes the restart event's id as its last: when it reconnects (with
    the earlier version's number still in its URL), it misses nothing committed between."""
    client = await make_client()
    await post(client, "a")
    stream = await follow(client, "conversation_id=room&last_event_id=12")
    (restart,) = await read_events(stream, 1)
    stream.close()
    await wait_for_followers(client, 0)
    await post(client, "while away")
    again = await follow(
        client, "conversation_id=room&last_event_id=12", **{"Last-Event-ID": restart.id or ""}
    )
    (resumed,) = await read_events(again, 1)
    again.close()
    assert (resumed.event, resumed.id, resumed.data["user"]) == ("exchange", "t2", "while away")


async def test_open_streams_are_on_metrics(make_client: MakeClient) -> None:
    client = await make_client()
    gauge = client.app[METRICS].event_subscriptions
    streams = [await follow(client) for _ in range(3)]
    await wait_for_followers(client, 3)
    assert gauge._value.get() == 3
    streams[0].close()
    await wait_for_followers(client, 2)
    await eventually(lambda: gauge._value.get() == 2)
    for stream in streams[1:]:
        stream.close()


async def test_stopping_the_service_ends_every_stream(make_client: MakeClient) -> None:
    client = await make_client()
    stream = await follow(client)
    await wait_for_followers(client, 1)
    client.app[CHAT].stop_following()
    async with asyncio.timeout(READ_TIMEOUT_S):
        rest = await stream.content.read()
    assert b"event:" not in rest, "it ended without sending anything"
    refused = await client.get("/chat/events?conversation_id=room")
    assert refused.status == 500


async def test_a_follower_that_falls_behind_is_dropped_without_holding_up_commits(
    tmp_path: Path,
) -> None:
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    try:
        live = LiveUpdates(store, store)
        async with live.follow(ref("room")) as exchanges:
            for i in range(QUEUE_SIZE + 20):  # nobody reads meanwhile
                await store.append(ref("room"), f"m{i}", "r")
            await asyncio.sleep(0.2)  # the hub's reads of the new exchanges
            received = [user_of(exchange) async for exchange in exchanges]
        assert received == [f"m{i}" for i in range(QUEUE_SIZE)], "what it held, then the end"
    finally:
        await store.close()


async def test_another_replicas_commits_arrive(aiohttp_client: Any, postgres_url: str) -> None:
    """Two apps on one PostgreSQL database: two replicas, whose only link is the database."""
    settings = Settings(database_url=postgres_url, rate_limit_rps=0)
    mine: Client = await aiohttp_client(create_app(settings))
    theirs: Client = await aiohttp_client(create_app(settings))
    stream = await follow(mine)
    await wait_for_followers(mine, 1)
    await post(theirs, "from the other replica")
    await post(mine, "from this one")
    received = await read_events(stream, 2)
    assert [r.data["user"] for r in received] == ["from the other replica", "from this one"]
    stream.close()


async def test_the_done_event_of_a_streamed_reply_carries_the_exchange_id(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    stream = await follow(client)
    await wait_for_followers(client, 1)
    reply = await client.post(
        "/chat/message",
        json={"message": "hi", "conversation_id": "room"},
        headers={"Accept": "text/event-stream"},
    )
    (done,) = [r for r in parse_events(await reply.text()) if r.event == "done"]
    (live,) = await read_events(stream, 1)
    assert done.id == live.id
    assert done.data == {"status": "Success", "response": live.data["AI"]}
    stream.close()


def user_of(change: LiveChange) -> str:
    """An exchange's message, or a cut as ``cut at <turn>``."""
    return change.user if isinstance(change, Exchange) else f"cut at {change.turn}"


async def take(exchanges: AsyncIterator[LiveChange], count: int) -> list[str]:
    """The messages of the next ``count`` changes."""
    taken = []
    async with asyncio.timeout(READ_TIMEOUT_S):
        async for exchange in exchanges:
            taken.append(user_of(exchange))
            if len(taken) == count:
                break
    return taken


async def nothing_more(exchanges: AsyncIterator[LiveChange]) -> bool:
    """True when no further exchange comes within a moment (the wait ends the iterator)."""
    try:
        await asyncio.wait_for(anext(exchanges), 0.3)
    except TimeoutError:
        return True
    return False


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteChatStore]:
    store = await SQLiteChatStore.open(tmp_path / "chat.db", observer=CountingObserver())
    yield store
    await store.close()


async def test_commits_in_quick_succession_all_arrive_in_order(
    sqlite_store: SQLiteChatStore,
) -> None:
    live = LiveUpdates(sqlite_store, sqlite_store)
    async with live.follow(ref("c")) as exchanges:
        # Order under rapid commits (whether a change lands mid-read is left to timing here:
        # test_a_commit_during_a_refresh_is_read_by_that_refresh makes it happen).
        for i in range(30):
            await sqlite_store.append(ref("c"), f"m{i}", "r")
        assert await take(exchanges, 30) == [f"m{i}" for i in range(30)]
        assert await nothing_more(exchanges)


async def test_more_than_a_page_in_one_commit_all_arrive(sqlite_store: SQLiteChatStore) -> None:
    live = LiveUpdates(sqlite_store, sqlite_store)
    async with live.follow(ref("c")) as exchanges:
        await asyncio.gather(*(sqlite_store.append(ref("c"), f"m{i}", "r") for i in range(150)))
        assert sqlite_store.stats.commits == 1, "one commit, so one change to hear of"
        assert await take(exchanges, 150) == [f"m{i}" for i in range(150)]


async def test_an_exchange_both_caught_up_and_live_is_sent_once(
    sqlite_store: SQLiteChatStore,
) -> None:
    await sqlite_store.append(ref("c"), "old", "r")
    live = LiveUpdates(sqlite_store, sqlite_store)
    async with live.follow(ref("c"), Position(0)) as exchanges:
        await sqlite_store.append(ref("c"), "new", "r")  # published to the follower's queue ...
        await asyncio.sleep(0.1)
        # ... and read again by its catch-up, which starts only now.
        assert await take(exchanges, 2) == ["old", "new"]
        assert await nothing_more(exchanges)


async def test_a_cut_is_sent_before_what_replaces_it_and_read_once(
    sqlite_store: SQLiteChatStore,
) -> None:
    """Followers hear of a cut, then of what replaces it; after it, the hub reads only what
    is new, knowing the generation it published (not again from the cut each time)."""
    recorded = HeldReads(sqlite_store)
    live = LiveUpdates(recorded, sqlite_store)
    for n in range(1, 4):
        await sqlite_store.append(ref("c"), f"m{n}", "r")
    async with live.follow(ref("c")) as changes:
        await sqlite_store.append(ref("c"), "m2 edited", "r", replaces_turn=2)
        assert await take(changes, 2) == ["cut at 2", "m2 edited"]
        await sqlite_store.append(ref("c"), "m3 again", "r")
        assert await take(changes, 1) == ["m3 again"]
        assert recorded.returned[-1] == [3], "only the new exchange was read"
        assert await nothing_more(changes)


async def test_a_follower_resuming_at_the_generation_it_knows_is_sent_no_cut(
    sqlite_store: SQLiteChatStore,
) -> None:
    recorded = HeldReads(sqlite_store)
    live = LiveUpdates(recorded, sqlite_store)
    for n in range(1, 4):
        await sqlite_store.append(ref("c"), f"m{n}", "r")
    await sqlite_store.append(ref("c"), "m2 edited", "r", replaces_turn=2)
    await sqlite_store.append(ref("c"), "m3 again", "r")
    async with live.follow(ref("c"), Position(2, 1)) as changes:
        assert await take(changes, 1) == ["m3 again"]
        assert recorded.returned[0] == [3], "read from its turn, not from the cut"
    async with live.follow(ref("c"), Position(3, 0)) as changes:
        assert await take(changes, 3) == ["cut at 2", "m2 edited", "m3 again"]


async def test_resuming_past_the_conversations_end_starts_it_over(
    sqlite_store: SQLiteChatStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A turn the conversation has not reached is from before it was deleted (turns start
    again at 1): everything in it now is new to that follower. (Deleted while nobody here
    followed it: live updates hear of it and have nothing to retire, quietly.)"""
    live = LiveUpdates(sqlite_store, sqlite_store)
    for text in ("old 1", "old 2", "old 3"):
        await sqlite_store.append(ref("c"), text, "r")
    with caplog.at_level(logging.ERROR):
        assert await sqlite_store.delete_conversation(ref("c"))
    assert caplog.records == [], "no listener failed"
    await sqlite_store.append(ref("c"), "new 1", "r")
    async with live.follow(ref("c"), Position(3)) as exchanges:
        await sqlite_store.append(ref("c"), "new 2", "r")
        assert await take(exchanges, 2) == ["new 1", "new 2"]
        assert await nothing_more(exchanges)


async def test_a_deletion_retires_the_conversations_topic(sqlite_store: SQLiteChatStore) -> None:
    """Followers of a deleted conversation end; one that comes after follows it afresh,
    from turn 0, even while an ended one has not left yet (its last published turn would
    hide the new conversation's first turns)."""
    live = LiveUpdates(sqlite_store, sqlite_store)
    async with live.follow(ref("c")) as before:
        for text in ("old 1", "old 2"):
            await sqlite_store.append(ref("c"), text, "r")
        assert await take(before, 2) == ["old 1", "old 2"]
        assert await sqlite_store.delete_conversation(ref("c"))
        async with live.follow(ref("c")) as after:
            for text in ("new 1", "new 2", "new 3"):
                await sqlite_store.append(ref("c"), text, "r")
            assert await take(after, 3) == ["new 1", "new 2", "new 3"]
        assert [user_of(exchange) async for exchange in before] == [], "it ended"


class SlowToPlace:
    """The store as the hub sees it, except that reading where a conversation stands waits
    until ``release`` is set (``reading`` is set when one has started)."""

    def __init__(self, store: SQLiteChatStore) -> None:
        self.store = store
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def position(self, conversation: ConversationRef) -> Position:
        self.reading.set()
        await self.release.wait()
        return await self.store.position(conversation)

    async def exchanges_after(
        self, conversation: ConversationRef, after_turn: int, *, limit: int, generation: int = 0
    ) -> Sequence[Exchange]:
        return await self.store.exchanges_after(
            conversation, after_turn, limit=limit, generation=generation
        )


async def test_a_follower_joining_as_its_conversation_is_deleted_is_ended(
    sqlite_store: SQLiteChatStore,
) -> None:
    """It joined the retired topic, which hears of nothing any more: its stream ends at
    once, as its peers' did, and the client follows the conversation afresh."""
    slow = SlowToPlace(sqlite_store)
    live = LiveUpdates(slow, sqlite_store)
    await sqlite_store.append(ref("c"), "old", "r")

    async def join() -> list[str]:
        async with live.follow(ref("c")) as exchanges:
            return [user_of(exchange) async for exchange in exchanges]

    joining = asyncio.create_task(join())
    await asyncio.wait_for(slow.reading.wait(), READ_TIMEOUT_S)
    assert await sqlite_store.delete_conversation(ref("c"))
    slow.release.set()
    assert await asyncio.wait_for(joining, READ_TIMEOUT_S) == []
    assert live.followers == 0


class HeldReads:
    """The store as the hub sees it, recording what each read of new exchanges got, except
    that such a read can be held after it read them and before the hub gets them: the moment
    when a commit that lands is one that read did not see."""

    def __init__(self, store: SQLiteChatStore) -> None:
        self.store = store
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()
        self.reads = 0  # of new exchanges
        self.returned: list[list[int]] = []  # the turns each of those reads got

    def add_change_listener(self, listener: Callable[[ConversationRef | None], None]) -> None:
        self.store.add_change_listener(listener)

    def add_removal_listener(self, listener: Callable[[ConversationRef], None]) -> None:
        self.store.add_removal_listener(listener)

    def add_catalogue_listener(self, listener: Callable[[ConversationRef], None]) -> None:
        self.store.add_catalogue_listener(listener)

    async def position(self, conversation: ConversationRef) -> Position:
        return await self.store.position(conversation)

    def hold_next_read(self) -> asyncio.Event:
        """Hold the next read once it has read (``reached`` returns then); set the event
        returned to let it go on."""
        self.hold = release = asyncio.Event()
        self.holding.clear()
        return release

    async def reached(self) -> None:
        await asyncio.wait_for(self.holding.wait(), READ_TIMEOUT_S)

    async def exchanges_after(
        self, conversation: ConversationRef, after_turn: int, *, limit: int, generation: int = 0
    ) -> Sequence[Exchange]:
        self.reads += 1
        read = await self.store.exchanges_after(
            conversation, after_turn, limit=limit, generation=generation
        )
        self.returned.append([exchange.turn for exchange in read])
        if self.hold is not None:
            hold, self.hold = self.hold, None  # one read held, the next ones not
            self.holding.set()
            await hold.wait()
        return read


@pytest.fixture
def held(sqlite_store: SQLiteChatStore) -> HeldReads:
    return HeldReads(sqlite_store)


@pytest.fixture
def held_live(held: HeldReads) -> LiveUpdates:
    """Live updates that read through ``held``."""
    return LiveUpdates(held, held)


async def test_a_commit_during_a_refresh_is_read_by_that_refresh(
    sqlite_store: SQLiteChatStore, held: HeldReads, held_live: LiveUpdates
) -> None:
    """The refresh read "first" and is about to publish it when "second" commits: the
    change it hears of then makes it read once more, so "second" arrives without waiting
    for a third commit."""
    async with held_live.follow(ref("c")) as exchanges:
        release = held.hold_next_read()
        await sqlite_store.append(ref("c"), "first", "r")
        await held.reached()
        await sqlite_store.append(ref("c"), "second", "r")  # its change lands mid-refresh
        release.set()
        assert await take(exchanges, 2) == ["first", "second"]
        assert await nothing_more(exchanges)


async def test_a_burst_of_commits_during_a_refresh_costs_one_more_read(
    sqlite_store: SQLiteChatStore, held: HeldReads, held_live: LiveUpdates
) -> None:
    """Five commits land while a refresh is held: they are read together, by that refresh's
    one more read, not by five refreshes of their own; and a refresh that ended is not kept."""
    live = held_live
    async with live.follow(ref("c")) as exchanges:
        release = held.hold_next_read()
        await sqlite_store.append(ref("c"), "first", "r")
        await held.reached()
        assert live.refreshes == 1
        # Under its own name, so a stuck or failed refresh is recognisable in asyncio's
        # reports (task dumps, "exception was never retrieved").
        assert [t for t in asyncio.all_tasks() if t.get_name() == "chat-live-refresh"] != []
        for i in range(5):
            await sqlite_store.append(ref("c"), f"burst {i}", "r")
        release.set()
        assert await take(exchanges, 6) == ["first"] + [f"burst {i}" for i in range(5)]
        assert held.reads == 2
        await eventually(lambda: live.refreshes == 0)
        assert await nothing_more(exchanges)
    assert held.reads == 2


async def test_a_lost_channel_catches_up_every_followed_conversation(
    sqlite_store: SQLiteChatStore, held: HeldReads, held_live: LiveUpdates
) -> None:
    """``changed(None)``: notifications may have been missed (PostgreSQL's listening
    connection came back); every followed conversation is read again, the one being
    refreshed at that moment included (once its refresh ends), and those after it too."""
    live = held_live
    other = await SQLiteChatStore.open(sqlite_store.path)  # commits this store never hears of
    try:
        async with (
            live.follow(ref("a")) as in_a,
            live.follow(ref("b")) as in_b,
            live.follow(ref("c")) as in_c,
        ):
            release = held.hold_next_read()
            await sqlite_store.append(ref("a"), "heard in a", "r")  # "a" is being refreshed...
            await held.reached()
            for name in "abc":  # ...when commits are made that nobody hears of
                await other.append(ref(name), f"missed in {name}", "r")
            live.changed(None)
            assert await take(in_b, 1) == ["missed in b"]
            assert await take(in_c, 1) == ["missed in c"]
            release.set()
            assert await take(in_a, 2) == ["heard in a", "missed in a"]
            for exchanges in (in_a, in_b, in_c):
                assert await nothing_more(exchanges)
    finally:
        await other.close()


async def test_a_deletion_missed_while_the_channel_was_lost_ends_its_streams(
    sqlite_store: SQLiteChatStore,
) -> None:
    """A conversation deleted while PostgreSQL's listening connection was away: its removal
    was never heard, so the catch-up that follows the reconnection (``changed(None)``) finds
    it short of the turn its followers were sent, and ends them as a removal would. The
    other followed conversations go on."""
    live = LiveUpdates(sqlite_store, sqlite_store)
    other = await SQLiteChatStore.open(sqlite_store.path)  # changes this store never hears of
    try:
        async with live.follow(ref("gone")) as in_gone, live.follow(ref("kept")) as in_kept:
            for name in ("gone", "kept"):
                await sqlite_store.append(ref(name), f"in {name}", "r")
            assert await take(in_gone, 1) == ["in gone"]
            assert await take(in_kept, 1) == ["in kept"]
            counting = sqlite_store._observer
            assert isinstance(counting, CountingObserver)
            reads = counting.reads
            await sqlite_store.append(ref("kept"), "heard", "r")
            assert await take(in_kept, 1) == ["heard"]
            per_refresh = counting.reads - reads
            assert await other.delete_conversation(ref("gone"))
            live.changed(None)
            async with asyncio.timeout(READ_TIMEOUT_S):
                assert [user_of(change) async for change in in_gone] == [], "it ended"
            await eventually(lambda: live.refreshes == 0)  # the catch-up of "kept" too
            reads = counting.reads
            await sqlite_store.append(ref("kept"), "still heard", "r")
            assert await take(in_kept, 1) == ["still heard"]
            assert counting.reads - reads == per_refresh, "checked once, not at every refresh"
        async with live.follow(ref("gone")) as afresh:
            await sqlite_store.append(ref("gone"), "new 1", "r")
            assert await take(afresh, 1) == ["new 1"], "its topic was retired: from turn 0"
    finally:
        await other.close()


async def test_a_conversation_nobody_follows_any_more_costs_nothing(
    sqlite_store: SQLiteChatStore,
) -> None:
    live = LiveUpdates(sqlite_store, sqlite_store)
    async with live.follow(ref("c")) as exchanges:
        await sqlite_store.append(ref("c"), "seen", "r")
        assert await take(exchanges, 1) == ["seen"]
    assert live.followers == 0
    counting = sqlite_store._observer
    assert isinstance(counting, CountingObserver)
    reads = counting.reads
    await sqlite_store.append(ref("c"), "unseen", "r")
    live.changed(None)
    await asyncio.sleep(0.1)
    assert counting.reads == reads, "no follower: nothing is read for it"
