"""The PostgreSQL store against a real server: turns, batches, pages, migrations, faults.

Two store objects on one database stand for two replicas: each has its own pool and its
own group commit, and neither sees the other's commits except through the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from cryptography.exceptions import InvalidTag
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chat_service.chat.domain import Conversation, HistoryKeys, SettingsChange
from chat_service.store import StoreError, StoreOpenError, postgres, postgres_migrations
from chat_service.store.postgres import PostgresChatStore, migrate
from chat_service.store.postgres_migrations import MIGRATIONS, SCHEMA_VERSION
from chat_service.store.postgres_shredding import KeyShredder
from chat_service.store.sealing import AI, TITLE, USER, new_key, seal
from chat_service.store.search_terms import keyed_term, keyed_terms, search_key
from chat_service.telemetry.metrics import Metrics
from tests.support.postgres import PostgresServer
from tests.support.refs import ref
from tests.support.sealed import conversation_key, open_sealed, stored_exchanges
from tests.support.service import free_port


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresChatStore]:
    opened = await PostgresChatStore.open(postgres_url)
    yield opened
    await opened.close()


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_turns_are_unique_and_gap_free_across_replicas(postgres_url: str) -> None:
    replicas = [await PostgresChatStore.open(postgres_url, max_batch=8) for _ in range(3)]
    try:
        stored = await asyncio.gather(
            *(
                replicas[i % 3].append(ref(f"c{i % 4}"), f"m{i}", "r", trace_id=f"{i:032x}")
                for i in range(120)
            )
        )
        for conversation in ("c0", "c1", "c2", "c3"):
            rows = await fetch(
                postgres_url,
                "SELECT id, turn FROM exchanges WHERE conversation_id = $1 ORDER BY id",
                conversation,
            )
            assert [row["turn"] for row in rows] == list(range(1, 31)), conversation
            counted = await fetch(
                postgres_url, "SELECT exchanges FROM conversations WHERE id = $1", conversation
            )
            assert counted[0]["exchanges"] == 30
        # What each append returned is what the database holds.
        by_id = {row["id"]: row for row in await fetch(postgres_url, "SELECT * FROM exchanges")}
        texts = {row.id: row for row in await stored_exchanges(postgres_url)}
        for exchange in stored:
            row = by_id[exchange.id]
            assert (row["conversation_id"], row["turn"]) == (
                exchange.conversation.id,
                exchange.turn,
            )
            assert texts[exchange.id].user == exchange.user
            assert row["trace_id"] == exchange.trace_id
        assert sum(r.stats.exchanges for r in replicas) == 120
        assert max(r.stats.largest_batch for r in replicas) == 8
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_duplicate_turn_is_refused_by_the_schema(
    store: PostgresChatStore, postgres_url: str
) -> None:
    await store.append(ref("c"), "first", "r")
    with pytest.raises(asyncpg.UniqueViolationError):
        await fetch(
            postgres_url,
            "INSERT INTO exchanges (conversation_id, turn, user_sealed, ai_sealed, created_at)"
            " VALUES ('c', 1, 'again', 'r', now())",
        )


async def test_concurrent_appends_are_group_committed(postgres_url: str) -> None:
    store = await PostgresChatStore.open(postgres_url, max_batch=16)
    try:
        results = await asyncio.gather(
            *(store.append(ref("load"), f"m{i}", "r") for i in range(200))
        )
        stored = (await store.history(ref("load"))).exchanges
        assert [e.user for e in stored] == [f"m{i}" for i in range(200)]
        assert [e.id for e in results] == [e.id for e in stored]
        assert [e.turn for e in stored] == list(range(1, 201))
        assert (store.stats.commits, store.stats.largest_batch) == (13, 16)
    finally:
        await store.close()


async def test_the_version_is_the_newest_id_whichever_replica_wrote(postgres_url: str) -> None:
    mine = await PostgresChatStore.open(postgres_url)
    theirs = await PostgresChatStore.open(postgres_url)
    try:
        assert await mine.version(ref("c")) == 0
        first = await mine.append(ref("c"), "m0", "r")
        assert await mine.version(ref("c")) == first.id
        second = await theirs.append(ref("c"), "m1", "r")
        assert await mine.version(ref("c")) == second.id, "another replica's commit is seen at once"
        assert await mine.version(ref("other")) == 0
    finally:
        await theirs.close()
        await mine.close()


@pytest.mark.parametrize(
    ("rows", "limit", "returned", "older"),
    [(150, 100, 100, True), (100, 100, 100, False), (101, 100, 100, True), (5, 50, 5, False)],
)
async def test_pages_at_every_boundary(
    store: PostgresChatStore, rows: int, limit: int, returned: int, older: bool
) -> None:
    for i in range(rows):
        await store.append(ref("c"), f"u{i}", f"a{i}")
    page = await store.history(ref("c"), limit=limit)
    assert [e.user for e in page.exchanges] == [f"u{i}" for i in range(rows - returned, rows)]
    assert page.has_older is older
    if older:
        before_turn = page.exchanges[0].turn
        next_page = await store.history(ref("c"), limit=limit, before_turn=before_turn)
        assert next_page.exchanges[-1].turn == before_turn - 1
        assert [e.user for e in next_page.exchanges][-1] == f"u{rows - returned - 1}"


async def test_reads_by_turn_are_served_by_the_turn_constraints_index(
    store: PostgresChatStore, postgres_url: str
) -> None:
    """Clients page and resume by turn: the unique (conversation_id, turn) constraint's
    index serves those reads, in order, without a sort (scans of the table are ruled out,
    as a table this small would be read whole)."""
    statements = [
        "SELECT * FROM exchanges WHERE conversation_id = 'c' AND turn < 3 "
        "ORDER BY turn DESC LIMIT 3",
        "SELECT * FROM exchanges WHERE conversation_id = 'c' AND turn > 1 ORDER BY turn LIMIT 3",
        "SELECT turn FROM exchanges WHERE conversation_id = 'c' ORDER BY turn DESC LIMIT 1",
    ]
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        for sql in statements:
            plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}"))
            assert "exchanges_turn_unique" in plan, plan
            assert "Sort" not in plan, plan
    finally:
        await conn.close()


async def test_history_json_is_the_whole_history_under_the_given_keys(
    store: PostgresChatStore,
) -> None:
    texts = [f'line {i} "quoted" \\ é 😀 \u2028' for i in range(40)]
    turns = [(await store.append(ref("c"), text, text[::-1])).turn for text in texts]
    await store.append(ref("other"), "elsewhere", "x")
    keys = HistoryKeys("user", "AI")
    document = json.loads(await store.history_json(ref("c"), keys=keys))
    assert [(item["user"], item["AI"]) for item in document] == [(t, t[::-1]) for t in texts]
    assert list(document[0]) == [*keys[:6], keys.id], "the keys in the order given"
    others = HistoryKeys("q", "a", "n", "at", "m", "u", "in", "out")
    older = json.loads(await store.history_json(ref("c"), keys=others, before_turn=turns[2]))
    assert [(item["q"], item["a"], item["n"]) for item in older] == [
        (t, t[::-1], n) for n, t in enumerate(texts[:2], start=1)
    ]
    assert json.loads(await store.history_json(ref("nobody"), keys=keys)) == []


async def test_exchanges_round_trip_with_their_timestamps(store: PostgresChatStore) -> None:
    text = "emoji 🧪👩🏽‍🚀, RTL שלום عربى, combining e\u0301, 4-byte 𝄞"
    before = time.time()
    stored = await store.append(ref("c"), text, "reply \x00 with a NUL", trace_id="ab" * 16)
    (read,) = (await store.history(ref("c"))).exchanges
    assert (read.conversation, read.turn, read.id) == (ref("c"), 1, stored.id)
    assert read.user == "emoji 🧪👩🏽‍🚀, RTL שלום عربى, combining e\u0301, 4-byte 𝄞"
    assert read.ai == "reply \x00 with a NUL", "sealed text holds any character"
    assert read.trace_id == "abababababababababababababababab"
    assert read.created_at == stored.created_at
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", read.created_at)
    written = datetime.fromisoformat(read.created_at).timestamp()
    assert before - 0.001 <= written <= time.time()


async def test_a_conversations_instructions_are_sealed_and_its_model_is_not(
    store: PostgresChatStore, postgres_url: str
) -> None:
    """The instructions are the owner's words: sealed like the title. The model's name is
    the deployment's."""
    created = await store.create_conversation(
        ref("key:alice/a"), None, SettingsChange(model="m-1", system_prompt="secret recipe")
    )
    assert created is not None
    assert (created.model, created.system_prompt) == ("m-1", "secret recipe")
    await store.configure_conversation(
        ref("key:alice/a"), SettingsChange(system_prompt="another secret")
    )
    (row,) = await fetch(
        postgres_url,
        "SELECT c.model, c.system_prompt_sealed, k.key FROM conversations c "
        "JOIN conversation_keys k ON k.conversation_id = c.id",
    )
    assert row["model"] == "m-1"
    assert b"secret" not in row["system_prompt_sealed"]
    assert open_sealed(row["key"], row["system_prompt_sealed"], "system_prompt") == (
        "another secret"
    )


