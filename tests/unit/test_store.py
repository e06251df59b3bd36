"""The SQLite store: durability settings, migrations, paging and group commit."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from chat_service.chat.domain import Conversation, Exchange, HistoryKeys
from chat_service.store import StoreError, StoreOpenError
from chat_service.store.migrations import MIGRATIONS, SCHEMA_VERSION
from chat_service.store.sqlite import SQLiteChatStore
from tests.support.refs import ref


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteChatStore]:
    opened = await SQLiteChatStore.open(tmp_path / "chat.db")
    yield opened
    await opened.close()


def pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


async def test_database_uses_wal_and_current_schema(store: SQLiteChatStore) -> None:
    assert pragma(store.path, "journal_mode") == "wal"
    assert pragma(store.path, "user_version") == SCHEMA_VERSION


async def test_connections_are_durable_and_wait_on_locks(store: SQLiteChatStore) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[int, int]:
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        busy = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        return synchronous, busy

    assert await store._writer.run(pragmas) == (2, 5000)  # 2: FULL
    assert store._reader is not None
    assert (await store._reader.execute_fetchall("PRAGMA synchronous"))[0][0] == 2  # type: ignore[index]
    assert (await store._reader.execute_fetchall("PRAGMA busy_timeout"))[0][0] == 5000  # type: ignore[index]


async def test_reader_connection_cannot_write(store: SQLiteChatStore) -> None:
    assert store._reader is not None
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await store._reader.execute("DELETE FROM exchanges")


async def test_append_returns_the_stored_exchange(store: SQLiteChatStore) -> None:
    first = await store.append(ref("default"), "hi", "hello", trace_id="ab" * 16)
    second = await store.append(ref("default"), "again", "hello again")
    other = await store.append(ref("other"), "elsewhere", "ok")
    assert (first.turn, second.turn, other.turn) == (1, 2, 1)
    assert first.id < second.id < other.id
    assert first.trace_id == "ab" * 16
    assert first.created_at.endswith("Z")
    page = await store.history(ref("default"))
    assert [(e.user, e.ai) for e in page.exchanges] == [("hi", "hello"), ("again", "hello again")]
    assert not page.has_older


async def test_history_pages(store: SQLiteChatStore) -> None:
    ids = [(await store.append(ref("c"), f"m{i}", "r")).id for i in range(5)]
    newest = await store.history(ref("c"), limit=2)
    assert [e.id for e in newest.exchanges] == ids[3:]
    assert newest.has_older
    older = await store.history(ref("c"), limit=2, before_turn=4)
    assert [e.id for e in older.exchanges] == ids[1:3]
    assert older.has_older
    oldest = await store.history(ref("c"), limit=2, before_turn=2)
    assert [e.id for e in oldest.exchanges] == ids[:1]
    assert not oldest.has_older
    exact = await store.history(ref("c"), limit=5)
    assert not exact.has_older


async def test_reads_by_turn_are_served_by_the_turn_index(store: SQLiteChatStore) -> None:
    """Clients page and resume by turn (migration 4's index): each of those reads, as the
    store sends it, searches that index; none scans the conversation's rows and sorts them."""
    statements: list[str] = []
    assert store._reader is not None
    await store._reader.set_trace_callback(statements.append)  # with the values filled in
    await store.history(ref("c"), limit=2)
    await store.history(ref("c"), limit=2, before_turn=3)
    await store.history_json(ref("c"), keys=HistoryKeys("q", "a"), before_turn=3)
    # After a turn the conversation has not reached: the exchange there, then where it was
    # cut (store/since.py).
    await store.exchanges_after(ref("c"), 1, limit=3)
    await store.last_turn(ref("c"))
    assert len(statements) == 6
    with sqlite3.connect(store.path) as conn:
        for sql in statements:
            plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            assert any("INDEX exchanges_by_turn (conversation_id=?" in step for step in plan), (
                sql,
                plan,
            )
            assert not any("TEMP B-TREE" in step for step in plan), (sql, plan)


async def test_turns_are_unique_in_a_conversation(store: SQLiteChatStore) -> None:
    await store.append(ref("c"), "m", "r")
    with sqlite3.connect(store.path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, "
            "created_at) SELECT conversation_id, turn, 'again', 'r', created_at FROM exchanges"
        )


async def test_the_version_is_the_id_of_the_newest_exchange(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = await SQLiteChatStore.open(path)
    try:
        assert await store.version(ref("c")) == 0
        first = await store.append(ref("c"), "m0", "r")
        other = await store.append(ref("other"), "m", "r")
        assert await store.version(ref("c")) == first.id
        second = await store.append(ref("c"), "m1", "r")
        assert await store.version(ref("c")) == second.id > first.id
        assert await store.version(ref("other")) == other.id
    finally:
        await store.close()
    reopened = await SQLiteChatStore.open(path)  # knows nothing: reads it from the file
    try:
        assert await reopened.version(ref("c")) == second.id
        assert await reopened.version(ref("nobody")) == 0
    finally:
        await reopened.close()


async def test_a_version_read_that_races_a_commit_keeps_the_newer(tmp_path: Path) -> None:
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    try:
        await store.append(ref("c"), "m0", "r")
        store._versions.clear()  # forgotten, as after many other conversations
        real_read = store._read
        read_done = asyncio.Event()
        commit_done = asyncio.Event()

        async def read_then_wait(sql: str, params: Any) -> list[Any]:
            rows = await real_read(sql, params)  # sees m0 only
            read_done.set()
            await commit_done.wait()  # m1 commits before this read is used
            return rows

        store._read = read_then_wait  # type: ignore[method-assign]
        reading = asyncio.create_task(store.version(ref("c")))
        await read_done.wait()
        store._read = real_read  # type: ignore[method-assign]
        newer = await store.append(ref("c"), "m1", "r")
        commit_done.set()
        assert await reading == newer.id, "the newer of what it read and what was committed"
        assert await store.version(ref("c")) == newer.id
    finally:
        await store.close()


async def test_known_versions_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chat_service.store.sqlite.MAX_KNOWN_VERSIONS", 2)
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    try:
        for name in "abc":
            await store.append(ref(name), "m", "r")
        assert list(store._versions) == [ref("b"), ref("c")], "the least recently used went"
        assert await store.version(ref("a")) == 1, "read again from the file"
        assert list(store._versions) == [ref("c"), ref("a")]
    finally:
        await store.close()


async def test_commit_listeners_hear_every_batch_before_its_answers(
    store: SQLiteChatStore,
) -> None:
    heard: list[list[str]] = []
    answered: list[str] = []

    def listener(exchanges: Sequence[Exchange]) -> None:
        assert answered == [], "told before any request is answered"
        heard.append([e.user for e in exchanges])

    def broken(exchanges: Sequence[Exchange]) -> None:
        raise RuntimeError("a listener's bug")

    store.add_commit_listener(broken)
    store.add_commit_listener(listener)

    async def post(text: str) -> None:
        await store.append(ref("c"), text, "r")
        answered.append(text)

    await asyncio.gather(post("a"), post("b"))
    assert heard == [["a", "b"]], "one batch, in order, despite the broken listener"
    assert sorted(answered) == ["a", "b"]


async def test_unicode_round_trips_exactly(store: SQLiteChatStore) -> None:
    text = "emoji 🧪👩🏽‍🚀, RTL שלום عربى, combining e\u0301, 4-byte 𝄞, NUL \x00 inside"
    await store.append(ref("default"), text, text[::-1])
    (exchange,) = (await store.history(ref("default"))).exchanges
    assert (exchange.user, exchange.ai) == (text, text[::-1])


async def test_concurrent_appends_are_group_committed(tmp_path: Path) -> None:
    count, max_batch = 200, 16
    store = await SQLiteChatStore.open(tmp_path / "chat.db", max_batch=max_batch)
    try:
        results = await asyncio.gather(
            *(store.append(ref("load"), f"message {i}", f"reply {i}") for i in range(count))
        )
        # Everything acknowledged is stored, in the order the requests were made.
        stored = (await store.history(ref("load"))).exchanges
        assert [e.user for e in stored] == [f"message {i}" for i in range(count)]
        assert [e.id for e in results] == [e.id for e in stored]
        assert [e.turn for e in stored] == list(range(1, count + 1))
        # ... in full batches: every request was queued before the writer ran, so each
        # transaction took as many as a batch holds, and no more.
        assert store.stats.exchanges == count
        assert store.stats.largest_batch == max_batch
        assert store.stats.commits == -(-count // max_batch)  # 13: twelve of 16, one of 8
    finally:
        await store.close()


async def test_data_is_on_disk_when_append_returns(store: SQLiteChatStore) -> None:
    await store.append(ref("default"), "durable", "yes")
    # A separate connection, as another process would open it, sees the row already.
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT user_message FROM exchanges").fetchall()
    assert rows == [("durable",)]


async def test_failed_commit_fails_every_request_of_the_batch(store: SQLiteChatStore) -> None:
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON exchanges "
            "WHEN NEW.user_message = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    results = await asyncio.gather(
        store.append(ref("c"), "fine", "r"),
        store.append(ref("c"), "poison", "r"),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) for r in results)
    assert (await store.history(ref("c"))).exchanges == []
    assert store.stats.failed_batches == 1
    # The writer keeps going after a failed batch.
    assert (await store.append(ref("c"), "after", "r")).user == "after"


async def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    pending = [asyncio.ensure_future(store.append(ref("c"), f"m{i}", "r")) for i in range(20)]
    await asyncio.sleep(0)
    await store.close()
    assert all(p.done() and not p.exception() for p in pending)
    with pytest.raises(StoreError, match="closed"):
        await store.append(ref("c"), "late", "r")
    reopened = await SQLiteChatStore.open(tmp_path / "chat.db")
    assert len((await reopened.history(ref("c"))).exchanges) == 20
    await reopened.close()


async def test_ping_fails_once_closed(tmp_path: Path) -> None:
    store = await SQLiteChatStore.open(tmp_path / "chat.db")
    await store.ping()
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()


async def test_unopenable_path_raises_store_open_error(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match="cannot open database"):
        await SQLiteChatStore.open(tmp_path / "missing-dir" / "chat.db")


async def test_file_that_is_not_a_database_raises_store_open_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreOpenError, match="not a database"):
        await SQLiteChatStore.open(path)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(StoreOpenError) as refused:
        await SQLiteChatStore.open(path)
    assert str(refused.value) == (
        f"database {str(path)!r} has schema version 99, newer than this release supports "
        f"({SCHEMA_VERSION}); upgrade chat-service"
    )


