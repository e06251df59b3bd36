"""The contract's JSON shapes, written in one place.

``GET /chat/history`` answers ``[{"user": ..., "AI": ...}, ...]``, each item with the
additive ``turn``, ``created_at``, ``model`` and ``usage`` (``{"input_tokens",
"output_tokens"}`` or null); ``GET /chat/events`` sends one such object per exchange;
``POST /chat/message`` answers (and a stream's ``done`` carries) ``{"status": "Success",
"response": ...}``; conversations are ``{"id", "title", "created_at", "updated_at",
"exchanges", "model", "system_prompt"}``. SQLite writes whole histories
itself, under the same keys, and tests/unit/test_store_contract.py holds its bytes to
:func:`history_json`'s.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from chat_service.chat.domain import Conversation, Exchange, HistoryKeys
from chat_service.chat.domain import history_item as domain_history_item

# The keys of one exchange in GET /chat/history and GET /chat/events.
USER_KEY = "user"
AI_KEY = "AI"
HISTORY_KEYS = HistoryKeys(USER_KEY, AI_KEY)


def history_item(exchange: Exchange) -> dict[str, object]:
    """One exchange as the contract's history item."""
    return domain_history_item(exchange, HISTORY_KEYS)


def history_json(exchanges: Iterable[Exchange]) -> bytes:
    """Exchanges (oldest first) as the history's JSON array."""
    return orjson.dumps([history_item(e) for e in exchanges])


def exchange_json(exchange: Exchange) -> bytes:
    """One exchange as its history item, for an event's data."""
    return orjson.dumps(history_item(exchange))


def reply_body(reply: str) -> dict[str, str]:
    """``POST /chat/message``'s success body (and a stream's ``done``)."""
    return {"status": "Success", "response": reply}


def conversation_body(conversation: Conversation) -> dict[str, object]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "exchanges": conversation.exchanges,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
    }
