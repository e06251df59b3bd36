"""Seed a database for the history scenarios (c) and (d).

The schema is the service's own (opening ``SQLiteChatStore`` runs its migrations); the
rows go in with the sqlite3 module in one transaction, which takes about a second for
100,000 exchanges, against minutes through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chat_service.store.sqlite import SQLiteChatStore

CONVERSATION = "default"
USER_CHARS = 100
AI_CHARS = 150
_TEXT = (
    "The quick brown fox jumps over the lazy dog while the chat service writes every "
    "exchange to disk and answers the next question about logs, traces and metrics. "
)
_INSERT = """
INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, created_at, trace_id)
VALUES (?, ?, ?, ?, ?, ?)
"""


def _text(prefix: str, length: int) -> str:
    """``prefix`` padded with prose to exactly ``length`` characters."""
    filler = _TEXT * (length // len(_TEXT) + 1)
    return (prefix + filler)[:length]


def _rows(exchanges: int) -> Iterator[tuple[str, int, str, str, str, str]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for turn in range(1, exchanges + 1):
        created = (start + timedelta(seconds=turn)).isoformat(timespec="milliseconds")
        yield (
            CONVERSATION,
            turn,
            _text(f"Question {turn}: ", USER_CHARS),
            _text(f"Answer {turn}: ", AI_CHARS),
            created.replace("+00:00", "Z"),
            f"{turn:032x}",
        )


async def _create_schema(path: Path) -> None:
    store = await SQLiteChatStore.open(path)
    await store.close()


def seed_database(path: Path, exchanges: int) -> None:
    """Create ``path`` with the service's schema and ``exchanges`` rows in one conversation."""
    asyncio.run(_create_schema(path))
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(_INSERT, _rows(exchanges))
