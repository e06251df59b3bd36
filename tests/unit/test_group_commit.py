"""The backend-neutral group commit, on a transaction of the test's own: batching, probes,
failures, and a backend's bug, which must fail one batch and never stop the commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chat_service.chat.domain import Exchange, StoreError
from chat_service.store.base import NullObserver
from chat_service.store.group_commit import GroupCommit, NewExchange
from tests.support.refs import ref


class Recorder:
    """Commits in memory: what a backend's transaction returns, and what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool]] = []
        self.fail_with: Exception | None = None
        self.next_id = 1
        # When set, a transaction waits for it: the test decides when a commit ends.
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self, writes: Sequence[NewExchange], *, probe: bool) -> list[Exchange]:
        self.calls.append(([new.user for new in writes], probe))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            failure, self.fail_with = self.fail_with, None
            raise failure
        stored = []
        for new in writes:
            stored.append(
                Exchange(
                    self.next_id,
                    new.conversation,
                    self.next_id,
                    new.user,
                    new.ai,
                    new.created_at,
                )
            )
            self.next_id += 1
        return stored


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def commits(recorder: Recorder) -> AsyncIterator[GroupCommit]:
    group = GroupCommit(
        recorder,
        tracer=trace.get_tracer("test"),
        observer=NullObserver(),
        span_attributes={"db.system.name": "test"},
        max_batch=4,
    )
    group.start()
    yield group
    await group.close()


async def test_queued_writes_share_a_transaction_up_to_the_batch_size(
    commits: GroupCommit, recorder: Recorder
) -> None:
    stored = await asyncio.gather(*(commits.append(ref("c"), f"m{i}", "r") for i in range(6)))
    assert [e.user for e in stored] == [f"m{i}" for i in range(6)]
    assert recorder.calls == [(["m0", "m1", "m2", "m3"], False), (["m4", "m5"], False)]
    assert (commits.stats.commits, commits.stats.exchanges, commits.stats.largest_batch) == (
        2,
        6,
        4,
    )


async def test_a_probe_rides_along_with_writes_or_goes_alone(
    commits: GroupCommit, recorder: Recorder
) -> None:
    await asyncio.gather(commits.append(ref("c"), "m", "r"), commits.probe())
    await commits.probe()
    assert recorder.calls == [(["m"], True), ([], True)]
    assert commits.stats.commits == 1, "a probe alone is not a commit of exchanges"


async def test_the_backends_error_reaches_every_request_of_the_batch(
    commits: GroupCommit, recorder: Recorder
) -> None:
    refused = StoreError("disk full")
    recorder.fail_with = refused
    results = await asyncio.gather(
        commits.append(ref("c"), "a", "r"),
        commits.append(ref("c"), "b", "r"),
        return_exceptions=True,
    )
    assert list(results) == [refused, refused], "the backend's own error, cause and all"
    recorder.fail_with = StoreError("again")
    with pytest.raises(StoreError, match="again"):
        await commits.append(ref("c"), "c", "r")
    assert commits.stats.failed_batches == 2
    assert (await commits.append(ref("c"), "d", "r")).user == "d", "the next batch commits"


async def test_a_backend_bug_fails_its_batch_and_the_commits_go_on(
    commits: GroupCommit, recorder: Recorder
) -> None:
    recorder.fail_with = RuntimeError("a bug in the backend")
    results = await asyncio.gather(
        commits.append(ref("c"), "a", "r"),
        commits.append(ref("c"), "b", "r"),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [StoreError, StoreError]
    assert all("a bug in the backend" in str(r) for r in results)
    assert (await commits.append(ref("c"), "after", "r")).user == "after"
    await commits.probe()


async def test_closing_commits_what_is_queued_then_refuses(
    commits: GroupCommit, recorder: Recorder
) -> None:
    queued = [asyncio.create_task(commits.append(ref("c"), f"m{i}", "r")) for i in range(3)]
    await asyncio.sleep(0)  # queued, not yet committed
    await commits.close()
    assert [t.result().user for t in queued] == ["m0", "m1", "m2"]
    assert not commits.running
    with pytest.raises(StoreError):
        await commits.append(ref("c"), "late", "r")
    with pytest.raises(StoreError):
        await commits.probe()
    await commits.close()  # a second close is harmless
    assert recorder.calls == [(["m0", "m1", "m2"], False)]


async def test_an_append_during_close_is_refused_at_once_and_the_queue_still_drains(
    commits: GroupCommit, recorder: Recorder
) -> None:
    """``close()`` waits for the batch being committed and for what was queued before it;
    an append that arrives meanwhile is refused straight away: queued behind the stop, it
    would wait for a commit that never comes."""
    recorder.gate = asyncio.Event()
    committing = asyncio.create_task(commits.append(ref("c"), "first", "r"))
    await asyncio.wait_for(recorder.started.wait(), 1)
    queued = asyncio.create_task(commits.append(ref("c"), "queued", "r"))
    await asyncio.sleep(0)
    closing = asyncio.create_task(commits.close())
    await asyncio.sleep(0)
    assert not closing.done(), "close() waits for the commit under way"
    with pytest.raises(StoreError, match="the store is closed"):
        await asyncio.wait_for(commits.append(ref("c"), "late", "r"), 1)
    with pytest.raises(StoreError, match="the store is closed"):
        await asyncio.wait_for(commits.probe(), 1)
    recorder.gate.set()
    await asyncio.wait_for(closing, 1)
    assert [(await committing).user, (await queued).user] == ["first", "queued"]
    assert recorder.calls == [(["first"], False), (["queued"], False)]


async def test_a_store_that_never_started_refuses_writes(recorder: Recorder) -> None:
    group = GroupCommit(
        recorder,
        tracer=trace.get_tracer("test"),
        observer=NullObserver(),
        span_attributes={},
    )
    assert not group.running
    with pytest.raises(StoreError):
        await group.append(ref("c"), "m", "r")
    await group.close()
    assert recorder.calls == []


async def test_a_failed_probe_gets_the_backends_own_error(
    commits: GroupCommit, recorder: Recorder
) -> None:
    refused = StoreError("read-only file system")
    recorder.fail_with = refused
    with pytest.raises(StoreError) as failed:
        await commits.probe()
    assert failed.value is refused
    await commits.probe()  # and the next one goes through
    assert recorder.calls == [([], True), ([], True)]


async def test_a_commit_span_is_a_root_even_when_the_store_started_inside_a_span(
    recorder: Recorder,
) -> None:
    """The commit task is started while a span is current (a start-up span, say): its
    commits still belong to no one's trace, and link to the requests they served."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    group = GroupCommit(recorder, tracer=tracer, observer=NullObserver(), span_attributes={})
    with tracer.start_as_current_span("start-up"):
        group.start()
    try:
        with tracer.start_as_current_span("request") as request:
            await group.append(ref("c"), "m", "r")
    finally:
        await group.close()
    [commit] = [span for span in exporter.get_finished_spans() if span.name == "INSERT exchanges"]
    assert commit.parent is None
    assert [link.context.span_id for link in commit.links] == [request.get_span_context().span_id]
