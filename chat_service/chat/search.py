"""Search results as the API gives them: where each found exchange is, and a snippet of it.

The store finds and ranks the exchanges (its ``search``); this module turns a query into the
words it searches for and each hit into a result that links to the exchange (its
conversation and turn) with a snippet of the text that holds the words. A snippet is a list
of parts, each marked as a match or not, never markup: the page renders them as text, so
nothing in a message can become HTML (or anything else a client interprets).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from chat_service.chat.domain import SearchHit
from chat_service.store.search_terms import query_words, spans

# The most words of a query that are searched for (the rest are left out).
MAX_QUERY_WORDS = 16
# About how many characters of text a snippet shows, and how many of them may come before
# its first match.
SNIPPET_CHARS = 160
LEAD_CHARS = 40
ELLIPSIS = "…"
# The names of a message and a reply, as the history calls them.
USER, AI = "user", "AI"
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Part:
    """A piece of a snippet: words of the query (``match``) or the text around them."""

    text: str
    match: bool


@dataclass(frozen=True, slots=True)
class SearchResult:
    conversation_id: str
    conversation_title: str | None
    turn: int
    created_at: str
    field: str  # USER or AI: the text the snippet is of
    snippet: tuple[Part, ...]


def words_of(query: str) -> list[str]:
    """The words a query searches for: each at most once, in the order typed."""
    return query_words(query, most=MAX_QUERY_WORDS)


def result(hit: SearchHit, words: Sequence[str]) -> SearchResult:
    """``hit`` as a result, its snippet taken from the message or the reply, whichever holds
    more of the words (the message when they hold as many)."""
    wanted = set(words)
    exchange = hit.exchange
    user, ai = _one_line(exchange.user), _one_line(exchange.ai)
    field, text = (AI, ai) if _found(ai, wanted) > _found(user, wanted) else (USER, user)
    return SearchResult(
        conversation_id=exchange.conversation.id,
        conversation_title=hit.title,
        turn=exchange.turn,
        created_at=exchange.created_at,
        field=field,
        snippet=snippet(text, wanted),
    )


def _found(text: str, wanted: set[str]) -> int:
    """How many of the wanted words ``text`` holds."""
    return len({word for _, _, word in spans(text) if word in wanted})


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def snippet(text: str, wanted: set[str], width: int = SNIPPET_CHARS) -> tuple[Part, ...]:
    """About ``width`` characters of ``text`` around its first wanted word, cut between
    words, each wanted word a part of its own; the start of the text when it holds none."""
    matches = [(start, end) for start, end, word in spans(text) if word in wanted]
    begin = 0
    if matches and matches[0][0] > LEAD_CHARS:
        # Start at a word boundary no more than LEAD_CHARS before the first match.
        space = text.find(" ", matches[0][0] - LEAD_CHARS, matches[0][0])
        begin = space + 1 if space >= 0 else matches[0][0]
    end = len(text)
    if end - begin > width:
        space = text.rfind(" ", begin, begin + width + 1)
        end = space if space > begin else begin + width
        if matches:
            # The first match is always shown, and a match the cut would split stays whole.
            end = max(end, matches[0][1])
            end = max([end, *(stop for start, stop in matches if start < end < stop)])
    parts: list[Part] = []
    at = begin
    for start, stop in matches:
        if start < begin or stop > end:
            continue
        if start > at:
            parts.append(Part(text[at:start], False))
        parts.append(Part(text[start:stop], True))
        at = stop
    if end > at:
        parts.append(Part(text[at:end], False))
    if begin > 0:
        parts.insert(0, Part(ELLIPSIS, False))
    if end < len(text):
        parts.append(Part(ELLIPSIS, False))
    return tuple(parts)


def result_body(found: SearchResult) -> dict[str, object]:
    """A result as the API's JSON gives it (openapi.yaml's SearchResult)."""
    return {
        "conversation_id": found.conversation_id,
        "conversation_title": found.conversation_title,
        "turn": found.turn,
        "created_at": found.created_at,
        "field": found.field,
        "snippet": [{"text": part.text, "match": part.match} for part in found.snippet],
    }
