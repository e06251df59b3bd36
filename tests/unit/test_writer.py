"""The SQLite store's write side: one named thread owns the writer connection, and a
transaction is all or nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from chat_service.store.migrations import MIGRATIONS
from chat_service.store.writer import WriterThread, migrate, transaction

INSERT = (
    "INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, created_at) "
    "VALUES (:c, 1, :u, 'a', 't')"
)
READ_BACK = "SELECT user_message FROM exchanges ORDER BY id DESC LIMIT ?"


def slow_thread_name(conn: sqlite3.Connection) -> str:
    time.sleep(0.01)  # long enough that a second thread, if there were one, would be used
    return threading.current_thread().name


async def test_every_write_runs_on_the_one_writer_thread(tmp_path: Path) -> None:
    writer = WriterThread(tmp_path / "chat.db")
    try:
        names = await asyncio.gather(*(writer.run(slow_thread_name) for _ in range(8)))
        assert len(set(names)) == 1, "one thread, so one connection is never shared"
        assert names[0].startswith("chat-store-writer"), "named, for profiles and stacks"
        first = await writer.run(lambda conn: conn)
        await writer.reset()  # on the same thread: the connection was made there
        assert await writer.run(lambda conn: threading.current_thread().name) == names[0]
        assert await writer.run(lambda conn: conn) is not first, "a fresh connection"
    finally:
        await writer.close()


async def test_the_writer_connection_is_durable_in_wal_mode(tmp_path: Path) -> None:
    writer = WriterThread(tmp_path / "chat.db")
    try:
        mode = await writer.run(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0])
        sync = await writer.run(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
        autocommit = await writer.run(lambda conn: conn.isolation_level)
        assert (mode, sync, autocommit) == ("wal", 2, None)  # FULL; transactions are explicit
    finally:
        await writer.close()


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(tmp_path / "chat.db", isolation_level=None)
    migrate(connection)
    return connection


def test_a_transaction_returns_the_inserted_rows_oldest_first(conn: sqlite3.Connection) -> None:
    rows = transaction(
        conn, [], ((INSERT,), [{"c": "c1", "u": "one"}, {"c": "c2", "u": "two"}]), READ_BACK
    )
    assert rows == [("one",), ("two",)]
    assert not conn.in_transaction


def test_statements_alone_return_no_rows(conn: sqlite3.Connection) -> None:
    probe = ("UPDATE store_probe SET checked_at = ? WHERE id = 1", ("now",))
    assert transaction(conn, [probe], None, READ_BACK) == []
    assert transaction(conn, [probe], ((INSERT,), []), READ_BACK) == []
    assert conn.execute("SELECT checked_at FROM store_probe").fetchone() == ("now",)


def test_a_failing_transaction_leaves_nothing_behind(conn: sqlite3.Connection) -> None:
    broken = ("UPDATE no_such_table SET x = 1", ())
    with pytest.raises(sqlite3.OperationalError):
        transaction(conn, [broken], ((INSERT,), [{"c": "c", "u": "lost"}]), READ_BACK)
    assert not conn.in_transaction, "rolled back, ready for the next one"
    assert conn.execute("SELECT COUNT(*) FROM exchanges").fetchone() == (0,)
    assert transaction(conn, [], ((INSERT,), [{"c": "c", "u": "next"}]), READ_BACK) == [("next",)]


def test_migrations_are_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.executescript(MIGRATIONS[0] + "\nPRAGMA user_version=1;")
    connection.execute("CREATE TABLE store_probe (x)")  # migration 2 will fail on it
    with pytest.raises(sqlite3.OperationalError):
        migrate(connection)
    assert connection.execute("PRAGMA user_version").fetchone() == (1,)
    assert not connection.in_transaction
