"""What the store tells telemetry: database spans per the conventions (a read, the wait for
a group commit, the commit linked to every request it served), and its timings."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from chat_service.store import StoreError
from chat_service.store.sqlite import SQLiteChatStore
from tests.support.refs import ref


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> Iterator[TracerProvider]:
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(spans))
    yield made
    made.shutdown()


class Timings:
    def __init__(self) -> None:
        self.reads: list[tuple[str, float]] = []
        self.commits: list[tuple[int, float]] = []
        self.failed: list[int] = []

    def store_read(self, operation: str, seconds: float) -> None:
        self.reads.append((operation, seconds))

    def store_committed(self, batch_size: int, seconds: float) -> None:
        self.commits.append((batch_size, seconds))

    def store_commit_failed(self, batch_size: int) -> None:
        self.failed.append(batch_size)


@pytest.fixture
def timings() -> Timings:
    return Timings()


@pytest.fixture
async def store(
    tmp_path: Path, provider: TracerProvider, timings: Timings
) -> AsyncIterator[SQLiteChatStore]:
    opened = await SQLiteChatStore.open(
        tmp_path / "chat.db", observer=timings, tracer_provider=provider
    )
    yield opened
    await opened.close()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


DB = {"db.system.name": "sqlite", "db.namespace": "chat.db", "db.collection.name": "exchanges"}


async def test_an_append_marks_its_wait_on_the_request_span_and_the_commit_links_to_it(
    provider: TracerProvider, store: SQLiteChatStore, spans: InMemorySpanExporter, timings: Timings
) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /chat/message") as request:
        stored = await store.append(ref("c"), "u", "a")
    context = request.get_span_context()
    [finished] = named(spans, "POST /chat/message")
    assert [event.name for event in finished.events] == [
        "queued for group commit",
        "stored by group commit",
    ]
    queued, done = finished.events
    assert dict(done.attributes or {}) == {"chat_service.exchange.id": stored.id}
    assert queued.timestamp <= done.timestamp
    assert len(spans.get_finished_spans()) == 2, "the request's and the commit's: no wait span"
    [commit] = named(spans, "INSERT exchanges")
    assert commit.kind == SpanKind.CLIENT
    assert commit.parent is None, "the root of its own trace"
    assert commit.context.trace_id != context.trace_id
    assert [link.context.span_id for link in commit.links] == [context.span_id]
    assert dict(commit.attributes or {}) == {**DB, "db.operation.name": "INSERT"}
    assert commit.status.status_code != StatusCode.ERROR
    [(size, seconds)] = timings.commits
    assert size == 1
    assert 0 <= seconds < 5


async def test_a_batch_commit_links_every_request_and_says_its_size(
    provider: TracerProvider, store: SQLiteChatStore, spans: InMemorySpanExporter, timings: Timings
) -> None:
    tracer = provider.get_tracer("test")
    requests = []

    async def post(n: int) -> None:
        with tracer.start_as_current_span(f"request {n}") as span:
            requests.append(span.get_span_context().span_id)
            await store.append(ref("c"), f"u{n}", "a")

    await asyncio.gather(*(post(n) for n in range(3)))
    [commit] = named(spans, "BATCH INSERT exchanges")
    assert sorted(link.context.span_id for link in commit.links) == sorted(requests)
    assert dict(commit.attributes or {}) == {
        **DB,
        "db.operation.name": "BATCH INSERT",
        "db.operation.batch.size": 3,
    }
    assert [size for size, _ in timings.commits] == [3]
    # Two rows are already a batch (the conventions: a batch size is never 1).
    await asyncio.gather(*(post(n) for n in range(3, 5)))
    pair = named(spans, "BATCH INSERT exchanges")[-1]
    assert (pair.attributes or {})["db.operation.batch.size"] == 2


async def test_an_unrecorded_request_gets_no_spans_and_no_links(
    store: SQLiteChatStore, spans: InMemorySpanExporter, timings: Timings
) -> None:
    await store.append(ref("c"), "u", "a")  # no request span at all
    [commit] = named(spans, "INSERT exchanges")  # the commit itself is still traced
    assert list(commit.links) == []
    await store.history(ref("c"))
    assert named(spans, "SELECT exchanges") == []
    [(operation, seconds)] = timings.reads
    assert operation == "SELECT"
    assert 0 <= seconds < 5


async def test_a_read_is_a_client_span_with_the_rows_it_returned(
    provider: TracerProvider, store: SQLiteChatStore, spans: InMemorySpanExporter, timings: Timings
) -> None:
    for n in range(3):
        await store.append(ref("c"), f"u{n}", "a")
    with provider.get_tracer("test").start_as_current_span("GET /chat/history") as request:
        page = await store.history(ref("c"), limit=2, before_turn=10**6)
    assert len(page.exchanges) == 2
    [select] = named(spans, "SELECT exchanges")
    assert select.kind == SpanKind.CLIENT
    assert select.parent is not None
    assert select.parent.span_id == request.get_span_context().span_id
    # One row more than the page, to learn whether an older page exists.
    assert dict(select.attributes or {}) == {
        **DB,
        "db.operation.name": "SELECT",
        "db.response.returned_rows": 3,
    }
    [(operation, seconds)] = timings.reads
    assert operation == "SELECT"
    assert 0 <= seconds < 5


async def test_a_failed_commit_is_an_error_span_and_counted(
    provider: TracerProvider, store: SQLiteChatStore, spans: InMemorySpanExporter, timings: Timings
) -> None:
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON exchanges BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    with provider.get_tracer("test").start_as_current_span("request"), pytest.raises(StoreError):
        await store.append(ref("c"), "u", "a")
    [commit] = named(spans, "INSERT exchanges")
    assert commit.status.status_code == StatusCode.ERROR
    assert commit.status.description == "commit failed: no"
    assert (commit.attributes or {})["error.type"] == "IntegrityError"
    assert timings.failed == [1]
    assert timings.commits == []
    assert store.stats.failed_batches == 1


async def test_a_failed_read_is_an_error_span(
    provider: TracerProvider, store: SQLiteChatStore, spans: InMemorySpanExporter
) -> None:
    with sqlite3.connect(store.path) as conn:
        conn.execute("DROP TABLE exchanges")
    with provider.get_tracer("test").start_as_current_span("request"), pytest.raises(StoreError):
        await store.history(ref("c"))
    [select] = named(spans, "SELECT exchanges")
    assert select.status.status_code == StatusCode.ERROR
    assert select.status.description == "StoreError: read failed: no such table: exchanges"
    assert (select.attributes or {})["error.type"] == "OperationalError"


async def test_readiness_probes_are_not_traced(
    store: SQLiteChatStore, spans: InMemorySpanExporter, timings: Timings
) -> None:
    await store.ping()
    assert [span.name for span in spans.get_finished_spans()] == []
    assert timings.commits == []
