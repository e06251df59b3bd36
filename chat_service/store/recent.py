"""The newest exchanges of recently used conversations, kept in memory.

Sending a message reads the conversation's latest turns (the assistant's context) and the
page reads the latest page of history: both are the newest rows of one conversation, the
hottest reads there are. The service is the database's only writer (SQLite has one writer;
the deployment runs one replica), so it sees every commit and can keep these rows current
without asking SQLite: after a commit the new exchanges are appended here, and a read that
raced with a commit is simply not cached (a generation counter tells).

Bounded: ``depth`` exchanges for each of at most ``max_conversations`` conversations, and
``max_chars`` characters of message text in all (messages may be thousands of characters
long), least recently used conversation dropped first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from chat_service.store.base import Exchange, HistoryPage

DEFAULT_DEPTH = 100
DEFAULT_MAX_CONVERSATIONS = 1000
DEFAULT_MAX_CHARS = 8 * 1024 * 1024


# Pages kept per conversation between its commits (pages of different sizes).
_PAGES_PER_CONVERSATION = 8


@dataclass(slots=True)
class _Entry:
    newest: deque[Exchange]
    # Whether the conversation has exchanges older than the ones held here.
    has_older: bool = field(default=False)
    # Pages answered since the conversation's last commit, by size: until it changes, the
    # same page object is returned, so callers may key what they derive from it on it.
    pages: dict[int, HistoryPage] = field(default_factory=dict)
    chars: int = 0  # message text held, for the cache's bound


def _chars(exchange: Exchange) -> int:
    return len(exchange.user) + len(exchange.ai)


class RecentCache:
    def __init__(
        self,
        depth: int = DEFAULT_DEPTH,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self.depth = depth
        self._max_conversations = max_conversations
        self._max_chars = max_chars
        self._chars = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Bumped by every commit: a read that saw an older generation must not be cached.
        self.generation = 0

    def page(self, conversation_id: str, limit: int) -> HistoryPage | None:
        """The newest ``limit`` exchanges, oldest first, if this cache can answer."""
        entry = self._entries.get(conversation_id)
        if entry is None:
            return None
        held = len(entry.newest)
        if limit > held and entry.has_older:
            return None
        self._entries.move_to_end(conversation_id)
        page = entry.pages.get(limit)
        if page is None:
            newest = tuple(entry.newest)
            page = HistoryPage(
                newest[-limit:] if limit < held else newest,
                has_older=held > limit or entry.has_older,
                shared=True,
            )
            if len(entry.pages) >= _PAGES_PER_CONVERSATION:
                entry.pages.clear()
            entry.pages[limit] = page
        return page

    def fill(
        self,
        conversation_id: str,
        newest: Sequence[Exchange],
        *,
        has_older: bool,
        generation: int,
    ) -> None:
        """Remember what a read returned: up to ``depth`` newest exchanges, oldest first."""
        if generation != self.generation:
            return  # a commit landed while the read ran; its rows may be missing
        entry = _Entry(deque(newest, maxlen=self.depth), has_older)
        entry.chars = sum(_chars(exchange) for exchange in entry.newest)
        if (replaced := self._entries.pop(conversation_id, None)) is not None:
            self._chars -= replaced.chars
        self._entries[conversation_id] = entry
        self._chars += entry.chars
        self._evict()

    def committed(self, exchanges: Iterable[Exchange]) -> None:
        """Append freshly committed exchanges to the conversations held here."""
        self.generation += 1
        for exchange in exchanges:
            entry = self._entries.get(exchange.conversation_id)
            if entry is None:
                continue
            if entry.newest and exchange.id <= entry.newest[-1].id:
                # A read that ran between the COMMIT and this call already saw the row.
                continue
            if len(entry.newest) == self.depth:
                entry.has_older = True
                dropped = _chars(entry.newest[0])  # the deque drops it on append
                entry.chars -= dropped
                self._chars -= dropped
            entry.newest.append(exchange)
            self._entries.move_to_end(exchange.conversation_id)  # written to: in use
            entry.chars += _chars(exchange)
            self._chars += _chars(exchange)
            entry.pages.clear()
        self._evict()

    def _evict(self) -> None:
        """Drop least recently used conversations until within bounds (the newest stays)."""
        while len(self._entries) > self._max_conversations or (
            self._chars > self._max_chars and len(self._entries) > 1
        ):
            _, dropped = self._entries.popitem(last=False)
            self._chars -= dropped.chars

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._chars = 0
