"""The domain's types, shared by every layer: conversations, their owners, their exchanges.

A conversation belongs to a principal: :class:`ConversationRef` carries the owner and the
owner's id for it together, from the identity middleware down to the store, and only the
store turns it into a storage key (store/keys.py). Pure data, no I/O: the store and the
assistants import it without importing the application layer above them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

# The conversation a request that names none is about (the original contract's one history).
DEFAULT_CONVERSATION = "default"
TITLE_FROM_MESSAGE_CHARS = 60
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class StoreError(Exception):
    """The store could not carry out an operation (I/O error, locked, corrupt, ...)."""


class StoreOpenError(StoreError):
    """The database could not be opened or migrated at start-up."""


class ExchangeNotStored(StoreError):
    """A reply was made, but the exchange could not be stored (so nothing was)."""


class ConversationRef(NamedTuple):
    """A conversation as its owner names it: ``owner`` is the principal's namespace (empty
    for the anonymous principal), ``id`` the conversation id the owner chose or was given.

    A named tuple (immutable, compared by value) rather than a dataclass: it keys the caches
    and locks of every request, and a tuple's hash and equality are the interpreter's own."""

    owner: str
    id: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """One user message and the assistant's reply, as stored."""

    id: int
    conversation: ConversationRef
    turn: int
    user: str
    ai: str
    created_at: str
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Exchanges oldest first, and whether older ones exist before the first of them."""

    exchanges: Sequence[Exchange]
    has_older: bool


def page_of_newest(newest_first: Sequence[Exchange], limit: int) -> HistoryPage:
    """A history page from up to ``limit + 1`` rows read newest first: the extra row, when
    there is one, only tells that an older page exists."""
    page = list(newest_first[:limit])
    page.reverse()
    return HistoryPage(page, has_older=len(newest_first) > limit)


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation of one owner; ``title`` is None until it has one."""

    id: str
    title: str | None
    created_at: str
    updated_at: str
    exchanges: int


@dataclass(frozen=True, slots=True)
class ConversationCursor:
    """Where a page of an owner's conversations (most recently active first) ends."""

    updated_at: str
    id: str


def title_from_message(message: str) -> str | None:
    """A conversation's default title: the start of its first message, on one line, cut
    at a word boundary when there is one near the limit; None when no printable text is
    left (control characters go, as they may not be in a title)."""
    text = " ".join(_CONTROL.sub(" ", message).split())
    if not text:
        return None
    if len(text) <= TITLE_FROM_MESSAGE_CHARS:
        return text
    cut = text[: TITLE_FROM_MESSAGE_CHARS - 1]
    space = cut.rfind(" ")  # the text has no runs of spaces: what precedes it is a word
    if space >= TITLE_FROM_MESSAGE_CHARS // 2:
        cut = cut[:space]
    return cut + "…"
