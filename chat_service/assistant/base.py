"""The assistant seam: anything that turns a message and its context into a reply.

The dummy lives in ``dummy.py``; a client for a real LLM API plugs in beside it and is
chosen by CHAT_ASSISTANT. Assistants know nothing of HTTP or storage: they receive the
conversation's recent exchanges and return text plus the usage figures telemetry reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chat_service.store.base import Exchange


class AssistantError(Exception):
    """The assistant could not produce a reply."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An assistant's answer with the model that produced it and its token usage."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int


class Assistant(Protocol):
    """Produces replies.

    ``provider`` and ``model`` name it in telemetry; ``in_process`` tells whether it runs
    inside the service (an INTERNAL span) or calls a remote API (a CLIENT span).
    """

    provider: str
    model: str
    in_process: bool

    async def reply(
        self, message: str, history: Sequence[Exchange], *, conversation_id: str
    ) -> Reply:
        """Answer ``message``; ``history`` is the conversation's latest exchanges, oldest first."""
        ...

    async def close(self) -> None:
        """Release connections or other resources held by the assistant."""
        ...
