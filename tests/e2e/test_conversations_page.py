"""The conversations sidebar in Chromium: New chat, switching, rename, delete, the URL, the
drawer on a phone, dark mode, and users who see only their own chats.

The module's service has API keys: each test signs in as a user of its own (the browser
context sends ``Authorization: Bearer <key>`` with every request, as an auth proxy in front
of the page would), so the tests' lists never mix. The dummy assistant writes its replies a
word every few milliseconds, so a long reply is still streaming when the reader moves on.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Locator, expect

from tests.e2e.browser import NARROW, WIDE, ColorScheme
from tests.e2e.chat_page import AI, USER, ChatPage, Sidebar
from tests.e2e.conftest import OpenPage, StartModuleService
from tests.e2e.nginx import FRONTEND_DIR, NginxServer
from tests.e2e.test_look import AA_NON_TEXT, AA_TEXT, MEASURE_CONTRAST
from tests.support.service import ServiceProcess

USERS = [f"user{n:02d}" for n in range(1, 41)]
SERVICE_ENV = {
    "CHAT_FRONTEND_DIR": str(FRONTEND_DIR),
    "CHAT_API_KEYS": ",".join(f"{name}:{name}-key-0123456789abcdef" for name in USERS),
    "CHAT_ASSISTANT_TOKEN_MS": "5",
    "CHAT_RATE_LIMIT_RPS": "0",
}
_users = iter(USERS)
_numbers = itertools.count(1)

# Texts measured for contrast in the sidebar and the delete confirmation (see test_look.py).
SIDEBAR_TEXT_TARGETS = [
    [".new-chat", None],
    [".sidebar__title", None],
    [".conversation__link", None],
    [".conversation__link[aria-current=page]", None],
    [".sidebar__empty", None],
    [".confirm__title", None],
    [".confirm__text", None],
    [".confirm .button", None],
]


@dataclass(frozen=True)
class User:
    name: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.name}-key-0123456789abcdef"}


@dataclass
class Api:
    """The service as a plain HTTP client of one user (what another device would do)."""

    service: ServiceProcess
    user: User

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, answer = self.service.request(method, path, body, headers=self.user.headers)
        return status, answer

    def create(self, title: str | None = None) -> str:
        status, body = self.call("POST", "/chat/conversations", {"title": title} if title else None)
        assert status == 201, body
        conversation_id: str = body["id"]
        return conversation_id

    def post(self, conversation_id: str, text: str) -> str:
        status, body = self.call(
            "POST", "/chat/message", {"message": text, "conversation_id": conversation_id}
        )
        assert status == 200, body
        reply: str = body["response"]
        return reply

    def history(self, conversation_id: str) -> list[tuple[str, str]]:
        status, body = self.call("GET", f"/chat/history?conversation_id={conversation_id}")
        assert status == 200, body
        return [(e["user"], e["AI"]) for e in body]

    def titles(self) -> list[str | None]:
        status, body = self.call("GET", "/chat/conversations")
        assert status == 200, body
        return [c["title"] for c in body]


def last_user_text(chat: ChatPage) -> Locator:
    return chat.page.locator(USER).last.locator(".message__text")


def user_texts(chat: ChatPage) -> Locator:
    return chat.page.locator(f"{USER} .message__text")


def send(chat: ChatPage, text: str) -> str:
    """Send ``text`` from the page; the whole reply, once it is stored (it streams)."""
    replies = chat.page.locator(AI).count()
    chat.input.fill(text)
    chat.send_button.click()
    expect(chat.page.locator(AI)).to_have_count(replies + 1)
    expect(chat.send_button).to_be_visible()
    return chat.ai_texts()[-1]


def unique(text: str) -> str:
    return f"{text} #{next(_numbers)}"


@pytest.fixture(scope="module")
def service(start_module_service: StartModuleService) -> ServiceProcess:
    return start_module_service(env=SERVICE_ENV)


@pytest.fixture
def user() -> User:
    return User(next(_users))


@pytest.fixture
def api(service: ServiceProcess, user: User) -> Api:
    return Api(service, user)


def open_as(
    open_page: OpenPage,
    base_url: str,
    user: User,
    path: str = "/",
    *,
    viewport: dict[str, int] | None = None,
    color_scheme: ColorScheme = "light",
) -> ChatPage:
    watched = open_page(viewport=viewport, color_scheme=color_scheme)
    watched.context.set_extra_http_headers(user.headers)
    return ChatPage(watched, base_url).open(path)


def conversation_in_url(chat: ChatPage) -> str | None:
    values = parse_qs(urlsplit(chat.page.url).query).get("c")
    return values[0] if values else None


def shown(chat: ChatPage) -> list[tuple[str, str]]:
    return list(zip(chat.user_texts(), chat.ai_texts(), strict=True))


def expect_shows(chat: ChatPage, exchanges: list[tuple[str, str]]) -> None:
    expect(chat.page.locator(USER)).to_have_count(len(exchanges))
    expect(chat.page.locator(AI)).to_have_count(len(exchanges))
    assert shown(chat) == exchanges


def test_a_new_chat_takes_its_title_from_the_first_message(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api
) -> None:
    chat = open_as(open_page, service.base_url, user)
    sidebar = Sidebar(chat.page)
    expect(sidebar.nav.get_by_text("No chats yet")).to_be_visible()

    sidebar.new_chat.click()
    expect(chat.page).to_have_url(re.compile(r"\?c=[0-9a-f]{32}$"))
    conversation_id = conversation_in_url(chat)
    expect(sidebar.current).to_have_text("New chat")
    expect(chat.page.get_by_role("heading", name="Start a conversation")).to_be_visible()
    expect(chat.input).to_be_focused()
    # Pressed again while the new chat is still empty: the same chat, not another one.
    sidebar.new_chat.click()
    expect(sidebar.items).to_have_count(1)
    assert conversation_in_url(chat) == conversation_id

    text = "Plan a weekend in Lisbon"
    with chat.page.expect_request("**/chat/message") as sent:
        reply = send(chat, text)
    assert sent.value.post_data_json == {"message": text, "conversation_id": conversation_id}
    expect(sidebar.current).to_have_text(text)
    assert api.titles() == [text]
    assert api.history(str(conversation_id)) == [(text, reply)]


def test_switching_conversations_shows_and_follows_each_one(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api
) -> None:
    first, second = api.create(), api.create()
    first_exchanges = [(text, api.post(first, text)) for text in ("Apples", "Pears")]
    second_exchanges = [("Cherries", api.post(second, "Cherries"))]
    chat = open_as(open_page, service.base_url, user)
    sidebar = Sidebar(chat.page)
    # Most recently active first.
    expect(sidebar.items).to_have_count(2)
    assert sidebar.titles() == ["Cherries", "Apples"]

    sidebar.link("Apples").click()
    expect(chat.page).to_have_url(re.compile(rf"\?c={first}$"))
    expect(sidebar.current).to_have_text("Apples")
    expect_shows(chat, first_exchanges)

    sidebar.link("Cherries").click()
    expect(sidebar.current).to_have_text("Cherries")
    expect_shows(chat, second_exchanges)
    # The page follows the conversation it shows, and only that one.
    text = unique("from another device")
    other_device = api.post(second, text)
    expect(last_user_text(chat)).to_have_text(text)
    api.post(first, unique("to the other chat"))
    barrier = unique("barrier")
    api.post(second, barrier)
    expect(last_user_text(chat)).to_have_text(barrier)
    assert shown(chat)[:2] == [*second_exchanges, (text, other_device)]
    assert len(shown(chat)) == 3

    # A message from the page goes to the conversation it shows.
    reply = send(chat, "Plums")
    assert api.history(second)[-1] == ("Plums", reply)
    assert [e[0] for e in api.history(first)][:2] == ["Apples", "Pears"]


def test_a_reply_still_streaming_is_kept_when_the_reader_moves_on(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api
) -> None:
    quiet = api.create("Quiet chat")
    api.post(quiet, "Hello there")
    chat = open_as(open_page, service.base_url, user)
    sidebar = Sidebar(chat.page)
    sidebar.new_chat.click()
    expect(sidebar.current).to_have_text("New chat")
    # The dummy quotes the message word by word: this reply takes a few seconds.
    text = "Long story: " + " ".join(f"w{n}" for n in range(400))
    chat.input.fill(text)
    chat.send_button.click()
    expect(chat.page.locator(AI).last).to_contain_text("w3")
    expect(chat.stop_button).to_be_visible()

    sidebar.link("Quiet chat").click()
    expect(user_texts(chat)).to_have_text(["Hello there"])
    expect(chat.send_button).to_be_visible()  # this conversation is not waiting for anything
    title = sidebar.items.first.locator(".conversation__title")
    expect(title).to_have_text(re.compile(r"^Long story: w0 w1"), timeout=20_000)

    title.click()
    expect(chat.page.locator(AI)).to_have_count(1)
    expect(chat.page.locator(AI).last).to_contain_text("w399")


def test_rename_in_place(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api
) -> None:
    conversation_id = api.create()
    api.post(conversation_id, "Draft a letter")
    chat = open_as(open_page, service.base_url, user, f"/?c={conversation_id}")
    sidebar = Sidebar(chat.page)
    item = sidebar.item("Draft a letter")

    item.get_by_role("button", name="Rename “Draft a letter”").click()
    box = sidebar.nav.get_by_role("textbox", name="New title for “Draft a letter”")
    expect(box).to_be_focused()
    expect(box).to_have_value("Draft a letter")
    box.fill("Not this one")
    box.press("Escape")  # cancels, and leaves everything else as it was
    expect(box).to_have_count(0)
    expect(sidebar.current).to_have_text("Draft a letter")
    assert api.titles() == ["Draft a letter"]

    sidebar.item("Draft a letter").get_by_role("button", name="Rename").click()
    box.fill("  Letter to the council  ")
    box.press("Enter")
    expect(sidebar.current).to_have_text("Letter to the council")
    renamed = sidebar.item("Letter to the council")
    expect(renamed.get_by_role("button", name="Rename")).to_be_focused()
    assert api.titles() == ["Letter to the council"]
    chat.page.reload()
    expect(Sidebar(chat.page).current).to_have_text("Letter to the council")


def test_delete_asks_in_the_page_first(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api
) -> None:
    keep, doomed = api.create("Keep me"), api.create("Delete me")
    api.post(keep, "Kept message")
    api.post(doomed, "Doomed message")
    chat = open_as(open_page, service.base_url, user, f"/?c={doomed}")
    sidebar = Sidebar(chat.page)
    dialog = chat.page.get_by_role("dialog", name="Delete this chat?")
    delete = sidebar.item("Delete me").get_by_role("button", name="Delete “Delete me”")

    delete.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("“Delete me” and all its messages will be deleted for good.")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(delete).to_be_focused()
    delete.press("Enter")
    expect(dialog).to_be_visible()
    chat.page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(sidebar.items).to_have_count(2)
    assert len(api.titles()) == 2

    # Confirmed: gone from the list and from the service; the page moves to the next chat.
    delete.click()
    dialog.get_by_role("button", name="Delete").click()
    expect(sidebar.items).to_have_count(1)
    expect(sidebar.current).to_have_text("Keep me")
    expect(chat.page).to_have_url(re.compile(rf"\?c={keep}$"))
    expect_shows(chat, api.history(keep))
    assert api.call("GET", f"/chat/conversations/{doomed}")[0] == 404
    assert api.history(doomed) == []

    # The last one: the page starts a new chat.
    sidebar.item("Keep me").get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(sidebar.current).to_have_text("New chat")
    expect(chat.page.get_by_role("heading", name="Start a conversation")).to_be_visible()
    new_id = conversation_in_url(chat)
    assert new_id not in (None, keep, doomed)
    assert api.titles() == [None]


def test_reload_back_and_forward_keep_the_conversation(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api
) -> None:
    first, second = api.create("First"), api.create("Second")
    first_exchanges = [("One", api.post(first, "One"))]
    second_exchanges = [("Two", api.post(second, "Two"))]
    chat = open_as(open_page, service.base_url, user, f"/?c={first}")
    sidebar = Sidebar(chat.page)
    expect_shows(chat, first_exchanges)

    sidebar.link("Second").click()
    expect_shows(chat, second_exchanges)
    chat.page.reload()
    expect(sidebar.current).to_have_text("Second")
    expect_shows(chat, second_exchanges)

    chat.page.go_back()
    expect(sidebar.current).to_have_text("First")
    expect_shows(chat, first_exchanges)
    chat.page.go_forward()
    expect(sidebar.current).to_have_text("Second")
    expect_shows(chat, second_exchanges)
    # And the page still follows the one it shows.
    text = unique("after going forward")
    api.post(second, text)
    expect(last_user_text(chat)).to_have_text(text)


def test_a_conversation_that_does_not_exist_is_a_new_empty_chat(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api
) -> None:
    chat = open_as(open_page, service.base_url, user, "/?c=made-up-42")
    sidebar = Sidebar(chat.page)
    expect(chat.page.get_by_role("heading", name="Start a conversation")).to_be_visible()
    expect(sidebar.current).to_have_count(0)
    reply = send(chat, "First words here")
    expect(sidebar.current).to_have_text("First words here")
    assert api.history("made-up-42") == [("First words here", reply)]

    # An id the service would refuse: the default conversation, said so in the URL.
    chat.open("/?c=%3Cscript%3E")
    assert conversation_in_url(chat) is None
    expect(chat.page.get_by_role("heading", name="Start a conversation")).to_be_visible()


def test_the_drawer_on_a_phone_works_from_the_keyboard(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api, output_dir: Path
) -> None:
    first, second = api.create("Groceries"), api.create("Homework")
    api.post(first, "Milk and eggs")
    api.post(second, "Fractions")
    chat = open_as(open_page, service.base_url, user, f"/?c={second}", viewport=NARROW)
    sidebar = Sidebar(chat.page)
    page = chat.page
    expect(sidebar.nav).to_be_hidden()
    expect(sidebar.toggle).to_have_attribute("aria-expanded", "false")

    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    expect(sidebar.toggle).to_be_focused()
    page.keyboard.press("Enter")
    expect(sidebar.nav).to_be_visible()
    expect(sidebar.toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar.current).to_be_focused()
    # Nothing behind the drawer takes the keyboard.
    assert page.locator("main").evaluate("main => main.inert")
    page.wait_for_timeout(300)  # the slide-in
    page.screenshot(path=output_dir / "conversations-drawer-light-narrow.png")
    page.keyboard.press("Escape")
    expect(sidebar.nav).to_be_hidden()
    expect(sidebar.toggle).to_be_focused()
    assert not page.locator("main").evaluate("main => main.inert")

    # Escape while renaming cancels the rename only.
    page.keyboard.press("Enter")
    expect(sidebar.current).to_be_focused()
    page.keyboard.press("Tab")
    expect(sidebar.item("Homework").get_by_role("button", name="Rename")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("textbox", name="New title for “Homework”")).to_be_focused()
    page.keyboard.press("Escape")
    expect(sidebar.nav).to_be_visible()

    # Choosing a chat closes the drawer and shows it.
    sidebar.link("Groceries").focus()
    page.keyboard.press("Enter")
    expect(sidebar.nav).to_be_hidden()
    expect(user_texts(chat)).to_have_text(["Milk and eggs"])
    expect(sidebar.toggle).to_be_focused()

    # A click beside the drawer closes it too; the composer fits the screen.
    sidebar.toggle.click()
    expect(sidebar.nav).to_be_visible()
    page.mouse.click(NARROW["width"] - 10, NARROW["height"] // 2)
    expect(sidebar.nav).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", ["wide", "narrow"])
def test_the_sidebar_looks_right_and_reads_well(
    open_page: OpenPage,
    service: ServiceProcess,
    user: User,
    api: Api,
    output_dir: Path,
    scheme: ColorScheme,
    width: str,
) -> None:
    for title, message in (("Trip to Lisbon", "Flights?"), ("Recipe ideas", "Soup")):
        api.post(api.create(title), message)
    current = api.create()
    viewport = WIDE if width == "wide" else NARROW
    chat = open_as(
        open_page, service.base_url, user, f"/?c={current}", viewport=viewport, color_scheme=scheme
    )
    sidebar = Sidebar(chat.page)
    page = chat.page
    if width == "narrow":
        sidebar.toggle.click()
    expect(sidebar.items).to_have_count(3)
    page.evaluate("document.fonts.ready")
    page.wait_for_timeout(300)  # the drawer's slide-in
    page.screenshot(path=output_dir / f"conversations-{scheme}-{width}.png")

    background = sidebar.nav.evaluate("nav => getComputedStyle(nav).backgroundColor")
    assert background == ("rgb(255, 255, 255)" if scheme == "light" else "rgb(22, 27, 34)")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]

    sidebar.item("Recipe ideas").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.screenshot(path=output_dir / f"conversations-delete-{scheme}-{width}.png")
    results: list[dict[str, Any]] = page.evaluate(MEASURE_CONTRAST, SIDEBAR_TEXT_TARGETS)
    measured = {r["selector"] for r in results}
    assert {".conversation__link", ".confirm__text", ".confirm .button"} <= measured
    low = [
        f"{r['selector']}: {r['ratio']:.2f}"
        for r in results
        if r["ratio"] < (AA_NON_TEXT if r["selector"] == "focus ring" else AA_TEXT)
    ]
    assert not low, f"contrast below WCAG AA in {scheme}: {low}"
    page.keyboard.press("Escape")


@pytest.fixture(scope="module")
def nginx_for_users(
    nginx_binary: str, service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    """NGINX without a key of its own: each browser brings its user's token, as it does
    behind an auth proxy (oauth2-proxy) that passes the signed-in user's token on."""
    with NginxServer(
        binary=nginx_binary,
        workdir=tmp_path_factory.mktemp("nginx-users"),
        service_url=service.base_url,
    ) as server:
        yield server


