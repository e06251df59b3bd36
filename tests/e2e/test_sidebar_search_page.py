"""The sidebar's date groups and search, in Chromium (issue 25), on SQLite and PostgreSQL.

Chats sit under headings by their last activity in the reader's time zone: old activity is
written into the store itself (SQLite while the service is stopped, PostgreSQL while it runs;
the list is read from the database), and the page's clock is fixed at noon, so no midnight
passes during a test. A chat written to from elsewhere moves to Today through the live list.

Search goes through GET /chat/search as the signed-in key: it finds only that key's text,
marks the matches, opens the conversation, and finds nothing once it is deleted.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from playwright.sync_api import Locator, expect

from tests.conftest import StartService
from tests.e2e.browser import NARROW, WatchedPage
from tests.e2e.chat_page import USER, ChatPage, Sidebar
from tests.e2e.conftest import OpenPage
from tests.e2e.nginx import FRONTEND_DIR
from tests.support.service import ServiceProcess

USERS = ("searcher", "stranger")
SERVICE_ENV = {
    "CHAT_FRONTEND_DIR": str(FRONTEND_DIR),
    "CHAT_API_KEYS": ",".join(f"{name}:{name}-key-0123456789abcdef" for name in USERS),
    "CHAT_RATE_LIMIT_RPS": "0",
}
LIST_EVENTS = "/chat/conversation-events"
_numbers = itertools.count(1)

Backdate = Callable[[dict[str, datetime]], ServiceProcess]


def headers(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}-key-0123456789abcdef"}


def unique(text: str) -> str:
    return f"{text} {next(_numbers)}"


@pytest.fixture
def service(start_service: StartService, store_env: dict[str, str]) -> ServiceProcess:
    return start_service(env={**SERVICE_ENV, **store_env})


@pytest.fixture
def backdate(service: ServiceProcess, store_env: dict[str, str]) -> Backdate:
    """Sets conversations' last activity (by id) in the store; returns the service, running."""

    def set_times(times: dict[str, datetime]) -> ServiceProcess:
        url = store_env.get("CHAT_DATABASE_URL")
        if url is None:
            service.stop()
            with sqlite3.connect(service.db_path) as db:
                for conversation, when in times.items():
                    stamp = when.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                    db.execute(
                        "UPDATE conversations SET updated_at = ? WHERE public_id = ?",
                        (stamp, conversation),
                    )
            db.close()
            return service.start()
        # Playwright's sync API holds this thread's event loop: asyncpg runs in another thread.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _backdate_postgres(url, times)).result()
        return service

    return set_times


async def _backdate_postgres(url: str, times: dict[str, datetime]) -> None:
    connection = await asyncpg.connect(url)
    try:
        for conversation, when in times.items():
            await connection.execute(
                "UPDATE conversations SET updated_at = $1 WHERE public_id = $2", when, conversation
            )
    finally:
        await connection.close()


def new_chat(service: ServiceProcess, user: str, message: str) -> str:
    """A conversation of ``user``'s, titled by its first message; its id."""
    status, _, body = service.request("POST", "/chat/conversations", {}, headers=headers(user))
    assert status == 201
    conversation: str = body["id"]
    say(service, user, conversation, message)
    return conversation


def say(service: ServiceProcess, user: str, conversation: str, message: str) -> None:
    body = {"message": message, "conversation_id": conversation}
    status, _, _ = service.request("POST", "/chat/message", body, headers=headers(user))
    assert status == 200


def open_as(watched: WatchedPage, service: ServiceProcess, user: str, path: str = "/") -> ChatPage:
    watched.page.context.set_extra_http_headers(headers(user))
    chat = ChatPage(watched, service.base_url)
    with chat.page.expect_response(lambda r: r.url.endswith(LIST_EVENTS)):
        chat.open(path)
    return chat


