"""Ordered schema migrations of the PostgreSQL store, tracked in ``chat_schema``.

Migration ``n`` (1-based) brings a database from version ``n - 1`` to ``n``: SQL, or a
function of the connection when rows must pass through Python. Append new ones; never edit
one that has shipped, because existing databases already ran it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asyncpg import Connection
from asyncpg.pool import PoolConnectionProxy

from chat_service.store.sealing import AI, TITLE, USER, new_key, seal, unseal
from chat_service.store.search_terms import keyed_terms, search_key

AnyConnection = Connection | PoolConnectionProxy
Migration = str | Callable[[AnyConnection], Awaitable[None]]

# Rows per statement: exchanges sealed by migration 3 and indexed by migration 5, search keys
# stored by migration 7.
SEAL_PAGE = 1000

# 3: conversations' text sealed with a key of their own (sealing.py), so that deleting the
# key erases the text from every copy PostgreSQL keeps. Keys live in a table written once per
# conversation and never updated: the only copies of a key are its row and that row's WAL
# record, which a rewrite of this small table (postgres_shredding.py) takes out of the table's
# files. ANALYZE must not copy keys into pg_statistic, where deleting a row would not reach
# them: the key column has no statistics.
_SEALING_SCHEMA = """
CREATE TABLE conversation_keys (
    conversation_id text  PRIMARY KEY,
    key             bytea NOT NULL CHECK (octet_length(key) = 32)
);
ALTER TABLE conversation_keys ALTER COLUMN key SET STATISTICS 0;
ALTER TABLE exchanges ADD COLUMN user_sealed bytea, ADD COLUMN ai_sealed bytea;
ALTER TABLE conversations ADD COLUMN title_sealed bytea;
-- Rewrites that take erased text out of the table files (postgres_shredding.py):
-- deletions count up keys_requested; a rewrite of conversation_keys, at most one per interval
-- whichever replica runs it, records the count it covered. The text columns this migration
-- drops stay in the rows' bytes until their tables are rewritten (plaintext_left).
CREATE TABLE chat_shredding (
    id              integer     PRIMARY KEY CHECK (id = 1),
    keys_requested  bigint      NOT NULL DEFAULT 0,
    keys_shredded   bigint      NOT NULL DEFAULT 0,
    last_rewrite_at timestamptz NOT NULL DEFAULT '-infinity',
    plaintext_left  boolean     NOT NULL DEFAULT false
);
INSERT INTO chat_shredding (id) VALUES (1);
"""
# The text columns go (a replica of the previous release, still running during the update,
# fails on them instead of writing text in the clear), and every conversation must have a key.
_SEALING_DONE = """
ALTER TABLE exchanges
    DROP COLUMN user_message,
    DROP COLUMN ai_response,
    ALTER COLUMN user_sealed SET NOT NULL,
    ALTER COLUMN ai_sealed SET NOT NULL;
ALTER TABLE conversations
    DROP COLUMN title,
    ADD CONSTRAINT conversations_have_keys
        FOREIGN KEY (id) REFERENCES conversation_keys (conversation_id);
