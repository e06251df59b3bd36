"""The storage seam, in the parts its callers use; nothing about HTTP.

- :class:`ExchangeLog`: appending exchanges (durably, group-committed) and reading them back.
- :class:`ConversationCatalogue`: an owner's conversations, to list, create, rename, delete.
- :class:`ChangeFeed`: which conversations changed, were created or renamed, or went, by any
  process.
- :class:`Search`: an owner's exchanges that hold given words.

Each backend (sqlite.py, postgres.py) is all three (:class:`ChatStore`), and the
behavioural suite in tests/unit/test_store_contract.py holds each part to the same rules on
both. Conversations are :class:`~chat_service.chat.domain.ConversationRef` values here as
everywhere; only the backends turn them into storage keys (keys.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from chat_service.chat.domain import (
    DEFAULTS,
    NO_ORIGIN,
    Conversation,
    ConversationCursor,
    ConversationRef,
    ConversationSettings,
    Exchange,
    HistoryKeys,
    HistoryPage,
    Position,
    ReplyOrigin,
    SearchHit,
    SettingsChange,
    StoreError,
    StoreOpenError,
)

__all__ = [
    "ChangeFeed",
    "ChatStore",
    "ConversationCatalogue",
    "ExchangeLog",
    "NullObserver",
    "Search",
    "StoreError",
    "StoreObserver",
    "StoreOpenError",
]

CommitListener = Callable[[Sequence[Exchange]], None]
ChangeListener = Callable[[ConversationRef | None], None]
RemovalListener = Callable[[ConversationRef], None]
CatalogueListener = Callable[[ConversationRef], None]
_Heard = TypeVar("_Heard")

log = logging.getLogger(__name__)


def call_each(listeners: Iterable[Callable[[_Heard], None]], heard: _Heard) -> None:
    """Tell every listener; one that fails is logged and the others are still told (what
    they hear of has happened, whatever one of them makes of it)."""
    for listener in listeners:
        try:
            listener(heard)
        except Exception:
            log.exception("a store listener failed")


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


class ExchangeLog(Protocol):
    """Durable exchanges. ``append`` returns only once the row is on disk."""

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
        """Store the exchange (with the reply's ``origin``: its model and token counts).

        With ``replaces_turn``, in place of the exchange at that turn: in the same
        transaction, it and every later exchange are erased the way a deletion erases them
        (their text out of the database's files and the search index), the conversation's
        generation goes up by one, and the new exchange takes that turn (or the next, when
        the conversation is shorter), under the new generation. The caller holds the
        conversation (replies.py): no other append to it is in the same batch."""
        ...

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener`` with the exchanges of each commit this process makes, before
        the requests that made them are answered."""
        ...

    async def version(self, conversation: ConversationRef) -> int:
        """The id of the conversation's newest exchange, 0 for none. Ids are never reused,
        so what was read at one version is current for as long as the version stays; a
        commit by any process is reflected as soon as it is acknowledged. Ids count every
        conversation's exchanges: they stay inside the service (clients get turns)."""
        ...

    async def last_turn(self, conversation: ConversationRef) -> int:
        """The turn of the conversation's newest exchange, 0 for none (turns number one
        conversation's exchanges from 1, gap-free; they start again at 1 after a deletion)."""
        ...

    async def position(self, conversation: ConversationRef) -> Position:
        """The turn and generation of the conversation's newest exchange (``Position(0)``
        for none): where a client that holds all of it stands."""
        ...

    async def history(
        self,
        conversation: ConversationRef,
        *,
        limit: int | None = None,
        before_turn: int | None = None,
    ) -> HistoryPage:
        """Up to ``limit`` (all when None) of the newest exchanges whose turn is below
        ``before_turn`` (when given), oldest first."""
        ...

    async def exchanges_after(
        self,
        conversation: ConversationRef,
        after_turn: int,
        *,
        limit: int,
        generation: int = 0,
    ) -> Sequence[Exchange]:
        """Up to ``limit`` exchanges, oldest first, that a holder of the conversation up to
        turn ``after_turn`` at generation ``generation`` lacks: those whose turn is above
        ``after_turn``, and, when the conversation was cut at that turn or before since
        (the exchange there is gone, or of a higher generation), everything from the first
        exchange of a higher generation on (store/since.py)."""
        ...

    async def history_json(
        self,
        conversation: ConversationRef,
        *,
        keys: HistoryKeys,
        before_turn: int | None = None,
    ) -> bytes:
        """The whole history (before turn ``before_turn``) as a JSON array, oldest first, of
        history items under ``keys`` (domain.history_item): the bytes chat/contract.py
        would write for them (tests/unit/test_store_contract.py)."""
        ...


class ConversationCatalogue(Protocol):
    """Conversations, each in its owner's namespace."""

    async def conversations(
        self, owner: str, *, limit: int, after: ConversationCursor | None = None
    ) -> Sequence[Conversation]:
        """Up to ``limit`` of ``owner``'s conversations, most recently active first,
        starting after ``after``."""
        ...

    async def conversation(self, conversation: ConversationRef) -> Conversation | None: ...

    async def conversation_settings(self, conversation: ConversationRef) -> ConversationSettings:
        """The conversation's model and instructions, read for every message: NO_SETTINGS
        for one that does not exist yet (its first message creates it with none)."""
        ...

    async def create_conversation(
        self,
        conversation: ConversationRef,
        title: str | None,
        settings: SettingsChange = DEFAULTS,
    ) -> Conversation | None:
        """The new, empty conversation (with the model and instructions ``settings`` give,
        the deployment's default for those it keeps), or None if it exists already."""
        ...

    async def configure_conversation(
        self, conversation: ConversationRef, settings: SettingsChange
    ) -> Conversation | None:
        """The conversation with its model and instructions changed as ``settings`` says,
        or None if there is none."""
        ...

    async def rename_conversation(
        self, conversation: ConversationRef, title: str
    ) -> Conversation | None:
        """The renamed conversation, or None if there is none."""
        ...

    async def delete_conversation(self, conversation: ConversationRef) -> bool:
        """Erase the conversation and its exchanges for good (their text included, from
        the database's files: README, Conversations); False if there was none. Removal
        listeners of every process hear of it."""
        ...


class ChangeFeed(Protocol):
    """What changed, in this process or any other on the same database."""

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(conversation)`` after any process committed to it, and
        ``listener(None)`` when changes may have been missed (a lost notification channel
        came back): then every conversation may have changed."""
        ...

    def add_removal_listener(self, listener: RemovalListener) -> None:
        """Call ``listener(conversation)`` for every conversation deleted, by any process,
        once the deletion committed."""
        ...

    def add_catalogue_listener(self, listener: CatalogueListener) -> None:
        """Call ``listener(conversation)`` for every conversation created or renamed, by any
        process, once that committed (the list of an owner's conversations changed, its
        exchanges did not). What a lost notification channel missed, change listeners hear
        of (``None``)."""
        ...


class Search(Protocol):
    """Full-text search of one owner's exchanges (their messages and replies)."""

    async def search(self, owner: str, words: Sequence[str], *, limit: int) -> Sequence[SearchHit]:
        """Up to ``limit`` of ``owner``'s exchanges that hold every one of ``words`` (folded
        as search_terms.py folds them; at least one), best match first. Only ``owner``'s:
        no other principal's exchange is ever among them. A deleted conversation's
        exchanges are not found once its deletion has committed."""
        ...


class ChatStore(ExchangeLog, ConversationCatalogue, ChangeFeed, Search, Protocol):
    """A whole backend, as the application opens, probes and closes it."""

    async def ping(self) -> None:
        """Raise StoreError unless the store can both read and commit right now."""
        ...

    async def close(self) -> None: ...
