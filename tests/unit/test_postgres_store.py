"""The PostgreSQL store against a real server: turns, batches, pages, migrations, faults.

Two store objects on one database stand for two replicas: each has its own pool and its
own group commit, and neither sees the other's commits except through the database.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chat_service.store import StoreError, StoreOpenError
from chat_service.store.conversations import Conversation
from chat_service.store.postgres import PostgresChatStore, migrate
from chat_service.store.postgres_migrations import MIGRATIONS, SCHEMA_VERSION
from chat_service.telemetry.metrics import Metrics
from tests.support.postgres import PostgresServer
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
                replicas[i % 3].append(f"c{i % 4}", f"m{i}", "r", trace_id=f"{i:032x}")
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
        for exchange in stored:
            row = by_id[exchange.id]
            assert (row["conversation_id"], row["turn"]) == (
                exchange.conversation_id,
                exchange.turn,
            )
            assert row["user_message"] == exchange.user
            assert row["trace_id"] == exchange.trace_id
        assert sum(r.stats.exchanges for r in replicas) == 120
        assert max(r.stats.largest_batch for r in replicas) == 8
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_duplicate_turn_is_refused_by_the_schema(
    store: PostgresChatStore, postgres_url: str
) -> None:
    await store.append("c", "first", "r")
    with pytest.raises(asyncpg.UniqueViolationError):
        await fetch(
            postgres_url,
            "INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, created_at)"
            " VALUES ('c', 1, 'again', 'r', now())",
        )


async def test_concurrent_appends_are_group_committed(postgres_url: str) -> None:
    store = await PostgresChatStore.open(postgres_url, max_batch=16)
    try:
        results = await asyncio.gather(*(store.append("load", f"m{i}", "r") for i in range(200)))
        stored = (await store.history("load")).exchanges
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
        assert await mine.version("c") == 0
        first = await mine.append("c", "m0", "r")
        assert await mine.version("c") == first.id
        second = await theirs.append("c", "m1", "r")
        assert await mine.version("c") == second.id, "another replica's commit is seen at once"
        assert await mine.version("other") == 0
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
        await store.append("c", f"u{i}", f"a{i}")
    page = await store.history("c", limit=limit)
    assert [e.user for e in page.exchanges] == [f"u{i}" for i in range(rows - returned, rows)]
    assert page.has_older is older
    if older:
        before = page.exchanges[0].id
        next_page = await store.history("c", limit=limit, before=before)
        assert next_page.exchanges[-1].id < before
        assert [e.user for e in next_page.exchanges][-1] == f"u{rows - returned - 1}"


async def test_history_json_is_the_whole_history_under_the_given_keys(
    store: PostgresChatStore,
) -> None:
    texts = [f'line {i} "quoted" \\ é 😀 \u2028' for i in range(40)]
    ids = [(await store.append("c", text, text[::-1])).id for text in texts]
    await store.append("other", "elsewhere", "x")
    document = json.loads(await store.history_json("c", keys=("user", "AI")))
    assert document == [{"user": t, "AI": t[::-1]} for t in texts]
    assert list(document[0]) == ["user", "AI"], "the keys in the order given"
    older = json.loads(await store.history_json("c", keys=("q", "a"), before=ids[2]))
    assert older == [{"q": t, "a": t[::-1]} for t in texts[:2]]
    assert json.loads(await store.history_json("nobody", keys=("user", "AI"))) == []


async def test_exchanges_round_trip_with_their_timestamps(store: PostgresChatStore) -> None:
    text = "emoji 🧪👩🏽‍🚀, RTL שלום عربى, combining e\u0301, 4-byte 𝄞"
    stored = await store.append("c", text, text[::-1], trace_id="ab" * 16)
    (read,) = (await store.history("c")).exchanges
    assert read == stored
    assert read.created_at.endswith("Z")
    assert len(read.created_at) == len("2026-11-24T10:00:00.123Z")


async def test_a_nul_in_a_reply_is_stored_as_the_replacement_character(
    store: PostgresChatStore,
) -> None:
    stored = await store.append("c", "hi", "a\x00b")
    assert stored.ai == "a\ufffdb"
    assert (await store.history("c")).exchanges[0].ai == "a\ufffdb"


async def test_replicas_starting_at_once_migrate_once(postgres_url: str) -> None:
    stores = await asyncio.gather(*(PostgresChatStore.open(postgres_url) for _ in range(5)))
    try:
        versions = await fetch(postgres_url, "SELECT version FROM chat_schema ORDER BY version")
        assert [row["version"] for row in versions] == list(range(1, SCHEMA_VERSION + 1))
        await asyncio.gather(*(s.append("c", f"from {i}", "r") for i, s in enumerate(stores)))
        assert len((await stores[0].history("c")).exchanges) == 5
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
        await store.append("c", "before", "r")
        await asyncio.to_thread(postgres_server.stop)
        with pytest.raises(StoreError):
            await store.append("c", "while down", "r")
        with pytest.raises(StoreError):
            await store.ping()
        with pytest.raises(StoreError):
            await store.history("c")
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
        await store.append("c", "after", "r")
        assert [e.user for e in (await store.history("c")).exchanges] == ["before", "after"]
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
            await store.append("c", "u", "a")
            await store.history("c", limit=5)
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
        await store.append("c", "u", "a")

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
            waiting = asyncio.create_task(store.history("c"))
            await asyncio.sleep(0.2)
            assert not waiting.done()
        await waiting
        assert sample("db_client_connection_wait_time_seconds_count") == 1
        waited = sample("db_client_connection_wait_time_seconds_sum")
        assert waited is not None
        assert waited >= 0.15
    finally:
        await store.close()


async def test_a_database_of_the_first_release_is_migrated_and_its_replicas_keep_writing(
    postgres_url: str,
) -> None:
    """Schema 1 with rows, migrated: the rows are the anonymous owner's, titled by their first
    message; and a replica of the first release, still running during a rolling update,
    can go on counting exchanges into conversations the way it did."""
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(
            f"{MIGRATIONS[0]}\n"
            "CREATE TABLE chat_schema (version integer NOT NULL);"
            "INSERT INTO chat_schema VALUES (1);"
            "INSERT INTO conversations VALUES ('c', 2);"
            "INSERT INTO exchanges (conversation_id, turn, user_message, ai_response, created_at)"
            " VALUES ('c', 1, E'first\\n  line', 'r', '2026-01-01T00:00:00Z'),"
            " ('c', 2, 'second', 'r', '2026-01-02T00:00:00Z');"
        )
        store = await PostgresChatStore.open(postgres_url)
        try:
            assert await store.conversations("", limit=10) == [
                Conversation(
                    "c", "first line", "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z", 2
                )
            ]
            # The first release's statement, as an old replica sends it.
            await conn.execute(
                "INSERT INTO conversations AS c (id, exchanges) VALUES ('old', 1) "
                "ON CONFLICT (id) DO UPDATE SET exchanges = c.exchanges + excluded.exchanges"
            )
            found = await store.conversation("old")
            assert found is not None
            assert (found.id, found.title, found.exchanges) == ("old", None, 1)
            assert (await store.append("key:alice/x", "hi", "r")).turn == 1
            [mine] = await store.conversations("key:alice", limit=10)
            assert (mine.id, mine.title) == ("x", "hi")
        finally:
            await store.close()
    finally:
        await conn.close()
