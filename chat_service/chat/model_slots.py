"""The model's slots, shared fairly between the callers of one replica.

At most ``limit`` model calls run at once (CHAT_MODEL_MAX_CONCURRENCY): beyond that a model
server slows every reply down, or refuses. Two rules keep one caller from taking them all:

- **a cap per caller** (CHAT_MAX_REPLIES_PER_CALLER): a call beyond the caller's cap, running
  or waiting, is refused at once with :class:`TooManyReplies`, so a burst of streams from one
  caller fills its own share and no more;
- **a fair queue**: when every slot is taken, a freed slot goes to the caller next in turn
  among those waiting, round robin, not to whoever asked first. A caller who has waited
  behind another's dozen calls gets the next slot, whatever the other queued before it.

A call that cannot start within ``wait_s`` raises :class:`ModelBusy`, before producing
anything, so the API can still answer with a status instead of starting a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class ModelBusy(Exception):
    """Every model slot stayed taken for the whole wait."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"no model slot became free within {waited_s:g} s")
        self.waited_s = waited_s


class TooManyReplies(Exception):
    """The caller already has as many model calls running or waiting as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} replies already in progress for this caller")
        self.limit = limit


class ModelSlots:
    """At most ``limit`` model calls at once, at most ``per_caller`` of them (running or
    waiting) for any one caller; the rest queue, fairly by caller, each for at most
    ``wait_s``."""

    def __init__(self, limit: int, wait_s: float, per_caller: int | None = None) -> None:
        self.limit = limit
        self.per_caller = per_caller if per_caller is not None else limit
        self._wait_s = wait_s
        self._running = 0
        self._calls: dict[str, int] = {}  # each caller's calls, running or waiting
        # The callers waiting, in the order they are served (first served first; a caller
        # served moves to the back if it still waits), each with its own queue.
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    @property
    def running(self) -> int:
        return self._running

    def waiting(self, caller: str) -> int:
        """How many of ``caller``'s calls wait for a slot."""
        queue = self._waiting.get(caller)
        return len(queue) if queue is not None else 0

    def take(self, caller: str) -> _Slot:
        """``async with``: a slot for one of ``caller``'s model calls, held until the block
        ends. Raises TooManyReplies (over the caller's cap) or ModelBusy (no slot within
        the wait)."""
        return _Slot(self, caller)

    async def _enter(self, caller: str) -> None:
        calls = self._calls.get(caller, 0)
        if calls >= self.per_caller:
            raise TooManyReplies(self.per_caller)
        self._calls[caller] = calls + 1
        try:
            if self._running < self.limit and not self._waiting:
                self._running += 1  # a free slot and nobody before us: no timer armed
            else:
                await self._wait(caller)
        except BaseException:
            self._leave(caller)
            raise

    def _exit(self, caller: str) -> None:
        try:
            self._release()
        finally:
            self._leave(caller)

    def _leave(self, caller: str) -> None:
        if (left := self._calls[caller] - 1) > 0:
            self._calls[caller] = left
        else:
            del self._calls[caller]

    async def _wait(self, caller: str) -> None:
        """Queue behind the callers waiting; return holding a slot that :meth:`_release`
        handed over (``_running`` already counts it)."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(caller, deque()).append(granted)
        try:
            async with asyncio.timeout(self._wait_s):
                await granted
        except BaseException as exc:  # the wait ran out, or the caller left
            if granted.done() and not granted.cancelled():
                # The slot was handed over just as the wait ended: pass it on.
                self._release()
            else:
                granted.cancel()
                self._forget(caller, granted)
            if isinstance(exc, TimeoutError):
                raise ModelBusy(self._wait_s) from None
            raise

    def _forget(self, caller: str, granted: asyncio.Future[None]) -> None:
        """Take a call that was never handed a slot out of its caller's queue, if it is
        still there: cancelling a task cancels the future it waits on at once, but the task
        runs this a loop turn later, and a :meth:`_release` in between may already have
        taken the cancelled call out (and dropped its caller's emptied queue)."""
        queue = self._waiting.get(caller)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(granted)
        if not queue:
            del self._waiting[caller]

    def _release(self) -> None:
        """Hand the slot to the next waiting caller in turn, or free it."""
        while self._waiting:
            caller = next(iter(self._waiting))
            queue = self._waiting.pop(caller)
            granted = queue.popleft()
            if queue:
                self._waiting[caller] = queue  # to the back of the line
            if not granted.done():
                granted.set_result(None)
                return  # the slot changes hands: still running
        self._running -= 1


class _Slot:
    """:meth:`ModelSlots.take`'s ``async with``. A class rather than a generator-based
    context manager: every reply takes one (bench/README.md, issue 26)."""

    __slots__ = ("_caller", "_slots")

    def __init__(self, slots: ModelSlots, caller: str) -> None:
        self._slots = slots
        self._caller = caller

    async def __aenter__(self) -> None:
        await self._slots._enter(self._caller)

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots._exit(self._caller)
