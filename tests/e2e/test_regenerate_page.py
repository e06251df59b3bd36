"""Regenerate and Edit in Chromium (issue 25): the last reply asked for again, an earlier
message changed, each in place of its exchange and every later one (``replace_turn``), and the
cut that follows in every other tab of the conversation (its live stream's ``cut`` event).

The assistant is the real OpenAI-compatible one talking to the model server of tests/support,
whose default reply, "Reply {n}: {last}", says how many user messages it was given and the
last; it records each request, so a test sees the context the model got. Each test runs on
SQLite and on PostgreSQL (skipped locally without it, failing in CI).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Locator, expect

from tests.conftest import StartService
from tests.e2e.chat_page import AI, USER, ChatPage
from tests.e2e.conftest import OpenPage
from tests.e2e.nginx import FRONTEND_DIR
from tests.support.model import ModelServer
from tests.support.sealed import conversation_key
from tests.support.service import ServiceProcess

PAGE_ENV = {"CHAT_FRONTEND_DIR": str(FRONTEND_DIR), "CHAT_RATE_LIMIT_RPS": "0"}
# 24 words, one every 0.3 s: a reply that takes seven seconds to write.
SLOW = {"chunks": [f"word{n} " for n in range(24)], "chunk_delay_s": 0.3}
USER_TEXTS = f"{USER} .message__text"
AI_TEXTS = f"{AI} .message__text"
_numbers = itertools.count(1)


def new_chat_path() -> str:
    """A chat of its own for each test (the service is the test's own too)."""
    return f"/?c=regen-{next(_numbers)}"


def id_of(chat: ChatPage) -> str:
    return chat.page.url.split("?c=")[1]


@pytest.fixture
def service(
    start_service: StartService, model_server: ModelServer, store_env: dict[str, str]
) -> ServiceProcess:
    return start_service(env=model_server.openai_env(**PAGE_ENV, **store_env))


def history(service: ServiceProcess, conversation_id: str) -> list[dict[str, Any]]:
    query = urlencode({"conversation_id": conversation_id})
    status, _, items = service.request("GET", f"/chat/history?{query}")
    assert status == 200, items
    return list(items)


def stored_when(
    service: ServiceProcess, conversation_id: str, ready: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The history once ``ready`` says so: a stopped reply is stored a moment after its stream
    closed."""
    deadline = time.monotonic() + 10
    while not ready(items := history(service, conversation_id)):
        assert time.monotonic() < deadline, f"the history stayed {items}"
        time.sleep(0.05)
    return items


def context(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The conversation a model request carried: (role, text), the system message aside."""
    return [
        (message["role"], message["content"])
        for message in record["body"]["messages"]
        if message["role"] != "system"
    ]


def regenerate_button(chat: ChatPage) -> Locator:
    return chat.page.get_by_role("button", name="Regenerate reply", exact=True)


def last_reply_regenerate(chat: ChatPage) -> Locator:
    return chat.page.locator(AI).last.get_by_role("button", name="Regenerate reply", exact=True)


def edit_buttons(chat: ChatPage) -> Locator:
    return chat.page.get_by_role("button", name="Edit message", exact=True)


def editing_bar(chat: ChatPage) -> Locator:
    return chat.page.locator("#editing")


def announced(chat: ChatPage) -> Locator:
    return chat.page.locator("#announcer")


def test_regenerate_replaces_the_last_reply(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    path = new_chat_path()
    chat = ChatPage(open_page(), service.base_url).open(path)
    assert chat.send("first") == "Reply 1: first"
    assert chat.send("second") == "Reply 2: second"
    # One Regenerate, on the last reply, and keyboard-reachable as a button is.
    expect(regenerate_button(chat)).to_have_count(1)
    expect(last_reply_regenerate(chat)).to_be_visible()

    model_server.script({"reply": "Another second reply"})
    regenerate_button(chat).focus()
    chat.page.keyboard.press("Enter")
    expect(chat.page.locator(AI_TEXTS)).to_have_text(["Reply 1: first", "Another second reply"])
    expect(chat.page.locator(".message--streaming")).to_have_count(0)
    expect(chat.page.locator(USER_TEXTS)).to_have_text(["first", "second"])
    # The model got the last message again, after the exchanges before it, not the old reply.
    assert context(model_server.requests()[-1]) == [
        ("user", "first"),
        ("assistant", "Reply 1: first"),
        ("user", "second"),
    ]
    stored = stored_when(service, id_of(chat), lambda items: items[-1]["AI"] != "Reply 2: second")
    assert [(item["turn"], item["user"], item["AI"]) for item in stored] == [
        (1, "first", "Reply 1: first"),
        (2, "second", "Another second reply"),
    ]
    assert re.fullmatch(r"t2\.[1-9][0-9]*", stored[1]["id"]), stored[1]["id"]
    # The new reply is the last one: it can be regenerated in its turn.
    expect(last_reply_regenerate(chat)).to_be_visible()
    # After a reload the page shows what the service stored.
    chat.open(path)
    expect(chat.page.locator(AI_TEXTS)).to_have_text(["Reply 1: first", "Another second reply"])


def test_a_regenerated_reply_streams_can_be_stopped_and_nothing_is_revised_meanwhile(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    chat = ChatPage(open_page(), service.base_url).open(new_chat_path())
    chat.send("one")
    chat.send("two")
    model_server.script(SLOW)
    regenerate_button(chat).click()
    # The old reply gave its place to the new one, streaming; Stop took Send's place.
    expect(chat.page.locator(AI).last).to_contain_text("word2")
    expect(chat.page.locator(AI_TEXTS).first).to_have_text("Reply 1: one")
    expect(chat.page.locator(AI)).to_have_count(2)
    expect(chat.stop_button).to_be_focused()
    # While it is awaited, nothing else can be regenerated or edited (nor Up start an edit).
    expect(regenerate_button(chat)).to_be_disabled()
    for index in range(edit_buttons(chat).count()):
        expect(edit_buttons(chat).nth(index)).to_be_disabled()
    chat.stop_button.click()
    expect(chat.page.locator(".message--stopped .message__note")).to_have_text("Stopped")
    expect(chat.send_button).to_be_visible()
    # A stopped reply is stored, and cut like a whole one: the old reply is gone for good.
    shown = chat.page.locator(AI_TEXTS).last
    expect(shown).to_contain_text("word0 word1 word2")
    stored = stored_when(service, id_of(chat), lambda items: items[-1]["AI"] != "Reply 2: two")
    assert [item["user"] for item in stored] == ["one", "two"]
    assert stored[1]["AI"].startswith("word0 word1 word2")
    expect(shown).to_have_text(stored[1]["AI"].strip())
    expect(regenerate_button(chat)).to_be_enabled()
    expect(edit_buttons(chat).first).to_be_enabled()


def erasure_witness(
    service: ServiceProcess, store_env: dict[str, str], conversation_id: str
) -> bytes | None:
    """On PostgreSQL, the conversation's sealing key as stored (its storage key is its id:
    anonymous); None on SQLite, whose files are read instead."""
    url = store_env.get("CHAT_DATABASE_URL")
    if url is None:
        return None
    # Playwright's sync API runs an event loop in this thread: asyncpg gets one of its own.
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, conversation_key(url, conversation_id)).result()


def test_editing_an_earlier_message_cuts_what_followed_here_and_in_another_tab(
    open_page: OpenPage,
    service: ServiceProcess,
    model_server: ModelServer,
    store_env: dict[str, str],
) -> None:
    path = new_chat_path()
    chat = ChatPage(open_page(), service.base_url).open(path)
    for text in ("one", "two", "three"):
        chat.send(text)
    other = ChatPage(open_page(), service.base_url).open(path)
    expect(other.page.locator(USER_TEXTS)).to_have_text(["one", "two", "three"])
    # The other tab is editing its last message, which the cut will take away.
    other.input.press("ArrowUp")
    expect(other.input).to_have_value("three")

    key_before = erasure_witness(service, store_env, id_of(chat))
    edit_buttons(chat).nth(1).click()
    expect(editing_bar(chat)).to_be_visible()
    expect(editing_bar(chat)).to_contain_text("Editing a message")
    expect(announced(chat)).to_contain_text("Editing a message")
    expect(chat.input).to_have_value("two")
    expect(chat.input).to_be_focused()
    chat.input.fill("two, changed")
    chat.input.press("Enter")
    expect(editing_bar(chat)).to_be_hidden()
    # Here at once: the message edited and what followed it are gone, the new exchange is there.
    expect(chat.page.locator(USER_TEXTS)).to_have_text(["one", "two, changed"])
    expect(chat.page.locator(AI_TEXTS)).to_have_text(["Reply 1: one", "Reply 2: two, changed"])
    expect(chat.page.locator(".message--streaming")).to_have_count(0)
    # The model saw only what came before the edited message.
    assert context(model_server.requests()[-1]) == [
        ("user", "one"),
        ("assistant", "Reply 1: one"),
        ("user", "two, changed"),
    ]
    # The other tab: the cut and the new exchange (live: the "within a second", waited
    # for, not timed), announced.
    expect(other.page.locator(USER_TEXTS)).to_have_text(["one", "two, changed"])
    expect(other.page.locator(AI_TEXTS)).to_have_text(["Reply 1: one", "Reply 2: two, changed"])
    expect(announced(other)).to_contain_text("Messages from turn 2 on were removed elsewhere.")
    expect(announced(other)).to_contain_text("two, changed")
    # Its edit ended with its message; what it had in the box stays there.
    expect(editing_bar(other)).to_be_hidden()
    expect(other.input).to_have_value("three")
    # The service: the edited exchange at its turn, nothing after it.
    stored = stored_when(service, id_of(chat), lambda items: len(items) == 2)
    assert [(item["turn"], item["user"]) for item in stored] == [(1, "one"), (2, "two, changed")]
    # Search no longer finds what was cut, and still finds what was kept.
    for word, found in (("three", 0), ("one", 1)):
        status, _, body = service.request("GET", f"/chat/search?q={word}")
        assert (status, len(body["results"])) == (200, found), (word, body)
    # And the database: SQLite's file and log hold no byte of what was cut; PostgreSQL's
    # conversation is sealed under a new key, and the one that opens the cut text is gone.
    if key_before is None:
        on_disk = b"".join(
            path.read_bytes()
            for path in (service.db_path, service.db_path.with_name(service.db_path.name + "-wal"))
            if path.exists()
        )
        assert b"Reply 3: three" not in on_disk
        assert b"Reply 1: one" in on_disk, "what was kept is there"
    else:
        key_after = erasure_witness(service, store_env, id_of(chat))
        assert key_after is not None
        assert key_after != key_before
    # Opened again, the other tab follows from the generation it shows: t0.1, the whole
    # conversation shown, which has been cut once.
    with other.page.expect_request(re.compile(r".*/chat/events\?")) as events:
        other.page.reload()
    assert "last_event_id=t0.1" in events.value.url
    other.open(path)
    expect(other.page.locator(USER_TEXTS)).to_have_text(["one", "two, changed"])
    # Both tabs can go on from there, and each shows every exchange once.
    chat.send("four")
    expect(other.page.locator(USER_TEXTS)).to_have_text(["one", "two, changed", "four"])
    expect(chat.page.locator(USER_TEXTS)).to_have_text(["one", "two, changed", "four"])


def test_up_in_an_empty_box_edits_the_last_message_and_escape_cancels(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    chat = ChatPage(open_page(), service.base_url).open(new_chat_path())
    chat.send("alpha")
    chat.send("beta")
    chat.input.focus()
    chat.input.press("ArrowUp")
    expect(chat.input).to_have_value("beta")
    expect(editing_bar(chat)).to_be_visible()
    expect(chat.page.locator(".message--editing .message__text")).to_have_text("beta")
    chat.input.press("Escape")
    expect(editing_bar(chat)).to_be_hidden()
    expect(chat.input).to_have_value("")
    expect(announced(chat)).to_have_text("Editing cancelled")
    expect(chat.page.locator(".message--editing")).to_have_count(0)

    # What was being typed comes back after Cancel; Up in a box with text moves the caret only.
    chat.input.fill("a draft")
    chat.input.press("ArrowUp")
    expect(editing_bar(chat)).to_be_hidden()
    edit_buttons(chat).first.click()
    expect(chat.input).to_have_value("alpha")
    editing_bar(chat).get_by_role("button", name="Cancel editing").click()
    expect(chat.input).to_have_value("a draft")
    expect(chat.input).to_be_focused()

    # Up, changed, sent: the last exchange is replaced, nothing else.
    chat.input.fill("")
    chat.input.press("ArrowUp")
    chat.input.fill("beta, better")
    chat.send_button.click()
    expect(chat.page.locator(AI_TEXTS)).to_have_text(["Reply 1: alpha", "Reply 2: beta, better"])
    expect(chat.page.locator(USER_TEXTS)).to_have_text(["alpha", "beta, better"])
    # Stored: the page shows the streamed reply a moment before the commit.
    stored = stored_when(service, id_of(chat), lambda items: items[-1]["user"] != "beta")
    assert [item["user"] for item in stored] == ["alpha", "beta, better"]


def test_an_edit_of_a_turn_cut_meanwhile_is_refused_and_the_page_shows_the_history(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    """The tab never heard of the cut (its live stream is down): the service's 409 makes it
    read the history again, and the text typed stays in the box."""
    chat = ChatPage(open_page(), service.base_url)
    chat.watched.expect_failed_requests("/chat/events", "/chat/message")
    chat.page.route("**/chat/events?*", lambda route: route.abort())
    chat.open(new_chat_path())
    for text in ("one", "two"):
        chat.send(text)
    # Another client replaces the first exchange: the second is erased with it.
    body = {"message": "one, elsewhere", "conversation_id": id_of(chat), "replace_turn": 1}
    status, _, answer = service.request("POST", "/chat/message", body)
    assert status == 200, answer
    edit_buttons(chat).nth(1).click()
    chat.input.fill("two, changed")
    chat.input.press("Enter")
    failed = chat.failed
    expect(failed.get_by_role("alert")).to_contain_text("Not sent.")
    expect(chat.input).to_have_value("two, changed")
    # The history, read again: what the service has, then the message not sent.
    expect(chat.page.locator(f"{USER}:not(.message--failed) .message__text")).to_have_text(
        ["one, elsewhere"]
    )
    expect(chat.page.locator(AI_TEXTS)).to_have_text(["Reply 1: one, elsewhere"])
    stored = history(service, id_of(chat))
    assert [item["user"] for item in stored] == ["one, elsewhere"]


def test_a_regenerate_the_model_refuses_cuts_nothing_and_retries_as_one(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    chat = ChatPage(open_page(), service.base_url).open(new_chat_path())
    chat.watched.expect_failed_requests("/chat/message")
    chat.send("one")
    chat.send("two")
    # A 400 is not retried by the service: the reply fails at once, and nothing is cut.
    model_server.script({"status": 400})
    regenerate_button(chat).click()
    expect(chat.failed.get_by_role("alert")).to_contain_text("Not sent.")
    # The page read the history again: the old reply is back, the message not sent after it.
    expect(chat.page.locator(AI_TEXTS)).to_have_text(["Reply 1: one", "Reply 2: two"])
    expect(chat.page.locator(USER_TEXTS)).to_have_text(["one", "two", "two"])
    # It was not typed: the box stays empty.
    expect(chat.input).to_have_value("")
    stored = history(service, id_of(chat))
    assert [(item["user"], item["AI"]) for item in stored] == [
        ("one", "Reply 1: one"),
        ("two", "Reply 2: two"),
    ]
    model_server.script({"reply": "Two, at last"})
    chat.failed.get_by_role("button", name="Retry").click()
    expect(chat.page.locator(AI_TEXTS)).to_have_text(["Reply 1: one", "Two, at last"])
    expect(chat.page.locator(".message--streaming")).to_have_count(0)
    expect(chat.page.locator(USER_TEXTS)).to_have_text(["one", "two"])
    expect(chat.failed).to_have_count(0)
    stored = stored_when(service, id_of(chat), lambda items: items[-1]["AI"] != "Reply 2: two")
    assert [(item["user"], item["AI"]) for item in stored] == [
        ("one", "Reply 1: one"),
        ("two", "Two, at last"),
    ]
