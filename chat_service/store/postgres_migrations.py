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
    # owner and public id in one). PostgreSQL derives both from the key, and the new columns
    # have defaults, so a replica of the previous release, still running during a rolling
    # update, goes on inserting conversations as it did. Those stored so far were nobody's
    # in particular (their keys have no "/"): the anonymous owner's (''), titled with the
    # start of their first message. The index serves an owner's list, most recently active
    # first.
    """
    ALTER TABLE conversations
        ADD COLUMN owner text NOT NULL GENERATED ALWAYS AS (
            CASE WHEN strpos(id, '/') = 0 THEN '' ELSE regexp_replace(id, '/[^/]*$', '') END
        ) STORED,
        ADD COLUMN public_id text NOT NULL GENERATED ALWAYS AS (
            substring(id FROM '[^/]*$')
        ) STORED,
        ADD COLUMN title text,
        ADD COLUMN created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        ADD COLUMN updated_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now());
    UPDATE conversations AS c
    SET created_at = s.first_at, updated_at = s.last_at,
        title = left(btrim(regexp_replace(s.first_message, '[[:space:][:cntrl:]]+', ' ', 'g')), 60)
    FROM (
        SELECT DISTINCT ON (conversation_id)
               conversation_id, user_message AS first_message,
               min(created_at) OVER (PARTITION BY conversation_id) AS first_at,
               max(created_at) OVER (PARTITION BY conversation_id) AS last_at
        FROM exchanges
        ORDER BY conversation_id, id
    ) AS s
    WHERE s.conversation_id = c.id;
    CREATE INDEX conversations_by_activity
        ON conversations (owner, updated_at DESC, public_id DESC);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
