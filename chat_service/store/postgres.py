"""PostgreSQL store on asyncpg: any number of replicas serve one history.

Durability: every connection commits with ``synchronous_commit=on``, and an exchange is
acknowledged only after its transaction committed. Concurrent appends share transactions
(group_commit.py), one per batch, as on SQLite.

Order across replicas: each batch first counts its exchanges into the ``conversations``
rows they belong to (one upsert, in a fixed order, so two replicas' batches never
deadlock) and holds those rows until it commits; the count is the last turn. Turns are
therefore unique and gap-free per conversation whichever replica writes, and the unique
constraint on (conversation_id, turn) would refuse anything else.

Reads always ask the database, so a conversation's version (the id of its newest
exchange) and its history include every exchange acknowledged by any replica. Pages and
resumptions go by turn, which the unique constraint's index serves (clients see turns,
never the global ids: issue 23).

Start-up retries an unreachable database with backoff for up to ``connect_timeout_s``,
then gives up with StoreOpenError. Migrations run in one transaction under an advisory
lock, so replicas that start at once take turns and only the first migrates. A database
lost later fails the requests it hits with StoreError (the contract's 500s, ``/readyz``
503); the pool opens new connections once it is back.

Text is sealed: every message, reply and title is encrypted with its conversation's own key
before it is written (sealing.py), and deleting the conversation deletes the key, then takes
it out of the table's files (postgres_shredding.py). Whatever copies PostgreSQL keeps of a
deleted conversation (dead rows, the WAL, replicas, backups) are ciphertext without a key.
The keys table is locked before the conversations table in every transaction that takes
both, so deletions and batches never deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy
from opentelemetry import trace
from opentelemetry.trace import TracerProvider
from yarl import URL

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
    history_item,
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
from chat_service.store.keys import storage_key
from chat_service.store.postgres_cut import cut
from chat_service.store.postgres_failures import FAILURES as _FAILURES
from chat_service.store.postgres_migrations import MIGRATIONS, SCHEMA_VERSION, terms_literal
from chat_service.store.postgres_notify import (
    PostgresChangeFeed,
    notify_catalogued,
    notify_changed,
    notify_removed,
)
from chat_service.store.postgres_shredding import (
    INTERVAL_S as SHRED_INTERVAL_S,
)
from chat_service.store.postgres_shredding import (
    REQUEST,
    KeyShredder,
    rewrite_unsealed_tables,
)
from chat_service.store.reads import CONVERSATIONS, TracedReads
from chat_service.store.sealing import AI, PROMPT, TITLE, USER, new_key, seal, unseal
from chat_service.store.search_terms import CANDIDATES, keyed_term, keyed_terms, rank, search_key
from chat_service.store.since import exchanges_since
from chat_service.timestamps import rfc3339, utc_now

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the migrations: "chat" in ASCII.
MIGRATION_LOCK = 0x63686174
# Refused connections worth waiting for: the server is not up yet, or is starting.
_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)
# How long one statement may take before the request fails rather than hangs.
COMMAND_TIMEOUT_S = 30.0

# An exchange and its conversation's key (one index lookup: the key's primary key).
_COLUMNS = (
    "id, conversation_id, turn, user_sealed, ai_sealed, created_at, trace_id, "
    "model, input_tokens, output_tokens, generation, key"
)
_EXCHANGES = "exchanges JOIN conversation_keys USING (conversation_id)"
# The keys of a batch's conversations, locked against a deletion until the batch commits, in
# a fixed order like every lock a batch takes.
_KEYS = """
SELECT conversation_id, key, search_key FROM conversation_keys
WHERE conversation_id = ANY($1::text[]) ORDER BY conversation_id FOR KEY SHARE
"""
# A key is written with its search key (migration 7).
_NEW_KEYS = """
INSERT INTO conversation_keys (conversation_id, key, search_key)
SELECT id, key, search_key
FROM unnest($1::text[], $2::bytea[], $3::bytea[]) AS new (id, key, search_key) ORDER BY id
ON CONFLICT (conversation_id) DO NOTHING
RETURNING conversation_id, key, search_key
"""
# Sorted by id in SQL: every replica takes the conversations' row locks in the same order.
# A conversation written to for the first time is created, titled by its first message
# (its owner and public id are columns PostgreSQL derives from the key: migration 2).
_COUNT = """
INSERT INTO conversations AS c (id, exchanges, title_sealed, created_at, updated_at)
SELECT id, n, t, ts::timestamptz, ts::timestamptz
FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::text[]) AS batch (id, n, t, ts)
ORDER BY id
ON CONFLICT (id) DO UPDATE SET
    exchanges = c.exchanges + excluded.exchanges,
    updated_at = GREATEST(c.updated_at, excluded.updated_at),
    title_sealed = COALESCE(c.title_sealed, excluded.title_sealed)
