"""Real faults of either store, made from outside it as an operator's mistake would be."""

from __future__ import annotations

import sqlite3

import asyncpg

from chat_service.config import Settings


async def _run(settings: Settings, sqlite_sql: str, postgres_sql: str) -> None:
    if settings.database_url is None:
        with sqlite3.connect(settings.db_path) as sqlite:
            sqlite.executescript(sqlite_sql)
        return
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(postgres_sql)
    finally:
        await conn.close()


async def break_table(settings: Settings) -> None:
    """The tables the store reads and writes are gone: the exchanges, and the conversations
    (a new chat's first message reads only its conversation's settings)."""
    await _run(
        settings,
        "DROP TABLE exchanges; DROP TABLE conversations",
        "DROP TABLE exchanges; DROP TABLE conversations CASCADE",
    )


async def refuse_inserts(settings: Settings, reason: str = "inserts refused") -> None:
    """Every insert is aborted by the database, at commit time."""
    await _run(
        settings,
        "CREATE TRIGGER refuse BEFORE INSERT ON exchanges "
        f"BEGIN SELECT RAISE(ABORT, '{reason}'); END",
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{reason}'; END $$; "
        "CREATE TRIGGER refuse BEFORE INSERT ON exchanges "
        "FOR EACH ROW EXECUTE FUNCTION refuse();",
    )


async def break_probes(settings: Settings) -> None:
    """The table readiness probes commit to is gone: nothing proves a commit goes through."""
    await _run(settings, "DROP TABLE store_probe", "DROP TABLE store_probe")
