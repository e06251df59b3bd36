"""Streamed replies in Chromium, through NGINX and from the service itself: the text grows as
the model writes, Stop keeps what was shown, Markdown renders, and hostile replies stay inert.

The assistant is the real OpenAI-compatible one, talking to the model server of
tests/support, which replays scripted replies chunk by chunk.
"""

from __future__ import annotations

import itertools
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.chat_page import AI, ChatPage
from tests.e2e.conftest import (
    LIBRARY_PATHS,
    OpenPage,
    StartModuleService,
    copy_page,
    markdown_libraries_installed,
)
from tests.e2e.nginx import FRONTEND_DIR, NginxServer
from tests.support.binaries import in_ci
from tests.support.model import ModelServer
from tests.support.service import ServiceProcess
from tests.support.sse import post_stream

# 24 words, one every 0.3 s: a reply that takes seven seconds to write.
WORDS = [f"word{n} " for n in range(24)]
SLOW = {"chunks": WORDS, "chunk_delay_s": 0.3}
MARKDOWN = (
    "Here is **bold** and a list:\n\n"
    "- first item\n"
    "- second item\n\n"
    "See [the docs](https://example.com/docs) or run:\n\n"
    "```python\n"
    "print('hello')\n"
    "```\n"
)
# Every way a reply could try to run script or load something, each setting a flag if it ran.
# The model server streams it word by word, so half-written tags pass through the page too.
HOSTILE = (
    '<img src="x" onerror="window.__pwned = 1">\n\n'
    "<img src=x onerror=window.__pwned=11>\n\n"
    "<script>window.__pwned = 2</script>\n\n"
    "[click me](javascript:window.__pwned=3)\n\n"
    "[shouting](JaVaScRiPt:window.__pwned=31)\n\n"
    '<a href="javascript:window.__pwned=4">raw link</a>\n\n'
    '<iframe src="javascript:window.__pwned=5"></iframe>\n\n'
    '<svg onload="window.__pwned=6"><circle r="5"/></svg>\n\n'
    "<svg><script>window.__pwned=61</script></svg>\n\n"
    '**<b onclick="window.__pwned=7">bold</b>**\n\n'
    '<details open ontoggle="window.__pwned=8"><summary>s</summary></details>\n\n'
    '<input autofocus onfocus="window.__pwned=9">\n\n'
    "![tracker](https://tracker.example/pixel.png)\n\n"
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)\n\n"
    "The end."
)
TRACERESPONSE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]")


def require_markdown_libraries() -> None:
    """The page renders Markdown only with the libraries `npm ci` copies into vendor/."""
    if markdown_libraries_installed():
        return
    reason = "frontend/vendor/ is missing: run `make` with Node.js (npm ci in frontend/)"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def service(
    start_module_service: StartModuleService, model_server_process: ModelServer
) -> ServiceProcess:
    # A short model timeout, so a model that stalls mid-reply fails the stream quickly.
    return start_module_service(
        env=model_server_process.openai_env(
            CHAT_FRONTEND_DIR=str(FRONTEND_DIR), CHAT_MODEL_TIMEOUT_S="2"
        )
    )


@pytest.fixture(params=["service", "nginx"])
def base_url(request: pytest.FixtureRequest, service: ServiceProcess) -> str:
    """The page from the service itself, and from NGINX in front of it."""
    if request.param == "nginx":
        server: NginxServer = request.getfixturevalue("nginx")
        return server.base_url
    return service.base_url


@pytest.fixture
def chat(open_page: OpenPage, base_url: str, model_server: ModelServer) -> ChatPage:
    return ChatPage(open_page(), base_url)


def last_reply(chat: ChatPage) -> str:
    texts = chat.ai_texts()
    return texts[-1] if texts else ""


def stored(service: ServiceProcess) -> list[dict[str, str]]:
    status, _, body = service.request("GET", "/chat/history")
    assert status == 200
    return list(body)


def stored_partial(chat: ChatPage, service: ServiceProcess, message: str, shown: str) -> str:
    """The stopped reply to ``message`` as stored, once the page shows it too.

    The service stores the pieces it sent, from the first, so at least the ``shown`` ones. It
    counts a piece as sent once written, which can be just before it sees the stream closed:
    the history may then hold one the page never received. That piece comes back with the
    exchange on the live updates stream, so the page shows it too, and page and history agree.
    """
    deadline = time.monotonic() + 5
    while not (history := stored(service)) or history[-1]["user"] != message:
        assert time.monotonic() < deadline, "the partial reply was not stored"
        time.sleep(0.05)
    reply = history[-1]["AI"]
    assert reply in {"".join(WORDS[:n]) for n in range(1, len(WORDS))}
    assert reply.startswith(shown)
    expect(chat.page.locator(AI).last.locator(".message__text")).to_have_text(reply.strip())
    return reply