async def test_a_database_of_the_first_release_is_migrated_keeping_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # schema version 1: the exchanges table only
        conn.executescript(
            f"{MIGRATIONS[0]}\n"
            "INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, created_at)"
            " VALUES ('c', 1, 'from\nbefore', 'still here', '2026-01-01T00:00:00.000Z'),"
            " ('c', 2, 'then', 'more', '2026-01-02T00:00:00.000Z'),"
            " ('d', 1, 'other', 'one', '2026-01-03T00:00:00.000Z');"
            "PRAGMA user_version=1;"
        )
    store = await SQLiteChatStore.open(path)
    try:
        assert pragma(path, "user_version") == SCHEMA_VERSION
        assert [(e.user, e.ai) for e in (await store.history(ref("c"))).exchanges] == [
            ("from\nbefore", "still here"),
            ("then", "more"),
        ]
        await store.ping()  # migration 2's probe row is there to be written
        # Migration 3: the conversations so far are the anonymous owner's, titled by their
        # first message, with their first and latest activity and their count.
        assert await store.conversations("", limit=10) == [
            Conversation("d", "other", "2026-01-03T00:00:00.000Z", "2026-01-03T00:00:00.000Z", 1),
            Conversation(
                "c", "from before", "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z", 2
            ),
        ]
        # Migration 5: the exchanges stored before it are found by search.
        hits = await store.search("", ["before", "still"], limit=10)
        assert [(h.exchange.conversation.id, h.exchange.turn, h.title) for h in hits] == [
            ("c", 1, "from before")
        ]
        assert (await store.append(ref("c"), "new", "reply")).turn == 3
        assert len(await store.search("", ["reply"], limit=10)) == 1, "and those after it"
        found = await store.conversation(ref("c"))
        assert found is not None
        assert found.exchanges == 3
    finally:
        await store.close()


