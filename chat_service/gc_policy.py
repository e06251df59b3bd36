"""What the garbage collector walks in a long-running service: objects that have lived
through a full collection are frozen, out of its sight, until they have doubled.

A full collection walks every object in the oldest generation, and the event loop waits for
it. Most of a service's objects come and go with their request, but an open event stream
keeps its request, response, coroutines and timers for as long as the client stays. With
10,000 live subscriptions each full collection walked all of them, for nothing: 300 ms each,
a dozen times in a 40 s run (bench/README.md, scenario h).

The rule here, like CPython's own (a full collection only once the oldest generation has
grown by a quarter), is amortised growth, but on what has proved long-lived:

- After each full collection the collector ran on its own, what survived it is frozen
  (``gc.freeze()``): later collections do not walk it, so each object is walked by one
  full collection, not by every one.
- An object frozen while alive and later dropped is still freed by reference counting. Only
  garbage in reference cycles stays, and for that the frozen objects are thawed and
  collected once their number has doubled since the last thaw (``GROWTH``): garbage held
  this way never exceeds what is alive, and the full walk it costs is paid once per doubling.
  (They are counted after a full collection, at most every ``COUNT_EVERY_S``: counting walks
  them too.)
- The youngest generation is collected after ``YOUNG_THRESHOLD`` allocations rather than
  CPython's 700. A request allocates a few hundred tracked objects and frees nearly all of them
  by reference counting, so at 700 a young collection ran every few requests and walked the
  objects of every request in flight: 4-6% of a durable POST's CPU, measured in
  bench/README.md (5,000 to 50,000 all gave the same gain). What the larger threshold costs is
  cyclic garbage waiting a little longer: at most that many young objects, a few MB.

The process entry point (__main__) freezes what start-up built and then runs this; tests and
embedders that call create_app themselves keep the collector's defaults.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)

GROWTH = 2.0
YOUNG_THRESHOLD = 10_000
# Counting the frozen objects walks all of them (gc.get_freeze_count: a few milliseconds per
# million), so it is done at most this often, not after every full collection.
COUNT_EVERY_S = 5.0


class LongLivedObjects:
    """Freezes the survivors of each full collection; thaws once they have grown
    ``growth``-fold since the last thaw (or since start). While it runs, the young generation
    is collected every ``young_threshold`` allocations (the older ones keep their thresholds)."""

    _thresholds_before: tuple[int, int, int]  # the collector's, put back by stop()

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: CollectorRegistry | None = None,
        *,
        growth: float = GROWTH,
        count_every_s: float = COUNT_EVERY_S,
        young_threshold: int = YOUNG_THRESHOLD,
    ) -> None:
        self._loop = loop
        self._growth = growth
        self._young_threshold = young_threshold
        self._count_every_s = count_every_s
        self._next_count = 0.0
        self._baseline = 0
        self._scheduled = False
        self._thawing = False
        self._frozen = Gauge(
            "chat_gc_frozen_objects",
            "Objects frozen out of the garbage collector's sight (survivors of a full "
            f"collection), counted after a full collection at most every {count_every_s:g} s.",
            registry=registry,
        )
        self._thaws = Counter(
            "chat_gc_thaws",
            "Times the frozen objects were thawed and collected, once they had doubled.",
            registry=registry,
        )

    def start(self) -> None:
        # What start-up built lives as long as the process: frozen now, rather than found by
        # the first full collection, which would count it as growth and thaw it at once.
        gc.collect()
        gc.freeze()
        self._baseline = max(1, gc.get_freeze_count())
        self._frozen.set(self._baseline)
        self._thresholds_before = gc.get_threshold()
        gc.set_threshold(self._young_threshold)  # the older generations keep theirs
        gc.callbacks.append(self._collected)

    def stop(self) -> None:
        gc.set_threshold(*self._thresholds_before)  # first: whatever the callbacks' state
        gc.callbacks.remove(self._collected)

    # Called by the collector, as GCPauses._callback is: not wrapped by mutmut (see there).
    def _collected(self, phase: str, info: dict[str, Any]) -> None:  # pragma: no mutate block
        # Any thread may trigger a collection: the freezing is done on the loop's thread.
        full = phase == "stop" and info["generation"] == 2
        if full and not self._thawing and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._freeze_survivors)

    def _freeze_survivors(self) -> None:
        self._scheduled = False
        gc.freeze()
        now = self._loop.time()
        if now < self._next_count:
            return
        self._next_count = now + self._count_every_s
        frozen = gc.get_freeze_count()
        if frozen > self._growth * self._baseline:
            started = time.perf_counter()
            thawed = frozen
            frozen = self._thaw()
            log.info(
                "thawed and collected the frozen objects",
                extra={
                    "frozen_before": thawed,
                    "frozen_after": frozen,
                    "pause_ms": round(1000 * (time.perf_counter() - started), 1),
                },
            )
        self._frozen.set(frozen)

    def _thaw(self) -> int:
        """Collect everything once, cycles among the frozen included; freeze what is left."""
        self._thawing = True
        try:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        finally:
            self._thawing = False
        self._thaws.inc()
        self._baseline = max(1, gc.get_freeze_count())
        return self._baseline


def long_lived_ctx(
    registry: CollectorRegistry | None = None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that runs the policy while the app serves, its metrics on
    ``registry``."""

    async def run_policy(app: web.Application) -> AsyncIterator[None]:
        policy = LongLivedObjects(asyncio.get_running_loop(), registry)
        policy.start()
        try:
            yield
        finally:
            policy.stop()

    return run_policy
