"""Rendered history pages: reused for the same page object, rendered again for a new one."""

from __future__ import annotations

import json

from chat_service.api.pages import PageRenderer
from chat_service.api.validation import HistoryQuery
from chat_service.store import Exchange, HistoryPage


def page_of(
    *ids: int, has_older: bool = True, conversation: str = "default", shared: bool = True
) -> HistoryPage:
    return HistoryPage(
        tuple(
            Exchange(
                id=i,
                conversation_id=conversation,
                turn=i,
                user=f"u{i}",
                ai=f"a{i}",
                created_at="t",
            )
            for i in ids
        ),
        has_older=has_older,
        shared=shared,
    )


NEWEST = HistoryQuery("default", limit=2, before=None)


def test_body_and_link_follow_the_contract() -> None:
    rendered = PageRenderer().render(NEWEST, page_of(7, 8))
    assert json.loads(rendered.body) == [{"user": "u7", "AI": "a7"}, {"user": "u8", "AI": "a8"}]
    assert rendered.link == '</chat/history?limit=2&before=7>; rel="next"'
    other = HistoryQuery("room-1", limit=2, before=None)
    assert PageRenderer().render(other, page_of(7, 8)).link == (
        '</chat/history?limit=2&before=7&conversation_id=room-1>; rel="next"'
    )
    assert PageRenderer().render(NEWEST, page_of(1, 2, has_older=False)).link is None


def test_the_same_page_is_rendered_once() -> None:
    renderer = PageRenderer()
    page = page_of(1, 2)
    first = renderer.render(NEWEST, page)
    assert renderer.render(NEWEST, page) is first


def test_a_new_page_object_is_rendered_again() -> None:
    renderer = PageRenderer()
    renderer.render(NEWEST, page_of(1, 2))
    newer = renderer.render(NEWEST, page_of(2, 3))
    assert json.loads(newer.body)[-1] == {"user": "u3", "AI": "a3"}


def test_pages_read_from_the_database_are_not_kept() -> None:
    renderer = PageRenderer()
    page = page_of(7, 8, shared=False)  # the store will not hand this object out again
    first = renderer.render(NEWEST, page)
    assert renderer.render(NEWEST, page) is not first
    assert renderer.render(NEWEST, page).body == first.body


def test_the_number_of_kept_pages_is_bounded() -> None:
    renderer = PageRenderer(max_pages=2)
    pages = {c: page_of(1, 2, conversation=c) for c in ("a", "b", "c")}
    kept = {c: renderer.render(HistoryQuery(c, 2, None), p) for c, p in pages.items()}
    assert renderer.render(HistoryQuery("c", 2, None), pages["c"]) is kept["c"]
    assert renderer.render(HistoryQuery("a", 2, None), pages["a"]) is not kept["a"]


def test_the_bytes_of_kept_pages_are_bounded() -> None:
    one_page = len(PageRenderer().render(NEWEST, page_of(1, 2)).body)
    renderer = PageRenderer(max_bytes=2 * one_page)
    pages = {c: page_of(1, 2, conversation=c) for c in ("a", "b", "c")}
    kept = {c: renderer.render(HistoryQuery(c, 2, None), p) for c, p in pages.items()}
    assert renderer.render(HistoryQuery("c", 2, None), pages["c"]) is kept["c"]
    assert renderer.render(HistoryQuery("a", 2, None), pages["a"]) is not kept["a"]
