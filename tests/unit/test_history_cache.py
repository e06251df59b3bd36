"""The API's history cache: served from memory only while the store's version stands.

The store is the real SQLite store; "another replica" is a second store on the same file,
whose commits the first never sees, with the versions read from the database as a shared
database (PostgreSQL) would give them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from chat_service.api.chat import next_page_link
from chat_service.api.validation import HistoryQuery
from chat_service.chat.domain import ConversationRef, Exchange, HistoryPage
from chat_service.chat.history import HistoryCache, RenderedPage, render
from chat_service.store.keys import storage_key
from chat_service.store.sqlite import SQLiteChatStore
from tests.support.refs import ref
from tests.support.store_observer import CountingObserver


class SharedFile(SQLiteChatStore):
    """A store whose versions come from the database every time: what a store shared with
    other writers does, so that their commits are seen."""

    async def version(self, conversation: ConversationRef) -> int:
        with sqlite3.connect(self.path) as conn:
            row = conn.execute(
                "SELECT max(id) FROM exchanges WHERE conversation_id = ?",
                (storage_key(conversation),),
            ).fetchone()
        return int(row[0] or 0)


@pytest.fixture
def observer() -> CountingObserver:
    return CountingObserver()


@pytest.fixture
async def store(tmp_path: Path, observer: CountingObserver) -> AsyncIterator[SQLiteChatStore]:
    opened = await SQLiteChatStore.open(tmp_path / "chat.db", observer=observer)
    yield opened
    await opened.close()


async def reads_of(observer: CountingObserver, call: Callable[[], Awaitable[Any]]) -> int:
    before = observer.reads
    await call()
    return observer.reads - before


def query(
    conversation: str = "c", limit: int | None = 10, before_turn: int | None = None
) -> HistoryQuery:
    return HistoryQuery(conversation, limit, before_turn)


async def page_of(cache: HistoryCache, query: HistoryQuery) -> RenderedPage:
    """The page as the handler asks for it, of the anonymous caller's conversation."""
    return await cache.page(
        ref(query.conversation_id), limit=query.limit, before_turn=query.before_turn
    )


# What a history item holds besides its two texts, for turns 1 to 9 of a reply with no
# model or usage recorded: its JSON is this many bytes longer than the texts alone.
ITEM_EXTRA = len(
    ',"turn":1,"created_at":"2026-01-01T00:00:00.000Z","model":null,"usage":null,"id":"t1"'
)


def users(body: bytes) -> list[str]:
    return [item["user"] for item in json.loads(body)]


def exchange(turn: int, conversation: str = "default") -> Exchange:
    """The exchange at ``turn``, whose global id (other conversations' exchanges came
    between) is another number altogether."""
    return Exchange(
        id=1000 + 3 * turn,
        conversation=ref(conversation),
        turn=turn,
        user=f"u{turn}",
        ai=f"a{turn}",
        created_at="t",
    )


def test_body_and_cursor_follow_the_contract() -> None:
    page = HistoryPage((exchange(7), exchange(8)), has_older=True)
    rendered = render(page)
    assert rendered.body == (
        b'[{"user":"u7","AI":"a7","turn":7,"created_at":"t","model":null,"usage":null,'
        b'"id":"t7"},'
        b'{"user":"u8","AI":"a8","turn":8,"created_at":"t","model":null,"usage":null,'
        b'"id":"t8"}]'
    )
    assert rendered.next_before_turn == 7, "the next older page ends before this one's first"
    last = HistoryPage((exchange(1), exchange(2)), has_older=False)
    assert render(last).next_before_turn is None
    assert render(HistoryPage((), has_older=True)).next_before_turn is None


def test_the_link_to_the_next_older_page() -> None:
    assert next_page_link(HistoryQuery("default", 2, None), 7) == (
        '</chat/history?limit=2&before=t7>; rel="next"'
    )
    assert next_page_link(HistoryQuery("room-1", 2, None), 7) == (
        '</chat/history?limit=2&before=t7&conversation_id=room-1>; rel="next"'
    )
    assert next_page_link(HistoryQuery("default", 2, None), None) is None
    assert next_page_link(HistoryQuery("default", None, None), 7) is None, "no limit, no pages"