async def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    first = await SQLiteChatStore.open(path)
    await first.append(ref("c"), "kept", "r")
    await first.close()
    second = await SQLiteChatStore.open(path)
    assert [e.user for e in (await second.history(ref("c"))).exchanges] == ["kept"]
    await second.close()


async def seed(path: Path, conversation: str, count: int) -> None:
    store = await SQLiteChatStore.open(path)
    try:
        await asyncio.gather(
            *(store.append(ref(conversation), f"u{i}", f"a{i}") for i in range(count))
        )
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("rows", "limit", "returned", "older"),
    [
        (150, 100, 100, True),  # deeper than the memory of recent rows (100): from disk
        (100, 100, 100, False),  # exactly the limit: no older page
        (101, 100, 100, True),
        (100, 99, 99, True),
        (5, 50, 5, False),
        (150, 101, 101, True),
    ],
)
async def test_a_cold_conversation_pages_right_at_every_boundary(
    tmp_path: Path, rows: int, limit: int, returned: int, older: bool
) -> None:
    path = tmp_path / "chat.db"
    await seed(path, "c", rows)
    store = await SQLiteChatStore.open(path)  # nothing in memory yet
    try:
        for attempt in ("cold", "warm"):
            page = await store.history(ref("c"), limit=limit)
            assert len(page.exchanges) == returned, attempt
            assert page.has_older is older, attempt
            assert [e.user for e in page.exchanges] == [
                f"u{i}" for i in range(rows - returned, rows)
            ]
    finally:
        await store.close()


