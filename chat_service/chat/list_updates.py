"""Live updates of an owner's list of conversations (``GET /chat/conversation-events``): each
of their conversations created, renamed, written to or deleted, by any replica, for every
stream of that owner (the page's sidebar, in each of their tabs and devices), and for no one
else.

The store says which conversation changed, never how (store.ChangeFeed): new exchanges (the
list's order, its count and default title), a creation or renaming, a deletion. So for an
owner someone follows here, the hub reads the conversation as it stands after the
notification and offers it to each of the owner's followers, or its deletion when it is
gone. One read at a time per owner, and a conversation that changes meanwhile is read again
after it: the last thing a follower hears of a conversation was read after its last change.
A read that raced a deletion cannot bring the conversation back, since the deletion's own
notification is read after it, and finds nothing.

No resuming: a stream starts with :data:`RELOAD` (the route's ``ready`` event), after which
nothing is missed, and its client (re)loads the list then. When changes may have been missed
(PostgreSQL's listening connection came back, or a read failed), every follower concerned is
told :data:`RELOAD` again.

Bounded like live.py: a follower holds at most ``QUEUE_SIZE`` changes it has not sent yet.
One that falls that far behind gets what it holds, then its stream ends, and its client
reconnects and reloads. A slow reader never holds up a commit or another reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final, Protocol

from chat_service.chat.domain import Conversation, ConversationRef, StoreError
from chat_service.store import ChangeFeed

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


class ConversationReader(Protocol):
    """What of the catalogue (store.ConversationCatalogue) the hub reads."""

    async def conversation(self, conversation: ConversationRef) -> Conversation | None: ...


@dataclass(frozen=True, slots=True)
class Deleted:
    """The owner's conversation ``id`` is gone."""

    id: str


class Reload:
    """Load the whole list (again): from here on, no change is missed."""


RELOAD: Final = Reload()

# What a follower hears: a conversation as it now stands, a deletion, or RELOAD.
ListChange = Conversation | Deleted | Reload


class ListFollower:
    """One stream: the changes to send, in order. It starts with RELOAD."""

    def __init__(self) -> None:
        # None ends the stream (the service is stopping).
        self._queue: asyncio.Queue[ListChange | None] = asyncio.Queue(QUEUE_SIZE)
        self._queue.put_nowait(RELOAD)
        self.dropped = False

    def offer(self, change: ListChange | None) -> None:
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self.dropped = True  # what it holds still goes out; then its stream ends

    async def next(self) -> ListChange | None:
        """The next change, or None once the stream should end."""
        if self._queue.empty() and self.dropped:
            return None
        return await self._queue.get()


@dataclass(eq=False)
class _Owner:
    """An owner someone follows here: their streams, and the ids of their conversations
    that changed since the reader last looked (a dict, to read them in the order heard)."""

    followers: set[ListFollower] = field(default_factory=set)
    changed: dict[str, None] = field(default_factory=dict)
    reading: bool = False


class ListUpdates:
    def __init__(self, catalogue: ConversationReader, feed: ChangeFeed) -> None:
        self._catalogue = catalogue
        self._owners: dict[str, _Owner] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        feed.add_change_listener(self.changed)
        feed.add_catalogue_listener(self.changed)
        feed.add_removal_listener(self.changed)

    @property
    def followers(self) -> int:
        return sum(len(owner.followers) for owner in self._owners.values())

    @property
    def reads(self) -> int:
        """Reads under way (each holds its task until it ends, and no longer)."""
        return len(self._tasks)

    @contextlib.asynccontextmanager
    async def follow(self, owner: str) -> AsyncIterator[AsyncIterator[ListChange]]:
        """Follow ``owner``'s conversations: RELOAD, then each change from then on. Raises
        StoreError, before anything is yielded, when the service is stopping."""
        if self._closing:
            raise StoreError("the service is stopping")
        followed = self._owners.setdefault(owner, _Owner())
        follower = ListFollower()
        followed.followers.add(follower)
        try:
            yield self._changes(follower)
        finally:
            followed.followers.discard(follower)
            self._forget(owner, followed)

    @staticmethod
    async def _changes(follower: ListFollower) -> AsyncIterator[ListChange]:
        while (change := await follower.next()) is not None:
            yield change

    def changed(self, conversation: ConversationRef | None) -> None:
        """The store's listener, for every kind of change: ``None`` means any conversation
        may have changed, so every follower reloads."""
        if conversation is None:
            for each in self._owners.values():
                self._offer(each, RELOAD)
            return
        if (followed := self._owners.get(conversation.owner)) is None:
            return  # nobody follows this owner here
        followed.changed[conversation.id] = None
        if followed.reading:
            return  # the running read takes it too
        followed.reading = True
        task = asyncio.create_task(
            self._read(conversation.owner, followed), name="chat-list-refresh"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, owner: str, followed: _Owner) -> None:
        """Read each changed conversation as it now stands, and offer it to the followers."""
        try:
            while followed.changed and followed.followers:
                conversation_id = next(iter(followed.changed))
                del followed.changed[conversation_id]
                found = await self._catalogue.conversation(ConversationRef(owner, conversation_id))
                self._offer(followed, Deleted(conversation_id) if found is None else found)
        except StoreError:
            # What changed is unknown now: the followers load the list again.
            log.warning("conversation list updates could not read a change", exc_info=True)
            followed.changed.clear()
            self._offer(followed, RELOAD)
        finally:
            followed.reading = False
            self._forget(owner, followed)

    @staticmethod
    def _offer(followed: _Owner, change: ListChange | None) -> None:
        for follower in followed.followers:
            follower.offer(change)

    def _forget(self, owner: str, followed: _Owner) -> None:
        if not followed.followers and not followed.reading and self._owners.get(owner) is followed:
            del self._owners[owner]

    def close(self) -> None:
        """End every stream (the service is stopping): clients reconnect to another replica."""
        self._closing = True
        for followed in self._owners.values():
            self._offer(followed, None)
