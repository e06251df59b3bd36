"""The newest exchanges of recently used conversations, kept in memory.

Sending a message reads the conversation's latest turns (the assistant's context) and the
page reads the latest page of history: both are the newest rows of one conversation, the
hottest reads there are. The service is the database's only writer (SQLite has one writer;
the deployment runs one replica), so it sees every commit and can keep these rows current
without asking SQLite: after a commit the new exchanges are appended here, and a read that
raced with a commit is simply not cached (a generation counter tells).

Bounded: ``depth`` exchanges for each of at most ``max_conversations`` conversations,
least recently used dropped first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from chat_service.store.base import Exchange, HistoryPage

DEFAULT_DEPTH = 100
DEFAULT_MAX_CONVERSATIONS = 1000


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


class RecentCache:
    def __init__(
        self, depth: int = DEFAULT_DEPTH, max_conversations: int = DEFAULT_MAX_CONVERSATIONS
    ) -> None:
        self.depth = depth
        self._max_conversations = max_conversations
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
        self._entries[conversation_id] = _Entry(deque(newest, maxlen=self.depth), has_older)
        self._entries.move_to_end(conversation_id)
        while len(self._entries) > self._max_conversations:
            self._entries.popitem(last=False)

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
            entry.newest.append(exchange)
            entry.pages.clear()

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
