"""chat/models.py: which models are offered, and how often the model server is asked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from chat_service.assistant.base import AssistantError
from chat_service.chat.models import REFRESH_S, ModelCatalogue


class Lister:
    """An assistant's ``models()``: answers from ``lists`` in turn, an error when it is one."""

    model = "ignored"

    def __init__(self, *lists: Sequence[str] | AssistantError) -> None:
        self.lists = list(lists)
        self.asked = 0

    async def models(self) -> Sequence[str]:
        self.asked += 1
        await asyncio.sleep(0)
        answer = self.lists.pop(0)
        if isinstance(answer, AssistantError):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def catalogue(lister: Lister, clock: Clock, **kwargs: object) -> ModelCatalogue:
    return ModelCatalogue(lister, default="main", clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_a_configured_list_is_offered_default_first_without_asking() -> None:
    lister = Lister()
    models = catalogue(lister, Clock(), configured=("b", "main", "a", "b"))
    assert await models.offered() == ("main", "b", "a")
    assert await models.offers("a")
    assert not await models.offers("c")
    assert lister.asked == 0


async def test_the_servers_list_is_asked_once_per_interval() -> None:
    lister, clock = Lister(["x", "main"], ["y"]), Clock()
    models = catalogue(lister, clock)
    assert await models.offered() == ("main", "x")
    clock.now += REFRESH_S - 0.001
    assert await models.offered() == ("main", "x")
    assert lister.asked == 1
    clock.now += 0.001
    assert await models.offered() == ("main", "y"), "the default always, first"
    assert lister.asked == 2


async def test_when_the_server_cannot_say_the_last_list_stands() -> None:
    failure = AssistantError("down", error_type="APIConnectionError")
    lister, clock = Lister(failure, ["x"], failure), Clock()
    models = catalogue(lister, clock, refresh_s=10)
    assert await models.offered() == ("main",), "the default alone, before any list"
    clock.now += 5
    assert await models.offered() == ("main",)
    assert lister.asked == 1, "a failure is not asked again at once"
    clock.now += 5
    assert await models.offered() == ("main", "x")
    clock.now += 10
    assert await models.offered() == ("main", "x"), "kept through a failure"
    assert lister.asked == 3


async def test_callers_at_once_share_one_question() -> None:
    lister = Lister(["x"])
    models = catalogue(lister, Clock())
    answers = await asyncio.gather(*(models.offered() for _ in range(5)))
    assert answers == [("main", "x")] * 5
    assert lister.asked == 1
