"""SQLite store on aiosqlite: WAL, ``synchronous=FULL``, one writer, group commit.

Durability: an exchange is acknowledged only after the transaction holding it has been
committed with ``synchronous=FULL``, i.e. fsynced. To keep that affordable under load,
``append`` does not write by itself: it queues the exchange for a single writer task,
which drains everything queued into one transaction (group commit), so a burst of N
concurrent requests costs one fsync rather than N.

Reads go through a separate connection (WAL lets it read while the writer writes), so
a long history read never waits behind a commit and vice versa.

Faults (disk full, read-only file, corruption) fail the requests they hit with StoreError
and never stop the service: the connection that failed is dropped and reopened on next
use, so the store recovers by itself once the fault is gone. ``ping`` (``/readyz``) proves
both paths: a read, and a real write committed through the writer queue; after a read
fault it also runs ``PRAGMA quick_check``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TracerProvider

from chat_service.store.base import (
    Exchange,
    HistoryPage,
    NullObserver,
    StoreError,
    StoreObserver,
    StoreOpenError,
)
from chat_service.store.recent import RecentCache
from chat_service.store.writer import CONNECTION_PRAGMAS, WriterThread, migrate, transaction
from chat_service.timestamps import utc_now

log = logging.getLogger(__name__)

MAX_BATCH = 512
MAX_CACHED_DOCUMENTS = 8
COMMIT_WAIT_SPAN = "wait for group commit"

_INSERT = """
INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, created_at, trace_id)
VALUES (
    :conversation_id,
    COALESCE(
        (SELECT turn FROM exchanges WHERE conversation_id = :conversation_id
         ORDER BY id DESC LIMIT 1),
        0
    ) + 1,
    :user, :ai, :created_at, :trace_id
)
"""
_PROBE = "UPDATE store_probe SET checked_at = ? WHERE id = 1"
_COLUMNS = "id, conversation_id, turn, user_message, ai_response, created_at, trace_id"
_TABLE = "exchanges"


@dataclass(slots=True)
class WriteStats:
    """Counters of the writer task; tests and metrics read them."""

    commits: int = 0
    exchanges: int = 0
    failed_batches: int = 0
    largest_batch: int = 0


@dataclass(slots=True)
class _PendingWrite:
    params: dict[str, Any]
    future: asyncio.Future[Exchange] = field(repr=False)
    # The request's span: the commit span links to every request it committed for.
    requester: SpanContext | None = None


@dataclass(slots=True)
class _Probe:
    """A write that proves the database takes commits; rides along with the next batch."""

    future: asyncio.Future[None] = field(repr=False)


_Queued = _PendingWrite | _Probe


class SQLiteChatStore:
    """A :class:`~chat_service.store.base.ChatStore` on one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = MAX_BATCH,
        observer: StoreObserver | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.path = path
        # The provider's own tracer (the process's unless one is given), taken when the store
        # opens, after tracing is set up: the module-level proxy would add a layer to every span.
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._observer: StoreObserver = observer or NullObserver()
        self._span_attributes = {
            "db.system.name": "sqlite",
            "db.namespace": path.name,
            "db.collection.name": _TABLE,
        }
        self.stats = WriteStats()
        self._max_batch = max_batch
        self._writer = WriterThread(path)
        self._reader: aiosqlite.Connection | None = None
        self._reader_lock = asyncio.Lock()
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False
        # Why the last read failed; cleared once an integrity check passes again.
        self._read_fault: str | None = None
        self._recent = RecentCache()
        # Whole-history documents by conversation, with the commit generation they are of.
        self._documents: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._building: dict[str, tuple[int, asyncio.Future[bytes]]] = {}

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        max_batch: int = MAX_BATCH,
        observer: StoreObserver | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> SQLiteChatStore:
        """Open (creating if needed) and migrate the database; raise StoreOpenError if not."""
        store = cls(path, max_batch=max_batch, observer=observer, tracer_provider=tracer_provider)
        try:
            # The writer (plain sqlite3) opens first: an unopenable path fails there, before
            # aiosqlite, whose failed connect leaves a thread calling back into the loop.
            await store._writer.run(migrate)
            store._reader = await store._open_reader()
        except (sqlite3.Error, OSError, ValueError, StoreError) as exc:
            await store._close_connections()
            if isinstance(exc, StoreOpenError):
                raise
            raise StoreOpenError(f"cannot open database {str(path)!r}: {exc}") from exc
        store._writer_task = asyncio.create_task(store._write_loop(), name="chat-store-writer")
        return store

    async def _open_reader(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await self._configure(conn)
            await conn.execute("PRAGMA query_only=ON")
        except BaseException:
            await _close_quietly(conn)
            raise
        return conn

    @staticmethod
    async def _configure(conn: aiosqlite.Connection) -> None:
        for pragma in CONNECTION_PRAGMAS:
            await conn.execute(pragma)

    # -- writes ------------------------------------------------------------------------

    def _enqueue(self, item: _Queued) -> None:
        if self._closing or self._writer_task is None or self._writer_task.done():
            raise StoreError("the store is closed")
        self._queue.put_nowait(item)

    async def append(
        self, conversation_id: str, user: str, ai: str, trace_id: str | None = None
    ) -> Exchange:
        future: asyncio.Future[Exchange] = asyncio.get_running_loop().create_future()
        params = {
            "conversation_id": conversation_id,
            "user": user,
            "ai": ai,
            "created_at": utc_now(),
            "trace_id": trace_id,
        }
        current = trace.get_current_span()
        if not current.is_recording():
            self._enqueue(_PendingWrite(params, future))
            return await future  # an unrecorded trace: no child span either (parent-based)
        self._enqueue(_PendingWrite(params, future, current.get_span_context()))
        # Not a database span: the request only waits here; the database work is the commit
        # span (its own trace, linked to this request), so span-derived DB metrics count it once.
        with self._tracer.start_as_current_span(COMMIT_WAIT_SPAN, kind=SpanKind.INTERNAL):
            return await future

    async def _probe_write(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(_Probe(future))
        await future

    async def _write_loop(self) -> None:
        """Commit whatever is queued, one transaction per batch, until the sentinel."""
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                await self._commit(batch)
            except Exception as exc:  # the writer must outlive any single batch
                log.exception("unexpected error in the writer task")
                _fail(batch, StoreError(f"commit failed: {exc}"))
            if stop:
                return

    async def _commit(self, batch: list[_Queued]) -> None:
        writes = [item for item in batch if isinstance(item, _PendingWrite)]
        if not writes:
            # Readiness probes alone: not traced, like the /readyz requests behind them.
            try:
                await self._commit_batch([], probe=True)
            except StoreError as error:
                _fail(batch, error)
                return
            _resolve(batch, [])
            return
        links = [Link(item.requester) for item in writes if item.requester is not None]
        # One row is an INSERT; more are a batch (the conventions: batch size is never 1).
        operation = "INSERT" if len(writes) == 1 else "BATCH INSERT"
        attributes: dict[str, str | int] = {
            **self._span_attributes,
            "db.operation.name": operation,
        }
        if len(writes) > 1:
            attributes["db.operation.batch.size"] = len(writes)
        # A root span of its own trace (empty parent context), linked to every request it
        # serves: one transaction belongs to many requests, so it can be no one's child.
        with self._tracer.start_as_current_span(
            f"{operation} {_TABLE}",
            context=otel_context.Context(),
            kind=SpanKind.CLIENT,
            links=links,
            attributes=attributes,
        ) as span:
            started = time.perf_counter()
            try:
                rows = await self._commit_batch(writes, probe=len(writes) < len(batch))
            except StoreError as error:
                span.set_status(Status(StatusCode.ERROR, str(error)))
                span.set_attribute("error.type", type(error.__cause__).__qualname__)
                self.stats.failed_batches += 1
                self._observer.store_commit_failed(len(writes))
                _fail(batch, error)
                return
            exchanges = [_exchange(row) for row in rows]
            if writes:
                self._recent.committed(exchanges)
                self._observer.store_committed(len(writes), time.perf_counter() - started)
                self.stats.commits += 1
                self.stats.exchanges += len(writes)
                self.stats.largest_batch = max(self.stats.largest_batch, len(writes))
        _resolve(batch, exchanges)

    async def _commit_batch(self, writes: list[_PendingWrite], *, probe: bool) -> list[Any]:
        """One transaction for the batch; returns the inserted rows in the batch's order."""
        statements = [(_PROBE, (utc_now(),))] if probe else []
        inserts = (_INSERT, [item.params for item in writes])
        read_back = f"SELECT {_COLUMNS} FROM exchanges ORDER BY id DESC LIMIT ?"
        try:
            return await self._writer.run(
                functools.partial(
                    transaction, statements=statements, inserts=inserts, read_back=read_back
                )
            )
        except (sqlite3.Error, OSError, StoreError) as exc:
            # StoreError: reopening the writer refused (e.g. WAL mode could not be set).
            log.error("group commit failed: %s", exc, extra={"batch_size": len(writes)})
            # Drop the connection: the next batch reopens it, with a clean state and cache,
            # which is how the store recovers once the disk or file is healthy again.
            await self._writer.reset()
            error = StoreError(f"commit failed: {exc}")
            error.__cause__ = exc
            raise error from exc

    # -- reads -------------------------------------------------------------------------

    async def history(
        self, conversation_id: str, *, limit: int | None = None, before: int | None = None
    ) -> HistoryPage:
        if limit is not None and before is None and limit <= self._recent.depth:
            return await self._newest(conversation_id, limit)
        where = "conversation_id = ?"
        params: list[Any] = [conversation_id]
        if before is not None:
            where += " AND id < ?"
            params.append(before)
        if limit is None:
            rows = await self._select(
                f"SELECT {_COLUMNS} FROM exchanges WHERE {where} ORDER BY id", params
            )
            return HistoryPage([_exchange(row) for row in rows], has_older=False)
        # One row more than asked tells whether an older page exists.
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM exchanges WHERE {where} ORDER BY id DESC LIMIT ?",
            [*params, limit + 1],
        )
        page = [_exchange(row) for row in rows[:limit]]
        page.reverse()
        return HistoryPage(page, has_older=len(rows) > limit)

    async def _newest(self, conversation_id: str, limit: int) -> HistoryPage:
        """The newest page, from memory when the conversation is held there (see recent.py)."""
        cached = self._recent.page(conversation_id, limit)
        if cached is not None:
            return cached
        depth = self._recent.depth
        generation = self._recent.generation
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM exchanges WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
            [conversation_id, depth + 1],
        )
        newest = [_exchange(row) for row in rows[:depth]]
        newest.reverse()
        self._recent.fill(
            conversation_id, newest, has_older=len(rows) > depth, generation=generation
        )
        page = newest[-limit:] if limit < len(newest) else newest
        return HistoryPage(page, has_older=len(rows) > limit)

    async def history_json(self, conversation_id: str, *, before: int | None = None) -> bytes:
        """Every exchange (older than ``before``) as a JSON array of ``{"user", "AI"}``
        objects, oldest first, UTF-8, serialised by SQLite itself: a long history never
        becomes thousands of Python objects (see bench/README.md for the figures).

        The whole-conversation document is kept until the next commit, and concurrent
        requests for it share one build, so N readers of a long history cost one query and
        one buffer, not N of each.
        """
        if before is not None:
            return await self._build_history_json(conversation_id, before)
        generation = self._recent.generation
        cached = self._documents.get(conversation_id)
        if cached is not None and cached[0] == generation:
            self._documents.move_to_end(conversation_id)
            return cached[1]
        building = self._building.get(conversation_id)
        if building is None or building[0] != generation:
            future = asyncio.ensure_future(self._build_history_json(conversation_id, None))
            building = (generation, future)
            self._building[conversation_id] = building
            future.add_done_callback(
                lambda done: self._finish_document(conversation_id, generation, done)
            )
        return await asyncio.shield(building[1])

    def _finish_document(
        self, conversation_id: str, generation: int, done: asyncio.Future[bytes]
    ) -> None:
        if self._building.get(conversation_id, (None,))[0] == generation:
            del self._building[conversation_id]
        if done.cancelled() or done.exception() is not None:
            return
        if generation == self._recent.generation:
            self._documents[conversation_id] = (generation, done.result())
            while len(self._documents) > MAX_CACHED_DOCUMENTS:
                self._documents.popitem(last=False)

    async def _build_history_json(self, conversation_id: str, before: int | None) -> bytes:
        where = "conversation_id = ?"
        params: list[Any] = [conversation_id]
        if before is not None:
            where += " AND id < ?"
            params.append(before)
        # The subquery's ORDER BY fixes the order json_group_array sees the rows in.
        rows = await self._select(
            "SELECT json_group_array(json_object('user', user_message, 'AI', ai_response)) "
            f"FROM (SELECT user_message, ai_response FROM exchanges WHERE {where} ORDER BY id)",
            params,
        )
        document: str = rows[0][0]
        return document.encode()

    async def recent(self, conversation_id: str, count: int) -> Sequence[Exchange]:
        if count <= 0:
            return []
        return (await self.history(conversation_id, limit=count)).exchanges

    async def ping(self) -> None:
        """Raise StoreError unless the store can both read and commit right now."""
        if self._writer_task is None or self._writer_task.done():
            raise StoreError("the writer task is not running")
        if self._read_fault is None:
            await self._read("SELECT 1", [])
        else:
            result = await self._read("PRAGMA quick_check", [])
            if [tuple(row) for row in result] != [("ok",)]:
                raise StoreError(f"integrity check failed: {result[0][0]}")
            log.info("store recovered", extra={"fault": self._read_fault})
            self._read_fault = None
        await self._probe_write()

    async def _select(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """A traced and timed read of the exchanges table."""
        if not trace.get_current_span().is_recording():
            started = time.perf_counter()
            rows = await self._read(sql, params)
            self._observer.store_read("SELECT", time.perf_counter() - started)
            return rows
        with self._tracer.start_as_current_span(
            f"SELECT {_TABLE}",
            kind=SpanKind.CLIENT,
            attributes={**self._span_attributes, "db.operation.name": "SELECT"},
        ) as span:
            started = time.perf_counter()
            try:
                rows = await self._read(sql, params)
            except StoreError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                span.set_attribute("error.type", type(exc.__cause__).__qualname__)
                raise
            self._observer.store_read("SELECT", time.perf_counter() - started)
            span.set_attribute("db.response.returned_rows", len(rows))
            return rows

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._closing:
            raise StoreError("the store is closed")
        try:
            conn = await self._reader_connection()
            return list(await conn.execute_fetchall(sql, params))
        except (sqlite3.Error, OSError, ValueError) as exc:
            # ValueError: aiosqlite's "connection closed", when a fault dropped it meanwhile.
            self._read_fault = str(exc)
            self._recent.clear()
            self._documents.clear()
            await self._drop_reader()
            raise StoreError(f"read failed: {exc}") from exc

    async def _reader_connection(self) -> aiosqlite.Connection:
        async with self._reader_lock:
            if self._reader is None:
                self._reader = await self._open_reader()
                log.info("reopened the reader connection")
            return self._reader

    async def _drop_reader(self) -> None:
        async with self._reader_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            await _close_quietly(reader)

    # -- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        """Commit everything already queued, then close both connections."""
        if self._closing:
            return
        self._closing = True
        if self._writer_task is not None and not self._writer_task.done():
            self._queue.put_nowait(None)
            await self._writer_task
        await self._close_connections()

    async def _close_connections(self) -> None:
        if self._reader is not None:
            await _close_quietly(self._reader)
            self._reader = None
        await self._writer.close()


async def _close_quietly(conn: aiosqlite.Connection) -> None:
    with contextlib.suppress(sqlite3.Error, ValueError, OSError):
        await conn.close()


def _resolve(batch: list[_Queued], exchanges: list[Exchange]) -> None:
    """Answer every request of a committed batch; ``exchanges`` are its inserts, in order."""
    inserted = iter(exchanges)
    for item in batch:
        if isinstance(item, _PendingWrite):
            exchange = next(inserted)
            if not item.future.done():
                item.future.set_result(exchange)
        elif not item.future.done():
            item.future.set_result(None)


def _fail(batch: list[_Queued], error: StoreError) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)


def _exchange(row: Sequence[Any]) -> Exchange:
    return Exchange(
        id=row[0],
        conversation_id=row[1],
        turn=row[2],
        user=row[3],
        ai=row[4],
        created_at=row[5],
        trace_id=row[6],
    )