@pytest.mark.parametrize("through", ["service", "nginx"])
def test_each_user_sees_only_their_own_chats(
    open_page: OpenPage, service: ServiceProcess, request: pytest.FixtureRequest, through: str
) -> None:
    base_url = (
        request.getfixturevalue("nginx_for_users").base_url
        if through == "nginx"
        else service.base_url
    )
    alice, bob = User(next(_users)), User(next(_users))
    alice_chat = open_as(open_page, base_url, alice)
    bob_chat = open_as(open_page, base_url, bob)
    alice_bar, bob_bar = Sidebar(alice_chat.page), Sidebar(bob_chat.page)

    alice_bar.new_chat.click()
    expect(alice_bar.current).to_have_text("New chat")
    alice_id = conversation_in_url(alice_chat)
    send(alice_chat, "Alice's surprise party plans")
    alice_chat.open("/")  # her default conversation
    send(alice_chat, "Alice's shopping list")
    send(bob_chat, "Bob's reading list")

    expect(alice_bar.items).to_have_count(2)
    assert sorted(alice_bar.titles()) == ["Alice's shopping list", "Alice's surprise party plans"]
    bob_chat.page.reload()
    expect(bob_bar.items).to_have_count(1)
    assert bob_bar.titles() == ["Bob's reading list"]
    # Both have a "default" conversation: each sees their own in it.
    assert bob_chat.user_texts() == ["Bob's reading list"]
    # Alice's chat's address shows Bob an empty chat of his own, not hers.
    bob_chat.open(f"/?c={alice_id}")
    expect(bob_chat.page.get_by_role("heading", name="Start a conversation")).to_be_visible()
    assert "Alice" not in bob_chat.page.locator("body").inner_text()


