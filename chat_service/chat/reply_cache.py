"""Replies to repeated questions, reused for a while (CHAT_REPLY_CACHE_TTL_S).

A reply is reused when everything the model would have seen is the same: the model, the
system prompt, the conversation's context (the recent exchanges sent along) and the
message. Keys are digests of those, so the cache holds no prompt text; values are the
replies. Bounded by entries and by characters of reply text (replies may be long), least
recently used first out; entries also expire ``ttl_s`` after they were stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from chat_service.chat.domain import Exchange

DEFAULT_MAX_ENTRIES = 4096
DEFAULT_MAX_CHARS = 16 * 1024 * 1024


def cache_key(
    owner: str,
    model: str,
    system_prompt: str | None,
    history: Sequence[Exchange],
    message: str,
) -> str:
    """A digest of everything that decides a model's reply, and whose it is: one principal
    never gets another's reply (nor learns from a fast one that someone asked the same)."""
    material = [owner, model, system_prompt, [[e.user, e.ai] for e in history], message]
    encoded = json.dumps(material, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()


class ReplyCache:
    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_chars: int = DEFAULT_MAX_CHARS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._clock = clock
        self._chars = 0
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def get(self, key: str) -> str | None:
        """The reply stored under ``key``, unless it expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, reply = entry
        if self._clock() >= expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return reply

    def put(self, key: str, reply: str) -> None:
        if len(reply) > self._max_chars:
            return  # would push out everything else
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + self.ttl_s, reply)
        self._chars += len(reply)
        while len(self._entries) > self._max_entries or self._chars > self._max_chars:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, reply = self._entries.pop(key)
        self._chars -= len(reply)

    def __len__(self) -> int:
        return len(self._entries)
