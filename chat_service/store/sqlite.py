"""SQLite store on aiosqlite: WAL, ``synchronous=FULL``, one writer, group commit.

Durability: an exchange is acknowledged only after the transaction holding it has been
committed with ``synchronous=FULL``, i.e. fsynced. Concurrent appends share transactions
(group_commit.py), so a burst of N concurrent requests costs one fsync rather than N; the
transactions run on the writer thread (writer.py).

Reads go through a separate connection (WAL lets it read while the writer writes), so
a long history read never waits behind a commit and vice versa.

Faults (disk full, read-only file, corruption) fail the requests they hit with StoreError
and never stop the service: the connection that failed is dropped and reopened on next
use, so the store recovers by itself once the fault is gone. ``ping`` (``/readyz``) proves
both paths: a read, and a real write committed through the writer queue; after a read
fault it also runs ``PRAGMA quick_check``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from chat_service.chat.domain import (
    DEFAULTS,
    KEEP,
    NO_SETTINGS,
    Conversation,
    ConversationCursor,
    ConversationRef,
    ConversationSettings,
    Exchange,
    HistoryKeys,
    HistoryPage,
    Position,
    ReplyOrigin,
    SearchHit,
    SettingsChange,
    StoreError,
    StoreOpenError,
    page_of_newest,
    title_from_message,
)
from chat_service.store.base import (
    CatalogueListener,
    ChangeListener,
    NullObserver,
    RemovalListener,
    StoreObserver,
)
from chat_service.store.group_commit import (
    MAX_BATCH,
    TABLE,
    GroupCommit,
    GroupCommitted,
    NewExchange,
)
from chat_service.store.keys import conversation_of, storage_key
from chat_service.store.local_feed import LocalChangeFeed
from chat_service.store.reads import CONVERSATIONS, TracedReads
from chat_service.store.search_terms import CANDIDATES, rank
from chat_service.store.since import exchanges_since
from chat_service.store.writer import (
    CONNECTION_PRAGMAS,
    ERASE_FROM_SEARCH_INDEX,
    WriterThread,
    erase,
    migrate,
    transaction,
    truncate_log,
)
from chat_service.timestamps import utc_now

log = logging.getLogger(__name__)

# Conversations whose version (newest exchange id) is kept in memory; others are read.
MAX_KNOWN_VERSIONS = 65_536

# The statements run for every row of a batch, in this order (writer.transaction):
# - _CUT erases, for an exchange stored in place of another (:cut_from, else NULL), that one
#   and every later one (the search index's triggers take their words out with them); only
#   in a batch that cuts, so that the others pay nothing for it;
# - _COUNT counts the exchange into its conversation, creating it (titled by its first
#   message) when this is its first; a cut leaves the turns before it, and is counted as one
#   more generation (turns are gap-free from 1, so a count is the last turn);
# - _INSERT stores it after the conversation's last exchange, under its generation.
_CUT = "DELETE FROM exchanges WHERE conversation_id = :conversation_id AND turn >= :cut_from"
_COUNT = """
INSERT INTO conversations (key, owner, public_id, title, created_at, updated_at, exchanges)
VALUES (:conversation_id, :owner, :public_id, :title, :created_at, :created_at, 1)
ON CONFLICT (key) DO UPDATE SET
    updated_at = max(conversations.updated_at, excluded.updated_at),
    exchanges = CASE WHEN :cut_from IS NULL THEN conversations.exchanges
        ELSE min(conversations.exchanges, :cut_from - 1) END + 1,
    generation = conversations.generation + (:cut_from IS NOT NULL),
    title = COALESCE(conversations.title, excluded.title)