async def test_history_json_is_the_whole_history_in_order(store: SQLiteChatStore) -> None:
    texts = [f'line {i} "quoted" \\ é 😀 \x00' for i in range(300)]
    await asyncio.gather(*(store.append(ref("c"), text, text[::-1]) for text in texts))
    await store.append(ref("other"), "elsewhere", "x")
    keys = HistoryKeys("q", "a", "n", "at", "m", "u", "in", "out")
    document = json.loads(await store.history_json(ref("c"), keys=keys))
    assert [(item["q"], item["a"]) for item in document] == [(t, t[::-1]) for t in texts]
    assert list(document[0]) == ["q", "a", "n", "at", "m", "u", "id"]
    assert [item["n"] for item in document] == list(range(1, 301))
    older = json.loads(await store.history_json(ref("c"), keys=keys, before_turn=3))
    assert [item["q"] for item in older] == texts[:2]
    assert json.loads(await store.history_json(ref("nobody"), keys=keys)) == []


async def test_readiness_proves_a_real_commit(store: SQLiteChatStore) -> None:
    def probe() -> object:
        with sqlite3.connect(store.path) as conn:
            return conn.execute("SELECT checked_at FROM store_probe").fetchone()[0]

    assert probe() == ""
    await store.ping()
    first = probe()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(first))
    assert store.stats.commits == 0, "a probe is not an exchange"


async def test_readiness_fails_when_commits_fail(store: SQLiteChatStore) -> None:
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE ON store_probe "
            "BEGIN SELECT RAISE(ABORT, 'read-only'); END"
        )
    with pytest.raises(StoreError):
        await store.ping()


async def test_a_plain_commit_does_not_rewrite_the_readiness_row(store: SQLiteChatStore) -> None:
    await store.append(ref("c"), "m", "r")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT checked_at FROM store_probe").fetchone() == ("",)


async def test_after_a_read_fault_reads_recover_and_readiness_checks_integrity(
    store: SQLiteChatStore, caplog: pytest.LogCaptureFixture
) -> None:
    await store.append(ref("c"), "kept", "r")
    await store.ping()
    assert "store recovered" not in caplog.text, "a healthy store has nothing to recover from"
    with sqlite3.connect(store.path) as conn:
        conn.execute("ALTER TABLE exchanges RENAME TO gone")
    with pytest.raises(StoreError):
        await store.history(ref("c"))
    with sqlite3.connect(store.path) as conn:
        conn.execute("ALTER TABLE gone RENAME TO exchanges")
    assert [e.user for e in (await store.history(ref("c"))).exchanges] == ["kept"], "reopened"
    with caplog.at_level(logging.INFO, logger="chat_service.store.sqlite"):
        await store.ping()  # runs PRAGMA quick_check once: the file is sound
    recovered = [r for r in caplog.records if r.getMessage() == "store recovered"]
    assert len(recovered) == 1
    assert "no such table: exchanges" in recovered[0].__dict__["fault"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="chat_service.store.sqlite"):
        await store.ping()
    assert "store recovered" not in caplog.text, "checked once, then back to normal"
