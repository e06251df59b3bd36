"""How the page looks: empty state, light and dark, 360 px to desktop, contrast; screenshots.

The screenshots (light/dark x narrow/wide) are written to test-results/e2e/; the README's
frontend/docs/screenshot.png is the light, wide one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import StartService
from tests.e2e.browser import NARROW, WIDE, ColorScheme
from tests.e2e.chat_page import USER, ChatPage
from tests.e2e.conftest import OpenPage, StartModuleService
from tests.e2e.nginx import FRONTEND_DIR
from tests.support.service import ServiceProcess

VIEWPORTS = {"wide": WIDE, "narrow": NARROW}
AA_TEXT = 4.5
AA_NON_TEXT = 3.0

# Adds one of each element that only shows in some states (an unsent message with its error,
# a trace link, "thinking", the load-earlier and new-reply buttons), built with DOM calls like
# the page's modules do, so their colours are measured too.
SHOW_EVERY_STATE = """() => {
  const el = (tag, cls, text) => {
    const n = document.createElement(tag);
    n.className = cls;
    if (text) n.textContent = text;
    return n;
  };
  const failed = el("li", "message message--user message--failed");
  const body = el("div", "message__body");
  const notice = el("div", "notice notice--error message__error");
  const retry = el("button", "button button--small", "Retry");
  notice.append(el("span", "notice__text", "Not sent."), retry);
  body.append(el("p", "bubble", "unsent"), notice);
  failed.append(body);
  const traced = el("li", "message message--ai");
  const meta = el("div", "message__meta");
  const link = el("a", "trace-link", "trace");
  link.href = "#";
  meta.append(link);
  const tracedBody = el("div", "message__body");
  tracedBody.append(el("p", "bubble", "reply"), meta);
  traced.append(tracedBody);
  const thinking = el("li", "message message--ai message--thinking");
  thinking.append(el("p", "bubble"));
  thinking.firstChild.append(el("span", "thinking__label", "Thinking…"));
  document.getElementById("messages").append(failed, traced, thinking);
  document.getElementById("load-earlier").hidden = false;
  document.getElementById("jump").hidden = false;
}"""

# WCAG 2.x contrast of each visible text against what is behind it (alpha-blended).
MEASURE_CONTRAST = """(targets) => {
  const parse = (css) => {
    const [r, g, b, a = 1] = css.match(/[\\d.]+/g).map(Number);
    return { r, g, b, a };
  };
  const over = (top, below) => ({
    r: top.r * top.a + below.r * (1 - top.a),
    g: top.g * top.a + below.g * (1 - top.a),
    b: top.b * top.a + below.b * (1 - top.a),
    a: 1,
  });
  const backdrop = (node) => {
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const colour = parse(getComputedStyle(n).backgroundColor);
      if (colour.a > 0) layers.push(colour);
      if (colour.a >= 1) break;
    }
    const canvas = { r: 255, g: 255, b: 255, a: 1 };
    return layers.reverse().reduce((below, top) => over(top, below), canvas);
  };
  const luminance = ({ r, g, b }) => {
    const f = (v) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (x, y) => {
    const [hi, lo] = [luminance(x), luminance(y)].sort((p, q) => q - p);
    return (hi + 0.05) / (lo + 0.05);
  };
  const results = [];
  for (const [selector, pseudo] of targets) {
    for (const node of document.querySelectorAll(selector)) {
      if (!node.checkVisibility() || node.disabled) continue;
      const behind = backdrop(node);
      const text = over(parse(getComputedStyle(node, pseudo).color), behind);
      results.push({ selector: selector + (pseudo || ""), ratio: ratio(text, behind) });
    }
  }
  const box = document.getElementById("message");
  box.focus();
  const ring = parse(getComputedStyle(box).outlineColor);
  results.push({ selector: "focus ring", ratio: ratio(ring, backdrop(box.parentElement)) });
  box.blur();
  return results;
}"""

TEXT_TARGETS = [
    [".brand__name", None],
    [".brand__tagline", None],
    ["#connection-label", None],
    [".bubble", None],
    [".thinking__label", None],
    [".trace-link", None],
    [".message__stamp", None],
    [".notice__text", None],
    [".notice .button", None],
    ["#load-earlier", None],
    ["#jump", None],
    [".empty__title", None],
    [".empty__text", None],
    [".chip", None],
    ["#message", None],
    ["#message", "::placeholder"],
    ["#send", None],
    [".composer__hint", None],
    [".page-footer a", None],
]


FRONTEND_ENV = {"CHAT_FRONTEND_DIR": str(FRONTEND_DIR)}


@pytest.fixture(scope="module")
def seeded_service(start_module_service: StartModuleService) -> ServiceProcess:
    """A short, friendly conversation to look at."""
    service = start_module_service(env=FRONTEND_ENV)
    for message in ("Hello!", "help", "Does <b>HTML</b> render?\nIt should show as typed."):
        status, _, _ = service.request("POST", "/chat/message", {"message": message})
        assert status == 200
    return service


def test_empty_state_invites_a_first_message(
    open_page: OpenPage, start_service: StartService
) -> None:
    service = start_service(env=FRONTEND_ENV)  # a fresh, empty database
    chat = ChatPage(open_page(), service.base_url).open()
    empty = chat.page.locator("#empty")
    expect(empty).to_be_visible()
    expect(empty.get_by_role("heading")).to_have_text("Start a conversation")
    empty.get_by_role("button", name="Say “Hello!”").click()
    expect(chat.page.locator(USER)).to_have_count(1)
    assert chat.user_texts() == ["Hello!"]
    chat.wait_for_reply(0)
    expect(empty).to_be_hidden()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", ["wide", "narrow"])
def test_looks_right_and_reads_well(
    open_page: OpenPage,
    seeded_service: ServiceProcess,
    output_dir: Path,
    scheme: ColorScheme,
    width: str,
) -> None:
    viewport = VIEWPORTS[width]
    chat = ChatPage(open_page(viewport=viewport, color_scheme=scheme), seeded_service.base_url)
    chat.open()
    expect(chat.page.locator(USER)).to_have_count(3)
    page = chat.page
    page.evaluate("document.fonts.ready")
    page.screenshot(path=output_dir / f"screenshot-{scheme}-{width}.png")

    # Responsive: nothing wider than the window, the whole composer on screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert page.locator("#log").evaluate("log => log.scrollWidth <= log.clientWidth")
    for control in (chat.input, chat.send_button):
        box = control.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= viewport["width"]
        assert box["y"] + box["height"] <= viewport["height"]

    # The scheme really applies, and every text passes WCAG AA in it.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(243, 245, 248)") == (scheme == "light"), background
    page.evaluate(SHOW_EVERY_STATE)
    results: list[dict[str, Any]] = page.evaluate(MEASURE_CONTRAST, TEXT_TARGETS)
    measured = {r["selector"] for r in results}
    assert {".bubble", ".trace-link", ".notice__text", "#message::placeholder"} <= measured
    assert ".message__stamp" in measured, "each message's time is measured too"
    low = [
        f"{r['selector']}: {r['ratio']:.2f}"
        for r in results
        if r["ratio"] < (AA_NON_TEXT if r["selector"] == "focus ring" else AA_TEXT)
    ]
    assert not low, f"contrast below WCAG AA in {scheme}: {low}"


@pytest.mark.parametrize("touch", [False, True], ids=["keyboard", "touch screen"])
def test_the_keyboard_hint_shows_only_where_there_is_a_keyboard(
    open_page: OpenPage, seeded_service: ServiceProcess, touch: bool
) -> None:
    """ "Enter to send, Shift+Enter for a new line, Escape to stop a reply" names keys: on a
    phone's touch screen, with neither mouse nor keyboard, it is not shown."""
    chat = ChatPage(open_page(viewport=NARROW, touch=touch), seeded_service.base_url).open()
    hint = chat.page.get_by_text("Enter to send, Shift+Enter for a new line")
    if touch:
        expect(hint).to_be_hidden()
    else:
        expect(hint).to_be_visible()
    # Either way the message box still sends (a touch screen's keyboard has its send key).
    assert chat.send("Hello from a phone").startswith("Hello")
