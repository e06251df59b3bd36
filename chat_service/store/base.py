"""The storage seam: what the service needs from a chat store, nothing about HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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
    # The store hands out this very object again until the conversation changes (a page
    # served from memory), so what a caller derives from it may be kept alongside it.
    shared: bool = False


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

    async def history(
        self, conversation_id: str, *, limit: int | None = None, before: int | None = None
    ) -> HistoryPage: ...

    async def history_json(self, conversation_id: str, *, before: int | None = None) -> bytes:
        """The whole history (older than ``before``) as the API's JSON array, oldest first."""
        ...

    async def recent(self, conversation_id: str, count: int) -> Sequence[Exchange]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
