"""One message at a time per conversation, in arrival order.

A reply is generated with the conversation's acknowledged exchanges as context, so the
next message of the same conversation must wait until the previous exchange is stored:
otherwise five messages sent at once would all be answered as the first. Each
conversation gets a lock while anyone holds or waits for it (asyncio's locks wake
waiters first come, first served); different conversations never wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders and waiters; the entry goes when it drops to zero


class ConversationLocks:
    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}

    @contextlib.asynccontextmanager
    async def hold(self, conversation: Hashable) -> AsyncIterator[None]:
        """Wait for ``conversation``'s turn, then hold it for the ``with`` block."""
        entry = self._entries.get(conversation)
        if entry is None:
            entry = self._entries[conversation] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[conversation]

    def __len__(self) -> int:
        """Conversations held or waited for right now."""
        return len(self._entries)
