"""Chat storage: the protocol of its parts (base.py) and the SQLite backend. PostgreSQL's is
``store.postgres``, imported only where it is chosen (the app's wiring)."""

from chat_service.store.base import (
    ChangeFeed,
    ChatStore,
    ConversationCatalogue,
    ExchangeLog,
    StoreError,
    StoreOpenError,
)
from chat_service.store.sqlite import SQLiteChatStore

__all__ = [
    "ChangeFeed",
    "ChatStore",
    "ConversationCatalogue",
    "ExchangeLog",
    "SQLiteChatStore",
    "StoreError",
    "StoreOpenError",
]
