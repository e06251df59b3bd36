"""The storage seam: what the service needs from a chat store, nothing about HTTP."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chat_service.store.conversations import Conversation, ConversationCursor

DEFAULT_CONVERSATION = "default"


class StoreError(Exception):
    """The store could not carry out an operation (I/O error, locked, corrupt, ...)."""


class StoreOpenError(StoreError):
    """The database could not be opened or migrated at start-up."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One user message and the assistant's reply, as stored."""

    id: int
    conversation_id: str
    turn: int
    user: str
    ai: str
    created_at: str
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Exchanges oldest first, and whether older ones exist before the first of them."""

    exchanges: Sequence[Exchange]
    has_older: bool


def page_of_newest(newest_first: Sequence[Exchange], limit: int) -> HistoryPage:
    """A history page from up to ``limit + 1`` rows read newest first: the extra row, when
    there is one, only tells that an older page exists."""
    page = list(newest_first[:limit])
    page.reverse()
    return HistoryPage(page, has_older=len(newest_first) > limit)


class StoreObserver(Protocol):
    """Receives the store's timings; the telemetry package turns them into metrics."""

    def store_read(self, operation: str, seconds: float) -> None: ...

    def store_committed(self, batch_size: int, seconds: float) -> None: ...

    def store_commit_failed(self, batch_size: int) -> None: ...


class NullObserver:
    """Observes nothing: for stores used outside the service (tools, tests)."""

    def store_read(self, operation: str, seconds: float) -> None:
        return None

    def store_committed(self, batch_size: int, seconds: float) -> None:
        return None

    def store_commit_failed(self, batch_size: int) -> None:
        return None


class ChatStore(Protocol):
    """Durable storage for exchanges. ``append`` returns only once the row is on disk."""

    async def append(
        self, conversation_id: str, user: str, ai: str, trace_id: str | None = None
    ) -> Exchange: ...

    def add_commit_listener(self, listener: Callable[[Sequence[Exchange]], None]) -> None:
        """Call ``listener`` with the exchanges of each commit this process makes, before
        the requests that made them are answered."""
        ...

    def add_change_listener(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(conversation_id)`` after any process committed to a conversation,
        and ``listener(None)`` when changes may have been missed (a lost notification
        channel came back): then every conversation may have changed."""
        ...

    async def version(self, conversation_id: str) -> int:
        """The id of the conversation's newest exchange, 0 for none. Ids are never reused,
        so what was read at one version is current for as long as the version stays; a
        commit by any process is reflected as soon as it is acknowledged."""
        ...

    async def history(
        self, conversation_id: str, *, limit: int | None = None, before: int | None = None
    ) -> HistoryPage: ...

    async def exchanges_after(
        self, conversation_id: str, after: int, *, limit: int
    ) -> Sequence[Exchange]:
        """Up to ``limit`` exchanges with ids above ``after``, oldest first."""
        ...

    async def history_json(
        self, conversation_id: str, *, keys: tuple[str, str], before: int | None = None
    ) -> bytes:
        """The whole history (older than ``before``) as a JSON array, oldest first, of
        objects holding the user's message and the reply under the two ``keys``."""
        ...

    # -- conversations. Like every method here, these take the store's key of a
    # conversation (owner and id in one: conversations.py); the listing takes the owner.

    async def conversations(
        self, owner: str, *, limit: int, after: ConversationCursor | None = None
    ) -> Sequence[Conversation]:
        """Up to ``limit`` of ``owner``'s conversations, most recently active first,
        starting after ``after``."""
        ...

    async def conversation(self, key: str) -> Conversation | None: ...

    async def create_conversation(self, key: str, title: str | None) -> Conversation | None:
        """The new, empty conversation, or None if one exists under that key."""
        ...

    async def rename_conversation(self, key: str, title: str) -> Conversation | None:
        """The renamed conversation, or None if there is none under that key."""
        ...

    async def delete_conversation(self, key: str) -> bool:
        """Erase the conversation and its exchanges for good (their text included, from
        the database's files where the engine allows); False if there was none. Removal
        listeners of every process hear of it."""
        ...

    def add_removal_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(key)`` with the store key of every conversation deleted, by any
        process, once the deletion committed."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