def test_the_reply_grows_while_it_streams(chat: ChatPage, model_server: ModelServer) -> None:
    model_server.script({"chunks": WORDS[:8], "chunk_delay_s": 0.3, "first_chunk_delay_s": 0.5})
    chat.open()
    replies = chat.page.locator(AI).count()
    chat.input.fill("count for me")
    chat.send_button.click()
    # Until the first piece: "Thinking…", and Stop in place of Send.
    expect(chat.thinking).to_contain_text("Thinking")
    expect(chat.stop_button).to_be_visible()
    assert chat.page.locator(AI).count() == replies
    seen: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done = chat.send_button.is_visible()  # before reading: the text is final once Send is back
        text = last_reply(chat).strip() if chat.page.locator(AI).count() > replies else ""
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        if done:
            break
        chat.page.wait_for_timeout(50)
    final = "".join(WORDS[:8]).strip()
    assert seen[-1] == final
    intermediate = seen[:-1]
    assert len(intermediate) >= 2, f"the text grew in steps: {seen}"
    assert all(final.startswith(text) for text in intermediate)
    assert all(len(a) < len(b) for a, b in itertools.pairwise(seen))
    expect(chat.thinking).to_have_count(0)


def test_stop_keeps_the_partial_reply_after_a_reload(
    chat: ChatPage, model_server: ModelServer, service: ServiceProcess
) -> None:
    model_server.script(SLOW)
    chat.open()
    replies = chat.page.locator(AI).count()
    # A message of its own: the service is the module's, and the history's last exchange may
    # be another test's stopped reply to the same words until this one is stored.
    message = f"tell me everything, {chat.base_url}"
    chat.input.fill(message)
    chat.send_button.click()
    expect(chat.page.locator(AI)).to_have_count(replies + 1)
    # Stop right after a word arrives: the next one is 0.3 s away.
    expect(chat.page.locator(AI).last).to_contain_text("word2")
    chat.stop_button.click()
    expect(chat.send_button).to_be_visible()
    expect(chat.stop_button).to_be_hidden()
    expect(chat.page.locator(".message--stopped .message__note")).to_have_text("Stopped")
    # Announced as it stood when it stopped (set with the note, in the same step).
    announced = chat.page.locator("#announcer").text_content() or ""
    assert announced.startswith("Stopped. Assistant: word0 word1 word2")
    shown = announced.removeprefix("Stopped. Assistant: ")
    assert len(shown.split()) < len(WORDS)

    reply = stored_partial(chat, service, message, shown)
    chat.page.reload()
    expect(chat.page.locator(AI)).to_have_count(replies + 1)
    assert last_reply(chat).strip() == reply.strip()
    # The model stopped writing soon after: it saw the request close.
    [record] = model_server.requests()
    assert record["completed"] is False
    assert record["disconnected_at"] is not None


def test_escape_stops_the_reply_from_anywhere_on_the_page(
    chat: ChatPage, model_server: ModelServer, service: ServiceProcess
) -> None:
    model_server.script(SLOW)
    chat.open()
    replies = chat.page.locator(AI).count()
    chat.input.fill("and now stop")
    chat.input.press("Enter")
    # The conversation's earlier replies are on the page too: wait for this one's words.
    expect(chat.page.locator(AI)).to_have_count(replies + 1)
    expect(chat.page.locator(AI).last).to_contain_text("word1")
    # The reader has moved on to the conversation, away from the message box.
    chat.log.focus()
    chat.page.keyboard.press("Escape")
    expect(chat.send_button).to_be_visible()
    expect(chat.page.locator(".message--stopped .message__note").last).to_have_text("Stopped")
    shown = last_reply(chat)
    assert shown.split()[:2] == ["word0", "word1"]
    assert len(shown.split()) < len(WORDS)
    # Focus stays where the reader put it.
    expect(chat.log).to_be_focused()
    stored_partial(chat, service, "and now stop", shown)


