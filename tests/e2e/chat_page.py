"""The chat page as the tests see it: its controls, and the text of its messages."""

from __future__ import annotations

from dataclasses import dataclass

from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser import WatchedPage

USER = "#messages .message--user"
AI = "#messages .message--ai:not(.message--thinking)"
# What the page asks for while the service is down, which fails: its requests, and its live
# streams (the conversation's and the list's) reconnecting; the list reloads when its
# stream comes back.
SERVICE_DOWN_FAILURES = (
    "/chat/auth",
    "/chat/history",
    "/chat/message",
    "/readyz",
    "/chat/events",
    "/chat/conversation-events",
    "/chat/conversations",
)
# The message's text (a reply's rendered Markdown, read as text); beside it in the bubble is
# the screen-reader-only speaker.
_TEXTS = "items => items.map(item => item.querySelector('.message__text').textContent)"


@dataclass
class ChatPage:
    watched: WatchedPage
    base_url: str

    @property
    def page(self) -> Page:
        return self.watched.page

    @property
    def input(self) -> Locator:
        return self.page.get_by_label("Message", exact=True)

    @property
    def send_button(self) -> Locator:
        return self.page.get_by_role("button", name="Send", exact=True)

    @property
    def stop_button(self) -> Locator:
        return self.page.get_by_role("button", name="Stop", exact=True)

    @property
    def thinking(self) -> Locator:
        return self.page.locator(".message--thinking")

    @property
    def connection(self) -> Locator:
        return self.page.locator("#connection-label")

    @property
    def failed(self) -> Locator:
        return self.page.locator(".message--failed")

    @property
    def history_notice(self) -> Locator:
        return self.page.locator("#history-notice .notice")

    @property
    def log(self) -> Locator:
        return self.page.locator("#log")

    def open(self, path: str = "/", *, online: bool = True) -> ChatPage:
        self.page.goto(self.base_url + path)
        if online:
            expect(self.connection).to_have_text("Online")
            # The list of chats, asked for once the history came: settled too.
            expect(self.page.locator("#sidebar[data-state=loading]")).to_have_count(0)
        return self

    def user_texts(self) -> list[str]:
        texts: list[str] = self.page.locator(USER).evaluate_all(_TEXTS)
        return texts

    def ai_texts(self) -> list[str]:
        texts: list[str] = self.page.locator(AI).evaluate_all(_TEXTS)
        return texts

    def send(self, text: str) -> str:
        """Type ``text``, press Send, wait for the reply and return it."""
        replies = self.page.locator(AI).count()
        self.input.fill(text)
        self.send_button.click()
        return self.wait_for_reply(replies)

    def wait_for_reply(self, replies_before: int) -> str:
        """The text of the next reply once it is whole: a streamed reply is shown empty first,
        and filled at the next animation frame."""
        expect(self.page.locator(AI)).to_have_count(replies_before + 1)
        expect(self.page.locator(".message--streaming")).to_have_count(0)
        return self.ai_texts()[-1]

    def scroll_metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = self.log.evaluate(
            "log => ({top: log.scrollTop, height: log.scrollHeight, client: log.clientHeight})"
        )
        return metrics

    def distance_from_bottom(self) -> float:
        m = self.scroll_metrics()
        return m["height"] - m["top"] - m["client"]


@dataclass
class Sidebar:
    """The conversations sidebar (a drawer on narrow screens)."""

    page: Page

    @property
    def nav(self) -> Locator:
        return self.page.get_by_role("navigation", name="Chats")

    @property
    def new_chat(self) -> Locator:
        return self.nav.get_by_role("button", name="New chat", exact=True)

    @property
    def toggle(self) -> Locator:
        return self.page.get_by_role("button", name="Chats", exact=True)

    @property
    def items(self) -> Locator:
        return self.nav.locator(".conversation")

    @property
    def current(self) -> Locator:
        return self.nav.locator(".conversation__link[aria-current=page]")

    def item(self, title: str) -> Locator:
        """The list item whose link reads ``title`` exactly."""
        return self.items.filter(has=self.page.get_by_role("link", name=title, exact=True))

    def link(self, title: str) -> Locator:
        return self.nav.get_by_role("link", name=title, exact=True)

    def titles(self) -> list[str]:
        titles: list[str] = self.nav.locator(".conversation__title").all_text_contents()
        return titles
