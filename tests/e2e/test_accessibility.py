"""The pages' states, each checked by axe-core against WCAG 2.2 AA (accessibility.py), in light
and dark, 1280 and 360 px wide.

Every e2e test's pages are checked as the test leaves them (conftest.py's ``open_page``); here
the states a reader passes through are reached on purpose and checked on the way: the page
before anything was said; a conversation with a Markdown reply (a code block, coloured, with
its language and Copy button, a link, the reply's own Copy); a reply being written, Stop in
place of Send, then stopped; the service out of reach; the sidebar with several chats,
renaming one and the delete confirmation (at 360 px, in the drawer); the chats under their date
headings, search results and a search that found nothing; a conversation with its Edit and
Regenerate buttons, a message being edited, and a reply being regenerated (the buttons
disabled); and the API docs, an operation tried out, its schemas, the authorization dialog.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.accessibility import assert_accessible, axe_violations, require_axe
from tests.e2e.browser import NARROW, WIDE, ColorScheme
from tests.e2e.chat_page import AI, ChatPage, Sidebar
from tests.e2e.conftest import OpenPage, StartModuleService
from tests.e2e.nginx import FRONTEND_DIR
from tests.e2e.test_api_docs import open_docs, require_swagger_ui
from tests.e2e.test_streaming_page import MARKDOWN, require_markdown_libraries
from tests.support.model import ModelServer
from tests.support.service import ServiceProcess

FRONTEND_ENV = {"CHAT_FRONTEND_DIR": str(FRONTEND_DIR), "CHAT_RATE_LIMIT_RPS": "0"}
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Look:
    scheme: ColorScheme
    viewport: dict[str, int]

    @property
    def narrow(self) -> bool:
        return self.viewport == NARROW

    def __str__(self) -> str:
        return f"{self.scheme}, {self.viewport['width']}x{self.viewport['height']}"


LOOKS = [Look(scheme, viewport) for scheme in ("light", "dark") for viewport in (WIDE, NARROW)]


@pytest.fixture(params=LOOKS, ids=lambda look: f"{look.scheme}-{look.viewport['width']}")
def look(request: pytest.FixtureRequest) -> Look:
    require_axe()
    look: Look = request.param
    return look


def check(page: Page, state: str, look: Look) -> None:
    assert_accessible(page, f"{state} ({look})")


def unique(text: str) -> str:
    """Chat titles and ids that no other test of the module uses."""
    return f"{text} {next(_numbers)}"


@pytest.fixture(scope="module")
def empty_service(start_module_service: StartModuleService) -> ServiceProcess:
    """A service nothing is ever written to: the page as its first visitor finds it."""
    return start_module_service(env=FRONTEND_ENV)


@pytest.fixture(scope="module")
def service(start_module_service: StartModuleService) -> ServiceProcess:
    """The dummy assistant, writing a word every 50 ms: a long reply takes a while."""
    return start_module_service(env={**FRONTEND_ENV, "CHAT_ASSISTANT_TOKEN_MS": "50"})


@pytest.fixture(scope="module")
def model_service(
    start_module_service: StartModuleService, model_server_process: ModelServer
) -> ServiceProcess:
    """Replies from the test model server, which says what a test scripts (Markdown)."""
    return start_module_service(env=model_server_process.openai_env(**FRONTEND_ENV))


def open_chat(open_page: OpenPage, base_url: str, look: Look, path: str = "/") -> ChatPage:
    watched = open_page(viewport=look.viewport, color_scheme=look.scheme)
    return ChatPage(watched, base_url).open(path)


def new_chat_path() -> str:
    """The address of a chat that does not exist yet: the page opens it empty."""
    return f"/?c=a11y-{next(_numbers)}"


def test_axe_runs_under_the_pages_policy_and_reports_what_it_finds(
    open_page: OpenPage, empty_service: ServiceProcess
) -> None:
    """axe-core gets into the page despite its CSP and Trusted Types (over the DevTools
    protocol), sets off none of the watchers, and a violation fails with what to fix."""
    require_axe()
    chat = ChatPage(open_page(), empty_service.base_url).open()
    page = chat.page
    assert axe_violations(page) == []
    assert page.evaluate("typeof window.axe.run") == "function"
    page.wait_for_timeout(250)  # time for a report of the run to reach Python, if there were one
    assert chat.watched.problems() == []

    page.evaluate(
        "() => { const image = document.createElement('img'); image.id = 'unexplained';"
        " image.src = 'favicon.svg'; document.querySelector('main').append(image); }"
    )
    with pytest.raises(AssertionError) as failed:
        assert_accessible(page, "an image without a text")
    report = str(failed.value)
    assert f"1 WCAG 2.2 AA violation(s) in an image without a text ({page.url})" in report
    assert "- image-alt (critical): Images must have alternative text" in report
    assert '    #unexplained\n      <img id="unexplained" src="favicon.svg">\n' in report
    assert "      Element does not have an alt attribute\n" in report
    # A check of part of the page sees only that part.
    assert axe_violations(page, include="header") == []
    assert [v.rule for v in axe_violations(page, include=["header", "main"])] == ["image-alt"]
    page.evaluate("document.getElementById('unexplained').remove()")


def test_the_empty_page(open_page: OpenPage, empty_service: ServiceProcess, look: Look) -> None:
    chat = open_chat(open_page, empty_service.base_url, look)
    expect(chat.page.get_by_role("heading", name="Start a conversation")).to_be_visible()
    check(chat.page, "the empty page", look)


def test_a_conversation_with_a_markdown_reply(
    open_page: OpenPage, model_service: ServiceProcess, model_server: ModelServer, look: Look
) -> None:
    require_markdown_libraries()
    model_server.script({"reply": "Hello! What shall we look at?"}, {"reply": MARKDOWN})
    chat = open_chat(open_page, model_service.base_url, look, new_chat_path())
    chat.send("Hello!")
    chat.send("Show me some Markdown")
    reply = chat.page.locator(AI).last
    expect(reply.locator("pre code")).to_have_text("print('hello')\n")
    expect(reply.get_by_role("link", name="the docs")).to_be_visible()
    check(chat.page, "a conversation with a Markdown reply", look)

    chat.watched.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=model_service.base_url
    )
    reply.get_by_role("button", name="Copy code").click()
    expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    check(chat.page, "a code block just copied", look)
    expect(reply.get_by_role("button", name="Copy code")).to_be_visible()
    reply.get_by_role("button", name="Copy reply").click()
    expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    check(chat.page, "a reply just copied", look)


def test_a_reply_being_written_then_stopped(
    open_page: OpenPage, service: ServiceProcess, look: Look
) -> None:
    chat = open_chat(open_page, service.base_url, look, new_chat_path())
    # The dummy quotes the message word by word: some fifteen seconds of reply.
    chat.input.fill("Count with me: " + " ".join(f"w{n}" for n in range(300)))
    chat.send_button.click()
    expect(chat.page.locator(AI).last).to_contain_text("w3")
    expect(chat.stop_button).to_be_visible()
    check(chat.page, "a reply being written", look)
    expect(chat.stop_button).to_be_visible()  # it was still being written when checked

    chat.stop_button.click()
    expect(chat.page.locator(".message--stopped .message__note")).to_have_text("Stopped")
    expect(chat.send_button).to_be_visible()
    check(chat.page, "a reply stopped", look)


def test_the_service_out_of_reach(open_page: OpenPage, service: ServiceProcess, look: Look) -> None:
    chat = open_chat(open_page, service.base_url, look, new_chat_path())
    # As if the service had gone: its requests fail in the network.
    chat.watched.expect_failed_requests("/chat/message", "/readyz")
    chat.page.route("**/chat/message", lambda route: route.abort())
    chat.page.route("**/readyz", lambda route: route.abort())
    chat.input.fill("Are you there?")
    chat.send_button.click()
    expect(chat.failed.get_by_role("alert")).to_contain_text("Can't reach the chat service")
    expect(chat.failed.get_by_role("button", name="Retry")).to_be_visible()
    expect(chat.connection).to_have_text("Offline")
    check(chat.page, "the service out of reach, a message not sent", look)


def test_the_chats_renaming_one_and_the_delete_confirmation(
    open_page: OpenPage, service: ServiceProcess, look: Look
) -> None:
    titles = [unique(title) for title in ("Trip to Lisbon", "Recipe ideas", "Tax return")]
    for title in titles:
        status, _, body = service.request("POST", "/chat/conversations", {"title": title})
        assert status == 201, body
    chat = open_chat(open_page, service.base_url, look)
    page = chat.page
    sidebar = Sidebar(page)
    if look.narrow:
        sidebar.toggle.click()
        expect(sidebar.toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar.link(titles[0])).to_be_visible()
    check(page, "the drawer open" if look.narrow else "the sidebar with several chats", look)

    item = sidebar.item(titles[1])
    item.get_by_role("button", name="Rename").click()
    expect(sidebar.nav.get_by_role("textbox", name=f"New title for “{titles[1]}”")).to_be_focused()
    check(page, "a chat being renamed", look)
    page.keyboard.press("Escape")

    item.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete this chat?")
    expect(dialog).to_be_visible()
    check(page, "the delete confirmation", look)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()


def test_the_chat_tools_model_instructions_and_export(
    open_page: OpenPage, model_service: ServiceProcess, model_server: ModelServer, look: Look
) -> None:
    """The model picker (the model server offers two), a reply with its time, model and tokens,
    the instructions dialog and the export menu."""
    model_server.script({"reply": "Hello! What shall we look at?"})
    chat = open_chat(open_page, model_service.base_url, look, new_chat_path())
    page = chat.page
    chat.send("Hello!")
    expect(page.get_by_label("Model", exact=True)).to_be_visible()
    expect(page.locator(AI).last.locator(".message__stamp")).to_contain_text(" out")
    check(page, "the model picker, and a reply with its time, model and tokens", look)

    page.get_by_role("button", name="Instructions").click()
    dialog = page.get_by_role("dialog", name="Instructions for this chat")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Instructions", exact=True).fill("Answer briefly.")
    check(page, "the instructions dialog", look)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    page.get_by_text("Export", exact=True).click()
    expect(page.get_by_role("button", name="Export as JSON")).to_be_visible()
    check(page, "the export menu open", look)


def test_regenerate_and_edit(
    open_page: OpenPage, model_service: ServiceProcess, model_server: ModelServer, look: Look
) -> None:
    """Each of the reader's stored messages has an Edit, the last reply a Regenerate; editing
    shows "Editing a message" and its Cancel above the box; while a reply is regenerated, the
    buttons are disabled."""
    chat = open_chat(open_page, model_service.base_url, look, new_chat_path())
    page = chat.page
    chat.send("Hello!")
    chat.send("Tell me more")
    regenerate = page.get_by_role("button", name="Regenerate reply", exact=True)
    expect(regenerate).to_be_visible()
    expect(page.get_by_role("button", name="Edit message", exact=True)).to_have_count(2)
    check(page, "a conversation with Edit and Regenerate", look)

    page.get_by_role("button", name="Edit message", exact=True).first.click()
    expect(page.locator("#editing")).to_be_visible()
    expect(chat.input).to_have_value("Hello!")
    check(page, "a message being edited", look)
    page.get_by_role("button", name="Cancel editing", exact=True).click()
    expect(page.locator("#editing")).to_be_hidden()

    model_server.script({"chunks": [f"word{n} " for n in range(40)], "chunk_delay_s": 0.2})
    regenerate.click()
    expect(page.locator(AI).last).to_contain_text("word1")
    expect(regenerate).to_be_disabled()
    check(page, "a reply being regenerated", look)
    chat.stop_button.click()
    expect(chat.send_button).to_be_visible()


def test_the_chats_grouped_by_date_and_searching_them(
    open_page: OpenPage, service: ServiceProcess, look: Look
) -> None:
    """The list under its date heading (Today), then the search's results (matches marked) and
    its "no chats match", in the drawer at 360 px."""
    word = unique("wombat").replace(" ", "")
    status, _, body = service.request("POST", "/chat/conversations", {})
    assert status == 201, body
    message = {"message": f"Where do a {word} and its friends live?", "conversation_id": body["id"]}
    assert service.request("POST", "/chat/message", message)[0] == 200
    chat = open_chat(open_page, service.base_url, look)
    page = chat.page
    sidebar = Sidebar(page)
    if look.narrow:
        sidebar.toggle.click()
        expect(sidebar.toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar.nav.get_by_role("heading", name="Today", level=3)).to_be_visible()
    check(page, "the chats under a date heading", look)

    field = page.get_by_role("searchbox", name="Search chats")
    field.fill(word)
    field.press("Enter")
    results = page.get_by_role("list", name="Search results")
    expect(results.locator("mark").first).to_have_text(word)
    check(page, "search results, matches marked", look)

    field.fill("zzyzx-no-such-word")
    field.press("Enter")
    expect(page.locator("#search-status")).to_have_text("No chats match")
    check(page, "a search that found nothing", look)
    field.press("Escape")
    expect(sidebar.items.first).to_be_visible()


def test_the_api_docs(open_page: OpenPage, service: ServiceProcess, look: Look) -> None:
    require_swagger_ui()
    page = open_page(viewport=look.viewport, color_scheme=look.scheme).page
    open_docs(page, service.base_url)
    operation = page.locator("#operations-chat-postChatMessage")
    expect(operation).to_be_visible()
    check(page, "the API docs", look)

    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    body = operation.get_by_role("textbox", name="Request body")
    body.fill(f'{{"message": "Hello", "conversation_id": "a11y-docs-{next(_numbers)}"}}')
    operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table tr.response")
    expect(answer.locator(".response-col_status")).to_have_text("200")
    check(page, "an operation tried out", look)

    for tab in operation.get_by_role("tab", name="Schema").all():
        tab.click()
    expect(operation.locator(".json-schema-2020-12").first).to_be_visible()
    check(page, "an operation's schemas", look)

    page.locator(".auth-wrapper").get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="Available authorizations")).to_be_visible()
    check(page, "the authorization dialog", look)
