"""A deterministic stand-in for an LLM: same input, same reply, no network.

It does a little more than echo, so that the page and the tests have something to look
at: it greets back, explains itself on "help", and says which turn of the conversation
this is. CHAT_ASSISTANT_LATENCY_MS simulates a model's think time without using CPU.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from chat_service.assistant.base import Reply
from chat_service.store.base import Exchange

_GREETING = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)
_HELP = re.compile(r"^\s*help\s*[?!.]*\s*$", re.IGNORECASE)

HELP_TEXT = (
    "I am the dummy assistant of chat-service: I answer instantly and predictably, "
    "so you can try the page, the API and the telemetry without a real model. "
    "Say hello, ask anything, and I will echo it back with the turn number."
)


def count_tokens(text: str) -> int:
    """A rough, deterministic token count: whitespace-separated words."""
    return len(text.split())


# How many exchanges' token counts to remember (about 100 KiB).
_TOKEN_CACHE_SIZE = 2048


class DummyAssistant:
    """Replies from rules, not a model. Safe for tests and benchmarks."""

    provider = "chat-service"
    model = "dummy-1"
    in_process = True

    def __init__(self, latency_ms: int = 0) -> None:
        self._latency_s = latency_ms / 1000
        # Token counts of stored exchanges by id: the same recent exchanges are the context
        # of every message in a conversation, and a stored exchange never changes.
        self._exchange_tokens: dict[int, int] = {}

    async def reply(
        self, message: str, history: Sequence[Exchange], *, conversation_id: str = "default"
    ) -> Reply:
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        turn = history[-1].turn + 1 if history else 1
        text = self._compose(message.strip(), turn)
        prompt_tokens = count_tokens(message) + self._context_tokens(history)
        return Reply(
            text=text,
            model=self.model,
            input_tokens=prompt_tokens,
            output_tokens=count_tokens(text),
        )

    def _context_tokens(self, history: Sequence[Exchange]) -> int:
        known = self._exchange_tokens
        try:
            return sum([known[exchange.id] for exchange in history])
        except KeyError:  # a new exchange in the context (once per exchange)
            if len(known) >= _TOKEN_CACHE_SIZE:
                known.clear()
            for exchange in history:
                known[exchange.id] = count_tokens(exchange.user) + count_tokens(exchange.ai)
            return sum([known[exchange.id] for exchange in history])

    @staticmethod
    def _compose(message: str, turn: int) -> str:
        if _HELP.match(message):
            return HELP_TEXT
        if _GREETING.match(message):
            if turn == 1:
                return "Hello! Nice to meet you. This is the start of our conversation."
            return f"Hello again! We are at turn {turn} of our conversation."
        return f'You said: "{message}". This is turn {turn} of our conversation.'

    async def close(self) -> None:
        """Nothing to release."""
