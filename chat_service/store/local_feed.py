"""The change feed of a database that one process writes alone (SQLite): this process's
commits, creations, renamings and deletions are all the changes there are, so they are heard
of directly."""

from __future__ import annotations

from collections.abc import Sequence

from chat_service.chat.domain import ConversationRef, Exchange
from chat_service.store.base import (
    CatalogueListener,
    ChangeListener,
    RemovalListener,
    call_each,
)
from chat_service.store.group_commit import GroupCommit


class LocalChangeFeed:
    def __init__(self, commits: GroupCommit) -> None:
        self._commits = commits
        self._removal_listeners: list[RemovalListener] = []
        self._catalogue_listeners: list[CatalogueListener] = []

    def add_change_listener(self, listener: ChangeListener) -> None:
        def changed(exchanges: Sequence[Exchange]) -> None:
            for conversation in dict.fromkeys(exchange.conversation for exchange in exchanges):
                listener(conversation)

        self._commits.add_listener(changed)

    def add_removal_listener(self, listener: RemovalListener) -> None:
        self._removal_listeners.append(listener)

    def removed(self, conversation: ConversationRef) -> None:
        """The store deleted ``conversation``: tell every removal listener."""
        call_each(self._removal_listeners, conversation)

    def add_catalogue_listener(self, listener: CatalogueListener) -> None:
        self._catalogue_listeners.append(listener)

    def catalogued(self, conversation: ConversationRef) -> None:
        """The store created or renamed ``conversation``: tell every catalogue listener."""
        call_each(self._catalogue_listeners, conversation)
