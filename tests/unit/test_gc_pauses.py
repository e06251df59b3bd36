"""chat_gc_pause_seconds: each collection timed, by generation, only while watched."""

from __future__ import annotations

import gc
import time

from prometheus_client import CollectorRegistry

from chat_service.telemetry.gc_pauses import GCPauses


def _count(registry: CollectorRegistry, generation: str) -> float:
    value = registry.get_sample_value("chat_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def _seconds(registry: CollectorRegistry, generation: str) -> float:
    value = registry.get_sample_value("chat_gc_pause_seconds_sum", {"generation": generation})
    return value or 0.0


def test_a_collection_is_timed_under_its_generation() -> None:
    registry = CollectorRegistry()
    pauses = GCPauses(registry)
    # Objects in cycles, so the full collection has something to walk and free.
    garbage: list[list[object]] = [[] for _ in range(50_000)]
    for item in garbage:
        item.append(item)
    del garbage
    with pauses.watching():
        before = [_count(registry, g) for g in "012"]
        started = time.perf_counter()
        gc.collect(2)
        wall = time.perf_counter() - started
        full = _seconds(registry, "2")
        assert _count(registry, "2") == before[2] + 1
        gc.collect(0)
        assert _count(registry, "0") >= before[0] + 1
    # The pause is the collection's own time: more than nothing, within the call's.
    assert 0 < full <= wall


def test_collections_are_not_timed_once_watching_ends() -> None:
    registry = CollectorRegistry()
    pauses = GCPauses(registry)
    callbacks = list(gc.callbacks)
    with pauses.watching():
        assert len(gc.callbacks) == len(callbacks) + 1
    assert gc.callbacks == callbacks
    gc.collect(2)
    assert _count(registry, "2") == 0


def test_one_series_per_generation_from_a_tenth_of_a_millisecond() -> None:
    registry = CollectorRegistry()
    GCPauses(registry)
    (family,) = [f for f in registry.collect() if f.name == "chat_gc_pause_seconds"]
    generations = {s.labels["generation"] for s in family.samples}
    assert generations == {"0", "1", "2"}
    bounds = sorted(
        float(s.labels["le"])
        for s in family.samples
        if s.name.endswith("_bucket") and s.labels["generation"] == "2"
    )
    # Young collections take a fraction of a millisecond; full ones over millions of
    # objects, seconds.
    assert bounds[0] == 0.0001
    assert bounds[-2] == 2.5
