"""Conversations as they were last read and rendered, kept while they stay the same.

The hottest reads are of the newest exchanges of a conversation in use: the reply context
of every message and the page the history view polls. This module is the one cache of
them, with one rule: an entry holds a conversation as of one *version* (the id of its
newest exchange, from :meth:`ExchangeLog.version`), and is used only while the store still
reports that version. Ids are never reused, so a commit by any process, or a deletion,
moves the version and the entry is read again. What the entry holds is derived from one
read: the newest exchanges (up to ``depth``), from which the context and every newest page
of up to ``depth`` exchanges are cut; the pages rendered from them (the contract's JSON,
contract.py, and the turn the next older page starts before), by size; the whole history as
one JSON document, built once however many ask at the same time. Versions are the store's
global ids, which never leave the service; what clients get to page with are turns.

Commits by this process are passed in (:meth:`committed`) and extend an entry in place
when they continue it (the next turn), so a conversation in use is not read back after
each message. Older pages (``before_turn``) are read, rendered and forgotten.

Bounded: at most ``max_conversations`` entries and ``max_bytes`` of text, rendered bodies
and documents in all, least recently used conversation dropped first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from chat_service.chat.contract import HISTORY_KEYS, history_json
from chat_service.chat.domain import ConversationRef, Exchange, HistoryPage
from chat_service.store import ChangeFeed, ExchangeLog

DEFAULT_DEPTH = 100
# Generous: the byte bound is what holds memory down. A count below the number of
# conversations in use at once would have every message miss (least recently used first).
DEFAULT_MAX_CONVERSATIONS = 10_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
# Page sizes rendered per conversation between its commits.
PAGES_PER_CONVERSATION = 8


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A history page as the contract's JSON, and where the next older page ends, if there
    is one: the turn of this page's oldest exchange, the ``before_turn`` that asks for it."""

    body: bytes
    next_before_turn: int | None = None


@dataclass(slots=True)
class _Entry:
    version: int
    newest: deque[Exchange]
    # Whether the conversation has exchanges older than the ones held here.
    has_older: bool
    pages: dict[int, RenderedPage] = field(default_factory=dict)
    document: bytes | None = None
    size: int = 0  # characters of text plus bytes rendered, for the cache's bound


def _chars(exchange: Exchange) -> int:
    return len(exchange.user) + len(exchange.ai)


