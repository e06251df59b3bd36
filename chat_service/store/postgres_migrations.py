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
    # 2: conversations are owned by a principal (conversations.py: ``id`` is the store's key,
    # owner and public id in one). Those stored so far were nobody's in particular: they go
    # to the anonymous owner (''), titled with the start of their first message. The index
    # serves an owner's list, most recently active first.
    """
    ALTER TABLE conversations
        ADD COLUMN owner      text,
        ADD COLUMN public_id  text,
        ADD COLUMN title      text,
        ADD COLUMN created_at timestamptz,
        ADD COLUMN updated_at timestamptz;
    UPDATE conversations AS c
    SET owner = '', public_id = c.id, created_at = s.first_at, updated_at = s.last_at,
        title = left(btrim(regexp_replace(s.first_message, '[[:space:]]+', ' ', 'g')), 60)
    FROM (
        SELECT conversation_id, min(created_at) AS first_at, max(created_at) AS last_at,
               (array_agg(user_message ORDER BY id))[1] AS first_message
        FROM exchanges GROUP BY conversation_id
    ) AS s
    WHERE s.conversation_id = c.id;
    UPDATE conversations
    SET owner = '', public_id = id, created_at = now(), updated_at = now()
    WHERE owner IS NULL;
    ALTER TABLE conversations
        ALTER COLUMN owner SET NOT NULL,
        ALTER COLUMN public_id SET NOT NULL,
        ALTER COLUMN created_at SET NOT NULL,
        ALTER COLUMN updated_at SET NOT NULL;
    CREATE INDEX conversations_by_activity
        ON conversations (owner, updated_at DESC, public_id DESC);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
