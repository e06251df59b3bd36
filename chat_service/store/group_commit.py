"""Group commit, for any backend: many requests' writes, one transaction, one fsync.

``append`` does not write by itself: it queues the new exchange and waits. One task drains
the queue into batches (at most ``max_batch``) and hands each to the backend's transaction
function, which inserts the batch, commits durably and returns the stored exchanges in the
batch's order. Only then is each request answered, so an answer means "on disk"; when the
transaction fails, every request of the batch fails with its StoreError and the task goes
on with the next batch (the backend has reset its connection by then).

Readiness probes ride along with the next batch (or form one of their own), so ``/readyz``
proves that a real commit goes through, behind the same queue the requests use.

Telemetry: a request's span gets an event when its write is queued and another when it is
stored (with the exchange's id); the transaction is a database span of its own
trace (one transaction serves many requests, so it can be no one's child) linked to every
request it served, with the batch size when it is more than one row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, Tracer

from chat_service.chat.domain import (
    NO_ORIGIN,
    ConversationRef,
    Exchange,
    ReplyOrigin,
    StoreError,
)
from chat_service.store.base import CommitListener, StoreObserver
from chat_service.timestamps import utc_now

log = logging.getLogger(__name__)

MAX_BATCH = 512
QUEUED_EVENT = "queued for group commit"
STORED_EVENT = "stored by group commit"
TABLE = "exchanges"


@dataclass(frozen=True, slots=True)
class NewExchange:
    """An exchange to store; the backend gives it its id and turn."""

    conversation: ConversationRef
    user: str
    ai: str
    created_at: str
    trace_id: str | None = None
    origin: ReplyOrigin = NO_ORIGIN
    # Stored in place of the exchange at this turn: it and every later one are erased in the
    # same transaction (ExchangeLog.append).
    replaces_turn: int | None = None

    def stored(self, exchange_id: int, turn: int, generation: int) -> Exchange:
        """This exchange as stored, under what the backend gave it."""
        return Exchange(
            id=exchange_id,
            conversation=self.conversation,
            turn=turn,
            user=self.user,
            ai=self.ai,
            created_at=self.created_at,
            trace_id=self.trace_id,
            origin=self.origin,
            generation=generation,
        )


class Transaction(Protocol):
    """The backend's part: insert ``writes`` (and rewrite the readiness row when ``probe``)
    in one durable transaction; return the stored exchanges in the order of ``writes``.
    Raises StoreError, with the driver's exception as its ``__cause__``."""

    async def __call__(self, writes: Sequence[NewExchange], *, probe: bool) -> list[Exchange]: ...


@dataclass(slots=True)
class WriteStats:
    """Counters of the commit task; tests and the benchmark read them."""

    commits: int = 0
    exchanges: int = 0
    failed_batches: int = 0
    largest_batch: int = 0


@dataclass(slots=True)
class _PendingWrite:
    new: NewExchange
    future: asyncio.Future[Exchange] = field(repr=False)
    # The request's span: the commit span links to every request it committed for.
    requester: SpanContext | None = None


@dataclass(slots=True)
class _Probe:
    future: asyncio.Future[None] = field(repr=False)


_Queued = _PendingWrite | _Probe