"""
_INSERT = """
INSERT INTO exchanges (
    conversation_id, turn, user_message, ai_response, created_at, trace_id,
    model, input_tokens, output_tokens, generation
)
VALUES (
    :conversation_id,
    COALESCE(
        (SELECT turn FROM exchanges WHERE conversation_id = :conversation_id
         ORDER BY id DESC LIMIT 1),
        0
    ) + 1,
    :user, :ai, :created_at, :trace_id, :model, :input_tokens, :output_tokens,
    (SELECT generation FROM conversations WHERE key = :conversation_id)
)
"""
# One history item per row, under the keys given as the first nine parameters (HistoryKeys);
# its id is domain.exchange_cursor's.
_HISTORY_ITEMS = """
SELECT json_group_array(json_object(
    ?1, user_message, ?2, ai_response, ?3, turn, ?4, created_at, ?5, model,
    ?6, CASE WHEN input_tokens IS NULL AND output_tokens IS NULL THEN NULL
        ELSE json_object(?7, input_tokens, ?8, output_tokens) END,
    ?9, 't' || turn || CASE WHEN generation THEN '.' || generation ELSE '' END
))
"""
_CONVERSATION_COLUMNS = "public_id, title, created_at, updated_at, exchanges, model, system_prompt"
# A settings change: ?1/?3 say whether the model/instructions change, ?2/?4 to what.
_CONFIGURE = f"""
UPDATE conversations SET
    model = CASE WHEN ?1 THEN ?2 ELSE model END,
    system_prompt = CASE WHEN ?3 THEN ?4 ELSE system_prompt END
WHERE key = ?5 RETURNING {_CONVERSATION_COLUMNS}
"""
# The newest of an owner's exchanges that the index matches (FTS5 reads its matches newest
# first, and the query stops at the limit). The owner is a column of conversations: the
# anonymous owner's keys have no prefix to filter exchanges by.
_SEARCH = """
SELECT e.id, e.conversation_id, e.turn, e.user_message, e.ai_response, e.created_at,
       e.trace_id, e.model, e.input_tokens, e.output_tokens, e.generation, c.title
