"""The write side of the SQLite store: one connection, owned by one thread.

A group commit is one function run on that thread (BEGIN, the inserts, reading back the
new rows, COMMIT), so it costs one hand-over between the event loop and the thread instead
of one per statement. Under load each hand-over waits behind the busy event loop; with
four of them a commit took 12-20 ms while the fsync itself takes 0.2 ms (bench/README.md).
Reads keep using aiosqlite on their own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from chat_service.store.base import StoreOpenError
from chat_service.store.migrations import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")


# Every connection, reader or writer: durable (each commit fsynced) and patient (a locked
# database is waited for, not an error).
# secure_delete: a deleted conversation's text is overwritten in the file, not left in free
# pages (the WAL is truncated after a deletion for the same reason: sqlite.py).
CONNECTION_PRAGMAS = (
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=FULL",
    "PRAGMA secure_delete=ON",
)


def configure(conn: sqlite3.Connection) -> None:
    for pragma in CONNECTION_PRAGMAS:
        conn.execute(pragma)


class WriterThread:
    """Runs functions against the writer connection on its own thread, one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-store-writer")
        self._conn: sqlite3.Connection | None = None

    async def run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``function(connection)`` on the writer thread, (re)connecting first if needed."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, function)

    def _call(self, function: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return function(self._conn)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            configure(conn)
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() != "wal":
                raise StoreOpenError(f"cannot use WAL journal mode on {str(self.path)!r} ({mode})")
        except BaseException:
            conn.close()
            raise
        return conn

    async def reset(self) -> None:
        """Drop the connection after a failure; the next call opens a fresh one."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._drop)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    async def close(self) -> None:
        await self.reset()
        self._executor.shutdown(wait=True)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION, one transaction per migration."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StoreOpenError(
            f"database {conn_path(conn)!r} has schema version {version}, newer than this "
            f"release supports ({SCHEMA_VERSION}); upgrade chat-service"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        # executescript commits first, so each migration brings its own transaction:
        # a crash mid-migration leaves the previous version intact.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[number - 1]}\n"
                f"PRAGMA user_version={number};\nCOMMIT;"
            )
        except sqlite3.Error:
            # The script stopped inside its transaction: end it, so nothing half-done stays.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("database migrated", extra={"schema_version": number})


def conn_path(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row else "?"


def erase(conn: sqlite3.Connection, key: str) -> bool:
    """Delete a conversation and its exchanges in one transaction, then empty the log
    (:func:`truncate_log`). False if there was no such conversation."""
    with immediate_transaction(conn):
        conn.execute("DELETE FROM exchanges WHERE conversation_id = ?", (key,))
        deleted = conn.execute("DELETE FROM conversations WHERE key = ?", (key,)).rowcount > 0
        if deleted:
            conn.execute(ERASE_FROM_SEARCH_INDEX)
    if deleted:
        truncate_log(conn)
    return deleted


def truncate_log(conn: sqlite3.Connection) -> None:
    """After a transaction that erased text: copy the WAL into the database and truncate
    it, so no copy of the erased pages stays in the log (with ``secure_delete`` the
    database file's freed space is already zeroed). The erasure is committed whatever
    happens here: a failure is logged, not raised."""
    try:
        (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        busy, reason = 1, str(exc)
    else:
        reason = "a reader held an old snapshot past the busy timeout"
    if busy:
        # The log is truncated by the next checkpoint that completes (SQLite's own, at
        # the latest); until then it may hold the erased pages.
        log.warning("the log could not be truncated after an erasure: %s", reason)


# Takes erased exchanges' words out of the search index's files, inside the erasing
# transaction. The triggers (migrations.py) already left them out of every search, but
# FTS5 records a deletion as a new entry beside the old one, which keeps the deleted words
# in its pages until a merge rewrites them ('secure-delete' would avoid that; it needs
# SQLite 3.42, and this one is 3.40). 'optimize' merges the whole index into one segment
# without them; ``secure_delete`` zeroes the pages the old segments leave free. It rewrites
# the whole index: bench/README.md measures what that costs a deletion.
ERASE_FROM_SEARCH_INDEX = "INSERT INTO exchanges_search (exchanges_search) VALUES ('optimize')"


def transaction(
    conn: sqlite3.Connection,
    statements: Sequence[tuple[str, Sequence[Any]]],
    inserts: tuple[Sequence[str], Sequence[dict[str, Any]]] | None,
    read_back: str,
) -> list[Any]:
    """One write transaction: optional batch insert (each statement run for every row of
    parameters, in order; the rows the last one inserted read back oldest first), then
    further statements, then COMMIT; rolled back on any error. Returns the rows read back
    or, without inserts, those the last statement returned (``RETURNING``)."""
    rows: list[Any] = []
    returned: list[Any] = []
    with immediate_transaction(conn):
        if inserts is not None and inserts[1]:
            sqls, params = inserts
            for sql in sqls:
                conn.executemany(sql, params)
            # We hold the write lock and ids only grow (AUTOINCREMENT), so the newest
            # len(params) rows are exactly this batch, in insertion order once reversed.
            rows = conn.execute(read_back, (len(params),)).fetchall()
            rows.reverse()
        for sql, args in statements:
            returned = conn.execute(sql, args).fetchall()
    return rows if inserts is not None else returned


@contextlib.contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock at once, not at the first write), COMMIT when the
    block ends, ROLLBACK on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
