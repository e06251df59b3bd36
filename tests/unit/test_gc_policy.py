"""gc_policy: survivors of a full collection frozen; the frozen thawed once they double."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from chat_service.gc_policy import LongLivedObjects, long_lived_ctx


class Node:
    """An object in a reference cycle with itself: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (what it froze would leak otherwise)."""
    gc.unfreeze()
    gc.collect()
    yield
    gc.unfreeze()
    gc.collect()


def tracked(obj: object) -> bool:
    """Whether the collector still walks ``obj`` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


def frozen_gauge(registry: CollectorRegistry) -> float:
    """The gauge, as of the last full collection (frozen objects freed since are not in it:
    the test's own temporaries, a few dozen)."""
    return registry.get_sample_value("chat_gc_frozen_objects") or 0.0


async def full_collection() -> None:
    """A full collection as the collector runs it, then the loop turn the policy acts in."""
    gc.collect(2)
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_what_survives_a_full_collection_is_frozen() -> None:
    registry = CollectorRegistry()
    policy = LongLivedObjects(
        asyncio.get_running_loop(), registry, growth=math.inf, count_every_s=0
    )
    before = Node()
    policy.start()
    try:
        assert not tracked(before), "what start-up built is frozen at once"
        kept = [Node() for _ in range(1000)]
        assert tracked(kept[0])
        await full_collection()
        assert not tracked(kept[0])
        assert gc.get_freeze_count() >= 1000
        assert frozen_gauge(registry) == pytest.approx(gc.get_freeze_count(), abs=100)
        assert registry.get_sample_value("chat_gc_thaws_total") == 0
        # A younger collection is not evidence of a long life.
        young = Node()
        gc.collect(0)
        await asyncio.sleep(0)
        assert tracked(young)
    finally:
        policy.stop()
    # Stopped: full collections freeze nothing more.
    later = Node()
    await full_collection()
    assert tracked(later)


async def test_frozen_cycles_are_collected_once_the_frozen_double(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chat_service.gc_policy")
    registry = CollectorRegistry()
    policy = LongLivedObjects(asyncio.get_running_loop(), registry, growth=2, count_every_s=0)
    policy.start()  # the baseline: what the process holds now
    try:
        garbage = Node()
        gone = weakref.ref(garbage)
        await full_collection()  # frozen; far from doubling
        assert registry.get_sample_value("chat_gc_thaws_total") == 0
        assert not tracked(garbage)
        baseline = gc.get_freeze_count()
        del garbage  # now cyclic garbage, frozen: no collection sees it
        await full_collection()
        assert gone() is not None
        assert registry.get_sample_value("chat_gc_thaws_total") == 0, "not doubled yet"
        kept = [Node() for _ in range(baseline + 100)]  # more than doubles what is frozen
        await full_collection()
        assert registry.get_sample_value("chat_gc_thaws_total") == 1
        assert gone() is None, "the thaw's collection freed the frozen cycle"
        thaws = [
            r for r in caplog.records if r.getMessage() == "thawed and collected the frozen objects"
        ]
        assert len(thaws) == 1
        last = thaws[-1].__dict__
        assert last["frozen_before"] > 2 * baseline
        assert last["frozen_after"] == pytest.approx(gc.get_freeze_count(), abs=100)
        assert last["pause_ms"] >= 0
        assert not tracked(kept[0]), "what is alive is frozen again"
        assert frozen_gauge(registry) == pytest.approx(gc.get_freeze_count(), abs=100)
        after_thaw = Node()
        await full_collection()
        assert not tracked(after_thaw), "after a thaw, survivors are frozen as before"
    finally:
        policy.stop()


async def test_collections_in_other_threads_freeze_on_the_loops_thread() -> None:
    policy = LongLivedObjects(
        asyncio.get_running_loop(), CollectorRegistry(), growth=math.inf, count_every_s=0
    )
    policy.start()
    try:
        kept = Node()
        assert tracked(kept)
        await asyncio.to_thread(gc.collect, 2)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not tracked(kept)
    finally:
        policy.stop()


async def test_the_frozen_are_counted_at_most_once_per_interval() -> None:
    registry = CollectorRegistry()
    policy = LongLivedObjects(asyncio.get_running_loop(), registry, growth=2, count_every_s=3600)
    policy.start()
    try:
        await full_collection()  # the first is counted
        counted = frozen_gauge(registry)
        kept = [Node() for _ in range(int(counted) * 2 + 100)]  # would thaw if counted
        await full_collection()
        assert not tracked(kept[0]), "frozen all the same"
        assert registry.get_sample_value("chat_gc_thaws_total") == 0, "not counted: no thaw"
        assert frozen_gauge(registry) == counted
    finally:
        policy.stop()


async def test_the_policy_runs_while_the_app_serves(
    aiohttp_client: Any, thresholds: tuple[int, int, int]
) -> None:
    """As the process entry point installs it: from start-up, its gauge says what the
    start-up froze, and its callback goes with the app."""
    kept = [Node() for _ in range(1000)]
    gc.collect()
    gc.freeze()
    registry = CollectorRegistry()
    app = web.Application()
    app.cleanup_ctx.append(long_lived_ctx(registry))
    callbacks = list(gc.callbacks)
    client = await aiohttp_client(app)
    assert len(gc.callbacks) == len(callbacks) + 1
    assert frozen_gauge(registry) >= len(kept)
    later = Node()
    await full_collection()
    assert not tracked(later), "survivors of a full collection while it serves are frozen"
    # Requests' young objects are collected in batches of thousands, not CPython's 700.
    assert gc.get_threshold()[0] >= 5000
    await client.close()
    assert gc.callbacks == callbacks
    assert gc.get_threshold() == thresholds


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """The collector's thresholds before the test, put back after it whatever it did."""
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


async def test_the_young_generation_is_collected_less_often(
    thresholds: tuple[int, int, int],
) -> None:
    gc.set_threshold(700, 7, 9)
    policy = LongLivedObjects(asyncio.get_running_loop(), CollectorRegistry(), young_threshold=4321)
    policy.start()
    try:
        assert gc.get_threshold() == (4321, 7, 9), "the older generations keep theirs"
        young_collections = gc.get_stats()[0]["collections"]
        # Tracked containers: each counts as an allocation of the young generation.
        garbage: list[list[int]] = [[] for _ in range(3000)]
        del garbage
        assert gc.get_stats()[0]["collections"] == young_collections, "700 would have run"
    finally:
        policy.stop()
    assert gc.get_threshold() == (700, 7, 9)
