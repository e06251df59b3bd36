"""The in-memory newest pages: answers only what it knows, never a stale page."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from chat_service.store import Exchange, SQLiteChatStore
from chat_service.store.recent import RecentCache


def exchange(i: int, conversation: str = "c", text: str = "") -> Exchange:
    return Exchange(
        id=i,
        conversation_id=conversation,
        turn=i,
        user=text or f"u{i}",
        ai=text or f"a{i}",
        created_at="t",
    )


def test_answers_only_from_what_it_holds() -> None:
    cache = RecentCache(depth=3)
    assert cache.page("c", 2) is None
    cache.fill("c", [exchange(1), exchange(2), exchange(3)], has_older=True, generation=0)
    page = cache.page("c", 2)
    assert page is not None
    assert [e.id for e in page.exchanges] == [2, 3]
    assert page.has_older
    assert cache.page("c", 4) is None, "older rows exist that it does not hold"


def test_a_complete_short_conversation_answers_any_limit() -> None:
    cache = RecentCache(depth=5)
    cache.fill("c", [exchange(1)], has_older=False, generation=0)
    page = cache.page("c", 50)
    assert page is not None
    assert ([e.id for e in page.exchanges], page.has_older) == ([1], False)


def test_commits_are_appended_and_old_rows_roll_out() -> None:
    cache = RecentCache(depth=2)
    cache.fill("c", [exchange(1)], has_older=False, generation=0)
    cache.committed([exchange(2), exchange(3), exchange(9, "other")])
    page = cache.page("c", 2)
    assert page is not None
    assert ([e.id for e in page.exchanges], page.has_older) == ([2, 3], True)
    assert cache.page("other", 1) is None, "conversations it never read are not invented"


def test_a_read_that_raced_a_commit_is_not_cached() -> None:
    cache = RecentCache()
    generation = cache.generation
    cache.committed([exchange(5)])  # lands while the read is in flight
    cache.fill("c", [exchange(1)], has_older=False, generation=generation)
    assert cache.page("c", 1) is None


def test_conversations_are_bounded() -> None:
    cache = RecentCache(depth=1, max_conversations=3)
    for name in "abcd":
        cache.fill(name, [exchange(1, name)], has_older=False, generation=cache.generation)
    assert cache.page("a", 1) is None
    assert cache.page("d", 1) is not None


async def test_store_pages_match_the_database_under_concurrent_writes(tmp_path: Path) -> None:
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    fresh = None
    try:

        async def writer(n: int) -> None:
            for i in range(20):
                await store.append(f"conv{n % 3}", f"w{n}-{i}", "r")

        async def reader(n: int) -> None:
            for _ in range(20):
                await store.history(f"conv{n % 3}", limit=10)

        await asyncio.gather(*(writer(n) for n in range(6)), *(reader(n) for n in range(6)))
        fresh = await SQLiteChatStore.open(tmp_path / "chat.db")
        for conversation in ("conv0", "conv1", "conv2"):
            for limit in (1, 10, 40, 100):
                cached = await store.history(conversation, limit=limit)
                # From memory (the same page object again), yet what the database holds.
                assert cached.shared
                assert await store.history(conversation, limit=limit) is cached
                direct = await fresh.history(conversation, limit=limit, before=10**9)
                assert not direct.shared, "a cursor read goes to the database"
                assert [e.id for e in cached.exchanges] == [e.id for e in direct.exchanges]
                assert cached.has_older == direct.has_older
    finally:
        await store.close()
        if fresh is not None:
            await fresh.close()


async def test_history_json_is_the_whole_history_in_order(tmp_path: Path) -> None:
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    try:
        texts = [f'line {i} "quoted" \\ é 😀' for i in range(500)]
        await asyncio.gather(*(store.append("c", text, text[::-1]) for text in texts))
        await store.append("other", "elsewhere", "x")
        document = json.loads(await store.history_json("c"))
        assert document == [{"user": t, "AI": t[::-1]} for t in texts]
        assert list(document[0]) == ["user", "AI"]
        older = json.loads(await store.history_json("c", before=3))
        assert [item["user"] for item in older] == texts[:2]
        assert json.loads(await store.history_json("nobody")) == []
    finally:
        await store.close()


async def test_full_history_documents_are_shared_and_never_stale(tmp_path: Path) -> None:
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    try:
        await store.append("c", "first", "r")
        concurrent = await asyncio.gather(*(store.history_json("c") for _ in range(10)))
        assert all(document is concurrent[0] for document in concurrent), "one shared build"
        assert await store.history_json("c") is concurrent[0], "kept until the next commit"
        await store.append("c", "second", "r")
        after = json.loads(await store.history_json("c"))
        assert [item["user"] for item in after] == ["first", "second"], "a commit invalidates"
    finally:
        await store.close()


def test_a_row_already_read_is_not_appended_twice() -> None:
    cache = RecentCache()
    cache.fill("c", [exchange(1), exchange(2)], has_older=False, generation=0)
    cache.committed([exchange(2), exchange(3)])
    page = cache.page("c", 10)
    assert page is not None
    assert [e.id for e in page.exchanges] == [1, 2, 3]


async def test_a_read_between_commit_and_bookkeeping_does_not_duplicate(tmp_path: Path) -> None:
    """The writer thread has committed, the event loop has not yet run the bookkeeping, and a
    read of the (uncached) conversation sees the new row: the row must appear once."""
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    try:
        real_run = store._writer.run
        committed = asyncio.Event()

        async def slow_to_resume(function: Any) -> Any:
            result = await real_run(function)
            committed.set()
            await asyncio.sleep(0.05)  # a busy loop resumes the writer task late
            return result

        store._writer.run = slow_to_resume  # type: ignore[method-assign]
        post = asyncio.create_task(store.append("c", "hello", "hi"))
        await committed.wait()
        first = await store.history("c", limit=10)  # a miss: reads the row from SQLite
        await post
        second = await store.history("c", limit=10)
        assert [e.user for e in first.exchanges] == ["hello"]
        assert [e.user for e in second.exchanges] == ["hello"]
        assert [e.turn for e in await store.recent("c", 20)] == [1]
    finally:
        await store.close()


def test_the_same_page_object_until_the_conversation_changes() -> None:
    cache = RecentCache(depth=4)
    cache.fill("c", [exchange(1), exchange(2)], has_older=False, generation=0)
    cache.fill("d", [exchange(3, "d")], has_older=False, generation=0)
    first = cache.page("c", 2)
    assert first is not None
    assert cache.page("c", 2) is first
    assert cache.page("c", 1) is not first, "another size, another page"
    cache.committed([exchange(4, "d")])
    assert cache.page("c", 2) is first, "a commit to another conversation changes nothing"
    cache.committed([exchange(5)])
    after = cache.page("c", 2)
    assert after is not None
    assert after is not first
    assert [e.id for e in after.exchanges] == [2, 5]


def test_pages_from_memory_are_marked_shared() -> None:
    cache = RecentCache(depth=4)
    cache.fill("c", [exchange(1)], has_older=False, generation=0)
    page = cache.page("c", 1)
    assert page is not None
    assert page.shared


def test_message_text_held_is_bounded() -> None:
    cache = RecentCache(depth=10, max_chars=1000)
    cache.fill("a", [exchange(1, "a", "x" * 200)], has_older=False, generation=0)  # 400
    cache.fill("b", [exchange(2, "b", "x" * 200)], has_older=False, generation=0)  # 800
    assert cache.page("a", 1) is not None, "within the bound: both held"
    cache.committed([exchange(3, "b", "x" * 150)])  # 1100: the least recently used goes
    assert cache.page("a", 1) is None
    page = cache.page("b", 2)
    assert page is not None
    assert [e.id for e in page.exchanges] == [2, 3]


def test_rolled_out_exchanges_no_longer_count_against_the_bound() -> None:
    cache = RecentCache(depth=2, max_chars=1000)
    cache.fill("a", [exchange(1, "a", "x" * 100)], has_older=False, generation=0)  # 200
    cache.fill("b", [exchange(2, "b", "x" * 100)], has_older=False, generation=0)  # 400
    for i in range(3, 20):  # "b" keeps its newest 2 (400 chars): never over 600 in all
        cache.committed([exchange(i, "b", "x" * 100)])
    assert cache.page("a", 1) is not None, "a conversation within the bound is kept"


def held(cache: RecentCache, *conversations: str) -> list[str]:
    """Which of ``conversations`` the cache still answers for (reading refreshes them)."""
    return [name for name in conversations if cache.page(name, 1) is not None]


def text_of(chars: int) -> str:
    return "x" * (chars // 2)  # user and AI text each: chars in all


def test_the_character_bound_is_inclusive() -> None:
    cache = RecentCache(depth=5, max_chars=100)
    cache.fill("a", [exchange(1, "a", text_of(60))], has_older=False, generation=0)
    cache.fill("b", [exchange(2, "b", text_of(40))], has_older=False, generation=0)
    assert held(cache, "a", "b") == ["a", "b"], "exactly at the bound: both kept"
    cache.committed([exchange(3, "b", text_of(2))])  # 102: one over
    assert held(cache, "a", "b") == ["b"]


def test_a_conversation_larger_than_the_bound_alone_is_kept() -> None:
    cache = RecentCache(depth=5, max_chars=100)
    cache.fill("huge", [exchange(1, "huge", text_of(300))], has_older=False, generation=0)
    assert held(cache, "huge") == ["huge"], "the newest conversation always stays"


def test_refilling_a_conversation_replaces_its_characters() -> None:
    cache = RecentCache(depth=5, max_chars=100)
    cache.fill("a", [exchange(1, "a", text_of(80))], has_older=False, generation=0)
    cache.fill("a", [exchange(1, "a", text_of(10))], has_older=False, generation=0)
    cache.fill("b", [exchange(2, "b", text_of(90))], has_older=False, generation=0)  # 100
    assert held(cache, "a", "b") == ["a", "b"], "the 80 replaced no longer count"


def test_evicted_conversations_no_longer_count() -> None:
    cache = RecentCache(depth=5, max_conversations=2, max_chars=100)
    cache.fill("a", [exchange(1, "a", text_of(50))], has_older=False, generation=0)
    cache.fill("b", [exchange(2, "b", text_of(10))], has_older=False, generation=0)
    cache.fill("c", [exchange(3, "c", text_of(10))], has_older=False, generation=0)  # a goes
    cache.fill("d", [exchange(4, "d", text_of(80))], has_older=False, generation=0)  # b goes
    # c (10) and d (80): 90, within the bound, if a's 50 stopped counting when it left.
    assert held(cache, "c", "d") == ["c", "d"]


def test_appended_exchanges_count_and_rolled_out_ones_stop_counting() -> None:
    cache = RecentCache(depth=2, max_chars=100)
    cache.fill("a", [exchange(1, "a", text_of(30))], has_older=False, generation=0)
    cache.fill("b", [exchange(2, "b", text_of(10))], has_older=False, generation=0)
    cache.committed([exchange(3, "b", text_of(40))])  # b: 10 + 40; 80 in all
    assert held(cache, "a", "b") == ["a", "b"]
    cache.committed([exchange(4, "b", text_of(20))])  # b rolls out its 10: 40 + 20; 90
    assert held(cache, "a", "b") == ["a", "b"]
    cache.committed([exchange(5, "b", text_of(30))])  # b: 20 + 30; 80
    assert held(cache, "a", "b") == ["a", "b"]
    cache.committed([exchange(6, "b", text_of(60))])  # b: 30 + 60; 120: a goes
    assert held(cache, "a", "b") == ["b"]


def test_the_conversation_bound_is_inclusive() -> None:
    cache = RecentCache(depth=1, max_conversations=3)
    for name in "abc":
        cache.fill(name, [exchange(1, name)], has_older=False, generation=cache.generation)
    assert held(cache, "a", "b", "c") == ["a", "b", "c"]


def test_a_commit_reaches_every_conversation_it_names() -> None:
    cache = RecentCache(depth=5)
    cache.fill("known", [exchange(1, "known")], has_older=False, generation=0)
    # The first exchange is for a conversation the cache does not hold.
    cache.committed([exchange(2, "stranger"), exchange(3, "known")])
    page = cache.page("known", 5)
    assert page is not None
    assert [e.id for e in page.exchanges] == [1, 3]


def test_a_read_that_raced_a_commit_is_not_cached_even_after_a_clear() -> None:
    cache = RecentCache()
    generation = cache.generation  # a read starts
    cache.committed([exchange(5)])
    cache.clear()  # a read fault: everything dropped
    cache.fill("c", [exchange(1)], has_older=False, generation=generation)
    assert cache.page("c", 1) is None, "its rows predate the commit"
    fresh = cache.generation
    cache.fill("c", [exchange(1), exchange(5)], has_older=False, generation=fresh)
    assert cache.page("c", 1) is not None


def test_a_clear_forgets_every_character_held() -> None:
    cache = RecentCache(depth=5, max_chars=100)
    cache.fill("a", [exchange(1, "a", text_of(100))], has_older=False, generation=0)
    cache.clear()
    generation = cache.generation
    cache.fill("b", [exchange(2, "b", text_of(50))], has_older=False, generation=generation)
    cache.fill("c", [exchange(3, "c", text_of(50))], has_older=False, generation=generation)
    assert held(cache, "b", "c") == ["b", "c"], "a's 100 were forgotten with it"


def test_at_most_eight_page_sizes_are_kept_per_conversation() -> None:
    cache = RecentCache(depth=20)
    cache.fill("c", [exchange(i) for i in range(1, 21)], has_older=False, generation=0)
    first = cache.page("c", 1)
    for limit in range(2, 9):  # eight sizes in all: all kept
        cache.page("c", limit)
    assert cache.page("c", 1) is first
    cache.page("c", 9)  # a ninth: the kept pages are let go
    again = cache.page("c", 1)
    assert again is not first
    assert again is not None
    assert [e.id for e in again.exchanges] == [20]