async def test_the_newest_page_is_read_once_then_served_from_memory(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store)
    for i in range(3):
        await store.append(ref("c"), f"m{i}", "r")
    first = await page_of(cache, query(limit=2))
    assert users(first.body) == ["m1", "m2"]
    assert first.next_before_turn is not None
    assert await reads_of(observer, lambda: page_of(cache, query(limit=2))) == 0
    assert await page_of(cache, query(limit=2)) is first, "rendered once"
    assert await reads_of(observer, lambda: page_of(cache, query(limit=3))) == 0, "cut from memory"
    assert await reads_of(observer, lambda: cache.newest(ref("c"), 2)) == 0


async def test_commits_of_this_process_extend_the_conversation_in_place(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store, depth=3)
    for i in range(3):
        await store.append(ref("c"), f"m{i}", "r")
    await cache.newest(ref("c"), 3)
    old_page = await page_of(cache, query(limit=3))
    assert old_page.next_before_turn is None, "all three are held: nothing older"
    for i in range(3, 5):
        await store.append(ref("c"), f"m{i}", "r")
    reads = observer.reads
    assert [e.user for e in await cache.newest(ref("c"), 3)] == ["m2", "m3", "m4"]
    page = await page_of(cache, query(limit=3))
    assert users(page.body) == ["m2", "m3", "m4"]
    assert page.next_before_turn is not None, "m0 and m1 rolled out: there is an older page"
    assert observer.reads == reads, "no read: the commits were applied to what was held"


