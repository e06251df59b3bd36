"""The open chat's tools in Chromium (issue 25): the model picker, the instructions, the export,
and each message's time with each reply's model and tokens.

The assistant is the real OpenAI-compatible one talking to the model server of tests/support,
which records what it was asked: the model, and the system message. Each test runs on SQLite
and on PostgreSQL (skipped locally without it, failing in CI).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Locator, expect

from tests.conftest import StartService
from tests.e2e.chat_page import AI, USER, ChatPage, Sidebar
from tests.e2e.conftest import OpenPage
from tests.e2e.nginx import FRONTEND_DIR
from tests.support.model import ModelServer
from tests.support.service import ServiceProcess

PAGE_ENV = {"CHAT_FRONTEND_DIR": str(FRONTEND_DIR), "CHAT_RATE_LIMIT_RPS": "0"}
MODELS = {"CHAT_MODELS": "gpt-test,gpt-test-mini"}
_numbers = itertools.count(1)


def new_chat_path() -> str:
    """A chat that does not exist on the service until its first message."""
    return f"/?c=tools-{next(_numbers)}"


def id_of(chat: ChatPage) -> str:
    return chat.page.url.split("?c=")[1]


def eventually(read: Callable[[], Any], expected: Any, timeout: float = 10.0) -> None:
    """Waits until ``read()`` gives ``expected`` (what the page sent has reached the service)."""
    deadline = time.monotonic() + timeout
    while (value := read()) != expected:
        assert time.monotonic() < deadline, f"{value!r}, expected {expected!r}"
        time.sleep(0.05)


@pytest.fixture
def service(
    start_service: StartService, model_server: ModelServer, store_env: dict[str, str]
) -> ServiceProcess:
    return start_service(env=model_server.openai_env(**PAGE_ENV, **MODELS, **store_env))


def picker(chat: ChatPage) -> Locator:
    return chat.page.get_by_label("Model", exact=True)


def asked(model_server: ModelServer) -> dict[str, Any]:
    """The body of the last request the model server received."""
    body: dict[str, Any] = model_server.requests()[-1]["body"]
    return body


def history(service: ServiceProcess, conversation_id: str) -> list[dict[str, Any]]:
    query = urlencode({"conversation_id": conversation_id})
    status, _, items = service.request("GET", f"/chat/history?{query}")
    assert status == 200, items
    return list(items)


def conversation(service: ServiceProcess, conversation_id: str) -> dict[str, Any]:
    status, _, record = service.request("GET", f"/chat/conversations/{conversation_id}")
    assert status == 200, record
    return dict(record)


def stored_model(service: ServiceProcess, conversation_id: str) -> str | None:
    """The conversation's model, or "(not stored yet)" while its first exchange is being
    committed (the page shows a streamed reply before the commit that makes the chat)."""
    status, _, record = service.request("GET", f"/chat/conversations/{conversation_id}")
    if status == 404:
        return "(not stored yet)"
    assert status == 200, record
    model: str | None = record["model"]
    return model


def test_the_model_chosen_answers_the_next_message_and_stays_after_a_reload(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    path = new_chat_path()
    chat = ChatPage(open_page(), service.base_url).open(path)
    # A chat not created yet: the default shown, both offered.
    expect(picker(chat)).to_be_visible()
    expect(picker(chat)).to_have_value("gpt-test")
    options = picker(chat).locator("option")
    expect(options).to_have_text(["gpt-test (default)", "gpt-test-mini"])

    picker(chat).select_option("gpt-test-mini")
    chat.send("Which model are you?")
    assert asked(model_server)["model"] == "gpt-test-mini"
    # Once the first message made the chat, the choice is its own: PATCHed, kept.
    id_ = path.removeprefix("/?c=")
    eventually(lambda: stored_model(service, id_), "gpt-test-mini")

    chat.page.reload()
    chat.open(path)
    expect(picker(chat)).to_have_value("gpt-test-mini")
    chat.send("Still you?")
    assert asked(model_server)["model"] == "gpt-test-mini"

    # Back to the default: null on the service, the deployment's model answers.
    picker(chat).select_option("gpt-test")
    eventually(lambda: conversation(service, id_)["model"], None)
    chat.send("And now?")
    assert asked(model_server)["model"] == "gpt-test"


def test_a_new_chat_from_the_sidebar_takes_its_model_at_once(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    chat = ChatPage(open_page(), service.base_url).open()
    sidebar = Sidebar(chat.page)
    sidebar.new_chat.click()
    expect(chat.page).to_have_url(re.compile(r"\?c="))
    # The service created it: its tools are there before any message.
    expect(chat.page.get_by_role("button", name="Instructions")).to_be_enabled()
    picker(chat).select_option("gpt-test-mini")
    eventually(lambda: conversation(service, id_of(chat))["model"], "gpt-test-mini")
    chat.send("Hello there")
    assert asked(model_server)["model"] == "gpt-test-mini"


def open_instructions(chat: ChatPage) -> Locator:
    chat.page.get_by_role("button", name="Instructions").click()
    dialog = chat.page.get_by_role("dialog", name="Instructions for this chat")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Instructions", exact=True)).to_be_focused()
    return dialog


def system_messages(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "system"]


def test_instructions_are_the_system_message_the_model_receives(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    chat = ChatPage(open_page(), service.base_url).open(new_chat_path())
    button = chat.page.get_by_role("button", name="Instructions")
    # Not before the chat exists: the first message makes it.
    expect(button).to_be_disabled()
    chat.send("Hello")
    assert system_messages(asked(model_server)) == []
    expect(button).to_be_enabled()

    dialog = open_instructions(chat)
    expect(dialog).to_contain_text("follows the service's default instructions")
    dialog.get_by_label("Instructions", exact=True).fill("Answer like a pirate.")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()
    assert conversation(service, id_of(chat))["system_prompt"] == "Answer like a pirate."
    chat.send("Where is the treasure?")
    assert system_messages(asked(model_server)) == ["Answer like a pirate."]

    # They stay after a reload, and "Use the default" gives them back to the deployment.
    chat.page.reload()
    chat.open("/?c=" + id_of(chat))
    dialog = open_instructions(chat)
    expect(dialog.get_by_label("Instructions", exact=True)).to_have_value("Answer like a pirate.")
    expect(dialog).to_contain_text("has its own instructions")
    dialog.get_by_role("button", name="Use the default").click()
    expect(dialog).to_be_hidden()
    assert conversation(service, id_of(chat))["system_prompt"] is None
    chat.send("And now?")
    assert system_messages(asked(model_server)) == []


def test_instructions_longer_than_the_service_takes_are_refused_and_said(
    open_page: OpenPage, start_service: StartService, model_server: ModelServer
) -> None:
    env = model_server.openai_env(**PAGE_ENV, **MODELS, CHAT_MAX_MESSAGE_CHARS="40")
    service = start_service(env=env)
    chat = ChatPage(open_page(), service.base_url).open(new_chat_path())
    chat.send("Hi")
    # The refused PATCH, which Chromium logs as a console error.
    chat.watched.expect_failed_requests(f"/chat/conversations/{id_of(chat)}")
    dialog = open_instructions(chat)
    box = dialog.get_by_label("Instructions", exact=True)
    # The page's own limit: the service's default, 4000 characters.
    assert box.evaluate("box => box.maxLength") == 4000
    box.fill("x" * 41)
    expect(dialog).to_contain_text("41 of 4000 characters")
    dialog.get_by_role("button", name="Save").click()
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("Couldn't save the instructions.")
    expect(alert).to_contain_text("40")
    expect(box).to_have_attribute("aria-invalid", "true")
    assert conversation(service, id_of(chat))["system_prompt"] is None
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()


def export(chat: ChatPage, label: str) -> tuple[str, str]:
    """Export the chat shown: the file's suggested name and its text."""
    page = chat.page
    page.get_by_text("Export", exact=True).click()
    with page.expect_download() as info:
        page.get_by_role("button", name=label).click()
    download = info.value
    path = download.path()
    return download.suggested_filename, path.read_text(encoding="utf-8")