def test_more_than_a_page_of_chats(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api
) -> None:
    titles = [f"Chat number {n}" for n in range(55)]
    for title in titles:
        api.create(title)
    chat = open_as(open_page, service.base_url, user)
    sidebar = Sidebar(chat.page)
    expect(sidebar.items).to_have_count(50)
    more = sidebar.nav.get_by_role("button", name="Show more chats")
    more.click()
    expect(sidebar.items).to_have_count(55)
    expect(more).to_be_hidden()
    assert sidebar.titles() == titles[::-1]  # the newest first


def test_a_service_without_conversations_shows_the_page_as_before(
    open_page: OpenPage, service: ServiceProcess, user: User
) -> None:
    """An older service answers /chat/conversations with a 404: no sidebar, one conversation."""
    watched = open_page()
    watched.context.set_extra_http_headers(user.headers)
    watched.expect_failed_requests("/chat/conversations")
    watched.page.route(
        "**/chat/conversations*",
        lambda route: route.fulfill(status=404, json={"status": "error", "message": "Not found."}),
    )
    chat = ChatPage(watched, service.base_url).open()
    sidebar = Sidebar(chat.page)
    expect(chat.page.locator("#sidebar")).to_have_attribute("data-state", "off")
    expect(chat.page.locator("#sidebar")).to_be_hidden()
    expect(sidebar.toggle).to_be_hidden()
    reply = send(chat, "Still here")
    assert reply == 'You said: "Still here". This is turn 1 of our conversation.'


def test_the_list_catches_up_when_the_tab_is_shown_again(
    open_page: OpenPage, service: ServiceProcess, user: User, api: Api
) -> None:
    kept, doomed = api.create("Kept"), api.create("Deleted elsewhere")
    chat = open_as(open_page, service.base_url, user, f"/?c={kept}")
    sidebar = Sidebar(chat.page)
    expect(sidebar.items).to_have_count(2)
    # Meanwhile, on another device:
    assert api.call("DELETE", f"/chat/conversations/{doomed}")[0] == 204
    assert (
        api.call("PATCH", f"/chat/conversations/{kept}", {"title": "Renamed elsewhere"})[0] == 200
    )
    api.create("Started elsewhere")

    chat.page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(sidebar.items).to_have_count(2)
    assert sidebar.titles() == ["Started elsewhere", "Renamed elsewhere"]
    expect(sidebar.current).to_have_text("Renamed elsewhere")
