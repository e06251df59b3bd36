"""Ordered schema migrations, tracked with ``PRAGMA user_version``.

Migration ``n`` (1-based) brings a database from version ``n - 1`` to ``n``. Append new
ones; never edit one that has shipped, because existing databases already ran it.
"""

from __future__ import annotations

# Full-text search of the messages and replies (store/sqlite.py's ``search``): an FTS5 index
# whose content is the exchanges table itself (external content: the text is stored once),
# kept in step by triggers, so every statement that inserts, changes or deletes exchanges
# (a conversation's deletion, or any later one) changes the index in the same transaction,
# with no code of its own. The tokenizer folds case and diacritics as search_terms.py does.
# 'rebuild' indexes the exchanges already stored.
SEARCH_INDEX = """
CREATE VIRTUAL TABLE exchanges_search USING fts5 (
    user_message, ai_response,
    content = 'exchanges', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER exchanges_search_insert AFTER INSERT ON exchanges BEGIN
    INSERT INTO exchanges_search (rowid, user_message, ai_response)
    VALUES (new.id, new.user_message, new.ai_response);
END;
CREATE TRIGGER exchanges_search_delete AFTER DELETE ON exchanges BEGIN
    INSERT INTO exchanges_search (exchanges_search, rowid, user_message, ai_response)
    VALUES ('delete', old.id, old.user_message, old.ai_response);
END;
CREATE TRIGGER exchanges_search_update AFTER UPDATE OF user_message, ai_response ON exchanges
BEGIN
    INSERT INTO exchanges_search (exchanges_search, rowid, user_message, ai_response)
    VALUES ('delete', old.id, old.user_message, old.ai_response);
    INSERT INTO exchanges_search (rowid, user_message, ai_response)
    VALUES (new.id, new.user_message, new.ai_response);
END;
INSERT INTO exchanges_search (exchanges_search) VALUES ('rebuild');
"""

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
    # 3: conversations, each owned by one principal (conversations.py: ``key`` is owner and
    # id in one, what exchanges.conversation_id holds). Those stored so far were nobody's
    # in particular: they go to the anonymous owner (''), titled with the start of their
    # first message. The index serves an owner's list, most recently active first.
    """
    CREATE TABLE conversations (
        key        TEXT    PRIMARY KEY,
        owner      TEXT    NOT NULL,
        public_id  TEXT    NOT NULL,
        title      TEXT,
        created_at TEXT    NOT NULL,
        updated_at TEXT    NOT NULL,
        exchanges  INTEGER NOT NULL CHECK (exchanges >= 0)
    );
    CREATE INDEX conversations_by_activity ON conversations (owner, updated_at, public_id);
    INSERT INTO conversations (key, owner, public_id, title, created_at, updated_at, exchanges)
    SELECT
        conversation_id, '', conversation_id,
        (SELECT trim(substr(replace(replace(replace(first.user_message, char(13), ' '),
                                            char(10), ' '), char(9), ' '), 1, 60))
         FROM exchanges AS first WHERE first.conversation_id = e.conversation_id
         ORDER BY first.id LIMIT 1),
        min(created_at), max(created_at), count(*)
    FROM exchanges AS e GROUP BY conversation_id;
    """,
    # 4: clients page and resume by turn (a conversation's own count, where the global id
    # would tell them how busy everyone else is), so (conversation_id, turn) is indexed.
    # Unique, as turns are: one writer hands them out, gap-free, and a deletion takes a
    # conversation's rows with it before its id can start again at 1.
    """
    CREATE UNIQUE INDEX exchanges_by_turn ON exchanges (conversation_id, turn);
    """,
    # 5: each reply's origin (the model that gave it and the tokens it reported), and each
    # conversation's own model and instructions (NULL: the deployment's default).
    """
    ALTER TABLE exchanges ADD COLUMN model TEXT;
    ALTER TABLE exchanges ADD COLUMN input_tokens INTEGER;
    ALTER TABLE exchanges ADD COLUMN output_tokens INTEGER;
    ALTER TABLE conversations ADD COLUMN model TEXT;
    ALTER TABLE conversations ADD COLUMN system_prompt TEXT;
    """,
    # 6: full-text search of messages and replies.
    SEARCH_INDEX,
    # 7: cutting a conversation at a turn (regenerate, edit). Each conversation counts its
    # cuts, and each exchange keeps the count it was stored under (domain.Exchange), which
    # tells a client that holds an exchange whether it was cut since (chat/live.py).
    """
    ALTER TABLE exchanges ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