def test_the_chat_exports_as_markdown_and_as_json(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    model_server.script({"reply": "Paris is the capital."})
    chat = ChatPage(open_page(), service.base_url).open(new_chat_path())
    # Nothing to export before the first message makes the chat.
    expect(chat.page.get_by_text("Export", exact=True)).to_be_hidden()
    chat.send("What is the capital of France?")
    expect(chat.page.get_by_role("button", name="Export as Markdown")).to_be_hidden()

    name, text = export(chat, "Export as Markdown")
    # Named by the service's Content-Disposition, after the title.
    assert name == "What-is-the-capital-of-France.md"
    assert "What is the capital of France?" in text
    assert "Paris is the capital." in text
    assert "gpt-test" in text

    name, text = export(chat, "Export as JSON")
    assert name.endswith(".json")
    exported = json.loads(text)
    assert exported["id"] == id_of(chat)
    assert [(item["user"], item["AI"]) for item in exported["history"]] == [
        ("What is the capital of France?", "Paris is the capital.")
    ]


def stamp_of(item: Locator) -> Locator:
    return item.locator(".message__stamp")


def assert_stamped(user: Locator, ai: Locator, stored: dict[str, Any]) -> None:
    """The pair shows the stored time, and the reply its model and tokens."""
    created = datetime.fromisoformat(stored["created_at"])
    for item in (user, ai):
        time_ = stamp_of(item).locator("time")
        expect(time_).to_have_attribute(
            "datetime", created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        # Today: the short local time (the browser's zone is UTC here), the date in its title.
        hours = f"0?{created.hour}|{created.hour % 12 or 12}"
        expect(time_).to_have_text(re.compile(rf"^({hours}):{created.minute:02d}\b"))
        expect(time_).to_have_attribute("title", re.compile(str(created.year)))
    usage = stored["usage"]
    expect(stamp_of(ai)).to_contain_text(
        f"{stored['model']} · {usage['input_tokens']} in · {usage['output_tokens']} out"
    )
    expect(stamp_of(user)).not_to_contain_text(" in ")


def test_times_models_and_tokens_for_history_live_and_streamed_replies(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    path = new_chat_path()
    chat = ChatPage(open_page(), service.base_url).open(path)
    other = ChatPage(open_page(), service.base_url).open(path)
    picker(chat).select_option("gpt-test-mini")

    # Streamed, in the tab that sent it: stamped once stored, from the service's record.
    chat.send("one two three")
    # The reply shows while it streams; it is stored once it has ended.
    eventually(lambda: len(history(service, id_of(chat))), 1)
    stored = history(service, id_of(chat))
    assert stored[-1]["model"] == "gpt-test-mini"
    assert stored[-1]["usage"] is not None
    assert_stamped(chat.page.locator(USER).last, chat.page.locator(AI).last, stored[-1])
    # Live, in the other tab.
    expect(other.page.locator(AI)).to_have_count(1)
    assert_stamped(other.page.locator(USER).last, other.page.locator(AI).last, stored[-1])

    # From the history, after a reload.
    chat.page.reload()
    chat.open(path)
    assert_stamped(chat.page.locator(USER).last, chat.page.locator(AI).last, stored[-1])
    # The message's text itself is untouched.
    assert chat.user_texts() == ["one two three"]


def test_the_picker_is_hidden_when_one_model_is_offered(
    open_page: OpenPage, start_service: StartService, store_env: dict[str, str]
) -> None:
    """The dummy offers itself only: nothing to choose, so no picker; the other tools stay."""
    service = start_service(env={**PAGE_ENV, **store_env})
    chat = ChatPage(open_page(), service.base_url).open(new_chat_path())
    chat.send("Hello")
    # Filled from GET /chat/models, then left hidden.
    expect(chat.page.locator("#model-select option")).to_have_text(["dummy-1 (default)"])
    expect(picker(chat)).to_be_hidden()
    expect(chat.page.get_by_role("button", name="Instructions")).to_be_enabled()
    expect(chat.page.locator(AI).last.locator(".message__stamp")).to_contain_text("dummy-1")