async def test_text_is_sealed_with_a_key_of_its_conversation(
    store: PostgresChatStore, postgres_url: str
) -> None:
    """Nothing PostgreSQL stores is text in the clear: messages, replies and titles are
    sealed, each conversation with its own key, and open with that key alone."""
    await store.append(ref("key:alice/a"), "alice's secret question", "alice's secret answer")
    await store.append(ref("key:bob/b"), "bob's question", "bob's answer")
    await store.rename_conversation(ref("key:bob/b"), "bob's secret title")
    rows = await fetch(
        postgres_url,
        "SELECT e.user_sealed, e.ai_sealed, c.title_sealed, k.key "
        "FROM exchanges e JOIN conversations c ON c.id = e.conversation_id "
        "JOIN conversation_keys k ON k.conversation_id = c.id ORDER BY e.id",
    )
    alice, bob = rows
    sealed = b"".join(row[column] for row in rows for column in range(3))
    for clear in (b"secret", b"question", b"answer", b"title"):
        assert clear not in sealed
    assert len(alice["key"]) == len(bob["key"]) == 32
    assert alice["key"] != bob["key"]
    assert open_sealed(alice["key"], alice["user_sealed"], "user") == "alice's secret question"
    assert open_sealed(alice["key"], alice["ai_sealed"], "ai") == "alice's secret answer"
    assert open_sealed(alice["key"], alice["title_sealed"], "title") == "alice's secret question"
    assert open_sealed(bob["key"], bob["ai_sealed"], "ai") == "bob's answer"
    assert open_sealed(bob["key"], bob["title_sealed"], "title") == "bob's secret title"
    with pytest.raises(InvalidTag):  # another conversation's key
        open_sealed(bob["key"], alice["user_sealed"], "user")
    with pytest.raises(InvalidTag):  # another field
        open_sealed(alice["key"], alice["user_sealed"], "ai")