def browser_noon(watched: WatchedPage) -> datetime:
    """Noon today in the browser's time zone: the page's clock is fixed there."""
    page = watched.page
    zone = ZoneInfo(page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone"))
    noon = datetime.combine(datetime.now(zone).date(), time(12), zone)
    page.clock.set_fixed_time(noon)
    return noon


def group(sidebar: Sidebar, label: str) -> Locator:
    """The chats' list under the heading ``label``."""
    return sidebar.nav.get_by_role("list", name=label, exact=True)


def group_labels(sidebar: Sidebar) -> list[str]:
    labels: list[str] = sidebar.nav.locator(".conversation-group__title").all_text_contents()
    return labels


def test_chats_are_grouped_by_date_and_move_to_today_when_written_to(
    open_page: OpenPage, service: ServiceProcess, backdate: Backdate
) -> None:
    user = USERS[0]
    page = open_page()
    noon = browser_noon(page)
    old = noon.date() - timedelta(days=75)
    days_ago = {"Yesterday": 1, "Previous 7 days": 4, "Previous 30 days": 20}
    titles = {label: unique(f"Chat of {label}") for label in [*days_ago, "month"]}
    titles["Today"] = unique("Chat of today")
    ids = {label: new_chat(service, user, title) for label, title in titles.items()}
    times = {ids[label]: noon - timedelta(days=days) for label, days in days_ago.items()}
    times[ids["month"]] = datetime.combine(old, time(12), noon.tzinfo)
    service = backdate(times)

    chat = open_as(page, service, user)
    sidebar = Sidebar(chat.page)
    month = f"{old:%B %Y}"
    expect(sidebar.items).to_have_count(5)
    assert group_labels(sidebar) == ["Today", *days_ago, month]
    for label in ["Today", *days_ago]:
        expect(sidebar.nav.get_by_role("heading", name=label, level=3)).to_be_visible()
        expect(group(sidebar, label).get_by_role("link")).to_have_text([titles[label]])
    expect(group(sidebar, month).get_by_role("link")).to_have_text([titles["month"]])

    # Written to from elsewhere: the live list moves it from Yesterday to the top of Today, and
    # the Yesterday group, empty now, goes.
    say(service, user, ids["Yesterday"], "back to this one")
    today = group(sidebar, "Today").get_by_role("link")
    expect(today).to_have_text([titles["Yesterday"], titles["Today"]])
    expect(sidebar.nav.get_by_role("heading", name="Yesterday")).to_have_count(0)
    assert group_labels(sidebar) == ["Today", "Previous 7 days", "Previous 30 days", month]


def test_more_chats_are_appended_into_their_groups(
    open_page: OpenPage, service: ServiceProcess, backdate: Backdate
) -> None:
    """The first page (50) is all of today; the next page's chats, older, go under theirs."""
    user = USERS[0]
    page = open_page()
    noon = browser_noon(page)
    older = [new_chat(service, user, unique("Older chat")) for _ in range(2)]
    for _ in range(50):
        status, _, _ = service.request("POST", "/chat/conversations", {}, headers=headers(user))
        assert status == 201
    service = backdate({older[0]: noon - timedelta(days=1), older[1]: noon - timedelta(days=3)})

    chat = open_as(page, service, user)
    sidebar = Sidebar(chat.page)
    expect(sidebar.items).to_have_count(50)
    assert group_labels(sidebar) == ["Today"]
    sidebar.nav.get_by_role("button", name="Show more chats").click()
    expect(sidebar.items).to_have_count(52)
    assert group_labels(sidebar) == ["Today", "Yesterday", "Previous 7 days"]
    expect(group(sidebar, "Today").get_by_role("listitem")).to_have_count(50)
    expect(group(sidebar, "Yesterday").locator(".conversation")).to_have_count(1)
    expect(group(sidebar, "Previous 7 days").locator(".conversation")).to_have_count(1)


def search_field(chat: ChatPage) -> Locator:
    return chat.page.get_by_role("searchbox", name="Search chats")


def results(chat: ChatPage) -> Locator:
    return chat.page.get_by_role("list", name="Search results")


def test_search_finds_only_the_callers_text_marks_it_and_opens_the_chat(
    open_page: OpenPage, service: ServiceProcess
) -> None:
    me, stranger = USERS
    word = f"quokka{next(_numbers)}"
    mine = new_chat(service, me, f"Where does the {word} live?")
    new_chat(service, me, "Something else entirely")
    new_chat(service, stranger, f"A {word} of the stranger's")

    chat = open_as(open_page(), service, me)
    sidebar = Sidebar(chat.page)
    field = search_field(chat)
    field.fill(word.upper())  # typing: asked for after a pause, matched whatever the case
    found = results(chat).get_by_role("link")
    expect(found).to_have_count(1)
    expect(found.first).to_contain_text(f"Where does the {word} live?")
    expect(found.locator("mark")).to_have_text([word])
    expect(chat.page.locator("#announcer")).to_have_text("1 match")
    expect(sidebar.items.first).to_be_hidden()  # the results take the list's place

    found.first.click()
    expect(chat.page).to_have_url(f"{service.base_url}/?c={mine}")
    expect(chat.page.locator(USER)).to_have_count(1)
    assert chat.user_texts() == [f"Where does the {word} live?"]
    expect(sidebar.current).to_contain_text(word)

    # Escape empties the field and brings the list back, focus staying in the field.
    field.focus()
    field.press("Escape")
    expect(field).to_have_value("")
    expect(results(chat)).to_be_hidden()
    expect(sidebar.items).to_have_count(2)
    expect(field).to_be_focused()

    # A word nobody wrote, by Enter.
    field.fill("zzyzx-nothing")
    field.press("Enter")
    expect(chat.page.locator("#search-results[data-state=empty]")).to_have_count(1)
    expect(chat.page.locator("#search-status")).to_have_text("No chats match")

    # Deleted, it is found no more.
    status, _, _ = service.request("DELETE", f"/chat/conversations/{mine}", headers=headers(me))
    assert status == 204
    field.fill(word)
    field.press("Enter")
    expect(chat.page.locator("#search-results[data-state=empty]")).to_have_count(1)
    expect(results(chat).get_by_role("link")).to_have_count(0)

    # Clearing the field brings the list back too.
    field.fill("")
    expect(results(chat)).to_be_hidden()
    expect(sidebar.items.first).to_be_visible()


def test_a_refused_search_shows_the_services_message(
    open_page: OpenPage, service: ServiceProcess
) -> None:
    """The service's reason, in place, with Retry. The page never sends a blank query, so the
    request is made blank on its way (the service answers 400 with its reason)."""
    chat = open_as(open_page(), service, USERS[0])
    chat.watched.expect_failed_requests("/chat/search")
    chat.page.route(
        "**/chat/search?*",
        lambda route: route.continue_(url=route.request.url.replace("q=", "q=%20%20&x=")),
    )
    field = search_field(chat)
    field.fill("anything")
    field.press("Enter")
    notice = chat.page.locator("#search-status").get_by_role("alert")
    expect(notice).to_contain_text("Couldn't search. Query parameter 'q' must not be blank.")
    expect(chat.page.locator("#search-results[data-state=failed]")).to_have_count(1)
    expect(notice.get_by_role("button", name="Retry")).to_be_visible()


def test_a_result_scrolls_to_its_exchange_and_highlights_it(
    open_page: OpenPage, service: ServiceProcess
) -> None:
    """A match early in a long chat (its latest page holds it) is scrolled into view, marked."""
    me = USERS[0]
    word = f"platypus{next(_numbers)}"
    long_chat = new_chat(service, me, f"The {word} comes first")
    for turn in range(2, 31):
        say(service, me, long_chat, f"Message number {turn}, about nothing in particular")
    chat = open_as(open_page(), service, me)
    field = search_field(chat)
    field.fill(word)
    field.press("Enter")
    results(chat).get_by_role("link").first.click()
    expect(chat.page).to_have_url(f"{service.base_url}/?c={long_chat}")
    found = chat.page.locator(".message--found")
    expect(found).to_have_count(1)
    expect(found).to_contain_text(f"The {word} comes first")
    expect(found).to_be_in_viewport()
    # The latest message, 29 exchanges below, is out of view: the page did not stay at the end.
    expect(chat.page.locator(USER).last).not_to_be_in_viewport()


def test_searching_in_the_drawer_at_360_px(open_page: OpenPage, service: ServiceProcess) -> None:
    """In the drawer: a result chosen closes it and opens the chat; opened again, the drawer
    puts focus in the search (the list is hidden behind it); Escape empties the field, then
    closes the drawer."""
    me = USERS[0]
    word = f"echidna{next(_numbers)}"
    wanted = new_chat(service, me, f"An {word} in the drawer")
    new_chat(service, me, "Another chat")
    chat = open_as(open_page(viewport=NARROW), service, me)
    sidebar = Sidebar(chat.page)
    sidebar.toggle.click()
    field = search_field(chat)
    field.fill(word)
    field.press("Enter")
    results(chat).get_by_role("link", name=f"An {word} in the drawer").first.click()
    expect(sidebar.toggle).to_have_attribute("aria-expanded", "false")
    expect(chat.page).to_have_url(f"{service.base_url}/?c={wanted}")

    sidebar.toggle.click()
    expect(field).to_be_focused()
    expect(field).to_have_value(word)
    field.press("Escape")
    expect(field).to_have_value("")
    expect(sidebar.items).to_have_count(2)
    expect(sidebar.toggle).to_have_attribute("aria-expanded", "true")
    field.press("Escape")
    expect(sidebar.toggle).to_have_attribute("aria-expanded", "false")
