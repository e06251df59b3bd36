"""Rendered history pages, reused while the store answers with the same page.

The page the history view polls is the newest of a conversation, and it changes only when
the conversation gets a new exchange. The store serves it from memory and returns the same
(immutable, ``shared``) ``HistoryPage`` object until then, so its JSON body and ``Link``
header are rendered once and reused; a different object means a commit happened, and the
page is rendered again. Pages read from the database are rendered and forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from yarl import URL

from chat_service.api.validation import HistoryQuery
from chat_service.store import DEFAULT_CONVERSATION, HistoryPage

# Bounds on what is kept: pages (conversation, page size) and bytes of their bodies. All
# are dropped when either is reached; the next requests render them again.
MAX_RENDERED_PAGES = 1024
MAX_RENDERED_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A page as the API sends it, with the page it was rendered from."""

    page: HistoryPage
    body: bytes
    link: str | None


class PageRenderer:
    def __init__(
        self, max_pages: int = MAX_RENDERED_PAGES, max_bytes: int = MAX_RENDERED_BYTES
    ) -> None:
        self._max_pages = max_pages
        self._max_bytes = max_bytes
        self._bytes = 0
        self._kept: dict[tuple[str, int | None], RenderedPage] = {}

    def render(self, query: HistoryQuery, page: HistoryPage) -> RenderedPage:
        """The body and ``Link`` of ``page``; rendered once while the store shares it."""
        if not page.shared:  # read from the database: this object will not come back
            return _render(query, page)
        key = (query.conversation_id, query.limit)
        rendered = self._kept.get(key)
        if rendered is not None and rendered.page is page:
            return rendered
        rendered = _render(query, page)
        if (replaced := self._kept.pop(key, None)) is not None:
            self._bytes -= len(replaced.body)
        if len(self._kept) >= self._max_pages or self._bytes + len(rendered.body) > self._max_bytes:
            self._kept.clear()
            self._bytes = 0
        self._kept[key] = rendered
        self._bytes += len(rendered.body)
        return rendered


def _render(query: HistoryQuery, page: HistoryPage) -> RenderedPage:
    body = orjson.dumps([{"user": e.user, "AI": e.ai} for e in page.exchanges])
    return RenderedPage(page, body, _next_page_link(query, page))


def _next_page_link(query: HistoryQuery, page: HistoryPage) -> str | None:
    """``Link: <...>; rel="next"`` to the next older page, when there is one."""
    if not page.has_older or not page.exchanges or query.limit is None:
        return None
    params: dict[str, str | int] = {"limit": query.limit, "before": page.exchanges[0].id}
    if query.conversation_id != DEFAULT_CONVERSATION:
        params["conversation_id"] = query.conversation_id
    return f'<{URL("/chat/history").with_query(params)}>; rel="next"'
