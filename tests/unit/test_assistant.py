"""The dummy assistant: deterministic replies that know the turn number."""

from __future__ import annotations

import time

import pytest

from chat_service.assistant import DummyAssistant, create_assistant
from chat_service.assistant.dummy import HELP_TEXT
from chat_service.config import Settings
from chat_service.store import Exchange


def exchanges(count: int) -> list[Exchange]:
    return [
        Exchange(id=i, conversation_id="c", turn=i, user=f"u{i}", ai=f"a{i}", created_at="t")
        for i in range(1, count + 1)
    ]


async def test_greets_back_on_the_first_turn() -> None:
    reply = await DummyAssistant().reply("Hello!", [])
    assert reply.text == "Hello! Nice to meet you. This is the start of our conversation."


async def test_greets_again_later_with_the_turn() -> None:
    reply = await DummyAssistant().reply("hey you", exchanges(3))
    assert "turn 4" in reply.text
    assert reply.text.startswith("Hello again")


async def test_answers_help() -> None:
    assert (await DummyAssistant().reply("  HELP? ", exchanges(1))).text == HELP_TEXT


async def test_echoes_with_the_turn_number() -> None:
    reply = await DummyAssistant().reply("what is 2+2", exchanges(2))
    assert reply.text == 'You said: "what is 2+2". This is turn 3 of our conversation.'


async def test_is_deterministic_and_reports_usage() -> None:
    history = exchanges(2)
    first = await DummyAssistant().reply("same words here", history)
    second = await DummyAssistant().reply("same words here", history)
    assert first == second
    assert first.model == "dummy-1"
    assert first.input_tokens == 3 + 4  # the message, plus one word per stored user/AI text
    assert first.output_tokens == len(first.text.split())


async def test_simulated_latency() -> None:
    started = time.monotonic()
    await DummyAssistant(latency_ms=100).reply("hi", [])
    assert time.monotonic() - started >= 0.09


def test_factory_builds_the_configured_assistant() -> None:
    assistant = create_assistant(Settings(assistant="dummy", assistant_latency_ms=5))
    assert isinstance(assistant, DummyAssistant)


@pytest.mark.parametrize("message", ["hi", "help", "anything else"])
async def test_reply_is_never_empty(message: str) -> None:
    assert (await DummyAssistant().reply(message, [])).text.strip()
