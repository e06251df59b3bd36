"""Live updates: every exchange committed to a conversation, by any replica, for whoever
follows it (``GET /chat/events``).

The store says which conversation changed: its own commits on SQLite, LISTEN/NOTIFY from
every replica on PostgreSQL. For a conversation someone follows, the hub reads the
exchanges after the last one it published, in order, and offers each to every follower.
A follower that resumes (``Last-Event-ID``) first reads what it missed, then takes the
live ones, skipping any it already had: everything goes by the conversation's turns, which
only grow (they are handed out one commit at a time, and a commit is visible before the
next turn is), so nothing is missed and nothing comes twice. Turns, not the store's global
ids: a follower's positions say nothing of other conversations' traffic (issue 23).

A conversation may be cut at a turn (regenerate, edit): the exchanges from there on are
erased, and what replaces them is stored under a higher generation (domain.Exchange). A
follower knows the highest generation it was sent; an exchange of a higher one comes after
a cut, so the follower is first sent a :class:`Cut` at that exchange's turn (its client drops
what it holds from there), then the exchange. The hub and resuming followers read with the
generation they know (store.ExchangeLog.exchanges_after), so a cut at a turn they had passed
is read from where it began.

Turns start again at 1 when a deleted conversation's id is written to again. So a deletion
ends its followers and retires the conversation's topic (the next follower starts a fresh
one), and a follower resuming after a turn the conversation has not reached (a position
from before a deletion) gets the conversation from its beginning: all of it is new to it.
A deletion whose notice was lost (PostgreSQL's listening connection was reconnecting) is
found by the catch-up that follows the reconnection: the conversation stands short of the
turn published to its followers, with no cut to explain it, and they are ended as they
would have been.

Bounded: a follower holds at most ``QUEUE_SIZE`` exchanges it has not sent yet. One that
falls that far behind is dropped: it gets what it holds, then its stream ends, and the
browser's EventSource reconnects with the last id it saw and catches up. A slow reader
never holds up a commit or another reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chat_service.chat.domain import ConversationRef, Exchange, Position, StoreError
from chat_service.store import ChangeFeed


class ExchangesAfter(Protocol):
    """What of the exchange log (store.ExchangeLog) live updates read: where a conversation
    stands, and what is new in it."""

    async def position(self, conversation: ConversationRef) -> Position: ...

    async def exchanges_after(
        self,
        conversation: ConversationRef,
        after_turn: int,
        *,
        limit: int,
        generation: int = 0,
    ) -> Sequence[Exchange]: ...


@dataclass(frozen=True, slots=True)
class Cut:
    """The conversation was cut: every exchange from ``turn`` on is gone (those that replace
    them follow)."""

    turn: int


# What a follower is sent.
LiveChange = Exchange | Cut


log = logging.getLogger(__name__)

QUEUE_SIZE = 256
READ_PAGE = 100


class Follower:
    """One subscription: the exchanges to send, in order, each once.

    Most followers are idle most of the time, and thousands may be open (bench/README.md,
    scenario h): an idle one holds a future to wake it and nothing else. The exchanges
    waiting to be sent get a deque when there are some, and lose it when they are sent."""

    __slots__ = ("_pending", "_waiter", "conversation", "dropped", "generation", "sent")

    def __init__(self, conversation: ConversationRef, after: Position) -> None:
        self.conversation = conversation
        self.sent = after.turn  # the turn of the last exchange sent (or to resume after)
        self.generation = after.generation  # the highest generation it was sent
        # None ends the stream (the service is stopping, or the conversation was deleted).
        self._pending: deque[Exchange | None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = False

    def offer(self, item: Exchange | None) -> None:
        pending = self._pending
        if pending is None:
            pending = self._pending = deque()
        elif len(pending) >= QUEUE_SIZE:
            self.dropped = True  # what it holds still goes out; then its stream ends
            return
        pending.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> Exchange | None:
        """The next exchange, or None once the stream should end."""
        while not self._pending:
            if self.dropped:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._pending.popleft()
        if not self._pending:
            self._pending = None
        return item


@dataclass(eq=False)
class _Topic:
    """A followed conversation: its followers, and the turn of the last exchange published
    to them."""

    followers: set[Follower] = field(default_factory=set)
    published: Position | None = None  # read from the store when the first follower arrives
    removed: bool = False  # the conversation was deleted: this topic is retired
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    joining: int = 0  # follow() calls between finding the topic and joining it
    refreshing: bool = False
    again: bool = False
    # Removals may have been missed (the change feed reconnected): see whether it still
    # stands where it was published before reading on.
    recheck: bool = False


class LiveUpdates:
    def __init__(self, exchanges: ExchangesAfter, feed: ChangeFeed) -> None:
        self._log = exchanges
        self._topics: dict[ConversationRef, _Topic] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        feed.add_change_listener(self.changed)
        feed.add_removal_listener(self.removed)

    @property
    def followers(self) -> int:
        return sum(len(topic.followers) for topic in self._topics.values())

    @property
    def refreshes(self) -> int:
        """Refreshes under way (each holds its task until it ends, and no longer)."""
        return len(self._tasks)

    @contextlib.asynccontextmanager
    async def follow(
        self, conversation: ConversationRef, after: Position | None = None
    ) -> AsyncIterator[AsyncIterator[LiveChange]]:
        """Follow ``conversation``: the exchanges committed after this call, or, when
        resuming, what a client at ``after`` lacks (cuts included). Raises StoreError before
        anything is yielded."""
        if self._closing:
            raise StoreError("the service is stopping")
        # A turn the conversation has not reached, and no cut since to explain it, is from
        # before the conversation was deleted (no client is told of a turn before its commit
        # is visible): start it over.
        if after is not None and after.turn and await self._deleted_since(conversation, after):
            after = Position(0)
        topic = self._topics.setdefault(conversation, _Topic())
        topic.joining += 1
        try:
            async with topic.lock:
                if topic.published is None:
                    topic.published = await self._log.position(conversation)
                start = topic.published if after is None else after
                follower = Follower(conversation, start)
                topic.followers.add(follower)
                if topic.removed:  # deleted while this joined: end it, as its peers were
                    follower.offer(None)
        finally:
            topic.joining -= 1
            self._forget(conversation, topic)
        try:
            yield self._changes(follower, resume=after is not None)
        finally:
            topic.followers.discard(follower)
            self._forget(conversation, topic)

    async def _changes(self, follower: Follower, *, resume: bool) -> AsyncIterator[LiveChange]:
        if resume:  # what was missed, read page by page; live ones queue up meanwhile
            while True:
                missed = await self._log.exchanges_after(
                    follower.conversation,
                    follower.sent,
                    limit=READ_PAGE,
                    generation=follower.generation,
                )
                for exchange in missed:
                    for change in _news(follower, exchange):
                        yield change
                if len(missed) < READ_PAGE:
                    break
        while (live := await follower.next()) is not None:
            for change in _news(follower, live):
                yield change

    def changed(self, conversation: ConversationRef | None) -> None:
        """The store's change listener: ``None`` means any conversation may have changed."""
        if conversation is None:
            topics = list(self._topics.items())
        elif (topic := self._topics.get(conversation)) is not None:
            topics = [(conversation, topic)]
        else:
            return  # nobody follows it here
        for name, followed in topics:
            if conversation is None:
                followed.recheck = True
            if followed.refreshing:
                followed.again = True  # the running refresh reads once more
                continue
            followed.refreshing = True
            task = asyncio.create_task(self._refresh(name, followed), name="chat-live-refresh")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _refresh(self, conversation: ConversationRef, topic: _Topic) -> None:
        """Publish every exchange after the last published one, in order."""
        try:
            while True:
                topic.again = False
                async with topic.lock:
                    if topic.published is None:
                        return  # its first follower is still reading where it starts
                    if topic.recheck:
                        topic.recheck = False
                        if await self._deleted_since(conversation, topic.published):
                            if self._topics.get(conversation) is topic:  # not retired yet
                                self.removed(conversation)
                            return
                    while True:
                        published = topic.published
                        new = await self._log.exchanges_after(
                            conversation,
                            published.turn,
                            limit=READ_PAGE,
                            generation=published.generation,
                        )
                        for exchange in new:
                            for follower in topic.followers:
                                follower.offer(exchange)
                            published = Position(
                                exchange.turn, max(published.generation, exchange.generation)
                            )
                        topic.published = published
                        if len(new) < READ_PAGE:
                            break
                if not topic.again:
                    return
        except StoreError:
            # The next change reads again from the last published exchange: nothing is lost.
            log.warning("live updates could not read new exchanges", exc_info=True)
        finally:
            topic.refreshing = False

    async def _deleted_since(self, conversation: ConversationRef, seen: Position) -> bool:
        """Whether the conversation stands short of a position a client was sent (a
        resuming client's, or the one published to followers), with no cut since to explain
        it: it was deleted after that, since turns start again at 1."""
        stands = await self._log.position(conversation)
        return stands.turn < seen.turn and stands.generation <= seen.generation

    def removed(self, conversation: ConversationRef) -> None:
        """The store's removal listener: the conversation was deleted, so its streams end
        (after what they hold) and its topic is retired, its last published turn with it;
        a client that reconnects follows the empty conversation, from turn 0."""
        if (topic := self._topics.pop(conversation, None)) is not None:
            topic.removed = True
            for follower in topic.followers:
                follower.offer(None)

    def _forget(self, conversation: ConversationRef, topic: _Topic) -> None:
        if not topic.followers and not topic.joining and self._topics.get(conversation) is topic:
            del self._topics[conversation]

    def close(self) -> None:
        """End every stream (the service is stopping): clients reconnect to another replica."""
        self._closing = True
        for topic in self._topics.values():
            for follower in topic.followers:
                follower.offer(None)


def _news(follower: Follower, exchange: Exchange) -> list[LiveChange]:
    """What ``exchange`` is to ``follower``: nothing when it was sent already (the same turn
    and generation, or older: a live one that queued while the follower read past it) or
    is of a generation the follower has left behind; the exchange when it comes next; a cut
    at its turn, then the exchange, when it is of a higher generation than the follower
    knows."""
    if exchange.generation < follower.generation:
        return []
    if exchange.generation > follower.generation:
        follower.generation = exchange.generation
        follower.sent = exchange.turn
        return [Cut(exchange.turn), exchange]
    if exchange.turn <= follower.sent:
        return []
    follower.sent = exchange.turn
    return [exchange]
