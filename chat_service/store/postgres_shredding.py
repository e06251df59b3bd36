"""Taking erased conversations out of PostgreSQL's table files.

Deleting a conversation deletes its key (sealing.py), but the deleted row stays in the key
table's file until its page is rewritten: VACUUM marks the space free without overwriting it.
So after deletions the key table is rewritten (``VACUUM FULL``: a new file holding only the
live rows; the old one is truncated, and removed at the next checkpoint).

The rewrite holds every read and write of the store while it runs: about 35 ms per 10,000
conversations (bench/README.md), 4.5 s per million. So it runs at most once per ``interval_s``,
whichever replica runs it: deletions count up ``chat_shredding.keys_requested`` in their own
transaction; every replica looks every quarter interval, and the first to find a request after
an interval without a rewrite claims the turn, rewrites and records the count it covered. A
deleted key is therefore out of the table's files about ``interval_s`` after its deletion at
the latest. The rewrite waits at most ``lock_timeout_ms`` for its lock, rather than queue the
traffic behind a long transaction, and gives its turn back when it fails.

Once, after the migration that sealed an existing database's text (postgres_migrations.py),
the message and conversation tables are rewritten too: the columns it dropped keep their
bytes in every row until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from asyncpg import Connection
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

AnyConnection = Connection | PoolConnectionProxy
# pg_advisory_lock key of the rewrite after the sealing migration: "shrd" in ASCII.
PLAINTEXT_REWRITE_LOCK = 0x73687264

INTERVAL_S = 60.0
LOCK_TIMEOUT_MS = 500

# What one more deletion asks for, in the deletion's own transaction.
REQUEST = "UPDATE chat_shredding SET keys_requested = keys_requested + 1"
# The turn to rewrite: a request is waiting and no replica rewrote in the last interval. The
# row's lock makes replicas that look at once take turns.
_CLAIM = """
UPDATE chat_shredding SET last_rewrite_at = now()
WHERE keys_requested > keys_shredded AND last_rewrite_at <= now() - make_interval(secs => $1)
RETURNING keys_requested
"""
_RELEASE = "UPDATE chat_shredding SET last_rewrite_at = '-infinity'"
_DONE = "UPDATE chat_shredding SET keys_shredded = GREATEST(keys_shredded, $1)"


class KeyShredder:
    """Rewrites the key table after deletions; one per store, started with it."""

    def __init__(
        self,
        connection: Callable[[], AbstractAsyncContextManager[AnyConnection]],
        *,
        interval_s: float = INTERVAL_S,
        lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    ) -> None:
        self._connection = connection
        self.interval_s = interval_s
        self.lock_timeout_ms = lock_timeout_ms
        self._task: asyncio.Task[None] | None = None
        self.rewrites = 0  # for tests and the curious: rewrites done by this replica

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chat-store-key-shredder")

    async def shred(self, *, now: bool = False) -> bool:
        """Rewrite the key table if a deletion asked for it and no replica rewrote it in the
        last interval (``now``: whenever it did); whether this call rewrote it. Raises the
        driver's error when the table cannot be locked or rewritten."""
        async with self._connection() as conn:
            requested = await conn.fetchval(_CLAIM, 0.0 if now else self.interval_s)
            if requested is None:
                return False
            started = time.perf_counter()
            try:
                await conn.execute(f"SET lock_timeout = {int(self.lock_timeout_ms)}")
                try:
                    await conn.execute("VACUUM FULL conversation_keys")
                finally:
                    await conn.execute("RESET lock_timeout")
            except BaseException:
                # The next look may try again at once; if this fails too (the connection
                # is lost), the claim lapses after an interval.
                with contextlib.suppress(Exception):
                    await conn.execute(_RELEASE)
                raise
            await conn.execute(_DONE, requested)
        self.rewrites += 1
        log.info(
            "deleted conversations' keys shredded",
            extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)},
        )
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s / 4)
            try:
                await self.shred()
            except Exception as exc:  # the request stays: nothing is lost by trying later
                log.warning(
                    "deleted conversations' keys not shredded yet; retrying",
                    extra={"error_type": type(exc).__name__, "retry_in_s": self.interval_s / 4},
                )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def rewrite_unsealed_tables(conn: AnyConnection) -> bool:
    """After the sealing migration of a database that held text: rewrite the tables whose
    dropped text columns still hold it, once, whichever replica gets there first. Whether
    this call rewrote them."""
    if not await conn.fetchval("SELECT plaintext_left FROM chat_shredding"):
        return False
    await conn.execute("SELECT pg_advisory_lock($1)", PLAINTEXT_REWRITE_LOCK)
    try:
        if not await conn.fetchval("SELECT plaintext_left FROM chat_shredding"):
            return False  # another replica did it while this one waited
        started = time.perf_counter()
        await conn.execute("VACUUM FULL exchanges")
        await conn.execute("VACUUM FULL conversations")
        await conn.execute("UPDATE chat_shredding SET plaintext_left = false")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", PLAINTEXT_REWRITE_LOCK)
    log.info(
        "tables rewritten without the text of the previous schema",
        extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)},
    )
    return True
