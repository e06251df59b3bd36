"""Live updates in Chromium: the page follows its conversation (GET /chat/events), so what
another tab, another device or any other client commits shows up without a reload, once.

The module's service holds more history than the page's first page (the page then knows only
the oldest shown exchange's cursor), and the dummy assistant writes its replies word by word,
so a reply is in flight long enough to be stopped. Every test compares what the pages show
with what the service stored: each exchange once, in the stored order.
"""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Request, Response, Route, expect

from chat_service.assistant import DummyAssistant
from chat_service.store.sqlite import SQLiteChatStore
from tests.conftest import StartService
from tests.e2e.chat_page import AI, USER, ChatPage
from tests.e2e.conftest import OpenPage, StartModuleService, markdown_libraries_installed
from tests.e2e.nginx import FRONTEND_DIR, NginxServer
from tests.support.binaries import in_ci
from tests.support.refs import ref
from tests.support.service import ServiceProcess

PREFILLED = 60
PAGE_SIZE = 50  # frontend/history.js HISTORY_PAGE_SIZE
# The promise: another tab's message shows up within a second.
WITHIN_A_SECOND = 1_000
# EventSource waits about 3 s before it reconnects, then the service has to be up again.
RECONNECT_MS = 20_000
EVENTS = "/chat/events?"
SERVICE_ENV = {
    "CHAT_FRONTEND_DIR": str(FRONTEND_DIR),
    "CHAT_ASSISTANT_TOKEN_MS": "40",
    "CHAT_RATE_LIMIT_RPS": "0",
}
_numbers = itertools.count(1)


def unique(text: str) -> str:
    """Message texts that no other test in the module sends."""
    return f"{text} #{next(_numbers)}"


def write_exchanges(db_path: Path, texts: list[str]) -> None:
    """Store exchanges as another process would, with the service stopped (or not started)."""

    async def write() -> None:
        store = await SQLiteChatStore.open(db_path)
        try:
            for text in texts:
                turn = len((await store.history(ref("default"))).exchanges) + 1
                await store.append(ref("default"), text, DummyAssistant.compose(text, turn))
        finally:
            await store.close()

    # In a thread of its own: Playwright's event loop runs in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, write()).result()


@pytest.fixture(scope="module")
def service(
    start_module_service: StartModuleService, tmp_path_factory: pytest.TempPathFactory
) -> ServiceProcess:
    db_path = tmp_path_factory.mktemp("live") / "chat.db"
    write_exchanges(db_path, [f"prefilled {n}" for n in range(PREFILLED)])
    return start_module_service(db_path=db_path, env=SERVICE_ENV)


@pytest.fixture(params=["service", "nginx"])
def base_url(request: pytest.FixtureRequest, service: ServiceProcess) -> str:
    """The page from the service itself, and from NGINX in front of it."""
    if request.param == "nginx":
        server: NginxServer = request.getfixturevalue("nginx")
        return server.base_url
    return service.base_url


@pytest.fixture
def fresh_service(start_service: StartService) -> ServiceProcess:
    """A service with an empty conversation: the page shows all of it, with no Link header."""
    return start_service(env=SERVICE_ENV)


def stored(service: ServiceProcess) -> list[tuple[str, str]]:
    status, _, body = service.request("GET", "/chat/history")
    assert status == 200
    return [(e["user"], e["AI"]) for e in body]


def post(service: ServiceProcess, text: str) -> str:
    """Send a message as a plain HTTP client (no page): the reply, once it is stored."""
    status, _, body = service.request("POST", "/chat/message", {"message": text})
    assert status == 200, body
    reply: str = body["response"]
    return reply


def open_chat(open_page: OpenPage, base_url: str) -> ChatPage:
    """A tab with the conversation loaded."""
    chat = ChatPage(open_page(), base_url).open()
    expect(chat.page.locator(AI).first).to_be_attached()
    return chat


def shown(chat: ChatPage) -> list[tuple[str, str]]:
    users, replies = chat.user_texts(), chat.ai_texts()
    assert len(users) == len(replies), (users, replies)
    return list(zip(users, replies, strict=True))


def last_user_message(chat: ChatPage) -> Locator:
    return chat.page.locator(USER).last.locator(".message__text")


def last_reply(chat: ChatPage) -> Locator:
    return chat.page.locator(AI).last.locator(".message__text")


def send(chat: ChatPage, text: str) -> str:
    """Send ``text`` from the page and wait for the whole reply (it is written word by word)."""
    replies = chat.page.locator(AI).count()
    chat.input.fill(text)
    chat.send_button.click()
    expect(chat.page.locator(AI)).to_have_count(replies + 1)
    expect(chat.send_button).to_be_visible()  # back once the reply is complete and stored
    return chat.ai_texts()[-1]


