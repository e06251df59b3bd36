"""Rendered history pages, reused while the store answers with the same page.

The page the history view polls is the newest of a conversation, and it changes only when
the conversation gets a new exchange. The store returns the same (immutable)
``HistoryPage`` object until then, so its JSON body and ``Link`` header are rendered once
and reused; a different object means a commit happened, and the page is rendered again.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from yarl import URL

from chat_service.api.validation import HistoryQuery
from chat_service.store import DEFAULT_CONVERSATION, HistoryPage

# Newest pages (conversation, page size) kept rendered; all are dropped when it is reached.
MAX_RENDERED_PAGES = 1024


@dataclass(frozen=True, slots=True)
class RenderedPage:
    page: HistoryPage
    body: bytes
    link: str | None


class PageRenderer:
    def __init__(self, max_pages: int = MAX_RENDERED_PAGES) -> None:
        self._max_pages = max_pages
        self._newest: dict[tuple[str, int | None], RenderedPage] = {}

    def render(self, query: HistoryQuery, page: HistoryPage) -> RenderedPage:
        if query.before is not None:  # an older page: read once, from the database
            return _render(query, page)
        key = (query.conversation_id, query.limit)
        rendered = self._newest.get(key)
        if rendered is None or rendered.page is not page:
            rendered = _render(query, page)
            if len(self._newest) >= self._max_pages:
                self._newest.clear()
            self._newest[key] = rendered
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