RETURNING id, exchanges, generation
"""
# A conversation cut by the batch (postgres_cut.py), once _COUNT locked and counted it: the
# turns before the cut ($3) are left, then this batch's ($2); one generation more; its title
# and instructions sealed under its new key ($4, $5; a title _COUNT just gave it already is).
_COUNT_CUT = """
UPDATE conversations SET
    exchanges = LEAST(exchanges - $2, $3 - 1) + $2,
    generation = generation + 1,
    title_sealed = COALESCE($4, title_sealed),
    system_prompt_sealed = $5
WHERE id = $1
RETURNING exchanges, generation
"""
_CONVERSATION_COLUMNS = (
    "public_id, title_sealed, created_at, updated_at, exchanges, model, system_prompt_sealed, key"
)
_CONVERSATIONS = "conversations JOIN conversation_keys ON conversation_id = id"
_INSERT = """
INSERT INTO exchanges (
    conversation_id, turn, user_sealed, ai_sealed, created_at, trace_id,
    model, input_tokens, output_tokens, search_terms, generation
)
SELECT c, t, u, a, ts::timestamptz, tr, m, i, o, st::bigint[], g
FROM unnest(
    $1::text[], $2::int[], $3::bytea[], $4::bytea[], $5::text[], $6::text[],
    $7::text[], $8::int[], $9::int[], $10::text[], $11::int[]
) AS batch (c, t, u, a, ts, tr, m, i, o, st, g)
RETURNING id, conversation_id, turn
"""
# Searches go by keyed terms (search_terms.py): a word's term differs from one conversation
# to the next, so the owner's conversations and their keys come first (_OWNERS_KEYS), then
# _SEARCH: for each conversation ($1), the exchanges that hold the terms of every word under
# its key ($2 holds each conversation's terms in turn, $3 of them each). The newest
# CANDIDATES ($4) matches are read, with what it takes to unseal them, and ranked here, where
# their text is. Two ways of finding them, in one statement (one round trip):
# - recent: the newest RECENT_ROWS ($5) exchanges of the database, checked row by row. When
#   they hold CANDIDATES matches, those are the newest of all (a word in most exchanges:
#   found by the index, it would be tens of thousands of rows to read and sort).
# - found, only when they do not (the condition on recent's count is a one-time filter: the
#   scans are never started otherwise): one GIN scan per conversation (the lateral subquery,
#   kept a subquery by OFFSET 0). Given the whole array at once, GIN checks every candidate
#   row against every term of every conversation: a second at 1,000 conversations
#   (bench/README.md).
# The chosen ids are then read one by one, each with its conversation and key (the lateral
# subqueries, kept so by OFFSET 0: joined flat, the planner misjudged the ids' count and
# compared each of the owner's conversations with every id, 20-40 ms).
# The key itself only where a search key is missing (postgres_migrations.py, 7).
_OWNERS_KEYS = """
SELECT c.id, k.search_key, CASE WHEN k.search_key IS NULL THEN k.key END AS key
FROM conversations AS c
JOIN conversation_keys AS k ON k.conversation_id = c.id
WHERE c.owner = $1
"""
_SEARCH = """
WITH wanted AS MATERIALIZED (
    SELECT w.id, ($2::bigint[])[(w.n - 1) * $3 + 1 : w.n * $3] AS terms
    FROM unnest($1::text[]) WITH ORDINALITY AS w (id, n)
),
recent AS MATERIALIZED (
    SELECT r.id FROM (
        SELECT id, conversation_id, search_terms FROM exchanges ORDER BY id DESC LIMIT $5
    ) AS r
    JOIN wanted ON wanted.id = r.conversation_id
    WHERE r.search_terms @> wanted.terms
    ORDER BY r.id DESC
    LIMIT $4
),
found AS (
    SELECT m.id FROM wanted
    CROSS JOIN LATERAL (
        SELECT x.id, x.conversation_id FROM exchanges AS x
        WHERE x.search_terms @> wanted.terms
        OFFSET 0
    ) AS m
    WHERE m.conversation_id = wanted.id AND (SELECT count(*) FROM recent) < $4
    ORDER BY m.id DESC
    LIMIT $4
),
chosen AS (
    SELECT id FROM recent WHERE (SELECT count(*) FROM recent) >= $4
    UNION ALL
    SELECT id FROM found
)
SELECT e.id, e.conversation_id, e.turn, e.user_sealed, e.ai_sealed, e.created_at, e.trace_id,
       e.model, e.input_tokens, e.output_tokens, e.generation, k.key, c.public_id,
       c.title_sealed
