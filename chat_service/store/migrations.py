"""Ordered schema migrations, tracked with ``PRAGMA user_version``.

Migration ``n`` (1-based) brings a database from version ``n - 1`` to ``n``. Append new
ones; never edit one that has shipped, because existing databases already ran it.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: exchanges. ``turn`` numbers the exchanges of one conversation from 1; the
    # (conversation_id, id) index serves both history pages and the next turn number.
    """
    CREATE TABLE exchanges (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT    NOT NULL,
        turn            INTEGER NOT NULL,
        user_message    TEXT    NOT NULL,
        ai_response     TEXT    NOT NULL,
        created_at      TEXT    NOT NULL,
        trace_id        TEXT
    );
    CREATE INDEX exchanges_by_conversation ON exchanges (conversation_id, id);
    """,
    # 2: one row that readiness probes rewrite, proving the database accepts commits.
    """
    CREATE TABLE store_probe (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at TEXT NOT NULL
    );
    INSERT INTO store_probe (id, checked_at) VALUES (1, '');
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
