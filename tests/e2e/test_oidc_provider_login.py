"""The OpenID Connect provider of the sign-in tests (tests/support/oidc_provider.py) in Chromium:
its login form is filled in and sent as a user would, the browser comes back with a code, and
RP-initiated logout ends the sign-in. No page of ours takes part: the client's redirect URI is an
empty page on another loopback port, so this tests the provider, and the selectors the page's
tests use, alone.
"""

from __future__ import annotations

import urllib.parse

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import StartOidcProvider
from tests.e2e.conftest import OpenPage
from tests.e2e.other_sites import other_sites
from tests.support.oidc_provider import (
    LOGIN_BUTTON,
    LOGIN_FIELDS,
    LOGOUT_BUTTON,
    OidcClient,
    OidcFlowError,
    OidcProvider,
    authorization_request,
    exchange_code,
    jwt_claims,
    refresh,
)


def test_a_user_signs_in_on_the_providers_form_and_out_again(
    open_page: OpenPage,
    start_oidc_provider: StartOidcProvider,
) -> None:
    with other_sites(1) as (site,):
        landing = f"{site}/"
        client = OidcClient(
            "chat-page", redirect_uris=(landing,), post_logout_redirect_uris=(landing,)
        )
        provider = start_oidc_provider([client], accounts={"alice": {"name": "Alice Liddell"}})
        sign_in_and_out(open_page().page, provider, landing)


def sign_in_and_out(page: Page, provider: OidcProvider, landing: str) -> None:
    """Alice signs in on the form, is signed in without it the second time, then signs out."""
    request = authorization_request(provider, "chat-page", landing)
    page.goto(request.url)
    expect(page.get_by_role("heading", name="Sign-in")).to_be_visible()
    page.locator(LOGIN_FIELDS["login"]).fill("alice")
    page.locator(LOGIN_FIELDS["password"]).fill("any password")
    page.get_by_role("button", name=LOGIN_BUTTON).click()
    page.wait_for_url(f"{landing}?*")

    tokens = exchange_code(provider, request, page.url)
    claims = jwt_claims(tokens.access_token)
    assert (claims["sub"], claims["name"]) == ("alice", "Alice Liddell")
    assert tokens.id_token is not None

    # Signed in at the provider now: a second request needs no form.
    again = authorization_request(provider, "chat-page", landing)
    page.goto(again.url)
    page.wait_for_url(f"{landing}?*")
    second = exchange_code(provider, again, page.url)
    assert jwt_claims(second.access_token)["sub"] == "alice"
    assert second.refresh_token is not None

    logout = urllib.parse.urlencode(
        {"id_token_hint": tokens.id_token, "post_logout_redirect_uri": landing}
    )
    page.goto(f"{provider.discovery()['end_session_endpoint']}?{logout}")
    page.get_by_role("button", name=LOGOUT_BUTTON).click()
    page.wait_for_url(landing)

    # The sign-in is over: its refresh tokens are void, and the next request asks to log in.
    with pytest.raises(OidcFlowError, match="invalid_grant"):
        refresh(provider, "chat-page", second.refresh_token)
    page.goto(authorization_request(provider, "chat-page", landing).url)
    expect(page.get_by_role("button", name=LOGIN_BUTTON)).to_be_visible()