async def test_sealed_text_moved_or_altered_is_refused_not_shown(
    store: PostgresChatStore, postgres_url: str
) -> None:
    await store.append(ref("a"), "question", "answer")
    await store.append(ref("b"), "other", "other")
    # Someone with write access to the tables swaps a reply into the message's place...
    await fetch(
        postgres_url, "UPDATE exchanges SET user_sealed = ai_sealed WHERE conversation_id = 'a'"
    )
    with pytest.raises(StoreError, match="does not open"):
        await store.history(ref("a"))
    # ... or copies another conversation's text over it.
    await fetch(
        postgres_url,
        "UPDATE exchanges SET user_sealed = (SELECT user_sealed FROM exchanges "
        "WHERE conversation_id = 'b') WHERE conversation_id = 'a'",
    )
    with pytest.raises(StoreError, match="does not open"):
        await store.history(ref("a"))
    await fetch(
        postgres_url, "UPDATE exchanges SET ai_sealed = '\\x02'::bytea WHERE conversation_id = 'b'"
    )
    with pytest.raises(StoreError, match="unknown format 02"):
        await store.history(ref("b"))


async def test_a_batch_that_waited_for_a_deletion_starts_the_conversation_with_a_new_key(
    store: PostgresChatStore, postgres_url: str
) -> None:
    """A deletion holds the conversation's key while it runs: a batch for that conversation
    waits, then finds it gone and starts it afresh, with a key of its own."""
    await store.append(ref("c"), "before", "r")
    old_key = await conversation_key(postgres_url, "c")
    deleting = await asyncpg.connect(postgres_url)
    try:
        transaction = deleting.transaction()
        await transaction.start()
        await deleting.execute(
            "SELECT 1 FROM conversation_keys WHERE conversation_id = 'c' FOR UPDATE"
        )
        waiting = asyncio.create_task(store.append(ref("c"), "after", "r"))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the batch waits for the deletion"
        await deleting.execute("DELETE FROM exchanges WHERE conversation_id = 'c'")
        await deleting.execute("DELETE FROM conversations WHERE id = 'c'")
        await deleting.execute("DELETE FROM conversation_keys WHERE conversation_id = 'c'")
        await transaction.commit()
        after = await asyncio.wait_for(waiting, 5)
    finally:
        await deleting.close()
    assert after.turn == 1
    new_key = await conversation_key(postgres_url, "c")
    assert new_key is not None
    assert new_key != old_key
    assert [(e.user, e.conversation_id) for e in await stored_exchanges(postgres_url)] == [
        ("after", "c")
    ]


