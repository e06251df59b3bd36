"""Chat storage: the :class:`ChatStore` protocol and its SQLite implementation."""

from chat_service.store.base import (
    DEFAULT_CONVERSATION,
    ChatStore,
    Exchange,
    HistoryPage,
    StoreError,
    StoreOpenError,
)
from chat_service.store.sqlite import SQLiteChatStore

__all__ = [
    "DEFAULT_CONVERSATION",
    "ChatStore",
    "Exchange",
    "HistoryPage",
    "SQLiteChatStore",
    "StoreError",
    "StoreOpenError",
]
