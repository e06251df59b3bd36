"""The garbage collector's pauses, as a histogram by generation.

A collection of the oldest generation walks every object the process keeps, and the event
loop waits for it: with thousands of open event streams, each keeping its request, response
and coroutines alive, one pass took hundreds of milliseconds (bench/README.md, scenario h).
Prometheus' own GC collector counts collections but not how long they stopped the service;
this histogram does, so a tail latency that comes from the collector shows as such.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

# From a young collection's fraction of a millisecond to a full one over millions of objects.
PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class GCPauses:
    """Times each collection from the collector's ``start`` to its ``stop`` callback."""

    def __init__(self, registry: CollectorRegistry) -> None:
        histogram = Histogram(
            "chat_gc_pause_seconds",
            "Time the garbage collector stopped the process, by generation collected.",
            ["generation"],
            buckets=PAUSE_BUCKETS,
            registry=registry,
        )
        self._by_generation = [histogram.labels(generation=str(n)) for n in range(3)]
        self._started = 0.0

    # The collector calls this at any allocation, in any thread: mutmut's wrapper (it sets a
    # ContextVar) would run inside CPython's own bookkeeping and crash it, so it is left
    # unmutated (tests/unit/test_gc_pauses.py checks what it records).
    def _callback(self, phase: str, info: dict[str, Any]) -> None:  # pragma: no mutate block
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Time collections while the block runs (the collector's callbacks are global)."""
        gc.callbacks.append(self._callback)
        try:
            yield
        finally:
            gc.callbacks.remove(self._callback)