class HistoryCache:
    def __init__(
        self,
        store: ExchangeLog,
        feed: ChangeFeed,
        *,
        depth: int = DEFAULT_DEPTH,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._store = store
        self.depth = depth
        self._max_conversations = max_conversations
        self._max_bytes = max_bytes
        self._size = 0
        self._entries: OrderedDict[ConversationRef, _Entry] = OrderedDict()
        # Reads in flight, by conversation and version: entries, and whole-history documents.
        self._filling: dict[tuple[ConversationRef, int], asyncio.Future[_Entry]] = {}
        self._building: dict[tuple[ConversationRef, int], asyncio.Future[bytes]] = {}
        store.add_commit_listener(self.committed)
        feed.add_removal_listener(self._drop)

    # -- what callers ask for -----------------------------------------------------------

    async def newest(self, conversation: ConversationRef, count: int) -> Sequence[Exchange]:
        """The conversation's newest ``count`` exchanges, oldest first. Raises StoreError."""
        if count <= 0:
            return ()
        if count > self.depth:
            return (await self._store.history(conversation, limit=count)).exchanges
        entry = await self._current(conversation)
        newest = tuple(entry.newest)
        return newest[-count:] if count < len(newest) else newest

    async def page(
        self, conversation: ConversationRef, *, limit: int | None, before_turn: int | None
    ) -> RenderedPage:
        """Up to ``limit`` of the conversation's newest exchanges (all when None) before
        turn ``before_turn`` (when given), rendered. Raises StoreError."""
        store = self._store
        if before_turn is not None or (limit is not None and limit > self.depth):
            if limit is None:
                keys = HISTORY_KEYS
                return RenderedPage(
                    await store.history_json(conversation, keys=keys, before_turn=before_turn)
                )
            return render(await store.history(conversation, limit=limit, before_turn=before_turn))
        entry = await self._current(conversation)
        if limit is None:
            return RenderedPage(await self._document(conversation, entry))
        rendered = entry.pages.get(limit)
        if rendered is None:
            newest = tuple(entry.newest)
            held = len(newest)
            page = HistoryPage(
                newest[-limit:] if limit < held else newest,
                has_older=held > limit or entry.has_older,
            )
            rendered = render(page)
            if len(entry.pages) >= PAGES_PER_CONVERSATION:
                self._resize(entry, -sum(len(kept.body) for kept in entry.pages.values()))
                entry.pages.clear()
            entry.pages[limit] = rendered
            self._resize(entry, len(rendered.body))
            self._evict()
        return rendered

    def committed(self, exchanges: Sequence[Exchange]) -> None:
        """Exchanges this process just committed: extend the entries they continue."""
        for exchange in exchanges:
            entry = self._entries.get(exchange.conversation)
            if entry is None:
                continue
            last = entry.newest[-1] if entry.newest else None
            if last is not None and exchange.id <= last.id:
                continue  # a read that ran after the commit already has it
            if exchange.turn != (last.turn + 1 if last is not None else 1):
                self._drop(exchange.conversation)  # something else was committed between
                continue
            self._resize(entry, -sum(len(page.body) for page in entry.pages.values()))
            entry.pages.clear()
            if entry.document is not None:
                self._resize(entry, -len(entry.document))
                entry.document = None
            if len(entry.newest) == self.depth:
                entry.has_older = True
                self._resize(entry, -_chars(entry.newest[0]))  # the deque drops it on append
            entry.newest.append(exchange)
            self._resize(entry, _chars(exchange))
            entry.version = exchange.id
            self._entries.move_to_end(exchange.conversation)  # written to: in use
        self._evict()

    # -- entries ------------------------------------------------------------------------

    async def _current(self, conversation: ConversationRef) -> _Entry:
        """The entry of the conversation's current version, read again if it moved on;
        concurrent callers share one read."""
        version = await self._store.version(conversation)
        entry = self._entries.get(conversation)
        if entry is not None and entry.version == version:
            self._entries.move_to_end(conversation)
            return entry
        if version == 0:  # nothing stored yet: nothing to read, nothing to share
            return self._hold(conversation, _Entry(0, deque(maxlen=self.depth), has_older=False))
        key = (conversation, version)
        filling = self._filling.get(key)
        if filling is None:
            filling = asyncio.ensure_future(self._fill(conversation))
            self._filling[key] = filling
            filling.add_done_callback(lambda done: self._filled(key, done))
        return await asyncio.shield(filling)

    async def _fill(self, conversation: ConversationRef) -> _Entry:
        page = await self._store.history(conversation, limit=self.depth)
        newest = page.exchanges
        # Labelled with what it holds: a commit that landed after the version was read is
        # in the rows too, and its id is the conversation's version now.
        entry = _Entry(
            newest[-1].id if newest else 0,
            deque(newest, maxlen=self.depth),
            has_older=page.has_older,
        )
        return self._hold(conversation, entry)

    def _hold(self, conversation: ConversationRef, entry: _Entry) -> _Entry:
        """Keep ``entry`` as the conversation's, in place of what was held."""
        self._drop(conversation)
        self._entries[conversation] = entry
        self._resize(entry, sum(_chars(exchange) for exchange in entry.newest))
        self._evict()
        return entry

    def _filled(self, key: tuple[ConversationRef, int], done: asyncio.Future[_Entry]) -> None:
        del self._filling[key]
        if not done.cancelled():
            done.exception()  # retrieved: every caller that still waits has it raised

    async def _document(self, conversation: ConversationRef, entry: _Entry) -> bytes:
        """The whole history of ``entry``'s version; concurrent callers share one build."""
        if entry.document is not None:
            return entry.document
        key = (conversation, entry.version)
        building = self._building.get(key)
        if building is None:
            building = asyncio.ensure_future(
                self._store.history_json(conversation, keys=HISTORY_KEYS)
            )
            self._building[key] = building
            building.add_done_callback(lambda done: self._built(key, entry, done))
        return await asyncio.shield(building)

    def _built(
        self, key: tuple[ConversationRef, int], entry: _Entry, done: asyncio.Future[bytes]
    ) -> None:
        del self._building[key]
        if done.cancelled() or done.exception() is not None:
            return
        # Kept only while the entry is still the conversation's, at the same version, and
        # when the document leaves room for others.
        document = done.result()
        current = self._entries.get(key[0])
        if current is entry and entry.version == key[1] and len(document) <= self._max_bytes // 4:
            entry.document = document
            self._resize(entry, len(document))
            self._evict()

    def _resize(self, entry: _Entry, delta: int) -> None:
        entry.size += delta
        self._size += delta

    def _drop(self, conversation: ConversationRef) -> None:
        dropped = self._entries.pop(conversation, None)
        if dropped is not None:
            self._size -= dropped.size

    def _evict(self) -> None:
        """Drop least recently used conversations until within bounds (the newest stays)."""
        while len(self._entries) > self._max_conversations or (
            self._size > self._max_bytes and len(self._entries) > 1
        ):
            _, dropped = self._entries.popitem(last=False)
            self._size -= dropped.size


def render(page: HistoryPage) -> RenderedPage:
    """A page's body, and where the next older page ends when there is one."""
    older = page.exchanges[0].turn if page.has_older and page.exchanges else None
    return RenderedPage(history_json(page.exchanges), older)
