"""The model's slots: at most so many calls at once, a cap per caller, and a freed slot
handed to the next caller in turn, not to whoever queued first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from chat_service.chat.model_slots import ModelBusy, ModelSlots, TooManyReplies


class Holder:
    """One model call: takes a slot for ``caller``, notes when it got it, holds it until
    released."""

    def __init__(self, slots: ModelSlots, caller: str, served: list[str]) -> None:
        self.caller = caller
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run(slots, served))

    async def _run(self, slots: ModelSlots, served: list[str]) -> None:
        async with slots.take(self.caller):
            served.append(self.caller)
            self.entered.set()
            await self.release.wait()


async def settle() -> None:
    """Let every task that can run, run (a few loop turns: a handed-over slot wakes its
    waiter one turn after the release)."""
    for _ in range(5):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def cleanup(holders: list[Holder]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for holder in holders:
            holder.task.cancel()
        await asyncio.gather(*(h.task for h in holders), return_exceptions=True)


async def test_slots_admit_up_to_the_limit_and_queue_the_rest() -> None:
    slots = ModelSlots(2, wait_s=5)
    served: list[str] = []
    holders = [Holder(slots, f"c{n}", served) for n in range(3)]
    async with cleanup(holders):
        await settle()
        assert served == ["c0", "c1"], "a third call waits while two run"
        assert (slots.running, slots.waiting("c2")) == (2, 1)
        holders[0].release.set()
        await asyncio.wait_for(holders[2].entered.wait(), 1)
        assert served == ["c0", "c1", "c2"]
        assert slots.running == 2, "the slot changed hands"
        for holder in holders:
            holder.release.set()
        await asyncio.gather(*(h.task for h in holders))
    assert slots.running == 0


async def test_a_freed_slot_goes_to_the_next_caller_in_turn_not_the_first_in_line() -> None:
    """alice queues five calls, then bob one, then carol one: the slots freed afterwards go
    alice, bob, carol, alice, ... (round robin), so bob waits for one call, not five."""
    slots = ModelSlots(1, wait_s=5, per_caller=10)
    served: list[str] = []
    first = Holder(slots, "alice", served)
    await settle()
    queued = [Holder(slots, "alice", served) for _ in range(5)]
    await settle()
    queued += [Holder(slots, "bob", served), Holder(slots, "carol", served)]
    holders = [first, *queued]
    async with cleanup(holders):
        await settle()
        assert served == ["alice"]
        running = first
        for _ in range(len(queued)):
            running.release.set()
            await settle()
            running = next(h for h in queued if h.entered.is_set() and not h.release.is_set())
        running.release.set()
        await asyncio.gather(*(h.task for h in holders))
    assert served == ["alice", "alice", "bob", "carol", "alice", "alice", "alice", "alice"]


async def test_a_caller_over_its_cap_is_refused_at_once_and_others_are_not() -> None:
    slots = ModelSlots(8, wait_s=5, per_caller=2)
    served: list[str] = []
    holders = [Holder(slots, "alice", served) for _ in range(2)]
    async with cleanup(holders):
        await settle()
        with pytest.raises(TooManyReplies) as refused:
            async with slots.take("alice"):
                pass
        assert refused.value.limit == 2
        async with asyncio.timeout(1), slots.take("bob"):
            pass  # another caller still has its share
        holders[0].release.set()
        await holders[0].task
        async with asyncio.timeout(1), slots.take("alice"):
            pass  # one of alice's ended: she may start another
    assert slots.per_caller == 2


async def test_waiting_calls_count_against_the_cap() -> None:
    slots = ModelSlots(1, wait_s=5, per_caller=2)
    served: list[str] = []
    holders = [Holder(slots, "bob", served), Holder(slots, "alice", served)]
    holders.append(Holder(slots, "alice", served))
    async with cleanup(holders):
        await settle()
        assert served == ["bob"]
        assert slots.waiting("alice") == 2
        with pytest.raises(TooManyReplies):
            async with slots.take("alice"):
                pass


async def test_the_cap_defaults_to_the_limit() -> None:
    assert ModelSlots(3, wait_s=1).per_caller == 3


async def test_a_call_that_cannot_start_in_time_is_refused_and_leaves_the_line() -> None:
    slots = ModelSlots(1, wait_s=0.05)
    served: list[str] = []
    holder = Holder(slots, "alice", served)
    async with cleanup([holder]):
        await settle()
        with pytest.raises(ModelBusy) as refused:
            async with slots.take("bob"):
                pass
        assert refused.value.waited_s == 0.05
        assert slots.waiting("bob") == 0, "the timed-out call is no longer waiting"
        holder.release.set()
        await holder.task
    assert slots.running == 0
    async with asyncio.timeout(1), slots.take("bob"):
        assert slots.running == 1  # the slot is free again after the holder left


async def test_a_waiting_call_that_is_cancelled_leaves_the_line() -> None:
    slots = ModelSlots(1, wait_s=5)
    served: list[str] = []
    holder = Holder(slots, "alice", served)
    await settle()
    leaving = Holder(slots, "bob", served)
    staying = Holder(slots, "carol", served)
    async with cleanup([holder, staying]):
        await settle()
        leaving.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving.task
        assert slots.waiting("bob") == 0
        holder.release.set()
        await asyncio.wait_for(staying.entered.wait(), 1)
        assert served == ["alice", "carol"]


async def test_a_slot_handed_over_as_the_wait_ends_is_passed_on_not_lost() -> None:
    """The holder leaves at the very moment the waiter is cancelled (its wait ran out, or
    its client left): the slot handed to the waiter must go to the next caller, or be
    freed, never leak."""
    slots = ModelSlots(1, wait_s=5)
    served: list[str] = []
    held = slots.take("alice")
    await held.__aenter__()
    waiter = Holder(slots, "bob", served)
    after = Holder(slots, "carol", served)
    async with cleanup([waiter, after]):
        await settle()
        assert slots.waiting("bob") == slots.waiting("carol") == 1
        await held.__aexit__(None, None, None)  # hands the slot to bob, without yielding
        waiter.task.cancel()  # ... who is cancelled before he could wake up
        with pytest.raises(asyncio.CancelledError):
            await waiter.task
        await asyncio.wait_for(after.entered.wait(), 1)
        assert served == ["carol"]
        assert slots.running == 1
        after.release.set()
        await after.task
    assert slots.running == 0


def test_the_refusals_say_what_ran_out() -> None:
    assert str(ModelBusy(0.5)) == "no model slot became free within 0.5 s"
    assert str(TooManyReplies(4)) == "4 replies already in progress for this caller"


async def test_a_waiter_cancelled_as_the_slot_is_released_leaves_cleanly() -> None:
    """Cancelling a waiting call cancels the future it waits on at once, but its own clean-up
    runs a loop turn later: a release in between has already taken the cancelled call out of
    the line (and dropped its caller's emptied queue). The call must end cancelled, not with
    a KeyError, and the slot must be free."""
    slots = ModelSlots(1, wait_s=5)
    served: list[str] = []
    holder = Holder(slots, "alice", served)
    await settle()
    waiter = Holder(slots, "bob", served)
    await settle()
    holder.release.set()
    waiter.task.cancel()  # in the same step: bob's future is cancelled before alice leaves
    results = await asyncio.gather(holder.task, waiter.task, return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert (slots.running, slots.waiting("bob")) == (0, 0)
    async with asyncio.timeout(1), slots.take("carol"):
        assert slots.running == 1


async def test_a_cancelled_waiter_taken_out_ahead_of_its_callers_others_leaves_them_queued() -> (
    None
):
    """The same race when the caller has more calls waiting: its queue stays, without the
    cancelled call, and the others get the next slots."""
    slots = ModelSlots(1, wait_s=5, per_caller=5)
    served: list[str] = []
    holder = Holder(slots, "alice", served)
    await settle()
    first = Holder(slots, "bob", served)
    await settle()
    second = Holder(slots, "bob", served)
    third = Holder(slots, "bob", served)
    await settle()
    holder.release.set()
    first.task.cancel()
    async with cleanup([second, third]):
        results = await asyncio.gather(holder.task, first.task, return_exceptions=True)
        assert results[0] is None
        assert isinstance(results[1], asyncio.CancelledError)
        await asyncio.wait_for(second.entered.wait(), 1)
        assert served == ["alice", "bob"]
        assert slots.waiting("bob") == 1, "the third still waits, the cancelled one is gone"
        second.release.set()
        await asyncio.wait_for(third.entered.wait(), 1)
