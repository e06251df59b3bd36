"""The dummy assistant: deterministic replies that know the turn number, streamed word by
word like a model's."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from chat_service.assistant import Completion, DummyAssistant, create_assistant
from chat_service.assistant.dummy import HELP_TEXT, split_words
from chat_service.chat.domain import Exchange
from chat_service.config import Settings
from tests.support.refs import ref


def exchanges(count: int) -> list[Exchange]:
    return [
        Exchange(id=i, conversation=ref("c"), turn=i, user=f"u{i}", ai=f"a{i}", created_at="t")
        for i in range(1, count + 1)
    ]


async def reply(
    assistant: DummyAssistant, message: str, history: Sequence[Exchange] = ()
) -> tuple[list[str], Completion]:
    """The pieces of a reply, and the completion that ends its stream (checked to be last)."""
    items = [item async for item in assistant.stream(message, history)]
    *pieces, completion = items
    assert isinstance(completion, Completion)
    assert all(isinstance(piece, str) for piece in pieces)
    return [str(piece) for piece in pieces], completion


async def text(message: str, history: Sequence[Exchange] = ()) -> str:
    return "".join((await reply(DummyAssistant(), message, history))[0])


async def test_greets_back_on_the_first_turn() -> None:
    assert await text("Hello!") == "Hello! Nice to meet you. This is the start of our conversation."


async def test_greets_again_later_with_the_turn() -> None:
    assert await text("hey you", exchanges(3)) == (
        "Hello again! We are at turn 4 of our conversation."
    )


async def test_answers_help() -> None:
    assert await text("  HELP? ", exchanges(1)) == HELP_TEXT


async def test_echoes_with_the_turn_number() -> None:
    assert await text("what is 2+2", exchanges(2)) == (
        'You said: "what is 2+2". This is turn 3 of our conversation.'
    )


async def test_without_a_token_delay_the_reply_is_one_piece() -> None:
    pieces, _ = await reply(DummyAssistant(), "hello")
    assert pieces == ["Hello! Nice to meet you. This is the start of our conversation."]


async def test_with_a_token_delay_it_streams_word_by_word() -> None:
    started = time.monotonic()
    pieces, _ = await reply(DummyAssistant(token_ms=20), "hello")
    elapsed = time.monotonic() - started
    assert pieces == [
        "Hello! ", "Nice ", "to ", "meet ", "you. ", "This ", "is ", "the ", "start ", "of ",
        "our ", "conversation.",
    ]  # fmt: skip
    # A pause between words, none before the first: 11 pauses of 20 ms.
    assert elapsed >= 0.2


async def test_streamed_and_whole_replies_are_the_same_text() -> None:
    message = "  spaces\tand\nnew lines  "
    whole, _ = await reply(DummyAssistant(), message, exchanges(1))
    streamed, _ = await reply(DummyAssistant(token_ms=1), message, exchanges(1))
    assert (
        "".join(streamed)
        == "".join(whole)
        == ('You said: "spaces\tand\nnew lines". This is turn 2 of our conversation.')
    )


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("one two", ["one ", "two"]),
        ("  lead", ["  ", "lead"]),
        ("trail  ", ["trail  "]),
        ("a\n\nb", ["a\n\n", "b"]),
        ("", []),
    ],
)
def test_split_words_keeps_every_character(text: str, pieces: list[str]) -> None:
    assert split_words(text) == pieces


async def test_is_deterministic_and_reports_usage() -> None:
    history = exchanges(2)
    first = await reply(DummyAssistant(), "same words here", history)
    second = await reply(DummyAssistant(), "same words here", history)
    assert first == second
    pieces, completion = first
    assert completion.model == "dummy-1"
    assert completion.finish_reason == "stop"
    assert completion.input_tokens == 3 + 4  # the message, plus one word per stored text
    assert completion.output_tokens == len("".join(pieces).split())


async def test_a_growing_context_is_counted_whole_by_one_assistant() -> None:
    """Counts are remembered per exchange: the next message's context repeats all but the
    newest exchange, and the total must still be every exchange's words."""
    assistant = DummyAssistant()
    long_one = Exchange(
        id=9,
        conversation=ref("c"),
        turn=3,
        user="three more words",
        ai="and four more words",
        created_at="t",
    )
    totals = []
    for history in (exchanges(1), exchanges(2), [*exchanges(2), long_one], [long_one]):
        _, completion = await reply(assistant, "hi", history)
        totals.append(completion.input_tokens)
    assert totals == [1 + 2, 1 + 4, 1 + 4 + 7, 1 + 7]


async def test_an_exchanges_count_is_remembered_by_its_id() -> None:
    """A stored exchange never changes, so its count is taken once: the same id with other
    text (which a store never produces) still counts as first seen."""
    assistant = DummyAssistant()
    first = Exchange(id=5, conversation=ref("c"), turn=1, user="a b", ai="c", created_at="t")
    again = Exchange(id=5, conversation=ref("c"), turn=1, user="a b c d e", ai="f", created_at="t")
    _, before = await reply(assistant, "hi", [first])
    _, after = await reply(assistant, "hi", [again])
    assert (before.input_tokens, after.input_tokens) == (1 + 3, 1 + 3)


async def test_simulated_latency_comes_before_the_first_word() -> None:
    started = time.monotonic()
    stream = DummyAssistant(latency_ms=100).stream("hi", [])
    await anext(stream)
    assert time.monotonic() - started >= 0.09
    await stream.aclose()


def test_factory_builds_the_configured_assistant() -> None:
    assistant = create_assistant(Settings(assistant="dummy", assistant_token_ms=5))
    assert isinstance(assistant, DummyAssistant)
    assert (assistant.provider, assistant.model, assistant.server_url) == (
        "chat-service",
        "dummy-1",
        None,
    )


@pytest.mark.parametrize("message", ["hi", "help", "anything else"])
async def test_reply_is_never_empty(message: str) -> None:
    assert (await text(message)).strip()
