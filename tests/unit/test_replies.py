"""The reply workflow's parts: one message at a time per conversation, the reply cache,
and the service that ties them to the store and the assistant (the model slots:
test_model_slots.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path

import pytest

from chat_service.assistant import DummyAssistant, ReplyChunk
from chat_service.chat.domain import ConversationRef, Exchange, TurnNotFound
from chat_service.chat.model_slots import ModelSlots
from chat_service.chat.ordering import ConversationLocks
from chat_service.chat.replies import ReplyService
from chat_service.chat.reply_cache import ReplyCache, cache_key
from chat_service.store.sqlite import SQLiteChatStore
from chat_service.telemetry.genai import GenAITelemetry
from chat_service.telemetry.metrics import Metrics
from tests.support.refs import ref

CALLER = "key:tester"


def exchange(turn: int, user: str = "u", ai: str = "a") -> Exchange:
    return Exchange(id=turn, conversation=ref("c"), turn=turn, user=user, ai=ai, created_at="t")


# -- ordering ---------------------------------------------------------------------------


async def test_one_holder_per_conversation_and_waiters_go_in_arrival_order() -> None:
    locks = ConversationLocks()
    order: list[int] = []
    release = asyncio.Event()

    async def take(n: int) -> None:
        async with locks.hold("c"):
            order.append(n)
            await release.wait()

    tasks = [asyncio.create_task(take(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert order == [0], "the first holds the conversation, the others wait"
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert len(locks) == 0, "an idle conversation keeps no lock"


async def test_conversations_do_not_wait_for_each_other() -> None:
    locks = ConversationLocks()
    async with locks.hold("a"):
        async with asyncio.timeout(1):
            async with locks.hold("b"):
                assert len(locks) == 2


async def test_a_waiter_that_gives_up_leaves_no_lock_behind() -> None:
    locks = ConversationLocks()
    async with locks.hold("c"):
        waiter = asyncio.create_task(locks.hold("c").__aenter__())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    assert len(locks) == 0


async def test_leaving_a_turn_never_taken_is_an_error() -> None:
    locks = ConversationLocks()
    with pytest.raises(RuntimeError, match="not taken"):
        await locks.hold("c").__aexit__(None, None, None)
    assert len(locks) == 0


# -- reply cache ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_returns_a_reply_until_its_ttl_has_passed() -> None:
    clock = Clock()
    cache = ReplyCache(10, clock=clock)
    cache.put("k", "reply")
    clock.now += 9.9
    assert cache.get("k") == "reply"
    clock.now += 0.1
    assert cache.get("k") is None
    assert len(cache) == 0, "an expired entry is dropped"


def test_cache_drops_the_least_recently_used_entry_first() -> None:
    cache = ReplyCache(60, max_entries=2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # now b is the least recently used
    cache.put("c", "3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("1", None, "3")


def test_cache_is_bounded_by_characters_of_reply_text() -> None:
    cache = ReplyCache(60, max_chars=10)
    cache.put("a", "x" * 6)
    cache.put("b", "y" * 4)
    assert len(cache) == 2, "exactly at the bound: both kept"
    cache.put("c", "z")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, "y" * 4, "z")
    cache.put("huge", "w" * 11)
    assert cache.get("huge") is None, "a reply over the whole bound is not kept"
    assert cache.get("b") == "y" * 4, "and does not push others out"


def test_cache_put_replaces_the_reply_under_a_key() -> None:
    cache = ReplyCache(60, max_chars=10)
    cache.put("a", "x" * 8)
    cache.put("a", "y" * 8)
    assert cache.get("a") == "y" * 8
    cache.put("b", "zz")
    assert cache.get("a") == "y" * 8, "the replaced reply no longer counts against the bound"


def test_cache_key_covers_everything_the_model_sees() -> None:
    history = [exchange(1, "q", "a")]
    key = cache_key("", "m", "sys", history, "hello")
    assert key == cache_key("", "m", "sys", [exchange(7, "q", "a")], "hello"), "text, not ids"
    others = {
        cache_key("", "other", "sys", history, "hello"),
        cache_key("", "m", None, history, "hello"),
        cache_key("", "m", "sys2", history, "hello"),
        cache_key("", "m", "sys", [], "hello"),
        cache_key("", "m", "sys", [exchange(1, "q", "b")], "hello"),
        cache_key("", "m", "sys", [exchange(1, "q2", "a")], "hello"),
        cache_key("", "m", "sys", history, "hello!"),
        cache_key("key:alice", "m", "sys", history, "hello"),  # another principal's
        # The same characters split differently between user and AI text.
        cache_key("", "m", "sys", [exchange(1, "qa", "")], "hello"),
    }
    assert key not in others
    assert len(others) == 9


# -- the service ------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteChatStore]:
    opened = await SQLiteChatStore.open(tmp_path / "chat.db")
    yield opened
    await opened.close()


def service_for(
    store: SQLiteChatStore,
    assistant: DummyAssistant,
    metrics: Metrics | None = None,
    *,
    context_turns: int = 20,
    cache: ReplyCache | None = None,
) -> ReplyService:
    telemetry = GenAITelemetry(
        metrics or Metrics(), provider=assistant.provider, model=assistant.model
    )
    return ReplyService(
        store,
        store,
        assistant,
        telemetry,
        context_turns=context_turns,
        slots=ModelSlots(8, wait_s=1),
        cache=cache,
    )


async def answer(
    service: ReplyService, conversation: str, message: str, replaces_turn: int | None = None
) -> str:
    async with service.turn(
        ref(conversation), message, CALLER, replaces_turn=replaces_turn
    ) as turn:
        async with contextlib.aclosing(turn.reply()) as pieces:
            reply = "".join([piece async for piece in pieces])
        await turn.save(reply)
    return reply


async def test_concurrent_messages_to_one_conversation_are_answered_in_order(
    store: SQLiteChatStore,
) -> None:
    service = service_for(store, DummyAssistant(latency_ms=20))
    replies = await asyncio.gather(*(answer(service, "c", f"m{n}") for n in range(5)))
    assert replies == [
        f'You said: "m{n}". This is turn {n + 1} of our conversation.' for n in range(5)
    ]
    stored = (await store.history(ref("c"))).exchanges
    assert [(e.user, e.turn) for e in stored] == [(f"m{n}", n + 1) for n in range(5)]


async def test_different_conversations_are_answered_at_the_same_time(
    store: SQLiteChatStore,
) -> None:
    """Five conversations' replies are all asked of the model before any is answered: a
    model that answers only once five calls are under way would wait for ever if the
    conversations took turns (the timeout is for that failure, not a measure of speed)."""
    assistant = TogetherAssistant(5)
    service = service_for(store, assistant)
    async with asyncio.timeout(10):
        replies = await asyncio.gather(*(answer(service, f"c{n}", "hi") for n in range(5)))
    assert len(replies) == 5
    assert assistant.most_at_once == 5


async def test_the_context_is_the_conversations_latest_exchanges(
    store: SQLiteChatStore,
) -> None:
    service = service_for(store, DummyAssistant(), context_turns=2)
    for n in range(3):
        await answer(service, "c", f"m{n}")
    async with service.turn(ref("c"), "next", CALLER) as turn:
        assert [e.user for e in turn.history] == ["m1", "m2"]


async def test_a_cached_reply_is_reused_without_the_model(store: SQLiteChatStore) -> None:
    metrics = Metrics()
    assistant = CountingAssistant()
    service = service_for(store, assistant, metrics, cache=ReplyCache(60))
    first = await answer(service, "a", "same question")
    second = await answer(service, "b", "same question")  # another conversation, same context
    assert first == second
    assert assistant.calls == 1
    third = await answer(service, "a", "same question")  # "a" now has context: a new reply
    assert assistant.calls == 2
    assert third != first
    hits = metrics.reply_cache.labels(result="hit")._value.get()
    misses = metrics.reply_cache.labels(result="miss")._value.get()
    assert (hits, misses) == (1, 2)


async def test_a_stopped_reply_is_not_cached(store: SQLiteChatStore) -> None:
    assistant = CountingAssistant(token_ms=1)
    service = service_for(store, assistant, cache=ReplyCache(60))
    async with service.turn(ref("a"), "q", CALLER) as turn:
        pieces = turn.reply()
        await anext(pieces)
        await pieces.aclose()
    await answer(service, "b", "q")
    assert assistant.calls == 2


class TogetherAssistant(DummyAssistant):
    """Answers once ``parties`` calls are under way together, and counts the most at once."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = asyncio.Barrier(parties)
        self.under_way = 0
        self.most_at_once = 0

    async def stream(
        self,
        message: str,
        history: Sequence[Exchange],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> AsyncGenerator[ReplyChunk, None]:
        self.under_way += 1
        self.most_at_once = max(self.most_at_once, self.under_way)
        await self.barrier.wait()
        async for chunk in super().stream(message, history):
            yield chunk
        self.under_way -= 1


class CountingAssistant(DummyAssistant):
    def __init__(self, token_ms: int = 0) -> None:
        super().__init__(token_ms=token_ms)
        self.calls = 0

    def stream(
        self,
        message: str,
        history: Sequence[Exchange],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> AsyncGenerator[ReplyChunk, None]:
        self.calls += 1
        return super().stream(message, history, model=model, system_prompt=system_prompt)


# -- regenerate and edit -------------------------------------------------------------------


async def test_a_message_that_replaces_a_turn_sees_only_what_came_before(
    store: SQLiteChatStore,
) -> None:
    service = service_for(store, DummyAssistant(), context_turns=2)
    for n in range(1, 5):
        await answer(service, "c", f"m{n}")
    async with service.turn(ref("c"), "m3 edited", CALLER, replaces_turn=3) as turn:
        assert [e.user for e in turn.history] == ["m1", "m2"]
    async with service.turn(ref("c"), "m1 edited", CALLER, replaces_turn=1) as turn:
        assert turn.history == []
    reply = await answer(service, "c", "m2 edited", replaces_turn=2)
    assert reply == 'You said: "m2 edited". This is turn 2 of our conversation.'
    history = (await store.history(ref("c"))).exchanges
    assert [(e.user, e.generation) for e in history] == [("m1", 0), ("m2 edited", 1)]


async def test_a_turn_the_conversation_lacks_is_refused_before_the_model(
    store: SQLiteChatStore,
) -> None:
    assistant = CountingAssistant()
    service = service_for(store, assistant)
    await answer(service, "c", "m1")
    for turn in (2, 9):
        with pytest.raises(TurnNotFound, match=f"no turn {turn}"):
            await answer(service, "c", "again", replaces_turn=turn)
    with pytest.raises(TurnNotFound):
        await answer(service, "empty", "again", replaces_turn=1)
    assert assistant.calls == 1
    assert [e.user for e in (await store.history(ref("c"))).exchanges] == ["m1"]


async def test_regenerating_asks_the_model_again_and_caches_the_new_reply(
    store: SQLiteChatStore,
) -> None:
    metrics = Metrics()
    assistant = CountingAssistant()
    service = service_for(store, assistant, metrics, cache=ReplyCache(60))
    await answer(service, "a", "same question")
    await answer(service, "a", "same question", replaces_turn=1)
    assert assistant.calls == 2, "not the cached reply"
    await answer(service, "b", "same question")  # a plain repeat: the cache serves it
    assert assistant.calls == 2
    hits = metrics.reply_cache.labels(result="hit")._value.get()
    misses = metrics.reply_cache.labels(result="miss")._value.get()
    assert (hits, misses) == (1, 1), "a regeneration does not look"


async def test_nothing_is_cut_when_the_reply_is_not_stored(store: SQLiteChatStore) -> None:
    assistant = CountingAssistant(token_ms=1)
    service = service_for(store, assistant)
    await answer(service, "c", "m1")
    await answer(service, "c", "m2")
    async with service.turn(ref("c"), "m1 again", CALLER, replaces_turn=1) as turn:
        pieces = turn.reply()
        await anext(pieces)
        await pieces.aclose()  # stopped, and the API did not save it
    assert [e.user for e in (await store.history(ref("c"))).exchanges] == ["m1", "m2"]


async def test_each_message_sees_at_most_its_context_turns_before_it(
    store: SQLiteChatStore,
) -> None:
    """The newest ``context_turns`` exchanges before the message: before its own turn when it
    replaces one, before the end otherwise."""
    for n in range(1, 6):
        await store.append(ref("c"), f"m{n}", "r")
    for depth, before_turn_4, at_the_end in (
        (1, ["m3"], ["m5"]),
        (2, ["m2", "m3"], ["m4", "m5"]),
    ):
        service = service_for(store, DummyAssistant(), context_turns=depth)
        async with service.turn(ref("c"), "x", CALLER, replaces_turn=4) as turn:
            assert [e.user for e in turn.history] == before_turn_4
        async with service.turn(ref("c"), "x", CALLER) as turn:
            assert [e.user for e in turn.history] == at_the_end


async def answer_as(service: ReplyService, conversation: ConversationRef, message: str) -> str:
    async with service.turn(conversation, message, CALLER) as turn:
        async with contextlib.aclosing(turn.reply()) as pieces:
            reply = "".join([piece async for piece in pieces])
        await turn.save(reply)
    return reply


async def test_the_reply_cache_tells_owners_and_messages_apart(store: SQLiteChatStore) -> None:
    assistant = CountingAssistant()
    service = service_for(store, assistant, cache=ReplyCache(60))
    await answer_as(service, ref("a", "key:alice"), "same question")
    await answer_as(service, ref("a", "key:bob"), "same question")
    assert assistant.calls == 2, "one owner never gets another's reply"
    await answer_as(service, ref("b", "key:alice"), "another question")
    assert assistant.calls == 3, "nor one question another's"


async def test_a_reply_streamed_in_pieces_is_cached_whole(store: SQLiteChatStore) -> None:
    assistant = CountingAssistant(token_ms=1)
    service = service_for(store, assistant, cache=ReplyCache(60))
    first = await answer(service, "a", "a question of several words")
    again = await answer(service, "b", "a question of several words")
    assert (again, assistant.calls) == (first, 1)