def settle(service: ServiceProcess, *chats: ChatPage) -> None:
    """Wait until each page has taken in everything stored so far: a message posted now comes
    after all of it on every page's stream, so once it is shown nothing earlier is pending."""
    text = unique("barrier")
    post(service, text)
    for chat in chats:
        expect(last_user_message(chat)).to_have_text(text)


def assert_shows_the_conversation(chat: ChatPage, service: ServiceProcess, count: int) -> None:
    """The page shows the newest ``count`` stored exchanges, each once, in the stored order."""
    expect(chat.page.locator(USER)).to_have_count(count)
    assert shown(chat) == stored(service)[-count:]


def test_two_tabs_show_each_others_messages_once(
    open_page: OpenPage, base_url: str, service: ServiceProcess
) -> None:
    first, second = open_chat(open_page, base_url), open_chat(open_page, base_url)
    for tab in (first, second):
        expect(tab.page.locator(USER)).to_have_count(PAGE_SIZE)

    text = unique("from the first tab")
    reply = send(first, text)
    expect(last_user_message(second)).to_have_text(text, timeout=WITHIN_A_SECOND)
    expect(last_reply(second)).to_have_text(reply)
    # Told to screen readers like a reply, with the message it answers.
    expect(second.page.locator("#announcer")).to_have_text(
        f"New message from elsewhere. You: {text} Assistant: {reply}"
    )

    text = unique("from the second tab")
    reply = send(second, text)
    expect(last_user_message(first)).to_have_text(text, timeout=WITHIN_A_SECOND)
    expect(last_reply(first)).to_have_text(reply)

    settle(service, first, second)
    for tab in (first, second):
        # Its own message once, the other's once, and the first page it loaded not twice.
        assert_shows_the_conversation(tab, service, PAGE_SIZE + 3)


def test_a_message_stored_between_the_history_and_the_stream_is_not_missed(
    open_page: OpenPage, base_url: str, service: ServiceProcess
) -> None:
    chat = ChatPage(open_page(), base_url)
    text = unique("stored while the page subscribes")

    def store_first(route: Route) -> None:
        # The page has read its history and is about to follow the conversation.
        post(service, text)
        route.continue_()

    chat.page.route(f"**{EVENTS}*", store_first, times=1)
    chat.open()
    expect(last_user_message(chat)).to_have_text(text)
    settle(service, chat)
    assert_shows_the_conversation(chat, service, PAGE_SIZE + 2)


def test_a_message_from_another_client_shows_up_and_follows_the_reader(
    open_page: OpenPage, base_url: str, service: ServiceProcess
) -> None:
    chat = open_chat(open_page, base_url)
    assert chat.distance_from_bottom() <= 1

    text = unique("posted with curl")
    reply = post(service, text)
    expect(last_user_message(chat)).to_have_text(text, timeout=WITHIN_A_SECOND)
    expect(last_reply(chat)).to_have_text(reply)
    expect(chat.page.locator("#announcer")).to_have_text(
        f"New message from elsewhere. You: {text} Assistant: {reply}"
    )
    # The reader was at the end of the conversation: the page follows it.
    chat.page.wait_for_function(
        "() => { const log = document.getElementById('log');"
        " return log.scrollHeight - log.scrollTop - log.clientHeight <= 1; }"
    )
    jump = chat.page.get_by_role("button", name="New reply")
    expect(jump).to_be_hidden()

    # A reader who scrolled up to read is not pulled down; the page says something is new.
    chat.log.evaluate("log => { log.scrollTop = log.scrollHeight / 2; }")
    chat.page.wait_for_function("document.getElementById('log').scrollTop > 0")
    reading_at = chat.scroll_metrics()["top"]
    text = unique("posted while you read")
    post(service, text)
    expect(last_user_message(chat)).to_have_text(text, timeout=WITHIN_A_SECOND)
    expect(jump).to_be_visible()
    assert chat.scroll_metrics()["top"] == pytest.approx(reading_at, abs=1)
    jump.click()
    assert chat.distance_from_bottom() <= 1

    settle(service, chat)
    assert_shows_the_conversation(chat, service, PAGE_SIZE + 3)


def test_replies_from_elsewhere_render_as_markdown(
    fresh_service: ServiceProcess, open_page: OpenPage
) -> None:
    if not markdown_libraries_installed():
        reason = "frontend/vendor/ is missing: run `make` with Node.js (npm ci in frontend/)"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    chat = ChatPage(open_page(), fresh_service.base_url).open()
    # The dummy quotes the message in its reply, so the reply has the Markdown too.
    text = unique("**bold** and `code`")
    post(fresh_service, text)
    expect(last_user_message(chat)).to_have_text(text, timeout=WITHIN_A_SECOND)
    reply = chat.page.locator(AI).last
    expect(reply.locator("strong")).to_have_text("bold")
    expect(reply.locator("code")).to_have_text("code")
    # The message itself stays text, as the page's own messages do.
    expect(chat.page.locator(USER).last.locator("strong")).to_have_count(0)


