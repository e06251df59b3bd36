"""The page in Chromium, through NGINX in front of the real service.

The service answers after 500 ms (CHAT_ASSISTANT_LATENCY_MS), long enough to see the
"thinking" state, and accepts at most 500 characters, to provoke a 400.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.chat_page import AI, SERVICE_DOWN_FAILURES, USER, ChatPage
from tests.e2e.conftest import OpenPage, StartModuleService
from tests.e2e.nginx import NginxServer
from tests.support.service import ServiceProcess

MAX_CHARS = 500

# The page's state while a reply is pending, read in one go once "thinking" is shown.
PENDING_STATE = """() => {
  const thinking = document.querySelector('.message--thinking');
  if (!thinking || !thinking.checkVisibility()) return null;
  const shown = (name) => [...document.querySelectorAll('button')]
    .some(b => b.textContent.trim() === name && b.checkVisibility());
  const sent = [...document.querySelectorAll('#messages .message--user')].at(-1);
  return {
    thinking: thinking.querySelector('.thinking__label').textContent,
    send: shown('Send'),
    stop: shown('Stop'),
    sent: sent ? sent.querySelector('.message__text').textContent : null,
    box: document.getElementById('message').value,
  };
}"""


@pytest.fixture(scope="module")
def service(start_module_service: StartModuleService) -> ServiceProcess:
    return start_module_service(
        env={"CHAT_ASSISTANT_LATENCY_MS": "500", "CHAT_MAX_MESSAGE_CHARS": str(MAX_CHARS)}
    )


@pytest.fixture
def chat(open_page: OpenPage, nginx: NginxServer) -> ChatPage:
    return ChatPage(open_page(), nginx.base_url)


def test_send_a_message_and_see_the_reply(chat: ChatPage) -> None:
    chat.open()
    replies = chat.page.locator(AI).count()
    chat.input.fill("What is the capital of France?")
    chat.send_button.click()

    # While the reply is pending: the message is shown, the assistant is thinking, and
    # Stop takes the place of Send, so a second message cannot be sent. All seen at one
    # moment: one check after another could outlast the pending state on a loaded machine.
    pending = chat.page.wait_for_function(PENDING_STATE)
    assert pending.json_value() == {
        "thinking": "Thinking…",
        "send": False,
        "stop": True,
        "sent": "What is the capital of France?",
        "box": "",
    }

    reply = chat.wait_for_reply(replies)
    assert re.fullmatch(r'You said: "What is the capital of France\?"\. This is turn \d+.*', reply)
    expect(chat.thinking).to_have_count(0)
    expect(chat.send_button).to_be_enabled()
    expect(chat.stop_button).to_be_hidden()
    # Screen readers get the reply from the live region.
    expect(chat.page.locator("#announcer[aria-live=polite]")).to_have_text(f"Assistant: {reply}")
    # config.json ships without a Jaeger URL: no trace links.
    expect(chat.page.locator(".trace-link")).to_have_count(0)
    expect(chat.connection).to_have_text("Online")


def test_reload_shows_the_history(chat: ChatPage, service: ServiceProcess) -> None:
    chat.open()
    reply = chat.send("Remember me after a reload")
    chat.page.reload()
    expect(chat.page.locator(USER).last).to_contain_text("Remember me after a reload")
    assert chat.ai_texts()[-1] == reply
    # Exactly the latest page of the stored history, oldest first.
    status, _, history = service.request("GET", "/chat/history?limit=50")
    assert status == 200
    assert chat.user_texts() == [e["user"] for e in history]
    assert chat.ai_texts() == [e["AI"] for e in history]
    # The newest message is in view: the page opened at the end of the conversation.
    assert chat.distance_from_bottom() <= 1


def test_html_in_messages_is_shown_as_text(chat: ChatPage) -> None:
    payload = "<img src=x onerror=alert(1)>"
    chat.open()
    reply = chat.send(payload)
    for _ in range(2):  # as sent, then as read back from the history
        assert chat.user_texts()[-1] == payload
        assert payload in chat.ai_texts()[-1]
        expect(chat.page.locator("#messages img")).to_have_count(0)
        chat.page.reload()
        expect(chat.page.locator(f"{AI} .bubble").last).to_have_text(f"Assistant: {reply}")
    assert chat.watched.dialogs == []


def test_keyboard_only(chat: ChatPage) -> None:
    chat.open()
    page = chat.page
    # However many chats the sidebar lists before it (the module's tests share one service),
    # Tab reaches the box without passing any control twice.
    controls = page.locator("a[href], button, input, select, textarea, [tabindex]").count()
    for _ in range(controls + 1):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "message":
            break
    else:
        pytest.fail("Tab never reached the message box")
    assert_focus_is_visible(chat)

    replies = page.locator(AI).count()
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    page.keyboard.press("Enter")
    chat.wait_for_reply(replies)
    assert chat.user_texts()[-1] == "typed, not clicked\nsecond line"
    assert page.evaluate("document.activeElement.id") == "message"

    # The Send button works from the keyboard too, and focus comes back to the box.
    page.keyboard.type("sent with the button")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "send"
    assert_focus_is_visible(chat)
    page.keyboard.press("Enter")
    chat.wait_for_reply(replies + 1)
    assert chat.user_texts()[-1] == "sent with the button"
    assert page.evaluate("document.activeElement.id") in ("message", "send")


def assert_focus_is_visible(chat: ChatPage) -> None:
    outline = chat.page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    )
    style, width = outline
    assert style != "none"
    assert width >= 2


def test_a_rejected_message_shows_the_services_reason(
    chat: ChatPage, service: ServiceProcess
) -> None:
    chat.watched.expect_failed_requests("/chat/message")
    too_long = "x" * (MAX_CHARS + 1)
    status, _, body = service.request("POST", "/chat/message", {"message": too_long})
    assert status == 400
    chat.open()
    chat.input.fill(too_long)
    chat.send_button.click()
    expect(chat.failed).to_have_count(1)
    expect(chat.failed.get_by_role("alert")).to_contain_text(body["message"])
    # Not lost: the text is back in the box to shorten, and the service was reachable.
    expect(chat.input).to_have_value(too_long)
    expect(chat.connection).to_have_text("Online")
    expect(chat.send_button).to_be_enabled()


def test_service_down_shows_errors_in_place_and_retry_recovers(
    chat: ChatPage, service: ServiceProcess
) -> None:
    chat.watched.expect_failed_requests(*SERVICE_DOWN_FAILURES)
    text = "Sent while the service was down"
    chat.open()
    service.stop()
    try:
        # NGINX still serves the page; the history says the service is away, in place.
        chat.page.reload()
        expect(chat.history_notice).to_contain_text(
            "Couldn't load the conversation. The chat service is unavailable."
        )
        expect(chat.connection).to_have_text("Offline")
        chat.input.fill(text)
        chat.send_button.click()
        expect(chat.failed).to_have_count(1)
        expect(chat.failed.get_by_role("alert")).to_contain_text(
            "Not sent. The chat service is unavailable. Try again in a moment."
        )
        expect(chat.input).to_have_value(text)
        expect(chat.send_button).to_be_enabled()
    finally:
        service.start()

    chat.history_notice.get_by_role("button", name="Retry").click()
    expect(chat.history_notice).to_have_count(0)
    expect(chat.connection).to_have_text("Online")
    stored = len(service.request("GET", "/chat/history?limit=50")[2])
    expect(chat.page.locator(USER)).to_have_count(stored + 1)  # the history and the unsent one

    replies = chat.page.locator(AI).count()
    chat.failed.get_by_role("button", name="Retry").click()
    chat.wait_for_reply(replies)
    expect(chat.failed).to_have_count(0)
    assert chat.user_texts().count(text) == 1
    assert chat.user_texts()[-1] == text
    expect(chat.input).to_have_value("")


def test_the_csp_is_enforced_and_violations_are_seen(chat: ChatPage) -> None:
    """The "no CSP violations" checks of the other tests can fail: here they would."""
    chat.open()
    html_sink = chat.page.evaluate(
        "() => { try { document.body.innerHTML = '<b>x</b>'; return 'allowed'; }"
        " catch (error) { return error.name; } }"
    )
    assert html_sink == "TypeError"  # Trusted Types: no HTML from strings
    # Only DOMPurify's policy may exist: a script cannot make one to turn strings into HTML.
    policy = chat.page.evaluate(
        "() => { try { trustedTypes.createPolicy('mine', {createHTML: s => s}); return 'made'; }"
        " catch (error) { return error.name; } }"
    )
    assert policy == "TypeError"
    chat.page.evaluate(
        "() => { const img = document.createElement('img'); img.id = 'provoked';"
        " img.src = 'http://192.0.2.1/x.png'; document.body.append(img); }"
    )
    expected = {"img-src", "require-trusted-types-for", "trusted-types"}
    for _ in range(100):  # events reach Python while Playwright waits, not while it sleeps
        directives = {v.split()[0] for v in chat.watched.csp_violations}
        if directives >= expected:
            break
        chat.page.wait_for_timeout(50)
    # Each is reported once per policy: the header's and the page's <meta> copy.
    assert directives == expected
    assert any("img-src" in m.text for m in chat.watched.console if m.type == "error")
    chat.watched.clear()  # provoked on purpose
    chat.page.evaluate("document.getElementById('provoked').remove()")  # not part of the page
