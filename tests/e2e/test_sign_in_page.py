"""Signing in from the page, in Chromium, against a real OpenID Connect provider (oidc-provider,
tests/support/oidc_provider.py) whose own login form the users fill in, and with API keys.

The page is served by the service (CHAT_FRONTEND_DIR), whose Content-Security-Policy admits the
provider's origin: nothing here relaxes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import StartOidcProvider
from tests.e2e.accessibility import require_axe
from tests.e2e.chat_page import USER, ChatPage, Sidebar
from tests.e2e.conftest import OpenPage, StartModuleService
from tests.e2e.nginx import FRONTEND_DIR, NginxServer
from tests.e2e.test_accessibility import LOOKS, Look, check
from tests.support.oidc_provider import (
    LOGIN_BUTTON,
    LOGIN_FIELDS,
    LOGOUT_BUTTON,
    OidcClient,
    OidcProvider,
)
from tests.support.service import ServiceProcess, free_port

CLIENT_ID = "chat-page"
AUDIENCE = "chat-service"
ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-0123456789abcdefgh"
# How long the refused token is waited for: its life, the service's leeway (30 s), and slack.
EXPIRY_WAIT_S = 60


def page_env(**extra: str) -> dict[str, str]:
    return {"CHAT_FRONTEND_DIR": str(FRONTEND_DIR), "CHAT_RATE_LIMIT_RPS": "0", **extra}


@dataclass
class Signed:
    """A provider, and a service that takes its tokens and serves the page, its client; the
    page is registered at ``nginx_port`` too, for an NGINX in front."""

    provider: OidcProvider
    service: ServiceProcess
    nginx_port: int


def start_signed_service(
    start_oidc_provider: StartOidcProvider,
    start_module_service: StartModuleService,
    **provider_options: Any,
) -> Signed:
    port, nginx_port = free_port(), free_port()
    pages = (f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{nginx_port}/")
    client = OidcClient(CLIENT_ID, redirect_uris=pages, post_logout_redirect_uris=pages)
    provider = start_oidc_provider(
        [client],
        audience=AUDIENCE,
        accounts={
            f"{user}.{through}": {"name": name}
            for user, name in (("alice", "Alice Liddell"), ("bob", "Bob Jones"))
            for through in ("service", "nginx")
        },
        **provider_options,
    )
    service = start_module_service(
        port=port,
        env=page_env(
            CHAT_OIDC_ISSUER=provider.issuer,
            CHAT_OIDC_AUDIENCE=AUDIENCE,
            CHAT_OIDC_CLIENT_ID=CLIENT_ID,
        ),
    )
    return Signed(provider, service, nginx_port)


@pytest.fixture(scope="module")
def oidc(
    start_oidc_provider: StartOidcProvider, start_module_service: StartModuleService
) -> Signed:
    return start_signed_service(start_oidc_provider, start_module_service)


@pytest.fixture(scope="module")
def oidc_nginx(
    oidc: Signed, nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    """The project's NGINX in front, whose page policy admits the issuer's origin."""
    with NginxServer(
        binary=nginx_binary,
        workdir=tmp_path_factory.mktemp("nginx-oidc"),
        port=oidc.nginx_port,
        service_url=oidc.service.base_url,
        oidc_issuer=oidc.provider.issuer,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def keyed(start_module_service: StartModuleService) -> ServiceProcess:
    return start_module_service(env=page_env(CHAT_API_KEYS=f"alice:{ALICE_KEY},bob:{BOB_KEY}"))


# -- what the page shows ------------------------------------------------------------------


def panel(page: Page) -> Locator:
    return page.get_by_role("region", name="Sign in required")


def account_name(page: Page) -> Locator:
    return page.locator("#account-name")


def expect_signed_out(chat: ChatPage) -> None:
    expect(chat.connection).to_have_text("Sign in required")
    expect(panel(chat.page)).to_be_visible()
    expect(account_name(chat.page)).to_be_hidden()
    # Nothing of anyone's chats: the history and the sidebar wait for a sign-in.
    expect(chat.page.locator(USER)).to_have_count(0)
    expect(Sidebar(chat.page).items).to_have_count(0)


def sign_in_on_the_provider(chat: ChatPage, login: str) -> None:
    """From the page's Sign in to the provider's form, and back signed in."""
    chat.page.get_by_role("button", name="Sign in", exact=True).click()
    expect(chat.page.get_by_role("heading", name="Sign-in")).to_be_visible()
    chat.page.locator(LOGIN_FIELDS["login"]).fill(login)
    chat.page.locator(LOGIN_FIELDS["password"]).fill("any password")
    chat.page.get_by_role("button", name=LOGIN_BUTTON).click()
    expect(chat.connection).to_have_text("Online")


def stored_user(page: Page) -> dict[str, Any]:
    """oidc-client-ts's user in this tab's sessionStorage."""
    raw: str | None = page.evaluate(
        "() => Object.keys(sessionStorage).filter(k => k.startsWith('oidc.user:'))"
        ".map(k => sessionStorage.getItem(k))[0] ?? null"
    )
    assert raw is not None, "no signed-in user in sessionStorage"
    user: dict[str, Any] = json.loads(raw)
    return user


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- OpenID Connect -----------------------------------------------------------------------


@pytest.mark.parametrize("through", ["service", "nginx"])
def test_two_users_sign_in_and_each_sees_only_their_own_chats(
    open_page: OpenPage, oidc: Signed, request: pytest.FixtureRequest, through: str
) -> None:
    service = oidc.service
    base_url = (
        request.getfixturevalue("oidc_nginx").base_url if through == "nginx" else service.base_url
    )
    alice = ChatPage(open_page(), base_url).open(online=False)
    expect_signed_out(alice)
    sign_in_on_the_provider(alice, f"alice.{through}")
    expect(account_name(alice.page)).to_have_text("Alice Liddell")
    expect(panel(alice.page)).to_be_hidden()
    # The provider's answer is gone from the address bar; the token never was in it.
    assert alice.page.url == base_url + "/"
    token = stored_user(alice.page)["access_token"]
    assert token.count(".") == 2
    alice.send("Alice's secret plan")

    bob = ChatPage(open_page(), base_url).open(online=False)
    expect_signed_out(bob)
    sign_in_on_the_provider(bob, f"bob.{through}")
    expect(account_name(bob.page)).to_have_text("Bob Jones")
    expect(bob.page.locator(USER)).to_have_count(0)
    bob.send("Bob's reading list")
    expect(Sidebar(bob.page).items).to_have_count(1)
    assert Sidebar(bob.page).titles() == ["Bob's reading list"]

    alice.page.reload()
    expect(alice.connection).to_have_text("Online")
    expect(alice.page.locator(USER)).to_have_count(1)
    assert alice.user_texts() == ["Alice's secret plan"]
    # The service agrees: each token names its own user.
    status, _, me = service.request("GET", "/chat/me", headers=bearer(token))
    assert (status, me["subject"], me["name"]) == (200, f"alice.{through}", "Alice Liddell")


def test_sign_out_ends_the_session_at_the_provider_and_asks_again(
    open_page: OpenPage, oidc: Signed
) -> None:
    service = oidc.service
    chat = ChatPage(open_page(), service.base_url).open(online=False)
    sign_in_on_the_provider(chat, "carol")
    chat.send("Carol was here")
    chat.page.get_by_role("button", name="Sign out").click()
    chat.page.get_by_role("button", name=LOGOUT_BUTTON).click()
    expect(chat.connection).to_have_text("Sign in required")
    expect_signed_out(chat)
    assert (
        chat.page.evaluate(
            "() => Object.keys(sessionStorage).some(k => k.startsWith('oidc.user:'))"
        )
        is False
    )
    # Signing in again needs the provider's form again.
    chat.page.get_by_role("button", name="Sign in", exact=True).click()
    expect(chat.page.get_by_role("button", name=LOGIN_BUTTON)).to_be_visible()


def test_a_tampered_token_is_refused_and_signing_in_again_keeps_the_message(
    open_page: OpenPage, oidc: Signed
) -> None:
    service = oidc.service
    chat = ChatPage(open_page(), service.base_url).open(online=False)
    chat.watched.expect_failed_requests("/chat/me")  # the 401
    sign_in_on_the_provider(chat, "dave")
    text = "Typed before the session ended"
    chat.input.fill(text)
    # Another signature on the token, and no refresh token to renew it with.
    chat.page.evaluate(
        """() => {
          const key = Object.keys(sessionStorage).find(k => k.startsWith('oidc.user:'));
          const user = JSON.parse(sessionStorage.getItem(key));
          const [head, body, signature] = user.access_token.split('.');
          const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
          user.access_token = [head, body, flipped].join('.');
          delete user.refresh_token;
          sessionStorage.setItem(key, JSON.stringify(user));
        }"""
    )
    chat.page.reload()
    ended = chat.page.get_by_role("region", name="Session ended")
    expect(ended).to_contain_text("The bearer token is not valid: bad signature.")
    expect(chat.connection).to_have_text("Sign in required")
    expect(chat.input).to_have_value(text)
    # The provider still knows dave: signing in again is a round trip without its form.
    ended.get_by_role("button", name="Sign in", exact=True).click()
    expect(chat.connection).to_have_text("Online")
    expect(chat.input).to_have_value(text)
    chat.send_button.click()
    assert chat.wait_for_reply(0)
    assert chat.user_texts() == [text]


def test_a_token_that_expires_mid_session_is_renewed_and_the_typing_goes_on(
    open_page: OpenPage,
    start_oidc_provider: StartOidcProvider,
    start_module_service: StartModuleService,
) -> None:
    signed = start_signed_service(start_oidc_provider, start_module_service, access_token_ttl=5)
    service = signed.service
    chat = ChatPage(open_page(), service.base_url).open(online=False)
    sign_in_on_the_provider(chat, "erin")
    first = stored_user(chat.page)["access_token"]
    text = "Still typing while the token expires"
    chat.input.fill(text)
    # The first token's life ends for the service too (after its leeway).
    deadline = time.monotonic() + EXPIRY_WAIT_S
    while service.request("GET", "/chat/me", headers=bearer(first))[0] == 200:
        assert time.monotonic() < deadline, "the first token is still accepted"
        time.sleep(1)
    status, _, refusal = service.request("GET", "/chat/me", headers=bearer(first))
    assert (status, refusal["message"]) == (401, "The bearer token is not valid: token expired.")
    # Meanwhile the page renewed its token with the refresh token: the message goes through.
    assert stored_user(chat.page)["access_token"] != first
    expect(chat.input).to_have_value(text)
    chat.send_button.click()
    assert chat.wait_for_reply(0)
    assert chat.user_texts() == [text]
    expect(chat.connection).to_have_text("Online")
    expect(account_name(chat.page)).to_have_text("Erin")


# -- API keys -----------------------------------------------------------------------------


def use_key(chat: ChatPage, key: str) -> Locator:
    """Opens the key dialog and submits ``key``; returns the dialog."""
    chat.page.get_by_role("button", name="Use an API key").click()
    dialog = chat.page.get_by_role("dialog", name="Use an API key")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill(key)
    dialog.get_by_role("button", name="Use key").click()
    return dialog


def test_the_key_dialog_refuses_a_wrong_key_and_two_keys_see_different_chats(
    open_page: OpenPage, keyed: ServiceProcess
) -> None:
    alice = ChatPage(open_page(), keyed.base_url).open(online=False)
    alice.watched.expect_failed_requests("/chat/me")  # the wrong key's 401
    expect_signed_out(alice)
    expect(alice.page.get_by_role("button", name="Sign in", exact=True)).to_be_hidden()
    dialog = use_key(alice, "not-a-key-0123456789abcdef")
    expect(dialog.get_by_role("alert")).to_have_text(
        "That key was not accepted. A valid API key is required."
    )
    expect(dialog).to_be_visible()
    assert alice.page.evaluate("() => sessionStorage.getItem('chat-service.api-key')") is None
    dialog.get_by_label("API key").fill(ALICE_KEY)
    dialog.get_by_role("button", name="Use key").click()
    expect(alice.connection).to_have_text("Online")
    expect(account_name(alice.page)).to_have_text("alice")
    alice.send("Alice's key at work")

    bob = ChatPage(open_page(), keyed.base_url).open(online=False)
    use_key(bob, BOB_KEY)
    expect(bob.connection).to_have_text("Online")
    expect(account_name(bob.page)).to_have_text("bob")
    expect(bob.page.locator(USER)).to_have_count(0)
    expect(Sidebar(bob.page).items).to_have_count(0)
    bob.send("Bob's key at work")
    alice.page.reload()
    expect(alice.page.locator(USER)).to_have_count(1)
    assert alice.user_texts() == ["Alice's key at work"]

    # Forget key: this tab keeps no key, and asks again.
    alice.page.get_by_role("button", name="Forget key").click()
    expect_signed_out(alice)
    assert alice.page.evaluate("() => sessionStorage.getItem('chat-service.api-key')") is None


def test_without_keys_or_an_issuer_there_is_no_sign_in_at_all(
    open_page: OpenPage, start_module_service: StartModuleService
) -> None:
    service = start_module_service(env=page_env())
    chat = ChatPage(open_page(), service.base_url).open()
    for name in ("Sign in", "Use an API key", "Sign out", "Forget key"):
        expect(chat.page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(chat.page.locator("#account")).to_be_hidden()
    expect(chat.page.locator("#signin")).to_be_hidden()
    chat.send("Nobody signs in here")


# What is shown in the header, each as its box; then every pair that overlaps, and every box
# that reaches past the window's edge.
_HEADER_OVERLAPS = """() => {
  const shown = [...document.querySelectorAll('.topbar button, .brand__logo, .brand__name,'
    + ' .connection, .account__name')].filter(node => node.checkVisibility()
      && node.getBoundingClientRect().width > 1);
  const boxes = shown.map(node => [node.id || node.className, node.getBoundingClientRect()]);
  const problems = [];
  boxes.forEach(([name, box], i) => {
    if (box.right > window.innerWidth) problems.push(`${name} past the edge`);
    for (const [other, next] of boxes.slice(i + 1)) {
      const apart = box.right <= next.left || next.right <= box.left
        || box.bottom <= next.top || next.bottom <= box.top;
      if (!apart) problems.push(`${name} over ${other}`);
    }
  });
  return problems;
}"""


def header_overlaps(page: Page) -> list[str]:
    problems: list[str] = page.evaluate(_HEADER_OVERLAPS)
    return problems


# -- accessibility of the sign-in states ---------------------------------------------------


@pytest.mark.parametrize("look", LOOKS, ids=lambda look: f"{look.scheme}-{look.viewport['width']}")
def test_the_sign_in_states_are_accessible(
    open_page: OpenPage, keyed: ServiceProcess, oidc: Signed, look: Look
) -> None:
    """Signed out, the key dialog (and its refusal), signed in with a key; signed out and in
    with OpenID Connect, and a session that ended: WCAG 2.2 AA by axe-core, in each look."""
    require_axe()
    options = {"viewport": look.viewport, "color_scheme": look.scheme}
    keys = ChatPage(open_page(**options), keyed.base_url).open(online=False)
    keys.watched.expect_failed_requests("/chat/me")  # the wrong key's 401
    expect_signed_out(keys)
    check(keys.page, "signed out, keys", look)
    assert header_overlaps(keys.page) == []
    dialog = use_key(keys, "not-a-key-0123456789abcdef")
    expect(dialog.get_by_role("alert")).to_be_visible()
    check(keys.page, "the key dialog, a key refused", look)
    dialog.get_by_label("API key").fill(ALICE_KEY)
    dialog.get_by_role("button", name="Use key").click()
    expect(account_name(keys.page)).to_have_text("alice")
    check(keys.page, "signed in with a key", look)
    assert header_overlaps(keys.page) == []

    chat = ChatPage(open_page(**options), oidc.service.base_url).open(online=False)
    chat.watched.expect_failed_requests("/chat/me")  # the ended session's 401
    expect_signed_out(chat)
    check(chat.page, "signed out, OpenID Connect", look)
    assert header_overlaps(chat.page) == []
    # A long name, which the header at 360 px shows cut short.
    sign_in_on_the_provider(chat, f"frank.lloyd.wright.{look.scheme}.{look.viewport['width']}")
    expect(account_name(chat.page)).to_be_visible()
    check(chat.page, "signed in with OpenID Connect", look)
    assert header_overlaps(chat.page) == []
    chat.page.evaluate(
        """() => {
          const key = Object.keys(sessionStorage).find(k => k.startsWith('oidc.user:'));
          const user = JSON.parse(sessionStorage.getItem(key));
          user.access_token = 'x' + user.access_token;
          delete user.refresh_token;
          sessionStorage.setItem(key, JSON.stringify(user));
        }"""
    )
    chat.page.reload()
    expect(chat.page.get_by_role("region", name="Session ended")).to_be_visible()
    check(chat.page, "a session that ended", look)
