"""The assistant seam: anything that turns a message and its context into a streamed reply.

An assistant yields the reply's text piece by piece as the model produces it, and ends
with a :class:`Completion` (the model that answered, why it stopped, the token usage).
A caller that does not stream collects the pieces. Closing the stream early (``aclose``)
stops the model call: an assistant that talks to a server closes that request, so the
server stops spending tokens.

Assistants know nothing of HTTP, storage, caching or telemetry: they receive the
conversation's recent exchanges and the new message, and raise :class:`AssistantError`
when no reply can be had.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol

from chat_service.chat.domain import Exchange


class AssistantError(Exception):
    """The assistant could not produce a reply.

    ``error_type`` names the underlying failure for telemetry and logs (the SDK's exception
    class, such as ``RateLimitError``); the message never holds user text or secrets.
    """

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type or type(self).__qualname__


@dataclass(frozen=True, slots=True)
class Completion:
    """How a reply ended: the last item of an assistant's stream."""

    model: str
    finish_reason: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    response_id: str | None = None


# What an assistant's stream yields: pieces of text, then one Completion.
ReplyChunk = str | Completion


class Assistant(Protocol):
    """Produces streamed replies. ``provider`` and ``model`` name it in telemetry, and
    ``server_url`` says where the model is (None: in process)."""

    provider: str
    model: str
    server_url: str | None

    def stream(
        self,
        message: str,
        history: Sequence[Exchange],
        *,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> AsyncGenerator[ReplyChunk, None]:
        """Answer ``message``; ``history`` is the conversation's latest exchanges, oldest
        first; ``model`` and ``system_prompt`` what the conversation asks for (None: the
        assistant's own; an empty prompt: none). An async generator: ``aclose()`` it to
        stop early."""
        ...

    async def models(self) -> Sequence[str]:
        """The models the assistant can answer with (raises AssistantError if it cannot
        say)."""
        ...

    async def close(self) -> None:
        """Release connections or other resources held by the assistant."""
        ...
