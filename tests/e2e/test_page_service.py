"""The page in Chromium, served by the service itself (CHAT_FRONTEND_DIR), as `make run` does.

The folder is a copy of frontend/ with a config.json that sets a Jaeger URL, as compose and
k8s mount one, so replies carry trace links. The history is prefilled with 60 exchanges,
more than the page's first page of 50. Replies take 500 ms, time for a reader to scroll.
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import expect

from chat_service.assistant import DummyAssistant
from chat_service.store.sqlite import SQLiteChatStore
from tests.e2e.chat_page import AI, SERVICE_DOWN_FAILURES, USER, ChatPage
from tests.e2e.conftest import OpenPage, StartModuleService, copy_page
from tests.support.refs import ref
from tests.support.service import ServiceProcess

JAEGER = "http://jaeger.example:16686"
PREFILLED = 60
PAGE_SIZE = 50  # frontend/history.js HISTORY_PAGE_SIZE


@pytest.fixture(scope="module")
def frontend_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = copy_page(tmp_path_factory.mktemp("frontend"), libraries=True)
    (folder / "config.json").write_text(json.dumps({"jaegerBaseUrl": JAEGER + "/"}))
    return folder


async def prefill(path: Path) -> None:
    """The history the service would have stored for PREFILLED messages, written directly:
    posting them would take PREFILLED times the reply latency, one message at a time."""
    store = await SQLiteChatStore.open(path)
    try:
        for n in range(PREFILLED):
            text = f"prefilled {n}"
            await store.append(ref("default"), text, DummyAssistant.compose(text, n + 1))
    finally:
        await store.close()


def prefilled_service(
    start_module_service: StartModuleService,
    frontend_copy: Path,
    tmp_path_factory: pytest.TempPathFactory,
    latency_ms: int,
) -> ServiceProcess:
    """The service on a prefilled history, serving the page, its replies ``latency_ms``
    late."""
    db_path = tmp_path_factory.mktemp("prefilled") / "chat.db"
    # In a thread of its own: Playwright's event loop runs in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, prefill(db_path)).result()
    return start_module_service(
        db_path=db_path,
        env={
            "CHAT_FRONTEND_DIR": str(frontend_copy),
            "CHAT_ASSISTANT_LATENCY_MS": str(latency_ms),
            "CHAT_RATE_LIMIT_RPS": "0",
        },
    )


@pytest.fixture(scope="module")
def service(
    start_module_service: StartModuleService,
    frontend_copy: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServiceProcess:
    return prefilled_service(start_module_service, frontend_copy, tmp_path_factory, 500)


@pytest.fixture(scope="module")
def slow_service(
    start_module_service: StartModuleService,
    frontend_copy: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServiceProcess:
    """Replies 4 s late: time for a test to act while one is on its way, even on a machine
    loaded enough to take a second over a click and a scroll (CI's once did)."""
    return prefilled_service(start_module_service, frontend_copy, tmp_path_factory, 4_000)


@pytest.fixture
def chat(open_page: OpenPage, service: ServiceProcess) -> ChatPage:
    return ChatPage(open_page(), service.base_url)


@pytest.fixture
def slow_chat(open_page: OpenPage, slow_service: ServiceProcess) -> ChatPage:
    return ChatPage(open_page(), slow_service.base_url)


def stored_history(service: ServiceProcess) -> list[dict[str, str]]:
    status, _, history = service.request("GET", "/chat/history")
    assert status == 200
    return list(history)


@pytest.mark.parametrize("path", ["/", "/frontend.html"])
def test_the_service_serves_the_page(chat: ChatPage, service: ServiceProcess, path: str) -> None:
    chat.open(path)
    expect(chat.page).to_have_title("chat-service")
    expect(chat.page.get_by_role("heading", name="chat-service")).to_be_visible()
    # The first page of the history: the 50 most recent exchanges, oldest first.
    latest = stored_history(service)[-PAGE_SIZE:]
    expect(chat.page.locator(USER)).to_have_count(PAGE_SIZE)
    assert chat.user_texts() == [e["user"] for e in latest]
    expect(chat.page.get_by_role("button", name="Load earlier messages")).to_be_attached()


def test_a_reply_links_to_its_trace(chat: ChatPage) -> None:
    chat.open()
    replies = chat.page.locator(AI).count()
    chat.input.fill("Where is my trace?")
    with chat.page.expect_response("**/chat/message") as sent:
        chat.send_button.click()
    header = sent.value.headers["traceresponse"]
    trace_id = header.split("-")[1]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    chat.wait_for_reply(replies)
    link = chat.page.locator(AI).last.get_by_role("link", name="Open the trace of this reply")
    expect(link).to_have_attribute("href", f"{JAEGER}/trace/{trace_id}")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    # Replies read from the history have no trace id to link to.
    chat.page.reload()
    expect(chat.page.locator(".trace-link")).to_have_count(0)


def test_scrolling_up_loads_older_messages_in_place(
    chat: ChatPage, service: ServiceProcess
) -> None:
    history = stored_history(service)
    assert PAGE_SIZE < len(history) <= 2 * PAGE_SIZE
    chat.open()
    expect(chat.page.locator(USER)).to_have_count(PAGE_SIZE)
    oldest_shown = chat.page.locator(USER).first.element_handle()
    oldest_text = chat.user_texts()[0]

    chat.log.evaluate("log => { log.scrollTop = 0; }")
    expect(chat.page.locator(USER)).to_have_count(len(history))
    assert chat.user_texts() == [e["user"] for e in history]
    assert chat.ai_texts() == [e["AI"] for e in history]
    # Nothing older is left, so there is nothing more to load.
    expect(chat.page.get_by_role("button", name="Load earlier messages")).to_be_hidden()
    # The reader's place is kept: the message that was at the top did not jump away.
    assert chat.user_texts()[len(history) - PAGE_SIZE] == oldest_text
    top = oldest_shown.evaluate(
        "item => item.getBoundingClientRect().top"
        " - item.closest('.log').getBoundingClientRect().top"
    )
    assert 0 <= top < chat.scroll_metrics()["client"], top


def test_a_reader_who_scrolled_up_is_not_pulled_down(slow_chat: ChatPage) -> None:
    chat = slow_chat
    chat.open()
    replies = chat.page.locator(AI).count()
    chat.input.fill("Reply while I read the older messages")
    chat.send_button.click()
    expect(chat.thinking).to_be_visible()
    assert chat.distance_from_bottom() <= 1  # sending shows your own message

    chat.log.evaluate("log => { log.scrollTop = log.scrollHeight / 2; }")
    chat.page.wait_for_function("document.getElementById('log').scrollTop > 0")
    reading_at = chat.scroll_metrics()["top"]
    # The reply comes while the reader is up there (else there is nothing to test).
    expect(chat.thinking).to_be_visible()
    chat.wait_for_reply(replies)
    assert chat.scroll_metrics()["top"] == pytest.approx(reading_at, abs=1)
    jump = chat.page.get_by_role("button", name="New reply")
    expect(jump).to_be_visible()

    jump.click()
    assert chat.distance_from_bottom() <= 1
    expect(jump).to_be_hidden()
    expect(chat.input).to_be_focused()


def test_unreachable_service_errors_in_place_and_retry_recovers(
    chat: ChatPage, service: ServiceProcess
) -> None:
    """The page stays open while the service is down; every failure is shown where it happened."""
    chat.watched.expect_failed_requests(*SERVICE_DOWN_FAILURES)
    total = len(stored_history(service))
    chat.open()
    expect(chat.page.locator(USER)).to_have_count(PAGE_SIZE)
    service.stop()
    try:
        chat.log.evaluate("log => { log.scrollTop = 0; }")  # asks for older messages
        expect(chat.history_notice).to_contain_text("Couldn't load earlier messages.")
        expect(chat.history_notice).to_contain_text("Can't reach the chat service")
        expect(chat.connection).to_have_text("Offline")
        chat.input.fill("Are you there?")
        chat.send_button.click()
        expect(chat.failed.get_by_role("alert")).to_contain_text("Can't reach the chat service")
        expect(chat.input).to_have_value("Are you there?")
    finally:
        service.start()

    chat.history_notice.get_by_role("button", name="Retry").click()
    expect(chat.page.locator(USER)).to_have_count(total + 1)  # all, and the unsent one
    expect(chat.history_notice).to_have_count(0)
    expect(chat.connection).to_have_text("Online")

    replies = chat.page.locator(AI).count()
    chat.failed.get_by_role("button", name="Retry").click()
    assert "Are you there?" in chat.wait_for_reply(replies)
    expect(chat.failed).to_have_count(0)
    expect(chat.input).to_have_value("")
