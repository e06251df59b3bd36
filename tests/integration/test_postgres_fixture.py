"""The PostgreSQL fixtures give a real server: the store's tests rest on them, so they are
proven here with asyncpg, the driver the store uses."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.support.postgres import PostgresServer


async def test_a_table_round_trips_through_the_database(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        await connection.executemany(
            "INSERT INTO notes (body) VALUES ($1)", [("hello",), ("привет, 世界 🙂",)]
        )
        rows = await connection.fetch("SELECT id, body FROM notes ORDER BY id")
        database = await connection.fetchval("SELECT current_database()")
        encoding = await connection.fetchval("SHOW server_encoding")
    finally:
        await connection.close()
    assert [(row["id"], row["body"]) for row in rows] == [(1, "hello"), (2, "привет, 世界 🙂")]
    assert postgres_url.endswith(f"/{database}")
    assert encoding == "UTF8"


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_an_empty_database_of_its_own(postgres_url: str, run: int) -> None:
    """Both runs create the same table: the second would find the first's if they shared."""
    connection = await asyncpg.connect(postgres_url)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        await connection.execute("CREATE TABLE left_behind (run int)")
        await connection.execute("INSERT INTO left_behind VALUES ($1)", run)
    finally:
        await connection.close()
    assert tables == []


async def test_databases_made_side_by_side_do_not_share_rows(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    other_url = postgres_server.create_database("side_by_side")
    try:
        first, second = await asyncpg.connect(postgres_url), await asyncpg.connect(other_url)
        try:
            for connection, word in ((first, "first"), (second, "second")):
                await connection.execute("CREATE TABLE words (word text)")
                await connection.execute("INSERT INTO words VALUES ($1)", word)
            seen = [
                await c.fetchval("SELECT string_agg(word, ',') FROM words") for c in (first, second)
            ]
        finally:
            await first.close()
            await second.close()
    finally:
        postgres_server.drop_database("side_by_side")
    assert seen == ["first", "second"]
    assert other_url != postgres_url


async def test_committed_rows_survive_a_kill_and_the_uncommitted_do_not(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    connection = await asyncpg.connect(postgres_url)
    await connection.execute("CREATE TABLE events (id int PRIMARY KEY)")
    await connection.executemany("INSERT INTO events VALUES ($1)", [(i,) for i in range(100)])
    pending = await asyncpg.connect(postgres_url)
    transaction = pending.transaction()
    await transaction.start()
    await pending.execute("INSERT INTO events VALUES (1000)")
    killed_pid = postgres_server.pid

    await asyncio.to_thread(postgres_server.kill)
    assert not postgres_server.running
    # Which error a dead server gives depends on when the loss is seen: asyncpg may still be
    # in the middle of the previous exchange (InternalClientError, "cannot switch to state").
    lost = (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
    )
    with pytest.raises(lost):
        await connection.fetchval("SELECT 1")
    connection.terminate()
    pending.terminate()

    await asyncio.to_thread(postgres_server.start)
    assert postgres_server.pid not in (None, killed_pid)
    connection = await asyncpg.connect(postgres_url)
    try:
        ids = await connection.fetch("SELECT id FROM events ORDER BY id")
    finally:
        await connection.close()
    assert [row["id"] for row in ids] == list(range(100))
    assert "automatic recovery in progress" in postgres_server.log_path.read_text()


async def test_a_stopped_server_refuses_connections_then_starts_with_its_data(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("CREATE TABLE kept AS SELECT 42 AS answer")
    finally:
        await connection.close()

    await asyncio.to_thread(postgres_server.stop)
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(postgres_url, timeout=5)

    await asyncio.to_thread(postgres_server.start)
    connection = await asyncpg.connect(postgres_url)
    try:
        assert await connection.fetchval("SELECT answer FROM kept") == 42
    finally:
        await connection.close()
