"""Chat storage: the protocol of its parts (base.py). The backends (``store.sqlite``,
``store.postgres``) are imported only where one is chosen, the app's wiring: nothing else
depends on either (import-linter's contracts in pyproject.toml)."""

from chat_service.store.base import (
    ChangeFeed,
    ChatStore,
    ConversationCatalogue,
    ExchangeLog,
    StoreError,
    StoreOpenError,
)

__all__ = [
    "ChangeFeed",
    "ChatStore",
    "ConversationCatalogue",
    "ExchangeLog",
    "StoreError",
    "StoreOpenError",
]