def test_the_own_message_shows_once_when_its_exchange_comes_before_the_reply_ends(
    open_page: OpenPage, service: ServiceProcess
) -> None:
    """The exchange event and the reply's done event leave the service at about the same time,
    on two connections. Here the page gets the reply only after the exchange event has reached
    another tab (and so this one's stream too): the page must still show its message once."""
    chat = open_chat(open_page, service.base_url)
    witness = open_chat(open_page, service.base_url)
    text = unique("which comes first")

    def hold_the_reply(route: Route) -> None:
        response = route.fetch()  # the whole reply: the exchange is stored
        expect(last_user_message(witness)).to_have_text(text)
        chat.page.wait_for_timeout(300)  # this tab's stream has delivered it, too
        route.fulfill(response=response)

    chat.page.route("**/chat/message", hold_the_reply)
    send(chat, text)
    settle(service, chat, witness)
    for tab in (chat, witness):
        assert_shows_the_conversation(tab, service, PAGE_SIZE + 2)


def test_a_stopped_reply_comes_back_once(open_page: OpenPage, service: ServiceProcess) -> None:
    chat = open_chat(open_page, service.base_url)
    other = open_chat(open_page, service.base_url)
    # The dummy quotes the message: a long one makes a reply that takes seconds to write.
    text = unique("stop me " + " ".join(f"w{n}" for n in range(60)))
    replies = chat.page.locator(AI).count()
    chat.input.fill(text)
    chat.send_button.click()
    expect(chat.page.locator(AI)).to_have_count(replies + 1)
    expect(chat.page.locator(AI).last).to_contain_text("w3")
    chat.stop_button.click()
    expect(chat.page.locator(".message--stopped .message__note")).to_have_text("Stopped")

    settle(service, chat, other)
    for tab in (chat, other):
        # Stored with the part of the reply that was sent, shown once, as stored.
        assert_shows_the_conversation(tab, service, PAGE_SIZE + 2)
    user, partial = stored(service)[-2]
    assert user == text
    assert "w3" in partial
    assert not partial.endswith("of our conversation.")
    expect(chat.page.locator(".message--stopped .message__note")).to_have_text("Stopped")


