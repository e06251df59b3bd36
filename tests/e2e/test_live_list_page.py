"""The list of chats, live, in Chromium: a chat created, written to, renamed or deleted in one
page shows in another page's sidebar (another tab or device of the same user, which follows
GET /chat/conversation-events) within a second, without a reload; another user's page hears
nothing of it.

On SQLite both pages are served by one service; on PostgreSQL each page has a replica of its
own, whose only link is the database.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from tests.conftest import StartService
from tests.e2e.chat_page import AI, ChatPage, Sidebar
from tests.e2e.conftest import OpenPage
from tests.e2e.nginx import FRONTEND_DIR
from tests.support.service import ServiceProcess

USERS = [f"lister{n:02d}" for n in range(1, 5)]
SERVICE_ENV = {
    "CHAT_FRONTEND_DIR": str(FRONTEND_DIR),
    "CHAT_API_KEYS": ",".join(f"{name}:{name}-key-0123456789abcdef" for name in USERS),
    "CHAT_ASSISTANT_TOKEN_MS": "5",
    "CHAT_RATE_LIMIT_RPS": "0",
}
# The promise: what another tab does shows up within a second.
WITHIN_A_SECOND = 1_000
LIST_EVENTS = "/chat/conversation-events"
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Replicas:
    """The service each page is served by: the same one on SQLite, two on PostgreSQL."""

    first: ServiceProcess
    second: ServiceProcess


@pytest.fixture
def replicas(start_service: StartService, store_env: dict[str, str]) -> Replicas:
    """Two replicas on PostgreSQL; SQLite's one process twice (it has one writer)."""
    if not store_env:
        service = start_service(env=SERVICE_ENV)
        return Replicas(service, service)
    env = {**SERVICE_ENV, **store_env}
    return Replicas(start_service(env=env), start_service(env=env))


def headers(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}-key-0123456789abcdef"}


def open_as(open_page: OpenPage, service: ServiceProcess, user: str, path: str = "/") -> ChatPage:
    watched = open_page()
    watched.context.set_extra_http_headers(headers(user))
    chat = ChatPage(watched, service.base_url)
    with chat.page.expect_response(lambda r: r.url.endswith(LIST_EVENTS)) as stream:
        chat.open(path)
    assert stream.value.status == 200  # its sidebar follows the list
    return chat


def unique(text: str) -> str:
    return f"{text} #{next(_numbers)}"


def send(chat: ChatPage, text: str) -> None:
    replies = chat.page.locator(AI).count()
    chat.input.fill(text)
    chat.send_button.click()
    expect(chat.page.locator(AI)).to_have_count(replies + 1)
    expect(chat.send_button).to_be_visible()  # the reply is whole, and stored


def test_what_one_tab_does_to_the_list_shows_in_the_other(
    open_page: OpenPage, replicas: Replicas
) -> None:
    user = USERS[0]
    older = replicas.first.request(
        "POST", "/chat/conversations", {"title": "Older chat"}, headers=headers(user)
    )[2]["id"]
    first = open_as(open_page, replicas.first, user, f"/?c={older}")
    second = open_as(open_page, replicas.second, user)
    mine, theirs = Sidebar(first.page), Sidebar(second.page)
    expect(theirs.items).to_have_count(1)

    # Created: a new chat in the first tab is listed in the second.
    mine.new_chat.click()
    expect(mine.items).to_have_count(2)
    expect(theirs.items).to_have_count(2, timeout=WITHIN_A_SECOND)
    assert theirs.titles() == ["New chat", "Older chat"]

    # Written to: its first message titles it.
    title = unique("Plan the trip")
    send(first, title)
    expect(theirs.link(title)).to_be_visible(timeout=WITHIN_A_SECOND)
    assert theirs.titles() == [title, "Older chat"]

    # Renamed in place.
    renamed = unique("Trip to the coast")
    mine.item(title).get_by_role("button", name="Rename").click()
    box = mine.nav.get_by_role("textbox")
    box.fill(renamed)
    box.press("Enter")
    expect(theirs.link(renamed)).to_be_visible(timeout=WITHIN_A_SECOND)
    assert theirs.titles() == [renamed, "Older chat"]

    # Written to again, an older chat moves to the top.
    mine.link("Older chat").click()
    expect(mine.current).to_have_text("Older chat")
    send(first, unique("Back to this one"))
    first_title = theirs.nav.locator(".conversation__title").first
    expect(first_title).to_have_text("Older chat", timeout=WITHIN_A_SECOND)
    assert theirs.titles() == ["Older chat", renamed]

    # Deleted: gone from the other tab's list.
    mine.item(renamed).get_by_role("button", name="Delete").click()
    first.page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(mine.items).to_have_count(1)
    expect(theirs.items).to_have_count(1, timeout=WITHIN_A_SECOND)
    assert theirs.titles() == ["Older chat"]
    # Nothing was reloaded: the second tab still shows what it opened with.
    expect(second.page.get_by_role("heading", name="Start a conversation")).to_be_visible()


def test_the_chat_shown_stays_when_deleted_elsewhere_and_others_hear_nothing(
    open_page: OpenPage, replicas: Replicas
) -> None:
    """The chat open in one tab, deleted in another, stays listed where it is open (as when
    the list is read again); another user's open page meanwhile lists nothing new."""
    user, other = USERS[1], USERS[2]
    api = replicas.first
    kept = api.request("POST", "/chat/conversations", {"title": "Kept"}, headers=headers(user))
    shown = api.request("POST", "/chat/conversations", {"title": "Open"}, headers=headers(user))
    reader = open_as(open_page, replicas.second, user, f"/?c={shown[2]['id']}")
    outsider = open_as(open_page, replicas.second, other)
    listed = Sidebar(reader.page)
    expect(listed.items).to_have_count(2)
    expect(Sidebar(outsider.page).nav).to_be_visible()

    for conversation in (kept, shown):
        status = api.request(
            "DELETE", f"/chat/conversations/{conversation[2]['id']}", headers=headers(user)
        )[0]
        assert status == 204
    # Something the reader sees after both deletions: a chat created after them.
    created = api.request("POST", "/chat/conversations", {"title": "Newest"}, headers=headers(user))
    assert created[0] == 201
    expect(listed.link("Newest")).to_be_visible(timeout=WITHIN_A_SECOND)
    assert listed.titles() == ["Newest", "Open"]
    expect(listed.current).to_have_text("Open")
    # The other user was told of none of it: it lists nothing, and asking again agrees.
    assert Sidebar(outsider.page).titles() == []
    assert api.request("GET", "/chat/conversations", headers=headers(other))[2] == []