"""


async def _seal_text(conn: AnyConnection) -> None:
    await conn.execute(_SEALING_SCHEMA)
    conversations = await conn.fetch("SELECT id, title FROM conversations")
    keys = {row["id"]: new_key() for row in conversations}
    await conn.execute(
        "INSERT INTO conversation_keys (conversation_id, key) "
        "SELECT * FROM unnest($1::text[], $2::bytea[])",
        list(keys),
        list(keys.values()),
    )
    titled = [(row["id"], row["title"]) for row in conversations if row["title"] is not None]
    await conn.execute(
        "UPDATE conversations AS c SET title_sealed = s.title "
        "FROM unnest($1::text[], $2::bytea[]) AS s (id, title) WHERE c.id = s.id",
        [key for key, _ in titled],
        [seal(keys[key], title, TITLE) for key, title in titled],
    )
    after = 0
    while rows := await conn.fetch(
        "SELECT id, conversation_id, user_message, ai_response FROM exchanges "
        "WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        SEAL_PAGE,
    ):
        await conn.execute(
            "UPDATE exchanges AS e SET user_sealed = s.u, ai_sealed = s.a "
            "FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS s (id, u, a) "
            "WHERE e.id = s.id",
            [row["id"] for row in rows],
            [seal(keys[row["conversation_id"]], row["user_message"], USER) for row in rows],
            [seal(keys[row["conversation_id"]], row["ai_response"], AI) for row in rows],
        )
        after = rows[-1]["id"]
    await conn.execute(_SEALING_DONE)
    if conversations:
        await conn.execute("UPDATE chat_shredding SET plaintext_left = true")


# Full-text search without a word in the clear (search_terms.py, postgres.py's ``search``):
# each exchange holds the keyed terms of its words, which a GIN index serves. The default
# lets a replica of the previous release go on inserting during a rolling update (what it
# writes is not found by search). The exchanges stored so far are indexed page by page,
# unsealed here and never sent to PostgreSQL as text.
_SEARCH_COLUMN = """
ALTER TABLE exchanges ADD COLUMN search_terms bigint[] NOT NULL DEFAULT '{}'
"""
# fastupdate off: a GIN index otherwise queues new rows in a pending list that every scan
# reads through until a vacuum merges it, and a search makes one scan per conversation
# (postgres.py): 1.8 ms each with 20,000 exchanges just written, 14 µs merged.
_SEARCH_INDEX = """
CREATE INDEX exchanges_search ON exchanges USING gin (search_terms) WITH (fastupdate = off)
"""


async def _index_for_search(conn: AnyConnection) -> None:
    await conn.execute(_SEARCH_COLUMN)
    after = 0
    while rows := await conn.fetch(
        "SELECT e.id, e.user_sealed, e.ai_sealed, k.key FROM exchanges AS e "
        "JOIN conversation_keys AS k USING (conversation_id) "
        "WHERE e.id > $1 ORDER BY e.id LIMIT $2",
        after,
        SEAL_PAGE,
    ):
        await conn.execute(
            "UPDATE exchanges AS e SET search_terms = s.terms::bigint[] "
            "FROM unnest($1::bigint[], $2::text[]) AS s (id, terms) WHERE e.id = s.id",
            [row["id"] for row in rows],
            [terms_literal(_terms_of(row)) for row in rows],
        )
        after = rows[-1]["id"]
    await conn.execute(_SEARCH_INDEX)


def _terms_of(row: Any) -> list[int]:
    key = row["key"]
    texts = (unseal(key, row["user_sealed"], USER), unseal(key, row["ai_sealed"], AI))
    return keyed_terms(search_key(key), texts)


# 7: each conversation's search key kept beside its key, so that a search, which needs the
# search key of every conversation of its owner, reads them instead of deriving each
# (search_terms.search_key: an HMAC per conversation, a fifth of a search at 1,000
# conversations: bench/README.md). It lives and dies with the key: the same row, which a
# deletion deletes and the rewrite of the table (postgres_shredding.py) takes out of its
# files, without statistics like the key. Every statement that writes a key writes its
# search key; the trigger clears a search key that a statement changing the key did not
# write (a replica of the previous release, still running during a rolling update, cuts
# conversations that way), and a search derives the search key where there is none.
_SEARCH_KEY_COLUMN = """
ALTER TABLE conversation_keys
    ADD COLUMN search_key bytea CHECK (octet_length(search_key) = 32);
ALTER TABLE conversation_keys ALTER COLUMN search_key SET STATISTICS 0;
CREATE FUNCTION chat_search_key_follows_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.search_key IS NOT DISTINCT FROM OLD.search_key THEN
        NEW.search_key := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER search_key_follows_key
    BEFORE UPDATE OF key ON conversation_keys
    FOR EACH ROW WHEN (NEW.key IS DISTINCT FROM OLD.key)
    EXECUTE FUNCTION chat_search_key_follows_key();
"""


async def _keep_search_keys(conn: AnyConnection) -> None:
    await conn.execute(_SEARCH_KEY_COLUMN)
    after = ""
    while rows := await conn.fetch(
        "SELECT conversation_id, key FROM conversation_keys "
        "WHERE conversation_id > $1 ORDER BY conversation_id LIMIT $2",
        after,
        SEAL_PAGE,
    ):
        await conn.execute(
            "UPDATE conversation_keys AS k SET search_key = s.search_key "
            "FROM unnest($1::text[], $2::bytea[]) AS s (id, search_key) "
            "WHERE k.conversation_id = s.id",
            [row["conversation_id"] for row in rows],
            [search_key(row["key"]) for row in rows],
        )
        after = rows[-1]["conversation_id"]


def terms_literal(terms: list[int]) -> str:
    """Terms as a PostgreSQL array literal: unnest() cannot take an array of arrays of
    different lengths, so each row's terms travel as text and are cast back."""
    return "{" + ",".join(map(str, terms)) + "}"


MIGRATIONS: tuple[Migration, ...] = (
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
    _seal_text,
    # 4: each reply's origin (the model that gave it and the tokens it reported), and each
    # conversation's own model and instructions (NULL: the deployment's default). The
    # instructions are the owner's words, so they are sealed like the title; a model's
    # name is the deployment's, not the user's.
    """
    ALTER TABLE exchanges
        ADD COLUMN model text,
        ADD COLUMN input_tokens integer,
        ADD COLUMN output_tokens integer;
    ALTER TABLE conversations
        ADD COLUMN model text,
        ADD COLUMN system_prompt_sealed bytea;
    """,
    # 5: full-text search, by keyed terms.
    _index_for_search,
    # 6: cutting a conversation at a turn (regenerate, edit). Each conversation counts its
    # cuts, and each exchange keeps the count it was stored under (domain.Exchange), which
    # tells a client that holds an exchange whether it was cut since (chat/live.py).
    """
    ALTER TABLE exchanges ADD COLUMN generation integer NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN generation integer NOT NULL DEFAULT 0;
    """,
    # 7: search keys stored, not derived at each search.
    _keep_search_keys,
)

SCHEMA_VERSION = len(MIGRATIONS)