def test_after_a_restart_the_page_shows_what_it_missed(
    open_page: OpenPage, base_url: str, service: ServiceProcess
) -> None:
    chat = open_chat(open_page, base_url)
    # While the service is down, the stream's reconnections fail (through NGINX: a 502).
    chat.watched.expect_failed_requests("/chat/events", "/chat/conversation-events")
    failed: list[str] = []

    def on_request_failed(request: Request) -> None:  # refused: straight to the service
        if EVENTS in request.url:
            failed.append(request.url)

    def on_response(response: Response) -> None:  # a 502 from NGINX
        if EVENTS in response.url and not response.ok:
            failed.append(response.url)

    chat.page.on("requestfailed", on_request_failed)
    chat.page.on("response", on_response)
    settle(service, chat)  # the stream is open and has delivered an exchange
    service.stop()
    missed = [unique("stored while the page was away"), unique("and another")]
    try:
        write_exchanges(service.db_path, missed)
        # Down long enough for the page to try again and fail at least once.
        for _ in range(RECONNECT_MS // 50):
            if failed:
                break
            chat.page.wait_for_timeout(50)
        assert failed, "the page did not try to reconnect"
    finally:
        service.start()
    expect(last_user_message(chat)).to_have_text(missed[-1], timeout=RECONNECT_MS)
    # Caught up in one go, and told once.
    reply = dict(stored(service))[missed[-1]]
    expect(chat.page.locator("#announcer")).to_have_text(
        f"2 new messages from elsewhere. The latest: You: {missed[-1]} Assistant: {reply}"
    )
    # Live again, not only caught up.
    text = unique("after the restart")
    post(service, text)
    expect(last_user_message(chat)).to_have_text(text, timeout=WITHIN_A_SECOND)
    settle(service, chat)
    assert_shows_the_conversation(chat, service, PAGE_SIZE + 5)


def test_without_the_stream_the_page_works_as_before(
    open_page: OpenPage, base_url: str, service: ServiceProcess
) -> None:
    """A service from before live updates answers chat/events with a 404."""
    chat = ChatPage(open_page(), base_url)
    chat.watched.expect_failed_requests("/chat/events")
    asked: list[str] = []

    def older_service(route: Route) -> None:
        asked.append(route.request.url)
        route.fulfill(status=404, json={"status": "error", "message": "Not found."})

    chat.page.route(f"**{EVENTS}*", older_service)
    chat.open()
    expect(chat.page.locator(USER)).to_have_count(PAGE_SIZE)
    text = unique("no live updates here")
    reply = send(chat, text)
    expect(chat.page.locator("#announcer")).to_have_text(f"Assistant: {reply}")
    chat.page.wait_for_timeout(1_500)  # longer than the page's first retry would wait
    assert len(asked) == 1, "the page does not keep asking a service that has no stream"
    assert_shows_the_conversation(chat, service, PAGE_SIZE + 1)


def test_a_short_conversation_is_followed_from_its_start(
    fresh_service: ServiceProcess, open_page: OpenPage
) -> None:
    first = ChatPage(open_page(), fresh_service.base_url).open()
    expect(first.page.get_by_role("heading", name="Start a conversation")).to_be_visible()
    text = unique("the very first message")
    post(fresh_service, text)
    expect(last_user_message(first)).to_have_text(text, timeout=WITHIN_A_SECOND)
    expect(first.page.get_by_role("heading", name="Start a conversation")).to_be_hidden()

    second = open_chat(open_page, fresh_service.base_url)
    expect(second.page.locator(USER)).to_have_count(1)
    send(second, unique("the second"))
    settle(fresh_service, first, second)
    for tab in (first, second):
        assert_shows_the_conversation(tab, fresh_service, 3)


# A browser's own EventSource, as a page loaded before an update holds it: its last id is a
# bare number, an exchange id of the earlier version. What it receives goes to window.seen.
EARLIER_SOURCE = """url => {
  window.seen = [];
  const source = new EventSource(url);
  for (const type of ["restart", "exchange"]) {
    source.addEventListener(type, (event) => {
      window.seen.push([type, event.lastEventId, JSON.parse(event.data).user ?? null]);
    });
  }
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) window.seen.push(["closed", "", null]);
  });
}"""


def test_an_event_source_with_an_earlier_versions_id_follows_on_without_a_refusal(
    fresh_service: ServiceProcess, open_page: OpenPage
) -> None:
    """An EventSource reconnects by itself with the last id it saw, across an update too. A
    refusal would close it (and a page's own retries would meet the same refusal again):
    instead its stream restarts from now, and the restart's id becomes its last, so the
    reconnection after the service restarts resumes exactly, with nothing missed."""
    chat = ChatPage(open_page(), fresh_service.base_url).open()
    # While the service is down: the conversation's stream, and the list's.
    chat.watched.expect_failed_requests("/chat/events", "/chat/conversation-events")
    for n in range(2):
        post(fresh_service, unique(f"before the update {n}"))
    url = "chat/events?conversation_id=default&last_event_id=41"
    answers: list[int] = []
    resumed_after: list[str | None] = []

    def on_response(response: Response) -> None:
        if "last_event_id=41" in response.url:
            answers.append(response.status)
            resumed_after.append(response.request.all_headers().get("last-event-id"))

    chat.page.on("response", on_response)
    chat.page.evaluate(EARLIER_SOURCE, url)
    chat.page.wait_for_function("() => window.seen.length >= 1")
    assert chat.page.evaluate("window.seen") == [["restart", "t2", None]]
    live = unique("live")
    post(fresh_service, live)
    chat.page.wait_for_function("() => window.seen.length >= 2")
    fresh_service.stop()
    missed = unique("stored while the service was down")
    try:
        write_exchanges(fresh_service.db_path, [missed])
    finally:
        fresh_service.start()
    chat.page.wait_for_function("() => window.seen.length >= 3", timeout=RECONNECT_MS)
    assert chat.page.evaluate("window.seen") == [
        ["restart", "t2", None],
        ["exchange", "t3", live],
        ["exchange", "t4", missed],
    ]
    assert answers == [200, 200], "no refusal, on connecting or on reconnecting"
    assert resumed_after == [None, "t3"]


def test_tabs_on_two_replicas_show_each_others_messages(
    start_service: StartService, postgres_url: str, open_page: OpenPage
) -> None:
    """Two devices on different replicas of the service, which share one PostgreSQL."""
    env = {**SERVICE_ENV, "CHAT_DATABASE_URL": postgres_url}
    replicas = [start_service(env=env), start_service(env=env)]
    tabs = [ChatPage(open_page(), replica.base_url).open() for replica in replicas]

    for sender, receiver in ((tabs[0], tabs[1]), (tabs[1], tabs[0])):
        text = unique("from another replica")
        reply = send(sender, text)
        expect(last_user_message(receiver)).to_have_text(text, timeout=WITHIN_A_SECOND)
        expect(last_reply(receiver)).to_have_text(reply)
    text = unique("posted to the second replica")
    post(replicas[1], text)
    expect(last_user_message(tabs[0])).to_have_text(text, timeout=WITHIN_A_SECOND)

    settle(replicas[0], *tabs)
    for tab in tabs:
        assert_shows_the_conversation(tab, replicas[0], 4)