def test_stop_before_the_first_word_leaves_the_message_unsent(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    chat = ChatPage(open_page(), service.base_url)
    model_server.script({"reply": "too late", "first_chunk_delay_s": 1.5})
    chat.open()
    before = len(stored(service))
    chat.input.fill("never mind")
    chat.send_button.click()
    expect(chat.thinking).to_be_visible()
    model_server.wait_for_requests(1)
    chat.stop_button.click()
    # Nothing was said, so nothing is kept: the message can be sent again.
    expect(chat.failed).to_contain_text("Stopped before the reply began.")
    expect(chat.failed.get_by_role("button", name="Retry")).to_be_visible()
    expect(chat.thinking).to_have_count(0)
    expect(chat.send_button).to_be_visible()
    # The model call was closed during its pause, before it said anything.
    deadline = time.monotonic() + 5
    while (record := model_server.requests()[0])["disconnected_at"] is None:
        assert time.monotonic() < deadline, "the model call went on after Stop"
        time.sleep(0.05)
    assert record["chunks_sent"] == 0
    assert len(stored(service)) == before


def test_markdown_renders_with_a_copy_button(
    chat: ChatPage, model_server: ModelServer, base_url: str
) -> None:
    require_markdown_libraries()
    chat.watched.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    model_server.script({"reply": MARKDOWN})
    chat.open()
    chat.send("show me some markdown")
    reply = chat.page.locator(AI).last
    expect(reply.locator("strong")).to_have_text("bold")
    expect(reply.locator("li")).to_have_text(["first item", "second item"])
    link = reply.get_by_role("link", name="the docs")
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(reply.locator("pre code")).to_have_text("print('hello')\n")
    copy = reply.get_by_role("button", name="Copy code", exact=True)
    expect(copy).to_have_text("Copy code")  # "code" for screen readers only
    copy.click()
    expect(reply.get_by_role("button", name="Copied", exact=True)).to_be_visible()
    assert chat.page.evaluate("navigator.clipboard.readText()") == "print('hello')\n"
    # The user's own message is never rendered: its asterisks stay.
    chat.send("**not bold**")
    expect(chat.page.locator(".message--user").last.locator("strong")).to_have_count(0)


def test_hostile_markdown_and_html_stay_inert(chat: ChatPage, model_server: ModelServer) -> None:
    require_markdown_libraries()
    model_server.script({"reply": HOSTILE})
    chat.open()
    chat.send("say something nasty")
    reply = chat.page.locator(AI).last
    expect(reply).to_contain_text("The end.")
    chat.page.wait_for_timeout(300)  # time for an onerror or onload to fire, if one got in
    assert chat.page.evaluate("window.__pwned") is None
    inert = ("img", "script", "iframe", "svg", "details", "input", "[onclick]", "[onerror]")
    for selector in (*inert, "[onload]", "[ontoggle]", "[onfocus]", "[style]"):
        expect(reply.locator(selector)).to_have_count(0)
    # Only http(s) and mailto links survive, and each opens in a new tab without this page.
    for link in reply.locator("a[href]").all():
        assert re.match(r"(?:https?|mailto):", link.get_attribute("href") or ""), link
        expect(link).to_have_attribute("rel", "noopener noreferrer")
    # Raw HTML is shown as text, not dropped silently.
    expect(reply).to_contain_text("<script>window.__pwned = 2</script>")
    expect(reply).to_contain_text('<iframe src="javascript:window.__pwned=5"></iframe>')
    # Links with a script or data URL keep their text and lose the URL.
    for name in ("click me", "shouting", "data"):
        assert reply.get_by_text(name, exact=True).get_attribute("href") is None, name
    # An image becomes a link to it: nothing is loaded from elsewhere.
    expect(reply.get_by_role("link", name="tracker")).to_have_attribute(
        "href", "https://tracker.example/pixel.png"
    )
    # Clicking what was a javascript: link runs nothing.
    reply.get_by_text("click me", exact=True).click()
    assert chat.page.evaluate("window.__pwned") is None


def test_no_other_script_can_claim_dompurifys_trusted_types_policy(chat: ChatPage) -> None:
    """The CSP allows one Trusted Types policy, named dompurify, and no duplicates. DOMPurify
    makes it as soon as the page loads the library, so the name is taken: nothing else can
    make a policy that turns strings into HTML."""
    require_markdown_libraries()
    chat.open()
    claimed = chat.page.evaluate(
        "() => { try { trustedTypes.createPolicy('dompurify', {createHTML: s => s});"
        " return 'made'; } catch (error) { return error.name; } }"
    )
    assert claimed == "TypeError"
    for _ in range(100):  # violation events reach Python while Playwright waits
        if chat.watched.csp_violations:
            break
        chat.page.wait_for_timeout(50)
    assert {v.split()[0] for v in chat.watched.csp_violations} == {"trusted-types"}
    chat.watched.clear()  # provoked on purpose


def test_a_model_that_fails_marks_the_message_failed(
    chat: ChatPage, model_server: ModelServer, service: ServiceProcess
) -> None:
    # A 400 (the server refused the request) is not retried: a 500 would be, twice, with
    # back-off that a busy machine can stretch past CHAT_MODEL_TIMEOUT_S, which is a timeout
    # (its own message), not the failure this test is about.
    model_server.default(status=400)
    chat.open()
    before = len(stored(service))
    chat.watched.expect_failed_requests("/chat/message")
    chat.input.fill("this will fail")
    chat.send_button.click()
    expect(chat.failed).to_have_count(1)
    expect(chat.failed).to_contain_text("The assistant failed to reply.")
    expect(chat.failed.get_by_role("button", name="Retry")).to_be_visible()
    assert len(stored(service)) == before


def test_a_model_that_stalls_mid_reply_ends_in_an_error_not_a_partial_reply(
    chat: ChatPage, model_server: ModelServer, service: ServiceProcess
) -> None:
    model_server.script({"chunks": ["half ", "a ", "reply"], "hang_after_chunks": 2})
    chat.open()
    replies = chat.page.locator(AI).count()
    before = len(stored(service))
    chat.input.fill("this will stall")
    chat.send_button.click()
    expect(chat.page.locator(AI).last).to_contain_text("half a")
    # The service gives up after its 2 s model timeout and sends an error event: nothing is
    # stored, so the page drops the half reply, says what happened and offers a retry.
    expect(chat.failed).to_have_count(1)
    expect(chat.failed).to_contain_text("The model stopped in the middle of its reply.")
    expect(chat.page.locator(AI)).to_have_count(replies)
    assert len(stored(service)) == before
    chat.failed.get_by_role("button", name="Retry").click()
    expect(chat.page.locator(AI)).to_have_count(replies + 1)
    expect(chat.failed).to_have_count(0)


@pytest.fixture(scope="module")
def plain_frontend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page's files without vendor/: as set up on a machine without Node.js."""
    return copy_page(tmp_path_factory.mktemp("frontend-plain"), libraries=False)


@pytest.fixture(scope="module")
def plain_service(
    start_module_service: StartModuleService,
    model_server_process: ModelServer,
    plain_frontend: Path,
) -> ServiceProcess:
    return start_module_service(
        env=model_server_process.openai_env(CHAT_FRONTEND_DIR=str(plain_frontend))
    )


def test_without_the_libraries_replies_are_plain_text(
    open_page: OpenPage, plain_service: ServiceProcess, model_server: ModelServer
) -> None:
    chat = ChatPage(open_page(), plain_service.base_url)
    chat.watched.expect_failed_requests(*LIBRARY_PATHS)
    model_server.script({"reply": MARKDOWN})
    chat.open()
    chat.send("markdown, please")
    reply = chat.page.locator(AI).last
    # Read it once the stream ended: mid-stream, the text is a prefix of the reply.
    expect(reply).not_to_have_class(re.compile(r"\bmessage--streaming\b"))
    expect(reply.locator("strong")).to_have_count(0)
    assert last_reply(chat) == MARKDOWN
    assert any("npm ci" in message.text for message in chat.watched.console)


def test_nginx_passes_a_stream_through_as_it_is_written(
    nginx: NginxServer, model_server: ModelServer
) -> None:
    # The model writes one piece, then stalls (the service gives up after its 2 s timeout).
    model_server.script({"chunks": ["first ", "never sent"], "hang_after_chunks": 1})
    # A browser's Accept-Encoding: NGINX must not compress the stream, that would buffer it.
    stream = post_stream(
        nginx.port, {"message": "through the proxy"}, headers={"Accept-Encoding": "gzip"}
    )
    try:
        first = next(stream.events())
        # Ordering, not timing: the first piece came through while the model was still
        # stalled on the second, so the stream had not ended. A buffering proxy would hold
        # the piece until the service ended the stream.
        [record] = model_server.requests()
        assert record["chunks_sent"] == 1
        assert record["ended_at"] is None
        assert (first.event, first.data) == ("delta", {"text": "first "})
        assert stream.status == 200
        assert stream.header("Content-Type") == "text/event-stream"
        assert stream.header("Content-Encoding") is None
        assert stream.header("Content-Length") is None
        assert TRACERESPONSE.fullmatch(stream.header("traceresponse") or "")
        # NGINX's cache policy for the API replaces the service's no-cache: stricter still.
        assert stream.header("Cache-Control") == "no-store"
        # X-Accel-Buffering is for NGINX itself, which consumes it.
        assert stream.header("X-Accel-Buffering") is None
    finally:
        stream.close()


def test_nginx_passes_a_whole_stream_intact(nginx: NginxServer, model_server: ModelServer) -> None:
    model_server.script({"chunks": ["a ", "b ", "c ", "d ", "e"]})
    stream = post_stream(nginx.port, {"message": "all of it"}, headers={"Accept-Encoding": "gzip"})
    events = list(stream.events())
    # Pieces that reach the service together go on as one delta: one to five of them.
    assert [e.event for e in events] == ["delta"] * (len(events) - 1) + ["done"]
    assert 2 <= len(events) <= 6
    assert "".join(e.data["text"] for e in events[:-1]) == "a b c d e"
    assert events[-1].data == {"status": "Success", "response": "a b c d e"}


def test_nginx_refuses_npms_files(nginx: NginxServer) -> None:
    # npm's files, and the checks' tools, settings and tests (frontend/README.md).
    for path in (
        "/package.json",
        "/package-lock.json",
        "/copy-vendor.mjs",
        "/node_modules/x.js",
        "/jsconfig.json",
        "/eslint.config.mjs",
        "/stamp.mjs",
        "/modules.d.ts",
        "/test/sse.test.js",
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(nginx.base_url + path, timeout=5)
        assert refused.value.code == 404, path


# Every part of a reply, then how far each reaches past what holds it: the chat column (the
# log) must never scroll sideways; a long code line scrolls inside its own block.
_OVERFLOW = """() => {
  const log = document.getElementById('log');
  const edge = log.getBoundingClientRect().right;
  const reply = [...document.querySelectorAll('#messages .message--ai')].at(-1);
  const pre = reply.querySelector('pre');
  const copy = reply.querySelector('.code-block__copy');
  return {
    logScrolls: log.scrollWidth - log.clientWidth,
    pageScrolls: document.documentElement.scrollWidth - window.innerWidth,
    bubblePast: reply.querySelector('.message__text').getBoundingClientRect().right - edge,
    copyPast: copy.getBoundingClientRect().right - edge,
    codeScrolls: pre.scrollWidth - pre.clientWidth,
  };
}"""


@pytest.mark.parametrize("width", [360, 1280])
def test_a_long_code_line_scrolls_in_its_block_not_the_chat(
    open_page: OpenPage, base_url: str, model_server: ModelServer, width: int
) -> None:
    """A reply with a code line longer than the screen is wide: its bubble, its Copy button
    and the chat column stay within the window; the code block scrolls by itself."""
    require_markdown_libraries()
    line = "values = [" + ", ".join(str(n) for n in range(300)) + "]"
    model_server.script({"reply": f"Here it is:\n\n```python\n{line}\n```\n\nThat is all."})
    chat = ChatPage(open_page(viewport={"width": width, "height": 740}), base_url).open()
    chat.send("one long line, please")
    expect(chat.page.locator(AI).last.locator("pre code")).to_have_text(line + "\n")
    measured = chat.page.evaluate(_OVERFLOW)
    assert measured["codeScrolls"] > 0, measured  # the line is longer than the block
    assert {k: v for k, v in measured.items() if k != "codeScrolls" and v > 0.5} == {}, measured
    # The keyboard reaches the block, and scrolls it.
    code = chat.page.locator(AI).last.locator("pre")
    code.press("ArrowRight")  # focuses the block, then the key
    chat.page.wait_for_function(
        "() => [...document.querySelectorAll('#messages .message--ai pre')].at(-1).scrollLeft > 0",
        timeout=10_000,
    )
    assert chat.page.evaluate(_OVERFLOW)["logScrolls"] <= 0.5