FROM chosen
CROSS JOIN LATERAL (SELECT * FROM exchanges AS e WHERE e.id = chosen.id OFFSET 0) AS e
CROSS JOIN LATERAL (
    SELECT c.public_id, c.title_sealed FROM conversations AS c
    WHERE c.id = e.conversation_id OFFSET 0
) AS c
CROSS JOIN LATERAL (
    SELECT k.key FROM conversation_keys AS k WHERE k.conversation_id = e.conversation_id OFFSET 0
) AS k
"""
RECENT_ROWS = 2000

_PROBE = "UPDATE store_probe SET checked_at = now() WHERE id = 1"


class PoolStats:
    """The connection pool's state, which /metrics reads when scraped, and its waits."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.pool: asyncpg.Pool | None = None
        # Called with the seconds a query waited for a free connection (the metrics' hook).
        self.on_wait: Callable[[float], None] | None = None

    @property
    def size(self) -> int:
        return self.pool.get_size() if self.pool is not None else 0

    @property
    def in_use(self) -> int:
        return self.size - self.pool.get_idle_size() if self.pool is not None else 0

    def waited(self, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds)


class PostgresChatStore(GroupCommitted):
    """A :class:`~chat_service.store.base.ChatStore` on a PostgreSQL database."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_batch: int = MAX_BATCH,
        shred_interval_s: float = SHRED_INTERVAL_S,
        observer: StoreObserver | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.pool_stats = PoolStats(pool_size)
        self._pool: asyncpg.Pool | None = None
        parsed = URL(url)
        tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        observer = observer or NullObserver()
        attributes: dict[str, str | int] = {
            "db.system.name": "postgresql",
            "db.namespace": parsed.path.lstrip("/") or (parsed.user or "postgres"),
            "server.address": parsed.host or "localhost",
            "server.port": parsed.port or 5432,
        }
        self._reads = TracedReads(tracer, observer, attributes)
        self._commits = GroupCommit(
            self._transaction,
            tracer=tracer,
            observer=observer,
            span_attributes=attributes,
            max_batch=max_batch,
        )
        self._shredder = KeyShredder(self._connection, interval_s=shred_interval_s)
        self._feed = PostgresChangeFeed(url)
        self._closing = False

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages."""
        return str(URL(self.url).with_password(None))

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout_s: float = 30.0,
        max_batch: int = MAX_BATCH,
        shred_interval_s: float = SHRED_INTERVAL_S,
        observer: StoreObserver | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> PostgresChatStore:
        """Connect (retrying for up to ``connect_timeout_s``) and migrate; raise
        StoreOpenError if either cannot be done. ``shred_interval_s``: see
        postgres_shredding.py."""
        store = cls(
            url,
            pool_size=pool_size,
            max_batch=max_batch,
            shred_interval_s=shred_interval_s,
            observer=observer,
            tracer_provider=tracer_provider,
        )
        store._pool = await store._connect(connect_timeout_s)
        store.pool_stats.pool = store._pool
        try:
            async with store._pool.acquire() as conn:
                await migrate(conn)
                await rewrite_unsealed_tables(conn)
        except StoreOpenError:
            await store._pool.close()
            raise
        except _FAILURES as exc:
            await store._pool.close()
            raise StoreOpenError(f"cannot migrate {store.display_url}: {exc}") from exc
        store._commits.start()
        store._shredder.start()
        return store

    @property
    def shredder(self) -> KeyShredder:
        return self._shredder

    async def _connect(self, timeout_s: float) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = 0.1
        while True:
            remaining = deadline - loop.time()
            try:
                pool: asyncpg.Pool = await asyncpg.create_pool(
                    self.url,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=max(0.1, min(remaining, 10.0)),
                    command_timeout=COMMAND_TIMEOUT_S,
                    server_settings={
                        "synchronous_commit": "on",
                        "application_name": "chat-service",
                    },
                )
                return pool
            except _TRANSIENT as exc:
                if loop.time() >= deadline:
                    raise StoreOpenError(
                        f"cannot connect to {self.display_url} within {timeout_s:g} s: "
                        f"{exc or type(exc).__name__}"
                    ) from exc
                log.warning(
                    "database unreachable, retrying",
                    extra={"error_type": type(exc).__name__, "retry_in_s": delay},
                )
                # The last attempt is made at the deadline itself.
                await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
                delay = min(delay * 2, 2.0)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
                # A wrong password or database name does not fix itself: no retries.
                raise StoreOpenError(f"cannot connect to {self.display_url}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[PoolConnectionProxy]:
        """A connection from the pool; waits for one are counted for /metrics."""
        if self._closing or self._pool is None:
            raise StoreError("the store is closed")
        pool = self._pool
        if pool.get_idle_size() == 0 and pool.get_size() >= self.pool_size:
            started = time.perf_counter()
            conn = await pool.acquire()
            self.pool_stats.waited(time.perf_counter() - started)
        else:
            conn = await pool.acquire()
        try:
            yield conn
        finally:
            await pool.release(conn)

    # -- writes ------------------------------------------------------------------------

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Changes by every replica, this one included (postgres_notify.py)."""
        self._feed.add_change_listener(listener)

    def add_removal_listener(self, listener: RemovalListener) -> None:
        """Deletions by every replica, this one included (postgres_notify.py)."""
        self._feed.add_removal_listener(listener)

    def add_catalogue_listener(self, listener: CatalogueListener) -> None:
        """Creations and renamings by every replica, this one included (postgres_notify.py)."""
        self._feed.add_catalogue_listener(listener)

    async def _transaction(self, writes: Sequence[NewExchange], *, probe: bool) -> list[Exchange]:
        """One transaction: count the batch into its conversations, insert it, commit."""
        keyed = [(storage_key(new.conversation), new) for new in writes]
        counts = Counter(key for key, _ in keyed)
        # What a conversation created by this batch starts as: its first write's title,
        # and each conversation's last write as its latest activity.
        first = dict(reversed(keyed))
        last = dict(keyed)
        try:
            async with self._connection() as conn, conn.transaction():
                inserted: list[Any] = []
                turns: list[int] = []
                generations: dict[str, int] = {}
                if writes:
                    found = await _keys_of(conn, sorted(counts))
                    # Conversations this batch cuts, in the order of their keys' locks.
                    cut_from = dict(
                        sorted(
                            (key, new.replaces_turn)
                            for key, new in keyed
                            if new.replaces_turn is not None
                        )
                    )
                    cuts = {key: await cut(conn, key, turn) for key, turn in cut_from.items()}
                    found |= {key: Keys(done.key, done.search_key) for key, done in cuts.items()}
                    keys = {key: both.key for key, both in found.items()}
                    search_keys = {key: both.search_key for key, both in found.items()}
                    titles = [title_from_message(first[key].user) for key in counts]
                    counted = await conn.fetch(
                        _COUNT,
                        list(counts),
                        list(counts.values()),
                        [
                            None if title is None else seal(keys[key], title, TITLE)
                            for key, title in zip(counts, titles, strict=True)
                        ],
                        [last[key].created_at for key in counts],
                    )
                    totals = {row["id"]: row["exchanges"] for row in counted}
                    generations = {row["id"]: row["generation"] for row in counted}
                    for key, done in cuts.items():
                        # _COUNT made the row if it had none: there is exactly one.
                        (row,) = await conn.fetch(
                            _COUNT_CUT,
                            key,
                            counts[key],
                            cut_from[key],
                            done.title,
                            done.system_prompt,
                        )
                        totals[key], generations[key] = row["exchanges"], row["generation"]
                    turns = _turns([key for key, _ in keyed], counts, totals)
                    # Delivered to every replica's listener when (and only if) this commits.
                    await notify_changed(conn, [first[key].conversation for key in counts])
                    inserted = await conn.fetch(
                        _INSERT,
                        [key for key, _ in keyed],
                        turns,
                        [seal(keys[key], new.user, USER) for key, new in keyed],
                        [seal(keys[key], new.ai, AI) for key, new in keyed],
                        [new.created_at for new in writes],
                        [new.trace_id for new in writes],
                        [new.origin.model for new in writes],
                        [new.origin.input_tokens for new in writes],
                        [new.origin.output_tokens for new in writes],
                        [
                            terms_literal(keyed_terms(search_keys[key], (new.user, new.ai)))
                            for key, new in keyed
                        ],
                        [generations[key] for key, _ in keyed],
                    )
                if probe:
                    await conn.execute(_PROBE)
        except _FAILURES as exc:
            log.error(
                "group commit failed: %s",
                exc or type(exc).__name__,
                extra={"batch_size": len(writes)},
            )
            error = StoreError(f"commit failed: {exc or type(exc).__name__}")
            raise error from exc
        ids = {(row["conversation_id"], row["turn"]): row["id"] for row in inserted}
        return [
            new.stored(ids[(key, turn)], turn, generations[key])
            for (key, new), turn in zip(keyed, turns, strict=True)
        ]

    # -- conversations -------------------------------------------------------------------

    async def conversations(
        self, owner: str, *, limit: int, after: ConversationCursor | None = None
    ) -> Sequence[Conversation]:
        where, params = "owner = $1", [owner]
        if after is not None:
            where += " AND (updated_at, public_id) < ($2::text::timestamptz, $3)"
            params += [after.updated_at, after.id]
        rows = await self._select(
            f"SELECT {_CONVERSATION_COLUMNS} FROM {_CONVERSATIONS} WHERE {where} "
            f"ORDER BY updated_at DESC, public_id DESC LIMIT ${len(params) + 1}",
            *params,
            limit,
            table=CONVERSATIONS,
        )
        return [_conversation(row) for row in rows]

    async def conversation(self, conversation: ConversationRef) -> Conversation | None:
        rows = await self._select(
            f"SELECT {_CONVERSATION_COLUMNS} FROM {_CONVERSATIONS} WHERE id = $1",
            storage_key(conversation),
            table=CONVERSATIONS,
        )
        return _conversation(rows[0]) if rows else None

    async def conversation_settings(self, conversation: ConversationRef) -> ConversationSettings:
        # Any replica may change them: read them each time, and nothing else (every message
        # asks; the title stays sealed).
        rows = await self._select(
            f"SELECT model, system_prompt_sealed, key FROM {_CONVERSATIONS} WHERE id = $1",
            storage_key(conversation),
            table=CONVERSATIONS,
        )
        if not rows:
            return NO_SETTINGS
        model, sealed_prompt, key = rows[0]
        prompt = None if sealed_prompt is None else unseal(key, sealed_prompt, PROMPT)
        return ConversationSettings(model, prompt)

    async def create_conversation(
        self,
        conversation: ConversationRef,
        title: str | None,
        settings: SettingsChange = DEFAULTS,
    ) -> Conversation | None:
        key = storage_key(conversation)
        model, prompt = settings.as_created()
        try:
            async with self._connection() as conn, conn.transaction():
                conversation_key = (await _keys_of(conn, [key]))[key].key
                row = await conn.fetchrow(
                    "INSERT INTO conversations (id, exchanges, title_sealed, created_at, "
                    "updated_at, model, system_prompt_sealed) "
                    "VALUES ($1, 0, $2, $3::text::timestamptz, $3::text::timestamptz, $5, $6) "
                    "ON CONFLICT (id) DO NOTHING RETURNING public_id, title_sealed, created_at, "
                    "updated_at, exchanges, model, system_prompt_sealed, $4::bytea AS key",
                    key,
                    None if title is None else seal(conversation_key, title, TITLE),
                    utc_now(),
                    conversation_key,
                    model,
                    None if prompt is None else seal(conversation_key, prompt, PROMPT),
                )
                if row is not None:
                    await notify_catalogued(conn, conversation)
        except _FAILURES as exc:
            log.error("create failed: %s", exc or type(exc).__name__)
            raise StoreError(f"create failed: {exc or type(exc).__name__}") from exc
        return None if row is None else _conversation(row)

    async def rename_conversation(
        self, conversation: ConversationRef, title: str
    ) -> Conversation | None:
        return await self._change(
            conversation,
            "rename",
            "title_sealed = $2",
            lambda key: (seal(key, title, TITLE),),
        )

    async def configure_conversation(
        self, conversation: ConversationRef, settings: SettingsChange
    ) -> Conversation | None:
        model, prompt = settings.as_created()
        return await self._change(
            conversation,
            "configure",
            "model = CASE WHEN $2 THEN $3 ELSE model END, "
            "system_prompt_sealed = CASE WHEN $4 THEN $5 ELSE system_prompt_sealed END",
            lambda key: (
                settings.model is not KEEP,
                model,
                settings.system_prompt is not KEEP,
                None if prompt is None else seal(key, prompt, PROMPT),
            ),
        )

    async def _change(
        self,
        conversation: ConversationRef,
        operation: str,
        assignments: str,
        values: Callable[[bytes], tuple[Any, ...]],
    ) -> Conversation | None:
        """``UPDATE conversations SET <assignments>`` of one conversation (its id is $1, the
        ``values`` made with its key $2 on), under its key's lock, so no deletion takes the key
        meanwhile; every replica's catalogue listeners hear of it. None if there is none."""
        key = storage_key(conversation)
        try:
            async with self._connection() as conn, conn.transaction():
                conversation_key = await conn.fetchval(
                    "SELECT key FROM conversation_keys WHERE conversation_id = $1 FOR KEY SHARE",
                    key,
                )
                if conversation_key is None:
                    return None
                given = values(conversation_key)
                row = await conn.fetchrow(
                    f"UPDATE conversations SET {assignments} WHERE id = $1 RETURNING "
                    "public_id, title_sealed, created_at, updated_at, exchanges, model, "
                    f"system_prompt_sealed, ${len(given) + 2}::bytea AS key",
                    key,
                    *given,
                    conversation_key,
                )
                if row is not None:
                    await notify_catalogued(conn, conversation)
        except _FAILURES as exc:
            log.error("%s failed: %s", operation, exc or type(exc).__name__)
            raise StoreError(f"{operation} failed: {exc or type(exc).__name__}") from exc
        return None if row is None else _conversation(row)

    async def delete_conversation(self, conversation: ConversationRef) -> bool:
        """Lock the conversation's key, then its row: a batch writing to it meanwhile waits,
        then starts it afresh (with a new key), rather than adding an exchange to a
        conversation being deleted. At commit the rows and the key are gone; the shredder
        takes the key out of the table's files within its interval."""
        key = storage_key(conversation)
        try:
            async with self._connection() as conn, conn.transaction():
                await conn.execute(
                    "SELECT 1 FROM conversation_keys WHERE conversation_id = $1 FOR UPDATE", key
                )
                if (
                    await conn.fetchval("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", key)
                    is None
                ):
                    return False
                await conn.execute("DELETE FROM exchanges WHERE conversation_id = $1", key)
                await conn.execute("DELETE FROM conversations WHERE id = $1", key)
                await conn.execute("DELETE FROM conversation_keys WHERE conversation_id = $1", key)
                await conn.execute(REQUEST)
                await notify_removed(conn, conversation)
        except _FAILURES as exc:
            log.error("delete failed: %s", exc or type(exc).__name__)
            raise StoreError(f"delete failed: {exc or type(exc).__name__}") from exc
        return True

    # -- reads -------------------------------------------------------------------------

    async def version(self, conversation: ConversationRef) -> int:
        rows = await self._select(
            "SELECT id FROM exchanges WHERE conversation_id = $1 ORDER BY id DESC LIMIT 1",
            storage_key(conversation),
        )
        return int(rows[0]["id"]) if rows else 0

    async def last_turn(self, conversation: ConversationRef) -> int:
        return (await self.position(conversation)).turn

    async def position(self, conversation: ConversationRef) -> Position:
        rows = await self._select(
            "SELECT turn, generation FROM exchanges WHERE conversation_id = $1 "
            "ORDER BY turn DESC LIMIT 1",
            storage_key(conversation),
        )
        return Position(rows[0]["turn"], rows[0]["generation"]) if rows else Position(0)

    async def history(
        self,
        conversation: ConversationRef,
        *,
        limit: int | None = None,
        before_turn: int | None = None,
    ) -> HistoryPage:
        where, params = _where(storage_key(conversation), before_turn)
        if limit is None:
            rows = await self._select(
                f"SELECT {_COLUMNS} FROM {_EXCHANGES} WHERE {where} ORDER BY turn", *params
            )
            return HistoryPage([_exchange(row, conversation) for row in rows], has_older=False)
        # One row more than asked tells whether an older page exists.
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM {_EXCHANGES} WHERE {where} "
            f"ORDER BY turn DESC LIMIT ${len(params) + 1}",
            *params,
            limit + 1,
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
                f"SELECT {_COLUMNS} FROM {_EXCHANGES} WHERE conversation_id = $1 "
                "AND turn >= $2 ORDER BY turn LIMIT $3",
                key,
                turn,
                count,
            )
            return [_exchange(row, conversation) for row in rows]

        async def first_turn_above(known: int) -> int | None:
            rows = await self._select(
                "SELECT min(turn) AS turn FROM exchanges "
                "WHERE conversation_id = $1 AND generation > $2",
                key,
                known,
            )
            return rows[0]["turn"] if rows else None

        return await exchanges_since(rows_from, first_turn_above, after_turn, generation, limit)

    async def history_json(
        self,
        conversation: ConversationRef,
        *,
        keys: HistoryKeys,
        before_turn: int | None = None,
    ) -> bytes:
        """The history as the JSON array of items ``keys`` name. Unsealed here, so
        serialised here: PostgreSQL never sees the text to build the document itself."""
        page = await self.history(conversation, before_turn=before_turn)
        return orjson.dumps([history_item(e, keys) for e in page.exchanges])

    async def search(self, owner: str, words: Sequence[str], *, limit: int) -> Sequence[SearchHit]:
        """Exchanges holding every word, by their keyed terms; PostgreSQL sees neither the
        words nor the text (search_terms.py). Ranked here among the newest CANDIDATES
        matches, by how often and how densely they hold the words (search_terms.rank)."""
        keys = await self._select(_OWNERS_KEYS, owner)
        if not keys:
            return []
        terms: list[int] = []
        for row in keys:
            terms.extend(keyed_term(_search_key_of(row), word) for word in words)
        rows = await self._reads.select(
            lambda: self._search([row["id"] for row in keys], terms, len(words))
        )
        titles: dict[str, str | None] = {}  # unsealed once per conversation
        for row in rows:
            if row["public_id"] not in titles:
                sealed = row["title_sealed"]
                titles[row["public_id"]] = (
                    None if sealed is None else unseal(row["key"], sealed, TITLE)
                )
        hits = [
            SearchHit(
                _exchange(row, ConversationRef(owner, row["public_id"])), titles[row["public_id"]]
            )
            for row in rows
        ]
        return rank(hits, words)[:limit]

    async def _search(
        self, conversations: list[str], terms: list[int], words: int
    ) -> list[asyncpg.Record]:
        """The matches (_SEARCH), in a read-only transaction whose plan is made for its
        parameters each time and not compiled: a prepared statement's generic plan, made
        without the terms, scanned every row (2 s at 20,000 exchanges), and the estimate of
        the GIN scans is over the JIT threshold, whose compiling cost more than the scans."""
        try:
            async with self._connection() as conn, conn.transaction(readonly=True):
                await conn.execute(
                    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off"
                )
                rows: list[asyncpg.Record] = await conn.fetch(
                    _SEARCH, conversations, terms, words, CANDIDATES, RECENT_ROWS
                )
                return rows
        except _FAILURES as exc:
            raise StoreError(f"read failed: {exc or type(exc).__name__}") from exc

    async def ping(self) -> None:
        """Raise StoreError unless the database answers and takes a commit right now."""
        if not self._commits.running:
            raise StoreError("the group commit task is not running")
        if not self._feed.hearing:
            raise StoreError("not yet listening for the other replicas' changes")
        await self._query("SELECT 1")
        await self._commits.probe()

    async def _select(self, sql: str, *params: Any, table: str = TABLE) -> list[asyncpg.Record]:
        return await self._reads.select(lambda: self._query(sql, *params), table)

    async def _query(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        try:
            async with self._connection() as conn:
                rows: list[asyncpg.Record] = await conn.fetch(sql, *params)
                return rows
        except _FAILURES as exc:
            raise StoreError(f"read failed: {exc or type(exc).__name__}") from exc

    # -- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        """Commit everything already queued, then close the pool."""
        if self._closing:
            return
        await self._commits.close()
        await self._shredder.close()
        self._closing = True
        await self._feed.close()
        if self._pool is not None:
            with contextlib.suppress(*_FAILURES):
                await asyncio.wait_for(self._pool.close(), timeout=10)


async def migrate(conn: asyncpg.Connection | PoolConnectionProxy) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction, one replica at a time."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS chat_schema (version integer NOT NULL)")
        version = await conn.fetchval("SELECT COALESCE(max(version), 0) FROM chat_schema")
        if version > SCHEMA_VERSION:
            raise StoreOpenError(
                f"the database has schema version {version}, newer than this release "
                f"supports ({SCHEMA_VERSION}); upgrade chat-service"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            migration = MIGRATIONS[number - 1]
            if isinstance(migration, str):
                await conn.execute(migration)
            else:
                await migration(conn)
            await conn.execute("INSERT INTO chat_schema (version) VALUES ($1)", number)
            log.info("database migrated", extra={"schema_version": number})


def _turns(keys: Sequence[str], counts: Counter[str], totals: dict[str, int]) -> list[int]:
    """Each write's turn (writes by their conversation's key): a conversation's writes take
    the last ``count`` turns, in order."""
    next_turn = {key: totals[key] - count + 1 for key, count in counts.items()}
    turns = []
    for key in keys:
        turns.append(next_turn[key])
        next_turn[key] += 1
    return turns


def _where(conversation_id: str, before_turn: int | None) -> tuple[str, list[Any]]:
    where = "conversation_id = $1"
    params: list[Any] = [conversation_id]
    if before_turn is not None:
        where += " AND turn < $2"
        params.append(before_turn)
    return where, params


class Keys(NamedTuple):
    """A conversation's key, and the key of its search terms (derived from it)."""

    key: bytes
    search_key: bytes


def _search_key_of(row: asyncpg.Record) -> bytes:
    """A key row's search key: stored with the key since migration 7; derived where a
    previous release changed the key alone and the trigger cleared it."""
    stored: bytes | None = row["search_key"]
    return stored if stored is not None else search_key(row["key"])


async def _keys_of(
    conn: asyncpg.Connection | PoolConnectionProxy, conversation_ids: list[str]
) -> dict[str, Keys]:
    """The keys of each conversation (sorted ids), made for those that have none, and
    locked until the transaction ends so that no deletion takes them meanwhile."""

    def keys_in(rows: list[asyncpg.Record]) -> dict[str, Keys]:
        return {row["conversation_id"]: Keys(row["key"], _search_key_of(row)) for row in rows}

    keys = keys_in(await conn.fetch(_KEYS, conversation_ids))
    missing = [cid for cid in conversation_ids if cid not in keys]
    if missing:
        fresh = [new_key() for _ in missing]
        keys |= keys_in(await conn.fetch(_NEW_KEYS, missing, fresh, [search_key(k) for k in fresh]))
        if len(keys) < len(conversation_ids):  # another replica made one first: take it
            rest = [cid for cid in missing if cid not in keys]
            keys |= keys_in(await conn.fetch(_KEYS, rest))
    return keys


def _created_at(value: datetime) -> str:
    return rfc3339(value.timestamp())


def _conversation(row: asyncpg.Record) -> Conversation:
    sealed_title, sealed_prompt = row["title_sealed"], row["system_prompt_sealed"]
    return Conversation(
        id=row["public_id"],
        title=None if sealed_title is None else unseal(row["key"], sealed_title, TITLE),
        created_at=_created_at(row["created_at"]),
        updated_at=_created_at(row["updated_at"]),
        exchanges=row["exchanges"],
        model=row["model"],
        system_prompt=None if sealed_prompt is None else unseal(row["key"], sealed_prompt, PROMPT),
    )


def _exchange(row: asyncpg.Record, conversation: ConversationRef) -> Exchange:
    """An exchange read from ``conversation``'s rows."""
    return Exchange(
        id=row["id"],
        conversation=conversation,
        turn=row["turn"],
        user=unseal(row["key"], row["user_sealed"], USER),
        ai=unseal(row["key"], row["ai_sealed"], AI),
        created_at=_created_at(row["created_at"]),
        trace_id=row["trace_id"],
        origin=ReplyOrigin(row["model"], row["input_tokens"], row["output_tokens"]),
        generation=row["generation"],
    )
