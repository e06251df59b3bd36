"""The one facade of the application layer: every chat operation the API offers.

Handlers parse a request, call one method here with the caller's
:class:`~chat_service.chat.domain.ConversationRef` (or owner), and render what comes back;
they know nothing of the store, the caches or the model behind it. Every method raises
StoreError when the store fails, which the API turns into the contract's 500 in one place.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager

from chat_service.chat.domain import (
    DEFAULTS,
    Conversation,
    ConversationCursor,
    ConversationRef,
    Position,
    SettingsChange,
)
from chat_service.chat.export import ExportFile, export
from chat_service.chat.history import HistoryCache, RenderedPage
from chat_service.chat.list_updates import ListChange, ListUpdates
from chat_service.chat.live import LiveChange, LiveUpdates
from chat_service.chat.models import ModelCatalogue
from chat_service.chat.replies import ReplyService, Turn
from chat_service.chat.search import SearchResult, result, words_of
from chat_service.store import ChatStore


class Chat:
    def __init__(
        self,
        store: ChatStore,
        history: HistoryCache,
        live: LiveUpdates,
        lists: ListUpdates,
        replies: ReplyService,
        models: ModelCatalogue,
    ) -> None:
        self._store = store
        self._history = history
        self._live = live
        self._lists = lists
        self._replies = replies
        self._models = models

    # -- one conversation's exchanges -----------------------------------------------------

    async def history(
        self, conversation: ConversationRef, *, limit: int | None, before_turn: int | None
    ) -> RenderedPage:
        """A page of the history (all of it when ``limit`` is None) before turn
        ``before_turn`` (when given), rendered."""
        return await self._history.page(conversation, limit=limit, before_turn=before_turn)

    def turn(
        self,
        conversation: ConversationRef,
        message: str,
        *,
        caller: str,
        model: str | None = None,
        replaces_turn: int | None = None,
    ) -> AbstractAsyncContextManager[Turn]:
        """The conversation's turn to answer ``message`` (one message at a time, in arrival
        order): the reply, plain or streamed, then its storing, happen inside it. ``caller``
        (a principal, or an address): whose share of the model's slots the reply takes;
        ``model``: one the message asks for (checked with :meth:`offers`), over the
        conversation's; ``replaces_turn``: the turn it is answered in place of (regenerate,
        edit), cutting the conversation there once the reply is stored (TurnNotFound when
        there is no such turn)."""
        return self._replies.turn(
            conversation, message, caller, model=model, replaces_turn=replaces_turn
        )

    # -- models ---------------------------------------------------------------------------

    async def models(self) -> tuple[str, Sequence[str]]:
        """The default model, and every model offered (the default first)."""
        return self._models.default, await self._models.offered()

    async def offers(self, model: str) -> bool:
        return await self._models.offers(model)

    def follow(
        self, conversation: ConversationRef, after: Position | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[LiveChange]]:
        """The conversation's exchanges as they are committed, and its cuts, by any replica
        (what a client at ``after`` lacks first, when resuming)."""
        return self._live.follow(conversation, after)

    async def position(self, conversation: ConversationRef) -> Position:
        """Where the conversation's newest exchange stands (``Position(0)`` for none): where
        a follower that cannot say where it stands starts."""
        return await self._store.position(conversation)

    # -- an owner's conversations ---------------------------------------------------------

    async def conversations(
        self, owner: str, *, limit: int, after: ConversationCursor | None = None
    ) -> Sequence[Conversation]:
        return await self._store.conversations(owner, limit=limit, after=after)

    async def conversation(self, conversation: ConversationRef) -> Conversation | None:
        return await self._store.conversation(conversation)

    async def start_conversation(
        self, owner: str, title: str | None, settings: SettingsChange = DEFAULTS
    ) -> Conversation:
        """A new, empty conversation of ``owner``, under an id the service chooses."""
        while True:  # 128 random bits: a second round is all but impossible
            conversation = ConversationRef(owner, secrets.token_hex(16))
            created = await self._store.create_conversation(conversation, title, settings)
            if created is not None:
                return created

    async def configure_conversation(
        self, conversation: ConversationRef, settings: SettingsChange
    ) -> Conversation | None:
        """Change its model and instructions (what the next message is answered with)."""
        return await self._store.configure_conversation(conversation, settings)

    async def rename_conversation(
        self, conversation: ConversationRef, title: str
    ) -> Conversation | None:
        return await self._store.rename_conversation(conversation, title)

    async def export(self, conversation: ConversationRef, kind: str) -> ExportFile | None:
        """The conversation as a file of ``kind`` (export.FORMATS), None if there is none."""
        found = await self._store.conversation(conversation)
        if found is None:
            return None
        exchanges = (await self._store.history(conversation)).exchanges
        return export(found, exchanges, kind)

    async def delete_conversation(self, conversation: ConversationRef) -> bool:
        """Erase it, once a reply being written to it here is stored (that one goes too)."""
        return await self._replies.delete(conversation)

    def follow_conversations(
        self, owner: str
    ) -> AbstractAsyncContextManager[AsyncIterator[ListChange]]:
        """``owner``'s list as it changes, by any replica: a reload, then each conversation
        created, renamed, written to or deleted."""
        return self._lists.follow(owner)

    async def search(self, owner: str, query: str, *, limit: int) -> list[SearchResult]:
        """Up to ``limit`` of ``owner``'s exchanges that hold every word of ``query``, best
        first, each with a snippet; none for a query without words (punctuation alone)."""
        words = words_of(query)
        if not words:
            return []
        hits = await self._store.search(owner, words, limit=limit)
        return [result(hit, words) for hit in hits]

    # -- the service's life ---------------------------------------------------------------

    @property
    def followers(self) -> int:
        """Live streams open right now, of every conversation."""
        return self._live.followers

    @property
    def list_followers(self) -> int:
        """Streams of owners' conversation lists open right now."""
        return self._lists.followers

    async def ready(self) -> None:
        """Return when the store both reads and commits; StoreError otherwise."""
        await self._store.ping()

    def stop_following(self) -> None:
        """End every live stream, of conversations and of lists (the service is stopping):
        clients reconnect elsewhere."""
        self._live.close()
        self._lists.close()
