"""Ordered schema migrations of the PostgreSQL store, tracked in ``chat_schema``.

Migration ``n`` (1-based) brings a database from version ``n - 1`` to ``n``. Append new
ones; never edit one that has shipped, because existing databases already ran it.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations count their exchanges: a batch takes the row of every conversation it
    # writes to, so turns are handed out one writer at a time, gap-free; the unique
    # constraint makes a duplicate turn an error rather than luck. The (conversation_id, id)
    # index serves history pages, the newest id (the conversation's version) and the count.
    """
    CREATE TABLE conversations (
        id        text   PRIMARY KEY,
        exchanges bigint NOT NULL CHECK (exchanges >= 0)
    );
    CREATE TABLE exchanges (
        id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation_id text        NOT NULL REFERENCES conversations (id),
        turn            integer     NOT NULL CHECK (turn >= 1),
        user_message    text        NOT NULL,
        ai_response     text        NOT NULL,
        created_at      timestamptz NOT NULL,
        trace_id        text,
        CONSTRAINT exchanges_turn_unique UNIQUE (conversation_id, turn)
    );
    CREATE INDEX exchanges_by_conversation ON exchanges (conversation_id, id);
    -- One row that readiness probes rewrite, proving the database accepts commits.
    CREATE TABLE store_probe (
        id         integer PRIMARY KEY CHECK (id = 1),
        checked_at timestamptz
    );
    INSERT INTO store_probe (id, checked_at) VALUES (1, NULL);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
