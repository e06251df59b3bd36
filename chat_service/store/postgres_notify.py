"""PostgreSQL's change feed: what every replica committed, created, renamed or deleted, by
LISTEN/NOTIFY.

A transaction that writes to conversations notifies ``chat_exchanges`` with each one's
storage key (keys.py), with the key behind ``-`` when it deleted one, or behind ``+`` when it
created or renamed one (no key starts with either: an owner's namespace starts with its kind,
an anonymous conversation's id with a letter or digit); PostgreSQL delivers the
notifications when, and only if, it commits, and folds equal payloads of one transaction
into one. Every replica holds one connection of its own (not one of the pool's: it stays in
LISTEN) that hears them and tells its listeners. A lost connection is reopened, and its
change listeners are then told that anything may have changed meanwhile (``None``), since
notifications sent while away are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chat_service.chat.domain import ConversationRef
from chat_service.store.base import (
    CatalogueListener,
    ChangeListener,
    RemovalListener,
    call_each,
)
from chat_service.store.keys import conversation_of, storage_key
from chat_service.store.postgres_failures import FAILURES

log = logging.getLogger(__name__)

CHANGES_CHANNEL = "chat_exchanges"
REMOVED = "-"
CATALOGUED = "+"
_NOTIFY = f"SELECT pg_notify('{CHANGES_CHANNEL}', c) FROM unnest($1::text[]) AS c"
# The listening connection checks it is still alive this often (a silent network loss
# raises nothing by itself) and waits this long before reconnecting.
LISTEN_CHECK_S = 5.0
LISTEN_RETRY_S = 1.0


async def notify_changed(
    conn: asyncpg.Connection | PoolConnectionProxy, conversations: Sequence[ConversationRef]
) -> None:
    """In the writing transaction: these conversations have new exchanges."""
    await conn.execute(_NOTIFY, [storage_key(conversation) for conversation in conversations])


async def notify_removed(
    conn: asyncpg.Connection | PoolConnectionProxy, conversation: ConversationRef
) -> None:
    """In the deleting transaction: this conversation is gone."""
    await conn.execute(_NOTIFY, [REMOVED + storage_key(conversation)])


async def notify_catalogued(
    conn: asyncpg.Connection | PoolConnectionProxy, conversation: ConversationRef
) -> None:
    """In the creating or renaming transaction: this conversation is new, or has a new title."""
    await conn.execute(_NOTIFY, [CATALOGUED + storage_key(conversation)])


class PostgresChangeFeed:
    """The listeners of one replica, and the connection that hears for them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._change_listeners: list[ChangeListener] = []
        self._removal_listeners: list[RemovalListener] = []
        self._catalogue_listeners: list[CatalogueListener] = []
        self._listening: asyncio.Task[None] | None = None
        self._heard = False  # the connection LISTENs right now
        self._closing = False

    @property
    def hearing(self) -> bool:
        """Whether this replica hears the others' changes: nothing asked to, or its
        connection LISTENs. Readiness waits for it (PostgresChatStore.ping): a replica
        serving before then would miss a deletion, and keep its live streams open."""
        return self._listening is None or self._heard

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Changes by every replica, this one included."""
        self._change_listeners.append(listener)
        self._start_listening()

    def add_removal_listener(self, listener: RemovalListener) -> None:
        """Deletions by every replica, this one included."""
        self._removal_listeners.append(listener)
        self._start_listening()

    def add_catalogue_listener(self, listener: CatalogueListener) -> None:
        """Creations and renamings by every replica, this one included."""
        self._catalogue_listeners.append(listener)
        self._start_listening()

    def _start_listening(self) -> None:
        if self._listening is None and not self._closing:
            self._listening = asyncio.create_task(self._listen(), name="chat-store-listen")

    async def _listen(self) -> None:
        """Hold a connection that LISTENs; when it is lost, reconnect and report that
        anything may have changed meanwhile."""
        while not self._closing:
            try:
                await self._listen_once()
            except FAILURES as exc:
                log.warning(
                    "the change notifications connection failed; reconnecting",
                    extra={"error_type": type(exc).__name__},
                )
            await asyncio.sleep(LISTEN_RETRY_S)

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(CHANGES_CHANNEL, self._notified)
            self._heard = True
            self._changed(None)  # a catch-up: notifications sent while away are gone
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), LISTEN_CHECK_S)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=LISTEN_CHECK_S)
        finally:
            self._heard = False
            # Nothing to finish on a connection that only listens, and a cancelled call may
            # have left it mid-message: drop it at once.
            conn.terminate()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        text = str(payload)
        if text.startswith(REMOVED):
            self._removed(conversation_of(text.removeprefix(REMOVED)))
        elif text.startswith(CATALOGUED):
            call_each(self._catalogue_listeners, conversation_of(text.removeprefix(CATALOGUED)))
        else:
            self._changed(conversation_of(text))

    def _removed(self, conversation: ConversationRef) -> None:
        call_each(self._removal_listeners, conversation)

    def _changed(self, conversation: ConversationRef | None) -> None:
        call_each(self._change_listeners, conversation)

    async def close(self) -> None:
        self._closing = True
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None