async def test_a_key_another_replica_is_making_is_the_one_used(
    store: PostgresChatStore, postgres_url: str
) -> None:
    """Two replicas start one conversation at once: the second waits for the first's key
    and seals with it, so the conversation keeps one key."""
    theirs = bytes(range(32))
    other = await asyncpg.connect(postgres_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute(
            "INSERT INTO conversation_keys (conversation_id, key) VALUES ('c', $1)", theirs
        )
        waiting = asyncio.create_task(store.append(ref("c"), "mine", "r"))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "waits for the other replica's key"
        await transaction.commit()
        await asyncio.wait_for(waiting, 5)
    finally:
        await other.close()
    assert await conversation_key(postgres_url, "c") == theirs
    (row,) = await fetch(postgres_url, "SELECT user_sealed FROM exchanges")
    assert open_sealed(theirs, row["user_sealed"], "user") == "mine"


async def test_replicas_starting_at_once_migrate_once(postgres_url: str) -> None:
    stores = await asyncio.gather(*(PostgresChatStore.open(postgres_url) for _ in range(5)))
    try:
        versions = await fetch(postgres_url, "SELECT version FROM chat_schema ORDER BY version")
        assert [row["version"] for row in versions] == list(range(1, SCHEMA_VERSION + 1))
        await asyncio.gather(*(s.append(ref("c"), f"from {i}", "r") for i, s in enumerate(stores)))
        assert len((await stores[0].history(ref("c"))).exchanges) == 5
    finally:
        for opened in stores:
            await opened.close()


async def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO chat_schema (version) VALUES ($1)", SCHEMA_VERSION + 1)
    finally:
        await conn.close()
    with pytest.raises(StoreOpenError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        await PostgresChatStore.open(postgres_url)


async def test_an_unreachable_database_is_retried_then_refused_with_one_line() -> None:
    url = f"postgresql://chat:secret-pw@127.0.0.1:{free_port()}/chat"
    started = time.monotonic()
    with pytest.raises(StoreOpenError) as refused:
        await PostgresChatStore.open(url, connect_timeout_s=1.5)
    waited = time.monotonic() - started
    assert 1.0 <= waited < 5, "retried for about the timeout, then gave up"
    message = str(refused.value)
    assert message.startswith(f"cannot connect to postgresql://chat@127.0.0.1:{url.split(':')[3]}")
    assert "within 1.5 s" in message
    assert "secret-pw" not in message
    assert "\n" not in message


async def test_a_database_that_does_not_exist_is_refused_at_once(
    postgres_server: PostgresServer,
) -> None:
    started = time.monotonic()
    with pytest.raises(StoreOpenError, match="does not exist"):
        await PostgresChatStore.open(postgres_server.url_for("missing"), connect_timeout_s=20)
    assert time.monotonic() - started < 5, "no retries: waiting would not create it"


async def test_a_restarted_database_fails_requests_then_recovers(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = await PostgresChatStore.open(postgres_url)
    try:
        await store.append(ref("c"), "before", "r")
        await asyncio.to_thread(postgres_server.stop)
        with pytest.raises(StoreError):
            await store.append(ref("c"), "while down", "r")
        with pytest.raises(StoreError):
            await store.ping()
        with pytest.raises(StoreError):
            await store.history(ref("c"))
        await asyncio.to_thread(postgres_server.start)
        # The pool replaces the connections it lost; a request may meet one more dead one.
        deadline = time.monotonic() + 10
        while True:
            try:
                await store.ping()
                break
            except StoreError:
                assert time.monotonic() < deadline, "the store did not recover"
                await asyncio.sleep(0.1)
        await store.append(ref("c"), "after", "r")
        assert [e.user for e in (await store.history(ref("c"))).exchanges] == ["before", "after"]
    finally:
        await store.close()


async def test_readiness_commits_for_real(store: PostgresChatStore, postgres_url: str) -> None:
    assert (await fetch(postgres_url, "SELECT checked_at FROM store_probe"))[0][0] is None
    await store.ping()
    assert (await fetch(postgres_url, "SELECT checked_at FROM store_probe"))[0][0] is not None
    assert store.stats.commits == 0, "a probe is not an exchange"


async def test_commits_and_reads_are_database_spans(postgres_url: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = await PostgresChatStore.open(postgres_url, tracer_provider=provider)
    try:
        with provider.get_tracer("test").start_as_current_span("request"):
            await store.append(ref("c"), "u", "a")
            await store.history(ref("c"), limit=5)
    finally:
        await store.close()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    port = int(postgres_url.rsplit(":", 1)[1].split("/")[0])
    expected = {
        "db.system.name": "postgresql",
        "db.collection.name": "exchanges",
        "server.address": "127.0.0.1",
        "server.port": port,
        "db.namespace": postgres_url.rsplit("/", 1)[1],
    }
    insert, select = spans["INSERT exchanges"], spans["SELECT exchanges"]
    assert insert.kind is SpanKind.CLIENT
    assert {**expected, "db.operation.name": "INSERT"}.items() <= dict(
        insert.attributes or {}
    ).items()
    assert {**expected, "db.operation.name": "SELECT"}.items() <= dict(
        select.attributes or {}
    ).items()
    assert dict(select.attributes or {})["db.response.returned_rows"] == 1
    assert [link.context.span_id for link in insert.links] == [spans["request"].context.span_id]


async def test_the_pool_is_on_metrics(postgres_url: str) -> None:
    metrics = Metrics()
    store = await PostgresChatStore.open(postgres_url, pool_size=2)
    metrics.watch_pool(store.pool_stats)
    try:
        await store.append(ref("c"), "u", "a")

        def sample(name: str, **labels: str) -> float | None:
            return metrics.registry.get_sample_value(name, labels)

        assert sample("db_client_connection_max") == 2
        assert sample("db_client_connection_count", db_client_connection_state="used") == 0
        idle = sample("db_client_connection_count", db_client_connection_state="idle")
        assert idle is not None
        assert 1 <= idle <= 2
        # Three reads at once on two connections: one waits, and the wait is counted.
        async with store._connection(), store._connection():
            assert sample("db_client_connection_count", db_client_connection_state="used") == 2
            waiting = asyncio.create_task(store.history(ref("c")))
            await asyncio.sleep(0.2)
            assert not waiting.done()
        await waiting
        assert sample("db_client_connection_wait_time_seconds_count") == 1
        waited = sample("db_client_connection_wait_time_seconds_sum")
        assert waited is not None
        assert waited >= 0.15
    finally:
        await store.close()


MARKER = "zq-before-sealing-5b2e"


async def test_a_database_of_the_first_release_is_migrated_sealed_and_rewritten(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Schema 1 with rows, migrated: the rows are the anonymous owner's, titled by their
    first message, sealed with a key per conversation, and the tables are rewritten so the
    text of the dropped columns is not left in their files."""
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(
            f"{MIGRATIONS[0]}\n"
            "CREATE TABLE chat_schema (version integer NOT NULL);"
            "INSERT INTO chat_schema VALUES (1);"
            "INSERT INTO conversations VALUES ('c', 2), ('d', 1);"
            "INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, created_at)"
            f" VALUES ('c', 1, E'first\\n  line {MARKER}', 'r', '2026-01-01T00:00:00Z'),"
            f" ('c', 2, 'second', '{MARKER} reply', '2026-01-02T00:00:00Z'),"
            " ('d', 1, 'in d', 'reply in d', '2026-01-03T00:00:00Z');"
        )
        database = await conn.fetchval(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        )
        store = await PostgresChatStore.open(postgres_url)
        try:
            assert await store.conversations("", limit=10) == [
                Conversation(
                    "d", "in d", "2026-01-03T00:00:00.000Z", "2026-01-03T00:00:00.000Z", 1
                ),
                Conversation(
                    "c",
                    f"first line {MARKER}",
                    "2026-01-01T00:00:00.000Z",
                    "2026-01-02T00:00:00.000Z",
                    2,
                ),
            ]
            history = (await store.history(ref("c"))).exchanges
            assert [(e.turn, e.user, e.ai) for e in history] == [
                (1, f"first\n  line {MARKER}", "r"),
                (2, "second", f"{MARKER} reply"),
            ]
            # Migration 4: the exchanges sealed by migration 3 are indexed for search.
            hits = await store.search("", ["sealing", "5b2e"], limit=10)
            assert sorted(h.exchange.turn for h in hits) == [1, 2]
            assert [h.exchange.user for h in await store.search("", ["d"], limit=10)] == ["in d"]
            assert (await store.append(ref("c"), "third", "r")).turn == 3
            assert [h.exchange.turn for h in await store.search("", ["third"], limit=10)] == [3]
        finally:
            await store.close()
        columns = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_name IN ('exchanges', 'conversations') "
            "AND column_name IN ('user_message', 'ai_response', 'title')"
        )
        assert columns == []
        assert await conn.fetchval("SELECT plaintext_left FROM chat_shredding") is False
        stored = {(e.conversation_id, e.user, e.ai) for e in await stored_exchanges(postgres_url)}
        assert (("d", "in d", "reply in d")) in stored
    finally:
        await conn.close()
    postgres_server.execute("CHECKPOINT")
    tables = [f for f in postgres_server.files_contain(MARKER.encode()) if f.startswith("base/")]
    assert tables == [], f"the text before sealing is still in table files of database {database}"


# The statements of the previous release (schema 2), as one of its replicas, still running
# during an update, sends them: text in the clear, which the sealed schema must refuse.
PREVIOUS_INSERT = """
INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, created_at, trace_id)
SELECT c, t, u, a, ts::timestamptz, tr
FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[])
    AS batch (c, t, u, a, ts, tr)
RETURNING id, conversation_id, turn
"""
PREVIOUS_COUNT = """
INSERT INTO conversations AS c (id, exchanges, title, created_at, updated_at)
SELECT id, n, t, ts::timestamptz, ts::timestamptz
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS batch (id, n, t, ts)
ORDER BY id
ON CONFLICT (id) DO UPDATE SET
    exchanges = c.exchanges + excluded.exchanges,
    updated_at = GREATEST(c.updated_at, excluded.updated_at),
    title = COALESCE(c.title, excluded.title)
RETURNING id, exchanges
"""


async def test_a_replica_of_the_previous_release_fails_rather_than_write_text_in_the_clear(
    store: PostgresChatStore, postgres_url: str
) -> None:
    await store.append(ref("c"), "sealed", "r")
    now = "2026-01-01T00:00:00Z"
    conn = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(asyncpg.UndefinedColumnError, match="title"):
            await conn.fetch(PREVIOUS_COUNT, ["c"], [1], ["clear title"], [now])
        with pytest.raises(asyncpg.UndefinedColumnError, match="user_message"):
            await conn.fetch(PREVIOUS_INSERT, ["c"], [2], ["clear"], ["clear"], [now], [None])
        # The first release's count, for a conversation without a key: refused too.
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("INSERT INTO conversations (id, exchanges) VALUES ('new', 1)")
    finally:
        await conn.close()
    assert [(e.user, e.ai) for e in (await store.history(ref("c"))).exchanges] == [("sealed", "r")]


async def test_the_key_table_is_rewritten_after_deletions_and_only_then(
    store: PostgresChatStore, postgres_url: str
) -> None:
    await store.shredder.close()  # this test calls it itself
    assert not await store.shredder.shred(), "nothing deleted, nothing to rewrite"
    for name in ("a", "b", "c"):
        await store.append(ref(name), "q", "r")
    assert await store.delete_conversation(ref("a"))
    assert await store.delete_conversation(ref("b"))
    assert not await store.delete_conversation(ref("b")), "already gone: no second request"
    counts = "SELECT keys_requested, keys_shredded FROM chat_shredding"
    assert tuple((await fetch(postgres_url, counts))[0]) == (2, 0)
    file_of_keys = "SELECT pg_relation_filenode('conversation_keys')"
    before = (await fetch(postgres_url, file_of_keys))[0][0]
    assert await store.shredder.shred()
    assert (await fetch(postgres_url, file_of_keys))[0][0] != before, "a new file"
    assert tuple((await fetch(postgres_url, counts))[0]) == (2, 2)
    assert not await store.shredder.shred(now=True), "nothing left to rewrite"
    left = await fetch(postgres_url, "SELECT conversation_id FROM conversation_keys")
    assert [row[0] for row in left] == ["c"]
    assert [(e.user, e.ai) for e in (await store.history(ref("c"))).exchanges] == [("q", "r")]


async def test_replicas_rewrite_at_most_once_per_interval_between_them(
    postgres_url: str,
) -> None:
    replicas = [await PostgresChatStore.open(postgres_url) for _ in range(2)]
    try:
        for replica in replicas:
            await replica.shredder.close()
        for name in ("a", "b"):
            await replicas[0].append(ref(name), "q", "r")
        assert await replicas[0].delete_conversation(ref("a"))
        assert await replicas[0].shredder.shred()
        assert await replicas[1].delete_conversation(ref("b"))
        assert not await replicas[1].shredder.shred(), "60 s have not passed since the last"
        assert not await replicas[0].shredder.shred()
        await fetch(
            postgres_url,
            "UPDATE chat_shredding SET last_rewrite_at = last_rewrite_at - interval '61 s'",
        )
        assert await replicas[1].shredder.shred(), "an interval later, the other replica's turn"
        assert [r.shredder.rewrites for r in replicas] == [1, 1]
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_rewrite_that_cannot_lock_the_table_gives_up_quickly_and_keeps_the_request(
    store: PostgresChatStore, postgres_url: str
) -> None:
    await store.shredder.close()
    store.shredder.lock_timeout_ms = 100
    await store.append(ref("a"), "q", "r")
    assert await store.delete_conversation(ref("a"))
    reader = await asyncpg.connect(postgres_url)
    try:
        transaction = reader.transaction()
        await transaction.start()
        await reader.execute("LOCK TABLE conversation_keys IN ACCESS SHARE MODE")
        started = time.monotonic()
        with pytest.raises(asyncpg.LockNotAvailableError):
            await store.shredder.shred()
        assert time.monotonic() - started < 2, "the lock timeout, not the statement's 30 s"
        await transaction.rollback()
    finally:
        await reader.close()
    assert (await fetch(postgres_url, "SELECT keys_shredded FROM chat_shredding"))[0][0] == 0
    assert await store.shredder.shred()
    # The connection went back to the pool without the short lock timeout.
    settings = await asyncio.gather(
        *(store._query("SHOW lock_timeout") for _ in range(store.pool_size))
    )
    assert {rows[0][0] for rows in settings} == {"0"}


async def test_the_shredder_retries_and_finds_what_a_stopped_replica_left(
    store: PostgresChatStore, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica deleted and stopped before its rewrite: another one's periodic check finds
    the request; a rewrite that fails is logged and tried again."""
    await store.shredder.close()
    await fetch(postgres_url, "UPDATE chat_shredding SET keys_requested = keys_requested + 1")
    shredder = KeyShredder(store._connection, interval_s=0.08, lock_timeout_ms=20)
    holder = await asyncpg.connect(postgres_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE conversation_keys IN ACCESS SHARE MODE")
        with caplog.at_level(logging.WARNING, "chat_service.store.postgres_shredding"):
            shredder.start()
            for _ in range(200):
                if "not shredded yet" in caplog.text:
                    break
                await asyncio.sleep(0.02)
        assert "not shredded yet; retrying" in caplog.text
        assert shredder.rewrites == 0
        await transaction.rollback()
        for _ in range(200):
            if shredder.rewrites:
                break
            await asyncio.sleep(0.02)
        assert shredder.rewrites == 1
    finally:
        await shredder.close()
        await holder.close()
    assert (await fetch(postgres_url, "SELECT keys_shredded FROM chat_shredding"))[0][0] == 1


async def test_the_search_index_holds_keyed_terms_that_differ_by_conversation(
    postgres_url: str,
) -> None:
    """PostgreSQL is given each exchange's distinct words as HMACs under a key derived from
    its conversation's key: the same word in two conversations is two unrelated numbers, and
    nothing in the column is a word."""
    store = await PostgresChatStore.open(postgres_url)
    try:
        await store.append(ref("a"), "Echidna echidna", "spines")
        await store.append(ref("b"), "echidna", "r")
    finally:
        await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT conversation_id, search_terms FROM exchanges ORDER BY conversation_id"
        )
    finally:
        await conn.close()
    terms = {row["conversation_id"]: row["search_terms"] for row in rows}
    for conversation, words in (("a", ["echidna", "spines"]), ("b", ["echidna", "r"])):
        key = await conversation_key(postgres_url, conversation)
        assert key is not None
        derived = search_key(key)
        assert derived != key
        assert terms[conversation] == sorted(keyed_term(derived, word) for word in words)
    assert not set(terms["a"]) & set(terms["b"]), "the same word, unrelated terms"


SEARCH_KEYS = "SELECT conversation_id, key, search_key FROM conversation_keys ORDER BY 1"


async def test_each_key_is_stored_with_its_search_key_and_a_cut_replaces_both(
    store: PostgresChatStore, postgres_url: str
) -> None:
    """A search reads the search keys of its owner's conversations rather than deriving each
    (migration 7): a key written by a message, by a creation and by a cut comes with the
    search key derived from it."""
    await store.append(ref("a"), "wombat", "r")
    await store.create_conversation(ref("b"), "made empty")
    await store.append(ref("c"), "wombat one", "r")
    await store.append(ref("c"), "wombat two", "r")
    before = {row["conversation_id"]: row for row in await fetch(postgres_url, SEARCH_KEYS)}
    await store.append(ref("c"), "quokka", "r", replaces_turn=2)
    rows = await fetch(postgres_url, SEARCH_KEYS)
    assert [row["conversation_id"] for row in rows] == ["a", "b", "c"]
    for row in rows:
        assert row["search_key"] == search_key(row["key"]), row["conversation_id"]
    assert rows[2]["search_key"] != before["c"]["search_key"], "the cut's new key's"
    assert sorted(h.exchange.user for h in await store.search("", ["wombat"], limit=5)) == [
        "wombat",
        "wombat one",
    ]
    assert [h.exchange.user for h in await store.search("", ["quokka"], limit=5)] == ["quokka"]


async def test_a_key_changed_without_its_search_key_loses_it_and_search_derives_it(
    store: PostgresChatStore, postgres_url: str
) -> None:
    """A replica of the previous release cuts a conversation by writing its new key alone,
    with what is left sealed and indexed under it: the old search key would find none of
    that. The trigger clears it, and the search derives the search key from the key."""
    await store.append(ref("c"), "kept wombat", "kept reply")
    await store.rename_conversation(ref("c"), "kept title")
    fresh = new_key()
    conn = await asyncpg.connect(postgres_url)
    try:
        # What the previous release's cut does (its postgres_cut.py) to what is left.
        await conn.execute(
            "UPDATE exchanges SET user_sealed = $1, ai_sealed = $2, search_terms = $3",
            seal(fresh, "kept wombat", USER),
            seal(fresh, "kept reply", AI),
            keyed_terms(search_key(fresh), ["kept wombat", "kept reply"]),
        )
        await conn.execute(
            "UPDATE conversations SET title_sealed = $1", seal(fresh, "kept title", TITLE)
        )
        await conn.execute("UPDATE conversation_keys SET key = $1", fresh)
        (row,) = await conn.fetch(SEARCH_KEYS)
        assert (row["key"], row["search_key"]) == (fresh, None)
        # A statement that writes both keeps both; one that leaves the key alone keeps it.
        await conn.execute("UPDATE conversation_keys SET search_key = $1", search_key(fresh))
        await conn.execute("UPDATE conversation_keys SET conversation_id = conversation_id")
        assert await conn.fetchval("SELECT search_key FROM conversation_keys") == search_key(fresh)
        await conn.execute("UPDATE conversation_keys SET search_key = NULL")
    finally:
        await conn.close()
    (hit,) = await store.search("", ["wombat"], limit=5)
    assert (hit.exchange.user, hit.title) == ("kept wombat", "kept title")
    # A message written then is indexed under the search key derived from the key, too.
    await store.append(ref("c"), "later wombat", "later reply")
    found = await store.search("", ["wombat"], limit=5)
    assert sorted(hit.exchange.user for hit in found) == ["kept wombat", "later wombat"]


async def test_the_migration_stores_the_search_keys_of_the_keys_there_are(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database of schema 6 (no search keys) holds keys for more than one page of the
    migration's: each gets its search key."""
    store = await PostgresChatStore.open(postgres_url)
    try:
        for name in ("a", "b", "c"):
            await store.append(ref(name), f"{name} wombat", "r")
    finally:
        await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(
            "ALTER TABLE conversation_keys DROP COLUMN search_key;"
            "DROP FUNCTION chat_search_key_follows_key CASCADE;"
            "DELETE FROM chat_schema WHERE version = 7"
        )
    finally:
        await conn.close()
    monkeypatch.setattr(postgres_migrations, "SEAL_PAGE", 2)
    store = await PostgresChatStore.open(postgres_url)
    try:
        rows = await fetch(postgres_url, SEARCH_KEYS)
        assert [row["conversation_id"] for row in rows] == ["a", "b", "c"]
        for row in rows:
            assert row["search_key"] == search_key(row["key"]), row["conversation_id"]
        assert len(await store.search("", ["wombat"], limit=5)) == 3
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("recent_rows", "why"),
    [(4, "the newest rows hold enough matches"), (2, "they do not: the index finds them")],
)
async def test_a_search_reads_the_newest_matches_either_way(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, recent_rows: int, why: str
) -> None:
    """Of the matches, the newest CANDIDATES are ranked: found among the newest rows when
    those hold as many, else by the index; the same either way."""
    monkeypatch.setattr(postgres, "CANDIDATES", 2)
    monkeypatch.setattr(postgres, "RECENT_ROWS", recent_rows)
    store = await PostgresChatStore.open(postgres_url)
    try:
        for n in range(3):
            await store.append(ref("a", "key:alice"), f"wallaby {n}", "r")
        await store.append(ref("b", "key:alice"), "wallaby in b", "r")
        await store.append(ref("c", "key:bob"), "bob's wallaby", "r")
        hits = await store.search("key:alice", ["wallaby"], limit=5)
    finally:
        await store.close()
    assert sorted(h.exchange.user for h in hits) == ["wallaby 2", "wallaby in b"], why


async def test_not_ready_until_it_hears_the_other_replicas(store: PostgresChatStore) -> None:
    """A replica that served before its LISTEN was in place would miss a deletion made
    meanwhile, and its live streams of the deleted conversation would never end (CI saw
    one stay open): readiness waits for it."""
    await store.ping()  # nothing listens for changes: nothing to wait for
    store.add_removal_listener(lambda conversation: None)
    with pytest.raises(StoreError, match="listening"):
        await store.ping()
    async with asyncio.timeout(10):
        while True:
            try:
                await store.ping()
                break
            except StoreError:
                await asyncio.sleep(0.05)
