"""Code in replies, and copying replies, in Chromium: code blocks are highlighted (highlight.js,
under the page's CSP and Trusted Types) and labelled with their language, a block being
streamed is highlighted once its closing fence arrives, nothing in a reply's code can become
markup, and each reply's Copy button copies the Markdown the model wrote.

The assistant is the real OpenAI-compatible one, talking to the model server of tests/support.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser import ColorScheme
from tests.e2e.chat_page import AI, ChatPage
from tests.e2e.conftest import OpenPage, StartModuleService, copy_page
from tests.e2e.nginx import FRONTEND_DIR
from tests.e2e.test_streaming_page import MARKDOWN, require_markdown_libraries
from tests.support.model import ModelServer
from tests.support.service import ServiceProcess

JAVASCRIPT = (
    "const items = document.querySelectorAll('li');\n"
    "for (const item of items) {\n"
    "  console.log(item.textContent);\n"
    "}\n"
)
PYTHON = (
    "@cache\n"
    "def greet(name: str) -> str:\n"
    "    # say hello\n"
    "    return f'Hello, {name}!' + str(42) if True else None\n"
    "\n"
    "class Greeter(Base):\n"
    "    pass\n"
)
# The same attack outside code, inside a fenced block of a highlighted language, of a language
# highlight.js reads as markup, of one it does not know, without a language, inside inline
# code, and as class names that would pass for highlight.js's own.
ATTACK = "<img src=x onerror=window.__pwned=1>"
HOSTILE_CODE = (
    f"Before {ATTACK} the code.\n\n"
    f"```python\nhtml = '{ATTACK}'\n```\n\n"
    f"```html\n{ATTACK}\n<script>window.__pwned = 2</script>\n```\n\n"
    f"```not-a-language\n{ATTACK}\n```\n\n"
    f"```\n{ATTACK}\n```\n\n"
    f"Inline `{ATTACK}` too, and "
    '<span class="hljs-keyword" onclick="window.__pwned=3">a fake token</span>.\n'
)
# A token's colour and the code's own, for each highlighted span of the block.
_TOKEN_COLOURS = """code => [...code.querySelectorAll('span[class^=hljs-]')].map(span => ({
  token: span.className, colour: getComputedStyle(span).color,
  plain: getComputedStyle(code).color,
}))"""


@pytest.fixture(scope="module")
def service(
    start_module_service: StartModuleService, model_server_process: ModelServer
) -> ServiceProcess:
    return start_module_service(
        env=model_server_process.openai_env(CHAT_FRONTEND_DIR=str(FRONTEND_DIR))
    )


@pytest.fixture(params=["service", "nginx"])
def base_url(request: pytest.FixtureRequest, service: ServiceProcess) -> str:
    """The page from the service itself, and from NGINX in front of it (each its own CSP)."""
    if request.param == "nginx":
        return str(request.getfixturevalue("nginx").base_url)
    return service.base_url


def open_chat(open_page: OpenPage, base_url: str, scheme: ColorScheme = "light") -> ChatPage:
    require_markdown_libraries()
    watched = open_page(color_scheme=scheme)
    watched.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    return ChatPage(watched, base_url).open()


def written(reply: Locator) -> None:
    """Once the reply is whole: no longer streaming."""
    expect(reply).not_to_have_class(re.compile(r"\bmessage--streaming\b"))


def code_block(reply: Locator, index: int = 0) -> Locator:
    return reply.locator(".code-block").nth(index)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_python_block_is_coloured_and_labelled(
    open_page: OpenPage, base_url: str, model_server: ModelServer, scheme: ColorScheme
) -> None:
    model_server.script({"reply": MARKDOWN})
    chat = open_chat(open_page, base_url, scheme)
    chat.send("some python, please")
    block = code_block(chat.page.locator(AI).last)
    expect(block.locator(".code-block__language")).to_have_text("python")
    code = block.locator("pre code")
    expect(code).to_have_text("print('hello')\n")
    expect(code.locator("span.hljs-string")).to_have_text("'hello'")
    tokens = code.evaluate(_TOKEN_COLOURS)
    assert {t["token"] for t in tokens} == {"hljs-built_in", "hljs-string"}, tokens
    # Each token has a colour of its own, not the code's: the theme's stylesheet applies.
    assert all(t["colour"] != t["plain"] for t in tokens), tokens
    assert len({t["colour"] for t in tokens}) == 2, tokens


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_colour_of_the_theme_is_shown(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer, scheme: ColorScheme
) -> None:
    """A block with every kind of token the theme colours: each differs from the code's own
    colour, and axe-core (at the end of the test) finds each readable on the code's ground."""
    model_server.script({"reply": f"```python\n{PYTHON}```\n"})
    chat = open_chat(open_page, service.base_url, scheme)
    chat.send("all the colours")
    code = code_block(chat.page.locator(AI).last).locator("pre code")
    expect(code).to_have_text(PYTHON)
    tokens = code.evaluate(_TOKEN_COLOURS)
    kinds = {t["token"].split()[0] for t in tokens}
    assert kinds >= {"hljs-keyword", "hljs-comment", "hljs-title", "hljs-string", "hljs-number"}
    # Parameters and a string's {substitution} hold other tokens, in the code's own colour.
    coloured = [t for t in tokens if t["token"] not in {"hljs-params", "hljs-subst"}]
    assert all(t["colour"] != t["plain"] for t in coloured), tokens
    assert len({t["colour"] for t in coloured}) >= 6, tokens


