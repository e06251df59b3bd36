"""A deterministic stand-in for an LLM: same input, same reply, no network.

It does a little more than echo, so that the page and the tests have something to look
at: it greets back, explains itself on "help", and says which turn of the conversation
this is. It streams its reply word by word like a model: CHAT_ASSISTANT_LATENCY_MS
simulates the model's think time before the first word and CHAT_ASSISTANT_TOKEN_MS the
pause between words, both without using CPU.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence

from chat_service.assistant.base import Completion, ReplyChunk
from chat_service.chat.domain import Exchange

_GREETING = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)
_HELP = re.compile(r"^\s*help\s*[?!.]*\s*$", re.IGNORECASE)
# A word with the whitespace after it, or whitespace alone (only ever at the start).
_WORD = re.compile(r"\S+\s*|\s+")

HELP_TEXT = (
    "I am the dummy assistant of chat-service: I answer instantly and predictably, "
    "so you can try the page, the API and the telemetry without a real model. "
    "Say hello, ask anything, and I will echo it back with the turn number."
)


def count_tokens(text: str) -> int:
    """A rough, deterministic token count: whitespace-separated words."""
    return len(text.split())


def split_words(text: str) -> list[str]:
    """``text`` in word-sized pieces that join back to exactly ``text``."""
    return _WORD.findall(text)


# How many exchanges' token counts to remember (about 3 MiB): enough for the context of a
# thousand busy conversations.
_TOKEN_CACHE_SIZE = 32768


class DummyAssistant:
    """Replies from rules, not a model. Safe for tests and benchmarks."""

    provider = "chat-service"
    model = "dummy-1"
    server_url: str | None = None

    def __init__(self, latency_ms: int = 0, token_ms: int = 0) -> None:
        self._latency_s = latency_ms / 1000
        self._token_s = token_ms / 1000
        # Token counts of stored exchanges by id: the same recent exchanges are the context
        # of every message in a conversation, and a stored exchange never changes.
        self._exchange_tokens: dict[int, int] = {}

    async def stream(
        self,
        message: str,
        history: Sequence[Exchange],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> AsyncGenerator[ReplyChunk, None]:
        """The rules' reply; there is one model (itself), and no prompt changes its rules."""
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        turn = history[-1].turn + 1 if history else 1
        text = self.compose(message.strip(), turn)
        if self._token_s:
            for index, word in enumerate(split_words(text)):
                if index:
                    await asyncio.sleep(self._token_s)
                yield word
        else:
            yield text  # no pause to show: one piece, as cheap as a plain reply
        yield Completion(
            model=self.model,
            finish_reason="stop",
            input_tokens=count_tokens(message) + self._context_tokens(history),
            output_tokens=count_tokens(text),
        )

    def _context_tokens(self, history: Sequence[Exchange]) -> int:
        known = self._exchange_tokens
        total = 0
        for exchange in history:
            tokens = known.get(exchange.id)
            if tokens is None:  # new in the context: counted once, then remembered
                if len(known) >= _TOKEN_CACHE_SIZE:
                    known.clear()
                tokens = count_tokens(exchange.user) + count_tokens(exchange.ai)
                known[exchange.id] = tokens
            total += tokens
        return total

    @staticmethod
    def compose(message: str, turn: int) -> str:
        """The reply to ``message`` (already stripped) at ``turn`` of a conversation."""
        if _HELP.match(message):
            return HELP_TEXT
        if _GREETING.match(message):
            if turn == 1:
                return "Hello! Nice to meet you. This is the start of our conversation."
            return f"Hello again! We are at turn {turn} of our conversation."
        return f'You said: "{message}". This is turn {turn} of our conversation.'

    async def models(self) -> Sequence[str]:
        """The dummy offers itself."""
        return (self.model,)

    async def close(self) -> None:
        """Nothing to release."""