async def test_a_commit_by_another_writer_is_seen_at_once(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    mine = await SharedFile.open(path)
    other = await SQLiteChatStore.open(path)
    try:
        cache = HistoryCache(mine, mine)
        await mine.append(ref("c"), "mine", "r")
        before = await page_of(cache, query())
        assert users(before.body) == ["mine"]
        await other.append(ref("c"), "theirs", "r")  # this process never hears of it
        assert users((await page_of(cache, query())).body) == ["mine", "theirs"]
        assert [e.user for e in await cache.newest(ref("c"), 5)] == ["mine", "theirs"]
        assert json.loads((await page_of(cache, query(limit=None))).body)[-1]["user"] == "theirs"
        # Its next commit does not continue what was held before: read again, not patched.
        await other.append(ref("c"), "theirs again", "r")
        await mine.append(ref("c"), "mine again", "r")
        assert [e.user for e in await cache.newest(ref("c"), 5)] == [
            "mine",
            "theirs",
            "theirs again",
            "mine again",
        ]
    finally:
        await other.close()
        await mine.close()


async def test_a_commit_that_skips_a_turn_drops_what_was_held(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store)
    await store.append(ref("c"), "one", "r")
    await cache.newest(ref("c"), 5)
    # Turn 3 after turn 1: turn 2 was committed elsewhere; what is held cannot be extended.
    skipped = Exchange(id=99, conversation=ref("c"), turn=3, user="x", ai="y", created_at="t")
    cache.committed([skipped])
    assert await reads_of(observer, lambda: cache.newest(ref("c"), 5)) == 1


async def test_pages_match_the_database_under_concurrent_writes(tmp_path: Path) -> None:
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    fresh = None
    try:
        cache = HistoryCache(store, store, depth=30)

        async def writer(n: int) -> None:
            for i in range(20):
                await store.append(ref(f"conv{n % 3}"), f"w{n}-{i}", "r")

        async def reader(n: int) -> None:
            for i in range(20):
                await page_of(cache, query(f"conv{n % 3}", limit=10))
                await cache.newest(ref(f"conv{n % 3}"), 1 + i)

        await asyncio.gather(*(writer(n) for n in range(6)), *(reader(n) for n in range(6)))
        fresh = await SQLiteChatStore.open(tmp_path / "chat.db")
        for conversation in ("conv0", "conv1", "conv2"):
            for limit in (1, 10, 30, 40):
                direct = await fresh.history(ref(conversation), limit=limit)
                cached = await page_of(cache, query(conversation, limit=limit))
                expected = render(direct)
                assert (cached.body, cached.next_before_turn) == (
                    expected.body,
                    expected.next_before_turn,
                )
            newest = await cache.newest(ref(conversation), 25)
            assert [e.id for e in newest] == [
                e.id for e in (await fresh.history(ref(conversation), limit=25)).exchanges
            ]
    finally:
        await store.close()
        if fresh is not None:
            await fresh.close()


@pytest.mark.parametrize(
    ("rows", "limit", "returned", "older"),
    [
        (150, 100, 100, True),  # more rows than held in memory (depth 100)
        (100, 100, 100, False),  # exactly the limit: no older page
        (101, 100, 100, True),
        (100, 99, 99, True),
        (5, 50, 5, False),
        (150, 101, 101, True),  # deeper than memory: read from the database
    ],
)
async def test_a_cold_conversation_pages_right_at_every_boundary(
    tmp_path: Path, rows: int, limit: int, returned: int, older: bool
) -> None:
    path = tmp_path / "chat.db"
    seeding = await SQLiteChatStore.open(path)
    await asyncio.gather(*(seeding.append(ref("c"), f"u{i}", f"a{i}") for i in range(rows)))
    await seeding.close()
    store = await SQLiteChatStore.open(path)  # knows nothing of the conversation yet
    try:
        cache = HistoryCache(store, store)
        for attempt in ("cold", "warm"):
            page = await page_of(cache, query(limit=limit))
            assert users(page.body) == [f"u{i}" for i in range(rows - returned, rows)], attempt
            assert (page.next_before_turn is not None) is older, attempt
    finally:
        await store.close()


async def test_older_pages_are_read_every_time(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store)
    turns = [(await store.append(ref("c"), f"m{i}", "r")).turn for i in range(4)]
    older = query(limit=2, before_turn=turns[2])
    page = await page_of(cache, older)
    assert users(page.body) == ["m0", "m1"]
    assert page.next_before_turn is None
    assert await reads_of(observer, lambda: page_of(cache, older)) == 1
    whole_older = await page_of(cache, query(limit=None, before_turn=turns[2]))
    assert users(whole_older.body) == ["m0", "m1"]


async def test_the_whole_history_is_built_once_and_kept_until_the_next_commit(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store)
    texts = [f'line {i} "quoted" \\ é 😀' for i in range(50)]
    for text in texts:
        await store.append(ref("c"), text, text[::-1])
    reads = observer.reads
    concurrent = await asyncio.gather(*(page_of(cache, query(limit=None)) for _ in range(10)))
    # Two reads however many ask: the newest exchanges, and the whole document.
    assert observer.reads == reads + 2
    assert all(page.body is concurrent[0].body for page in concurrent), "one shared build"
    document = json.loads(concurrent[0].body)
    assert [(item["user"], item["AI"]) for item in document] == [(t, t[::-1]) for t in texts]
    assert [item["turn"] for item in document] == list(range(1, 51))
    assert await reads_of(observer, lambda: page_of(cache, query(limit=None))) == 0
    await store.append(ref("c"), "newer", "r")
    after = await page_of(cache, query(limit=None))
    assert users(after.body)[-1] == "newer"


async def test_a_document_too_large_to_keep_is_still_served(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    # Kept documents are at most a quarter of the bound; this one is larger.
    cache = HistoryCache(store, store, max_bytes=400)
    await store.append(ref("c"), "x" * 60, "y" * 60)
    assert users((await page_of(cache, query(limit=None))).body) == ["x" * 60]
    assert await reads_of(observer, lambda: page_of(cache, query(limit=None))) == 1


async def test_an_empty_conversation_costs_no_history_read(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store)
    await store.append(ref("elsewhere"), "u", "a")
    assert await reads_of(observer, lambda: cache.newest(ref("new"), 5)) == 1, "its version only"
    assert await reads_of(observer, lambda: cache.newest(ref("new"), 5)) == 0, "then held"
    assert await cache.newest(ref("new"), 5) == ()
    assert (await page_of(cache, query("new"))).body == b"[]"
    await store.append(ref("new"), "first", "r")
    assert await reads_of(observer, lambda: cache.newest(ref("new"), 5)) == 0, (
        "the commit extended it"
    )
    assert [e.user for e in await cache.newest(ref("new"), 5)] == ["first"]


class ToldByHand:
    """The store as the cache sees it, except that its commits are not passed on by
    themselves: the test hands the cache each batch (``committed``), as the group commit
    would, in the order it chooses."""

    def __init__(self, store: SQLiteChatStore) -> None:
        self.store = store

    def add_commit_listener(self, listener: Callable[[Sequence[Exchange]], None]) -> None:
        pass

    async def version(self, conversation: ConversationRef) -> int:
        return await self.store.version(conversation)

    async def history(self, conversation: ConversationRef, **kwargs: Any) -> HistoryPage:
        return await self.store.history(conversation, **kwargs)


async def test_each_exchange_of_a_batch_extends_its_own_conversation(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    """One batch of commits holds exchanges of several conversations. One the entry already
    holds is skipped, one that does not continue its entry drops it, and neither stops the
    exchanges after them from extending theirs."""
    cache = HistoryCache(ToldByHand(store), store)  # type: ignore[arg-type]
    for name in ("a", "b", "c"):
        assert await cache.newest(ref(name), 5) == ()
    a1 = await store.append(ref("a"), "a1", "r")
    cache.committed([a1])
    b1 = await store.append(ref("b"), "b1", "r")
    cache.committed([a1, b1])  # a1 again: a read after the commit could have had it already
    assert await reads_of(observer, lambda: cache.newest(ref("b"), 5)) == 0
    assert [e.user for e in await cache.newest(ref("b"), 5)] == ["b1"]
    await store.append(ref("a"), "a2", "r")  # never told: the cache's "a" misses a turn
    a3 = await store.append(ref("a"), "a3", "r")
    c1 = await store.append(ref("c"), "c1", "r")
    cache.committed([a3, c1])
    assert await reads_of(observer, lambda: cache.newest(ref("c"), 5)) == 0
    assert [e.user for e in await cache.newest(ref("c"), 5)] == ["c1"]
    assert [e.user for e in await cache.newest(ref("a"), 5)] == ["a1", "a2", "a3"], "read again"


async def test_context_beyond_the_depth_is_read_from_the_database(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store, depth=2)
    for i in range(4):
        await store.append(ref("c"), f"m{i}", "r")
    assert await cache.newest(ref("c"), 0) == ()
    assert [e.user for e in await cache.newest(ref("c"), 2)] == ["m2", "m3"]
    assert await reads_of(observer, lambda: cache.newest(ref("c"), 3)) == 1
    assert [e.user for e in await cache.newest(ref("c"), 3)] == ["m1", "m2", "m3"]


def text_of(chars: int) -> str:
    return "x" * (chars // 2)  # user and AI text each: chars in all


async def fill(store: SQLiteChatStore, conversation: str, *sizes: int) -> None:
    for size in sizes:
        await store.append(ref(conversation), text_of(size), text_of(size))


async def held(cache: HistoryCache, observer: CountingObserver, *names: str) -> list[str]:
    """Which of ``names`` are served without a read (asking refreshes them, in order)."""
    found = []
    for name in names:
        before = observer.reads
        await cache.newest(ref(name), 1)
        if observer.reads == before:
            found.append(name)
    return found


async def test_the_text_held_is_bounded_and_the_bound_is_inclusive(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store, max_bytes=100)
    await fill(store, "a", 60)
    await fill(store, "b", 40)
    await cache.newest(ref("a"), 1)
    await cache.newest(ref("b"), 1)
    assert await held(cache, observer, "a", "b") == ["a", "b"], "exactly at the bound"
    await fill(store, "b", 2)  # 102: one over; a, least recently used, goes
    assert await held(cache, observer, "b") == ["b"]
    assert await held(cache, observer, "a") == []


async def test_a_dropped_conversation_stops_counting(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    """A deleted conversation's entry leaves the bound's count with it: what is held after
    it is counted from what is left."""
    cache = HistoryCache(store, store, max_bytes=1000)
    await fill(store, "a", 500)
    await fill(store, "b", 100)
    assert await held(cache, observer, "b", "a") == [], "read once; a the most recently used"
    assert await store.delete_conversation(ref("a"))  # 100 held
    await fill(store, "c", 600)
    assert await held(cache, observer, "c") == [], "read once: 700 held"
    assert await held(cache, observer, "b", "c") == ["b", "c"], "within the bound: both kept"


async def test_a_conversation_larger_than_the_bound_alone_is_kept(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store, max_bytes=100)
    await fill(store, "huge", 300)
    await cache.newest(ref("huge"), 1)
    assert await held(cache, observer, "huge") == ["huge"]


async def test_rolled_out_and_evicted_text_stops_counting(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store, depth=2, max_conversations=2, max_bytes=100)
    await fill(store, "a", 30)
    await fill(store, "b", 10)
    await cache.newest(ref("a"), 1)
    await cache.newest(ref("b"), 1)
    await fill(store, "b", 40)  # b: 10 + 40; 80 in all
    await fill(store, "b", 20)  # b rolls out its 10: 40 + 20; 90
    await fill(store, "b", 30)  # 20 + 30; 80
    assert await held(cache, observer, "a", "b") == ["a", "b"]
    await fill(store, "b", 60)  # 30 + 60; 120: a goes
    assert await held(cache, observer, "b", "a") == ["b"]
    await cache.newest(ref("b"), 1)  # (a is held again now, b the most recently used)
    await fill(store, "c", 10)
    await fill(store, "d", 10)
    await cache.newest(ref("c"), 1)
    await cache.newest(ref("d"), 1)  # two conversations at most: b goes, and its 90 with it
    assert await held(cache, observer, "c", "d") == ["c", "d"]
    await fill(store, "d", 60)  # c 10, d 10 + 60: 80, within the bound only if b's 90 left
    assert await held(cache, observer, "c", "d") == ["c", "d"]


async def test_rendered_pages_count_against_the_bound(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    await fill(store, "a", 20)
    await fill(store, "b", 20)
    cache = HistoryCache(store, store, max_bytes=100 + ITEM_EXTRA)
    await cache.newest(ref("a"), 1)
    await cache.newest(ref("b"), 1)  # 40 characters held
    body = json.dumps([{"user": text_of(20), "AI": text_of(20)}], separators=(",", ":"))
    assert len(body) + ITEM_EXTRA == 126
    await page_of(cache, query("b", limit=1))  # 126 bytes of JSON: 166 of 185
    assert await held(cache, observer, "a", "b") == ["a", "b"]
    await page_of(cache, query("b", limit=2))  # the same 126 bytes again, kept for its size: 292
    assert await held(cache, observer, "a") == []


async def test_at_most_eight_page_sizes_are_kept_per_conversation(
    store: SQLiteChatStore,
) -> None:
    cache = HistoryCache(store, store)
    for i in range(20):
        await store.append(ref("c"), f"m{i}", "r")
    first = await page_of(cache, query(limit=1))
    for limit in range(2, 9):  # eight sizes in all: all kept
        await page_of(cache, query(limit=limit))
    assert await page_of(cache, query(limit=1)) is first
    await page_of(cache, query(limit=9))  # a ninth: the kept pages are let go
    again = await page_of(cache, query(limit=1))
    assert again is not first
    assert again.body == first.body


async def test_pages_let_go_for_a_ninth_size_stop_counting(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    """The eight kept pages' bytes leave the bound's count when a ninth size lets them go:
    what is held after is counted from what is left."""
    for i in range(9):
        await store.append(ref("c"), f"m{i}", "r")
    await fill(store, "b", 100)
    cache = HistoryCache(store, store, max_bytes=6000)
    await cache.newest(ref("b"), 1)
    for limit in range(1, 9):  # 3,896 bytes of pages, and 127 characters of text
        await page_of(cache, query(limit=limit))
    assert await held(cache, observer, "b") == ["b"]
    await page_of(cache, query(limit=9))  # the eight go; the ninth, 973 bytes, stays
    assert await held(cache, observer, "b") == ["b"], "1,100 held: b stays"


class StaleVersion(ToldByHand):
    """As :class:`ToldByHand`, and its version of every conversation is ``version``: a
    conversation deleted after its version was read."""

    def __init__(self, store: SQLiteChatStore, version: int) -> None:
        super().__init__(store)
        self._version = version

    async def version(self, conversation: ConversationRef) -> int:
        return self._version


async def test_a_version_whose_rows_are_gone_is_an_empty_conversation(
    store: SQLiteChatStore,
) -> None:
    cache = HistoryCache(StaleVersion(store, 5), store)  # type: ignore[arg-type]
    assert await cache.newest(ref("gone"), 5) == ()
    assert (await page_of(cache, query("gone"))).body == b"[]"


async def test_a_read_between_commit_and_bookkeeping_does_not_duplicate(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    """The writer thread has committed, the event loop has not yet told the cache, and a
    read of the conversation sees the new row: the row must appear once."""
    cache = HistoryCache(store, store)
    await store.append(ref("c"), "before", "r")
    await cache.newest(ref("c"), 5)
    real_run = store._writer.run
    committed = asyncio.Event()

    async def slow_to_resume(function: Any) -> Any:
        result = await real_run(function)
        committed.set()
        await asyncio.sleep(0.05)  # a busy loop resumes the commit task late
        return result

    store._writer.run = slow_to_resume  # type: ignore[method-assign]
    # Another conversation's commit makes the store forget nothing; this one is read fresh.
    store._versions.clear()
    post = asyncio.create_task(store.append(ref("c"), "hello", "hi"))
    await committed.wait()
    first: Sequence[Exchange] = await cache.newest(ref("c"), 5)
    await post
    reads = observer.reads
    second = await cache.newest(ref("c"), 5)
    assert [e.user for e in first] == ["before", "hello"]
    assert [e.user for e in second] == ["before", "hello"]
    assert observer.reads == reads, "what the read saw was kept, not read again"


async def test_a_commit_reaches_every_conversation_of_its_batch(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    cache = HistoryCache(store, store)
    await store.append(ref("known"), "first", "r")
    await cache.newest(ref("known"), 5)
    # One transaction: the first exchange is for a conversation the cache does not hold.
    await asyncio.gather(
        store.append(ref("stranger"), "x", "r"), store.append(ref("known"), "second", "r")
    )
    assert store.stats.largest_batch == 2
    assert await reads_of(observer, lambda: cache.newest(ref("known"), 5)) == 0
    assert [e.user for e in await cache.newest(ref("known"), 5)] == ["first", "second"]


async def test_concurrent_first_reads_of_two_conversations_each_get_their_own(
    store: SQLiteChatStore,
) -> None:
    await store.append(ref("a"), "for a", "r")
    await store.append(ref("b"), "for b", "r")
    cache = HistoryCache(store, store)
    a, b = await asyncio.gather(cache.newest(ref("a"), 5), cache.newest(ref("b"), 5))
    assert ([e.user for e in a], [e.user for e in b]) == (["for a"], ["for b"])


def document_of(chars: int) -> int:
    """The length of the one-exchange document whose texts have ``chars`` characters in all:
    ``[{"user":"...","AI":"...",...}]``."""
    return len('[{"user":"","AI":""}]') + ITEM_EXTRA + chars


async def test_a_document_at_a_quarter_of_the_bound_is_kept_one_byte_more_is_not(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    await store.append(ref("exact"), "x" * 35, "y" * 34)  # 69 characters: a 175-byte document
    await store.append(ref("over"), "x" * 35, "y" * 35)  # 176 bytes
    assert document_of(69) == 175
    cache = HistoryCache(store, store, max_bytes=700)
    for name in ("exact", "over"):
        await page_of(cache, query(name, limit=None))
    assert await reads_of(observer, lambda: page_of(cache, query("exact", limit=None))) == 0
    assert await reads_of(observer, lambda: page_of(cache, query("over", limit=None))) == 1


async def test_kept_documents_count_against_the_bound_until_a_commit_drops_them(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    smaller = HistoryCache(store, store, max_bytes=464)  # documents up to 116 bytes are kept
    await store.append(ref("c"), "x" * 5, "y" * 5)  # 116-byte document, 10 characters
    assert document_of(10) == 116
    await store.append(ref("d"), "x" * 150, "y" * 150)  # 300 characters
    await smaller.newest(ref("d"), 1)
    await page_of(smaller, query("c", limit=None))  # c: 10 + 116; with d, 426 of 464
    assert await held(smaller, observer, "d", "c") == ["d", "c"]
    await store.append(ref("d"), "z", "")  # d: 301; 427 in all
    await smaller.newest(ref("d"), 1)
    assert await held(smaller, observer, "c", "d") == ["c", "d"]
    await store.append(ref("c"), "x" * 10, "y" * 9)  # c's document dropped: c 29, d 301: 330
    assert await reads_of(observer, lambda: smaller.newest(ref("c"), 1)) == 0, "extended in place"
    await store.append(ref("d"), "w" * 25, "")  # d 326: 355 in all, 471 with the document
    await smaller.newest(ref("d"), 1)
    assert await held(smaller, observer, "c", "d") == ["c", "d"], "the dropped 116 stopped counting"


async def test_pages_stop_counting_when_a_commit_drops_them(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    await fill(store, "a", 20)
    await fill(store, "b", 20)
    cache = HistoryCache(store, store, max_bytes=100 + ITEM_EXTRA)
    await cache.newest(ref("a"), 1)
    await cache.newest(ref("b"), 1)
    await page_of(cache, query("b", limit=1))  # 116 bytes: 156 of 175 in all
    await fill(store, "b", 2)  # the page is dropped, 2 characters come: 42
    await cache.newest(ref("b"), 1)
    await fill(store, "b", 40)  # 82: within the bound only if the 116 stopped counting
    await cache.newest(ref("b"), 1)
    assert await held(cache, observer, "a", "b") == ["a", "b"]


async def test_reading_a_conversation_again_replaces_what_it_counted(tmp_path: Path) -> None:
    observer = CountingObserver()
    path = tmp_path / "chat.db"
    mine = await SharedFile.open(path, observer=observer)
    other = await SQLiteChatStore.open(path)
    try:
        cache = HistoryCache(mine, mine, max_bytes=100)
        await mine.append(ref("a"), text_of(40), text_of(40))
        await mine.append(ref("b"), text_of(10), text_of(10))
        await cache.newest(ref("a"), 1)
        for i in range(5):  # b moves on elsewhere, and is read again each time: 40 + 20
            await other.append(ref("b"), f"{i}", "")
            await cache.newest(ref("b"), 1)
        assert await held(cache, observer, "a") == ["a"], "b's earlier reads no longer count"
    finally:
        await other.close()
        await mine.close()


async def test_a_kept_document_counts_against_the_bound(
    store: SQLiteChatStore, observer: CountingObserver
) -> None:
    await store.append(ref("d"), "x" * 160, "y" * 159)  # 319 characters
    await store.append(ref("c"), "x" * 5, "y" * 5)  # 10 characters, a 116-byte document
    await store.append(ref("e"), "x" * 10, "y" * 10)  # 20 characters
    cache = HistoryCache(store, store, max_bytes=464)  # documents up to 116 bytes are kept
    await cache.newest(ref("d"), 1)
    await page_of(cache, query("c", limit=None))  # 319 + 10 + 116: 445
    await cache.newest(ref("e"), 1)  # 465: one over, so d, the least recently used, goes
    assert await held(cache, observer, "c", "e", "d") == ["c", "e"]