def test_a_block_without_a_language_is_detected_or_left_plain(
    open_page: OpenPage, base_url: str, model_server: ModelServer
) -> None:
    model_server.script({"reply": f"```\n{JAVASCRIPT}```\n\n```\nsome words, not code\n```\n"})
    chat = open_chat(open_page, base_url)
    chat.send("guess the languages")
    reply = chat.page.locator(AI).last
    detected, unsure = code_block(reply, 0), code_block(reply, 1)
    expect(detected.locator(".code-block__language")).to_have_text("javascript")
    expect(detected.locator("pre code")).to_have_text(JAVASCRIPT)
    expect(detected.locator("span.hljs-keyword").first).to_have_text("const")
    # Too little to tell: no label, and no colours that would be a guess.
    expect(unsure.locator("pre code")).to_have_text("some words, not code\n")
    expect(unsure.locator(".code-block__language")).to_have_count(0)
    expect(unsure.locator("pre span")).to_have_count(0)
    expect(unsure.get_by_role("button", name="Copy code")).to_be_visible()


def test_code_in_a_reply_never_becomes_markup(
    open_page: OpenPage, base_url: str, model_server: ModelServer
) -> None:
    model_server.script({"reply": HOSTILE_CODE})
    chat = open_chat(open_page, base_url)
    chat.send("code that attacks")
    reply = chat.page.locator(AI).last
    written(reply)
    chat.page.wait_for_timeout(300)  # time for an onerror to fire, if an image got in
    assert chat.page.evaluate("window.__pwned") is None
    for selector in ("img", "script", "[onerror]", "[onclick]", "[style]"):
        expect(reply.locator(selector)).to_have_count(0)
    # Every block shows the attack as the text it is, whatever its language.
    codes = reply.locator("pre code")
    expect(codes).to_have_text(
        [
            f"html = '{ATTACK}'\n",
            f"{ATTACK}\n<script>window.__pwned = 2</script>\n",
            f"{ATTACK}\n",
            f"{ATTACK}\n",
        ]
    )
    expect(reply.locator(".code-block__language")).to_have_text(
        ["python", "html", "not-a-language"]
    )
    expect(reply.locator("p code")).to_have_text(ATTACK)
    expect(reply.locator("p").first).to_have_text(f"Before {ATTACK} the code.")
    # The raw span is text; the only classes are highlight.js's, inside code blocks.
    expect(reply).to_contain_text('<span class="hljs-keyword" onclick="window.__pwned=3">')
    outside: int = reply.evaluate(
        "r => [...r.querySelectorAll('.message__text [class]')]"
        ".filter(n => !n.closest('.code-block')).length"
    )
    assert outside == 0


# Each time the reply's text changes while it streams: the code so far, and whether it has
# colours yet.
_RECORD_RENDERS = """() => {
  window.__renders = [];
  new MutationObserver(() => {
    const item = [...document.querySelectorAll('#messages .message--ai')].at(-1);
    const code = item?.querySelector('pre code');
    if (!code || !item.classList.contains('message--streaming')) return;
    window.__renders.push({ code: code.textContent, spans: code.querySelectorAll('span').length,
                            text: item.querySelector('.message__text').textContent });
  }).observe(document.getElementById('messages'), { childList: true, subtree: true });
}"""


