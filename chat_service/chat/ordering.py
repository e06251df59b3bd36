"""One message at a time per conversation, in arrival order.

A reply is generated with the conversation's acknowledged exchanges as context, so the
next message of the same conversation must wait until the previous exchange is stored:
otherwise five messages sent at once would all be answered as the first. Each
conversation gets a lock while anyone holds or waits for it (asyncio's locks wake
waiters first come, first served); different conversations never wait for each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders and waiters; the entry goes when it drops to zero


class ConversationLocks:
    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}

    def hold(self, conversation: Hashable) -> _Hold:
        """``async with``: wait for ``conversation``'s turn, then hold it for the block."""
        return _Hold(self._entries, conversation)

    def __len__(self) -> int:
        """Conversations held or waited for right now."""
        return len(self._entries)


class _Hold:
    """One turn of a conversation. A class rather than a generator-based context manager:
    every message takes one, and the generator machinery cost more than the lock itself
    (bench/README.md, issue 26)."""

    __slots__ = ("_conversation", "_entries", "_entry")

    def __init__(self, entries: dict[Hashable, _Entry], conversation: Hashable) -> None:
        self._entries = entries
        self._conversation = conversation
        self._entry: _Entry | None = None

    async def __aenter__(self) -> None:
        entry = self._entries.get(self._conversation)
        if entry is None:
            entry = self._entries[self._conversation] = _Entry()
        entry.users += 1
        try:
            await entry.lock.acquire()
        except BaseException:  # given up while waiting (cancelled): no longer a user
            self._leave(entry)
            raise
        self._entry = entry

    async def __aexit__(self, *exc_info: object) -> None:
        entry = self._entry
        if entry is None:
            raise RuntimeError("the conversation's turn was not taken")
        self._entry = None
        entry.lock.release()
        self._leave(entry)

    def _leave(self, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0:
            del self._entries[self._conversation]