FROM exchanges_search AS s
JOIN exchanges AS e ON e.id = s.rowid
JOIN conversations AS c ON c.key = e.conversation_id
WHERE exchanges_search MATCH ? AND c.owner = ?
ORDER BY s.rowid DESC
LIMIT ?
"""
_PROBE = "UPDATE store_probe SET checked_at = ? WHERE id = 1"
_COLUMNS = (
    "id, conversation_id, turn, user_message, ai_response, created_at, trace_id, "
    "model, input_tokens, output_tokens, generation"
)


class SQLiteChatStore(GroupCommitted):
    """A :class:`~chat_service.store.base.ChatStore` on one SQLite file (``conversation_id``
    columns hold storage keys: keys.py).

    One process owns the file (SQLite has one writer), so every commit passes through this
    object: it keeps each recently used conversation's version from its own commits and
    asks the database only for conversations it has not seen since it opened.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = MAX_BATCH,
        observer: StoreObserver | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.path = path
        # The provider's own tracer (the process's unless one is given), taken when the store
        # opens, after tracing is set up: the module-level proxy would add a layer to every span.
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._observer: StoreObserver = observer or NullObserver()
        self._span_attributes = {"db.system.name": "sqlite", "db.namespace": path.name}
        self._reads = TracedReads(self._tracer, self._observer, self._span_attributes)
        self._writer = WriterThread(path)
        self._reader: aiosqlite.Connection | None = None
        self._reader_lock = asyncio.Lock()
        self._commits = GroupCommit(
            self._transaction,
            tracer=self._tracer,
            observer=self._observer,
            span_attributes=self._span_attributes,
            max_batch=max_batch,
        )
        self._commits.add_listener(self._committed)
        self._feed = LocalChangeFeed(self._commits)
        self._closing = False
        # Why the last read failed; cleared once an integrity check passes again.
        self._read_fault: str | None = None
        # Conversation -> id of its newest exchange, least recently used first.
        self._versions: OrderedDict[ConversationRef, int] = OrderedDict()
        self._deletions = 0  # versions read across a deletion are not remembered
        # Conversation -> its model and instructions, least recently used first. This process
        # is the database's one writer: every change passes here (_catalogued, deletions).
        self._settings: OrderedDict[ConversationRef, ConversationSettings] = OrderedDict()
        self._settings_changes = 0  # settings read across a change are not remembered

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        max_batch: int = MAX_BATCH,
        observer: StoreObserver | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> SQLiteChatStore:
        """Open (creating if needed) and migrate the database; raise StoreOpenError if not."""
        store = cls(path, max_batch=max_batch, observer=observer, tracer_provider=tracer_provider)
        try:
            # The writer (plain sqlite3) opens first: an unopenable path fails there, before
            # aiosqlite, whose failed connect leaves a thread calling back into the loop.
            await store._writer.run(migrate)
            store._reader = await store._open_reader()
        except (sqlite3.Error, OSError, ValueError, StoreError) as exc:
            await store._close_connections()
            if isinstance(exc, StoreOpenError):
                raise
            raise StoreOpenError(f"cannot open database {str(path)!r}: {exc}") from exc
        store._commits.start()
        return store

    async def _open_reader(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            for pragma in CONNECTION_PRAGMAS:
                await conn.execute(pragma)
            await conn.execute("PRAGMA query_only=ON")
        except BaseException:
            await _close_quietly(conn)
            raise
        return conn

    # -- writes ------------------------------------------------------------------------

    def add_change_listener(self, listener: ChangeListener) -> None:
        self._feed.add_change_listener(listener)

    def add_removal_listener(self, listener: RemovalListener) -> None:
        self._feed.add_removal_listener(listener)

    def add_catalogue_listener(self, listener: CatalogueListener) -> None:
        self._feed.add_catalogue_listener(listener)

    async def _transaction(self, writes: Sequence[NewExchange], *, probe: bool) -> list[Exchange]:
        """One transaction on the writer thread; the inserted rows, in the batch's order."""
        statements: list[tuple[str, Sequence[Any]]] = [(_PROBE, (utc_now(),))] if probe else []
        params = [
            {
                "conversation_id": storage_key(new.conversation),
                "owner": new.conversation.owner,
                "public_id": new.conversation.id,
                "title": title_from_message(new.user),
                "user": new.user,
                "ai": new.ai,
                "created_at": new.created_at,
                "trace_id": new.trace_id,
                "model": new.origin.model,
                "input_tokens": new.origin.input_tokens,
                "output_tokens": new.origin.output_tokens,
                "cut_from": new.replaces_turn,
            }
            for new in writes
        ]
        cuts = any(new.replaces_turn is not None for new in writes)
        if cuts:
            statements.append((ERASE_FROM_SEARCH_INDEX, ()))
        # Only what the database chose (id, turn, generation): the rest is what was
        # written, already at hand, and reading the texts back cost both threads (issue 26).
        read_back = "SELECT id, turn, generation FROM exchanges ORDER BY id DESC LIMIT ?"
        try:
            rows = await self._writer.run(
                functools.partial(
                    transaction,
                    statements=statements,
                    inserts=((_CUT, _COUNT, _INSERT) if cuts else (_COUNT, _INSERT), params),
                    read_back=read_back,
                )
            )
        except (sqlite3.Error, OSError, StoreError) as exc:
            # StoreError: reopening the writer refused (e.g. WAL mode could not be set).
            log.error("group commit failed: %s", exc, extra={"batch_size": len(writes)})
            raise await self._write_failed(exc) from exc
        if cuts:
            await self._writer.run(truncate_log)
        return [new.stored(*row) for new, row in zip(writes, rows, strict=True)]

    async def _write_failed(self, exc: BaseException) -> StoreError:
        # Drop the connection: the next write reopens it, with a clean state and cache,
        # which is how the store recovers once the disk or file is healthy again.
        await self._writer.reset()
        error = StoreError(f"commit failed: {exc}")
        error.__cause__ = exc
        return error

    async def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Statements in one transaction on the writer thread, in turn with the batches;
        the rows the last one returned."""
        try:
            return await self._writer.run(
                functools.partial(transaction, statements=statements, inserts=None, read_back="")
            )
        except (sqlite3.Error, OSError, StoreError) as exc:
            log.error("write failed: %s", exc)
            raise await self._write_failed(exc) from exc

    # -- conversations -------------------------------------------------------------------

    async def conversations(
        self, owner: str, *, limit: int, after: ConversationCursor | None = None
    ) -> Sequence[Conversation]:
        where, params = "owner = ?", [owner]
        if after is not None:
            where += " AND (updated_at, public_id) < (?, ?)"
            params += [after.updated_at, after.id]
        rows = await self._select(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE {where} "
            "ORDER BY updated_at DESC, public_id DESC LIMIT ?",
            [*params, limit],
            table=CONVERSATIONS,
        )
        return [Conversation(*row) for row in rows]

    async def conversation(self, conversation: ConversationRef) -> Conversation | None:
        rows = await self._select(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE key = ?",
            [storage_key(conversation)],
            table=CONVERSATIONS,
        )
        return Conversation(*rows[0]) if rows else None

    async def conversation_settings(self, conversation: ConversationRef) -> ConversationSettings:
        known = self._settings.get(conversation)
        if known is not None:
            self._settings.move_to_end(conversation)
            return known
        changes, deletions = self._settings_changes, self._deletions
        rows = await self._select(
            "SELECT model, system_prompt FROM conversations WHERE key = ?",
            [storage_key(conversation)],
            table=CONVERSATIONS,
        )
        settings = ConversationSettings(*rows[0]) if rows else NO_SETTINGS
        if changes == self._settings_changes:
            self._remember_settings(conversation, settings)
        # No row, no exchanges (the first one creates the row in its transaction): its
        # version is 0, unless a commit landed meanwhile (and said so) or it was deleted.
        if not rows and deletions == self._deletions and conversation not in self._versions:
            self._remember_version(conversation, 0)
        return settings

    def _remember_settings(
        self, conversation: ConversationRef, settings: ConversationSettings
    ) -> None:
        self._settings[conversation] = settings
        self._settings.move_to_end(conversation)
        if len(self._settings) > MAX_KNOWN_VERSIONS:
            self._settings.popitem(last=False)

    def _forget_settings(self, conversation: ConversationRef) -> None:
        self._settings_changes += 1
        self._settings.pop(conversation, None)

    async def create_conversation(
        self,
        conversation: ConversationRef,
        title: str | None,
        settings: SettingsChange = DEFAULTS,
    ) -> Conversation | None:
        now = utc_now()
        key, owner, public_id = storage_key(conversation), conversation.owner, conversation.id
        model, prompt = settings.as_created()
        rows = await self._write(
            [
                (
                    "INSERT INTO conversations (key, owner, public_id, title, created_at, "
                    "updated_at, exchanges, model, system_prompt) "
                    "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) "
                    f"ON CONFLICT (key) DO NOTHING RETURNING {_CONVERSATION_COLUMNS}",
                    (key, owner, public_id, title, now, now, model, prompt),
                )
            ]
        )
        return self._catalogued(conversation, rows)

    async def rename_conversation(
        self, conversation: ConversationRef, title: str
    ) -> Conversation | None:
        rows = await self._write(
            [
                (
                    "UPDATE conversations SET title = ? WHERE key = ? "
                    f"RETURNING {_CONVERSATION_COLUMNS}",
                    (title, storage_key(conversation)),
                )
            ]
        )
        return self._catalogued(conversation, rows)

    def _catalogued(self, conversation: ConversationRef, rows: list[Any]) -> Conversation | None:
        """The conversation a creation, renaming or change of settings returned, once its
        listeners heard of it
        (committed: the writer returns after the commit); None when it changed nothing."""
        if not rows:
            return None
        self._feed.catalogued(conversation)
        found = Conversation(*rows[0])
        self._forget_settings(conversation)
        self._remember_settings(
            conversation, ConversationSettings(found.model, found.system_prompt)
        )
        return found

    async def configure_conversation(
        self, conversation: ConversationRef, settings: SettingsChange
    ) -> Conversation | None:
        model, prompt = settings.as_created()
        params = (
            settings.model is not KEEP,
            model,
            settings.system_prompt is not KEEP,
            prompt,
            storage_key(conversation),
        )
        return self._catalogued(conversation, await self._write([(_CONFIGURE, params)]))

    async def delete_conversation(self, conversation: ConversationRef) -> bool:
        """Delete, then checkpoint and truncate the WAL: with secure_delete the freed space
        in the database file is zeroed, and the log's copies of the old pages go too."""
        try:
            erasing = functools.partial(erase, key=storage_key(conversation))
            deleted = await self._writer.run(erasing)
        except (sqlite3.Error, OSError, StoreError) as exc:
            log.error("delete failed: %s", exc)
            raise await self._write_failed(exc) from exc
        if deleted:
            self._deletions += 1
            self._versions.pop(conversation, None)
            self._forget_settings(conversation)
            self._feed.removed(conversation)
        return deleted

    def _committed(self, exchanges: Sequence[Exchange]) -> None:
        for exchange in exchanges:
            self._remember_version(exchange.conversation, exchange.id)

    def _remember_version(self, conversation: ConversationRef, version: int) -> None:
        self._versions[conversation] = version
        self._versions.move_to_end(conversation)
        if len(self._versions) > MAX_KNOWN_VERSIONS:
            self._versions.popitem(last=False)

    # -- reads -------------------------------------------------------------------------

    async def version(self, conversation: ConversationRef) -> int:
        """The id of the conversation's newest exchange (0 for none): it changes with every
        commit to the conversation, and only then."""
        known = self._versions.get(conversation)
        if known is not None:
            self._versions.move_to_end(conversation)
            return known
        deletions = self._deletions
        rows = await self._select(
            "SELECT id FROM exchanges WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
            [storage_key(conversation)],
        )
        # A commit may have landed while the read ran: ids only grow, so the larger is current.
        version = max(rows[0][0] if rows else 0, self._versions.get(conversation, 0))
        if deletions == self._deletions:  # else what was read may be of a deleted conversation
            self._remember_version(conversation, version)
        return version

    async def last_turn(self, conversation: ConversationRef) -> int:
        return (await self.position(conversation)).turn

    async def position(self, conversation: ConversationRef) -> Position:
        rows = await self._select(
            "SELECT turn, generation FROM exchanges WHERE conversation_id = ? "
            "ORDER BY turn DESC LIMIT 1",
            [storage_key(conversation)],
        )
        return Position(rows[0][0], rows[0][1]) if rows else Position(0)

    async def history(
        self,
        conversation: ConversationRef,
        *,
        limit: int | None = None,
        before_turn: int | None = None,
    ) -> HistoryPage:
        where = "conversation_id = ?"
        params: list[Any] = [storage_key(conversation)]
        if before_turn is not None:
            where += " AND turn < ?"
            params.append(before_turn)
        if limit is None:
            rows = await self._select(
                f"SELECT {_COLUMNS} FROM exchanges WHERE {where} ORDER BY turn", params
            )
            return HistoryPage([_exchange(row, conversation) for row in rows], has_older=False)
        # One row more than asked tells whether an older page exists.
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM exchanges WHERE {where} ORDER BY turn DESC LIMIT ?",
            [*params, limit + 1],
        )
        return page_of_newest([_exchange(row, conversation) for row in rows], limit)

    async def exchanges_after(
        self,
        conversation: ConversationRef,
        after_turn: int,
        *,
        limit: int,
        generation: int = 0,
    ) -> Sequence[Exchange]:
        key = storage_key(conversation)

        async def rows_from(turn: int, count: int) -> list[Exchange]:
            rows = await self._select(
                f"SELECT {_COLUMNS} FROM exchanges WHERE conversation_id = ? AND turn >= ? "
                "ORDER BY turn LIMIT ?",
                [key, turn, count],
            )
            return [_exchange(row, conversation) for row in rows]

        async def first_turn_above(known: int) -> int | None:
            rows = await self._select(
                "SELECT min(turn) FROM exchanges WHERE conversation_id = ? AND generation > ?",
                [key, known],
            )
            return rows[0][0] if rows else None

        return await exchanges_since(rows_from, first_turn_above, after_turn, generation, limit)

    async def history_json(
        self,
        conversation: ConversationRef,
        *,
        keys: HistoryKeys,
        before_turn: int | None = None,
    ) -> bytes:
        """Every exchange (before turn ``before_turn``) as a JSON array of history items
        under ``keys``, oldest first, UTF-8, serialised by SQLite itself: a long history
        never becomes thousands of Python objects (bench/README.md)."""
        where = "conversation_id = ?"
        params: list[Any] = [*keys, storage_key(conversation)]
        if before_turn is not None:
            where += " AND turn < ?"
            params.append(before_turn)
        # The subquery's ORDER BY fixes the order json_group_array sees the rows in.
        rows = await self._select(
            _HISTORY_ITEMS + f"FROM (SELECT * FROM exchanges WHERE {where} ORDER BY turn)",
            params,
        )
        document: str = rows[0][0]
        return document.encode()

    async def search(self, owner: str, words: Sequence[str], *, limit: int) -> Sequence[SearchHit]:
        """Exchanges holding every word, by FTS5 (migrations.py): the newest CANDIDATES,
        ranked as PostgreSQL's are (search_terms.rank). Each word is quoted, so nothing a user
        types is read as FTS5's syntax (words hold letters and digits only: search_terms.py).
        FTS5's own bm25() would rank every match, and its first call in a query reads every
        match's entry in every segment of the index: 160 ms for a word in 65,000 exchanges
        (bench/README.md), against 1 ms for the newest 200."""
        query = " ".join(f'"{word}"' for word in words)
        rows = await self._select(_SEARCH, [query, owner, CANDIDATES])
        hits = [SearchHit(_exchange(row, conversation_of(row[1])), row[11]) for row in rows]
        return rank(hits, words)[:limit]

    async def ping(self) -> None:
        """Raise StoreError unless the store can both read and commit right now."""
        if not self._commits.running:
            raise StoreError("the writer task is not running")
        if self._read_fault is None:
            await self._read("SELECT 1", [])
        else:
            result = await self._read("PRAGMA quick_check", [])
            if [tuple(row) for row in result] != [("ok",)]:
                raise StoreError(f"integrity check failed: {result[0][0]}")
            log.info("store recovered", extra={"fault": self._read_fault})
            self._read_fault = None
        await self._commits.probe()

    async def _select(self, sql: str, params: Sequence[Any], *, table: str = TABLE) -> list[Any]:
        return await self._reads.select(functools.partial(self._read, sql, params), table)

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._closing:
            raise StoreError("the store is closed")
        try:
            conn = await self._reader_connection()
            return list(await conn.execute_fetchall(sql, params))
        except (sqlite3.Error, OSError, ValueError) as exc:
            # ValueError: aiosqlite's "connection closed", when a fault dropped it meanwhile.
            self._read_fault = str(exc)
            await self._drop_reader()
            raise StoreError(f"read failed: {exc}") from exc

    async def _reader_connection(self) -> aiosqlite.Connection:
        async with self._reader_lock:
            if self._reader is None:
                self._reader = await self._open_reader()
                log.info("reopened the reader connection")
            return self._reader

    async def _drop_reader(self) -> None:
        async with self._reader_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            await _close_quietly(reader)

    # -- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        """Commit everything already queued, then close both connections."""
        if self._closing:
            return
        await self._commits.close()
        self._closing = True
        await self._close_connections()

    async def _close_connections(self) -> None:
        if self._reader is not None:
            await _close_quietly(self._reader)
            self._reader = None
        await self._writer.close()


async def _close_quietly(conn: aiosqlite.Connection) -> None:
    with contextlib.suppress(sqlite3.Error, ValueError, OSError):
        await conn.close()


def _exchange(row: Sequence[Any], conversation: ConversationRef) -> Exchange:
    """An exchange read from ``conversation``'s rows (whose key is ``row[1]``)."""
    return Exchange(
        id=row[0],
        conversation=conversation,
        turn=row[2],
        user=row[3],
        ai=row[4],
        created_at=row[5],
        trace_id=row[6],
        origin=ReplyOrigin(row[7], row[8], row[9]),
        generation=row[10],
    )
