"""The contract's JSON shapes, written in one place.

``GET /chat/history`` answers ``[{"user": ..., "AI": ...}, ...]``; ``GET /chat/events``
sends one such object per exchange; ``POST /chat/message`` answers (and a stream's ``done``
carries) ``{"status": "Success", "response": ...}``; conversations are
``{"id", "title", "created_at", "updated_at", "exchanges"}``. SQLite writes whole histories
itself, under the same keys, and tests/unit/test_store_contract.py holds its bytes to
:func:`history_json`'s.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from chat_service.chat.domain import Conversation, Exchange

# The keys of one exchange in GET /chat/history and GET /chat/events.
USER_KEY = "user"
AI_KEY = "AI"
HISTORY_KEYS = (USER_KEY, AI_KEY)


def history_json(exchanges: Iterable[Exchange]) -> bytes:
    """Exchanges (oldest first) as the history's JSON array."""
    return orjson.dumps([{USER_KEY: e.user, AI_KEY: e.ai} for e in exchanges])


def exchange_json(exchange: Exchange) -> str:
    """One exchange as its history item, for an event's data."""
    return orjson.dumps({USER_KEY: exchange.user, AI_KEY: exchange.ai}).decode()


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
    }