def test_a_streamed_block_is_highlighted_once_its_fence_closes(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    """Plain while the block may still grow, coloured from the render that brings its closing
    fence, while the rest of the reply is still being written."""
    chunks = ["Here:\n\n", "```python\n", "x = 1\n", "```\n\n", "and ", "more ", "words."]
    model_server.script({"chunks": chunks, "chunk_delay_s": 0.4})
    chat = open_chat(open_page, service.base_url)
    chat.page.evaluate(_RECORD_RENDERS)
    chat.send("stream some code")
    expect(chat.page.locator(AI).last.locator("span.hljs-number")).to_have_text("1")
    renders: list[dict[str, object]] = chat.page.evaluate("window.__renders")
    open_fence = [r for r in renders if r["code"] == "x = 1\n" and "more" not in str(r["text"])]
    assert open_fence, renders
    # Rendered without its closing fence, the block had no colours.
    assert open_fence[0]["spans"] == 0, renders
    # Closed, it had them before the reply ended.
    assert any(r["spans"] and "words." not in str(r["text"]) for r in renders), renders


def copy_reply(page: Page, reply: Locator) -> str:
    """Press the reply's Copy button with the keyboard; what the clipboard holds then."""
    button = reply.get_by_role("button", name="Copy reply", exact=True)
    expect(button).to_have_text("Copy reply")  # "reply" for screen readers only
    button.focus()
    page.keyboard.press("Enter")
    expect(reply.get_by_role("button", name="Copied", exact=True)).to_be_visible()
    copied: str = page.evaluate("navigator.clipboard.readText()")
    return copied


def test_copy_puts_the_replys_markdown_on_the_clipboard(
    open_page: OpenPage, base_url: str, model_server: ModelServer
) -> None:
    model_server.script({"reply": MARKDOWN})
    chat = open_chat(open_page, base_url)
    chat.send("markdown to copy")
    reply = chat.page.locator(AI).last
    assert copy_reply(chat.page, reply) == MARKDOWN
    expect(reply.get_by_role("button", name="Copy reply", exact=True)).to_be_visible()
    # The same from the history, after a reload.
    chat.page.reload()
    reply = chat.page.locator(AI).last
    expect(reply.locator(".code-block__language")).to_have_text("python")
    assert copy_reply(chat.page, reply) == MARKDOWN


def test_copy_is_a_stop_of_the_keyboard_just_before_the_message_box(
    open_page: OpenPage, service: ServiceProcess, model_server: ModelServer
) -> None:
    """The last reply's buttons come right before the box: Regenerate, then Copy."""
    model_server.script({"reply": "Plain words, **some bold**."})
    chat = open_chat(open_page, service.base_url)
    chat.send("a short one")
    reply = chat.page.locator(AI).last
    written(reply)
    chat.input.focus()
    chat.page.keyboard.press("Shift+Tab")
    expect(reply.get_by_role("button", name="Regenerate reply", exact=True)).to_be_focused()
    chat.page.keyboard.press("Shift+Tab")
    expect(reply.get_by_role("button", name="Copy reply", exact=True)).to_be_focused()
    chat.page.keyboard.press("Enter")
    expect(reply.get_by_role("button", name="Copied", exact=True)).to_be_visible()
    assert chat.page.evaluate("navigator.clipboard.readText()") == "Plain words, **some bold**."


@pytest.fixture(scope="module")
def uncoloured_service(
    start_module_service: StartModuleService,
    model_server_process: ModelServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServiceProcess:
    """The page with marked and DOMPurify but without highlight.js."""
    require_markdown_libraries()
    folder: Path = copy_page(tmp_path_factory.mktemp("frontend-uncoloured"), libraries=True)
    (folder / "vendor" / "highlight.js").unlink()
    return start_module_service(env=model_server_process.openai_env(CHAT_FRONTEND_DIR=str(folder)))


def test_without_highlight_js_code_is_uncoloured_and_the_rest_works(
    open_page: OpenPage, uncoloured_service: ServiceProcess, model_server: ModelServer
) -> None:
    model_server.script({"reply": MARKDOWN})
    watched = open_page()
    watched.expect_failed_requests("/vendor/highlight.js")
    chat = ChatPage(watched, uncoloured_service.base_url).open()
    chat.send("markdown without colours")
    reply = chat.page.locator(AI).last
    expect(reply.locator("strong")).to_have_text("bold")
    block = code_block(reply)
    expect(block.locator("pre code")).to_have_text("print('hello')\n")
    expect(block.locator("pre span")).to_have_count(0)
    # The fence still names the language.
    expect(block.locator(".code-block__language")).to_have_text("python")
    assert any("without colours" in message.text for message in watched.console)