class GroupCommit:
    def __init__(
        self,
        transaction: Transaction,
        *,
        tracer: Tracer,
        observer: StoreObserver,
        span_attributes: Mapping[str, str | int],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._transaction = transaction
        self._tracer = tracer
        self._observer = observer
        self._span_attributes = {**span_attributes, "db.collection.name": TABLE}
        self._max_batch = max_batch
        self._listeners: list[CommitListener] = []
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = WriteStats()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="chat-store-group-commit")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    def add_listener(self, listener: CommitListener) -> None:
        """``listener(exchanges)`` after each commit, before its requests are answered."""
        self._listeners.append(listener)

    async def append(
        self,
        conversation: ConversationRef,
        user: str,
        ai: str,
        trace_id: str | None = None,
        origin: ReplyOrigin = NO_ORIGIN,
        *,
        replaces_turn: int | None = None,
    ) -> Exchange:
        future: asyncio.Future[Exchange] = asyncio.get_running_loop().create_future()
        new = NewExchange(conversation, user, ai, utc_now(), trace_id, origin, replaces_turn)
        current = trace.get_current_span()
        if not current.is_recording():
            self._enqueue(_PendingWrite(new, future))
            return await future  # an unrecorded trace: no child span either (parent-based)
        self._enqueue(_PendingWrite(new, future, current.get_span_context()))
        # Two events on the request's span rather than a span of its own (one span fewer per
        # request, about 46 us of the SDK's time each: bench/README.md): the wait is the time
        # between them; the database work is the commit span, linked to this one.
        current.add_event(QUEUED_EVENT)
        exchange = await future
        current.add_event(STORED_EVENT, {"chat_service.exchange.id": exchange.id})
        return exchange

    async def probe(self) -> None:
        """Return once a commit went through; raise StoreError if it failed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(_Probe(future))
        await future

    def _enqueue(self, item: _Queued) -> None:
        if not self.running:
            raise StoreError("the store is closed")
        self._queue.put_nowait(item)

    async def close(self) -> None:
        """Commit everything already queued, then stop."""
        if self._closing:
            return
        self._closing = True
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
            await self._task

    async def _loop(self) -> None:
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
            except Exception as exc:  # the task must outlive any single batch
                log.exception("unexpected error in the group commit task")
                _fail(batch, StoreError(f"commit failed: {exc}"))
            if stop:
                return

    async def _commit(self, batch: list[_Queued]) -> None:
        writes = [item for item in batch if isinstance(item, _PendingWrite)]
        probe = len(writes) < len(batch)
        if not writes:
            # Readiness probes alone: not traced, like the /readyz requests behind them.
            try:
                await self._transaction([], probe=True)
            except StoreError as error:
                _fail(batch, error)
                return
            _resolve(batch, [])
            return
        links = [Link(item.requester) for item in writes if item.requester is not None]
        # One row is an INSERT; more are a batch (the conventions: batch size is never 1).
        operation = "INSERT" if len(writes) == 1 else "BATCH INSERT"
        attributes: dict[str, str | int] = {**self._span_attributes, "db.operation.name": operation}
        if len(writes) > 1:
            attributes["db.operation.batch.size"] = len(writes)
        with self._tracer.start_as_current_span(
            f"{operation} {TABLE}",
            context=otel_context.Context(),
            kind=SpanKind.CLIENT,
            links=links,
            attributes=attributes,
        ) as span:
            started = time.perf_counter()
            try:
                exchanges = await self._transaction([item.new for item in writes], probe=probe)
            except StoreError as error:
                span.set_status(Status(StatusCode.ERROR, str(error)))
                span.set_attribute("error.type", type(error.__cause__).__qualname__)
                self.stats.failed_batches += 1
                self._observer.store_commit_failed(len(writes))
                _fail(batch, error)
                return
            self._observer.store_committed(len(writes), time.perf_counter() - started)
        self.stats.commits += 1
        self.stats.exchanges += len(writes)
        self.stats.largest_batch = max(self.stats.largest_batch, len(writes))
        for listener in self._listeners:
            try:
                listener(exchanges)
            except Exception:  # committed is committed: the requests still get their answer
                log.exception("a commit listener failed")
        _resolve(batch, exchanges)


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


class GroupCommitted:
    """The write side every store shares: appends go through the store's group commit."""

    _commits: GroupCommit

    @property
    def stats(self) -> WriteStats:
        return self._commits.stats

    async def append(
        self,
        conversation: ConversationRef,
        user: str,
        ai: str,
        trace_id: str | None = None,
        origin: ReplyOrigin = NO_ORIGIN,
        *,
        replaces_turn: int | None = None,
    ) -> Exchange:
        return await self._commits.append(
            conversation, user, ai, trace_id, origin, replaces_turn=replaces_turn
        )

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._commits.add_listener(listener)
