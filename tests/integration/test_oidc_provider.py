"""The service behind a real OpenID Connect provider: oidc-provider (Node.js) signs users in with
the authorization code flow and PKCE, as the page will, and the service takes the access tokens it
issues, each login a principal of its own, and refuses them once tampered with.

The module shares one provider and one service (starting them is most of the cost); each test
signs in users of its own, so that no test sees another's conversations.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import StartOidcProvider, assert_json_lines
from tests.support.oidc_provider import (
    LOGIN_BUTTON,
    LoginForm,
    OidcClient,
    OidcFlowError,
    OidcProvider,
    authorization_request,
    browser_opener,
    http_request,
    jwt_claims,
    login_with_code_flow,
    open_login_form,
    refresh,
)
from tests.support.service import ServiceProcess, free_port, service_env

AUDIENCE = "chat-service"
CLIENT_ID = "chat-page"  # not the audience: an ID token (aud = the client) is no access token


@pytest.fixture(scope="module")
def service_port() -> int:
    """The service's port, known before it starts: the provider sends the page back there."""
    return free_port()


@pytest.fixture(scope="module")
def page(service_port: int) -> str:
    """The page's URL: the client's redirect URI."""
    return f"http://127.0.0.1:{service_port}/"


@pytest.fixture(scope="module")
def provider(start_oidc_provider: StartOidcProvider, page: str) -> OidcProvider:
    client = OidcClient(CLIENT_ID, redirect_uris=(page,), post_logout_redirect_uris=(page,))
    return start_oidc_provider([client], audience=AUDIENCE, access_token_ttl=20)


@pytest.fixture(scope="module")
def service(
    provider: OidcProvider, service_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The service on the port the page's redirect URI names, trusting the provider."""
    workdir = tmp_path_factory.mktemp("service")
    env = {"CHAT_OIDC_ISSUER": provider.issuer, "CHAT_OIDC_AUDIENCE": AUDIENCE}
    service = ServiceProcess(
        port=service_port, db_path=workdir / "chat.db", env=service_env(env), workdir=workdir
    )
    yield service.start()  # /readyz answered 200: the provider's keys were fetched
    service.stop()
    assert_json_lines(service.stdout())


def sign_in(provider: OidcProvider, page: str, username: str) -> tuple[str, str]:
    """``username`` signed in on the provider as the page does: (access token, refresh token)."""
    tokens = login_with_code_flow(provider, CLIENT_ID, page, username)
    assert tokens.refresh_token is not None
    return tokens.access_token, tokens.refresh_token


def call(
    service: ServiceProcess, method: str, path: str, token: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return service.request(method, path, body, headers=headers)


def history(service: ServiceProcess, token: str) -> list[str]:
    status, _, body = call(service, "GET", "/chat/history", token)
    assert status == 200, body
    return [item["user"] for item in body]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_discovery_names_the_issuer_and_s256(provider: OidcProvider) -> None:
    document = provider.discovery()
    assert document["issuer"] == provider.issuer == f"http://127.0.0.1:{provider.port}"
    assert "S256" in document["code_challenge_methods_supported"]
    assert document["jwks_uri"].startswith(provider.issuer + "/")
    assert document["end_session_endpoint"] == f"{provider.issuer}/session/end"
    assert "none" in document["token_endpoint_auth_methods_supported"]


def test_the_login_form_is_the_one_a_browser_test_fills_in(
    provider: OidcProvider, page: str
) -> None:
    """What the end-to-end tests click through: the inputs ``login`` and ``password``, a
    "Sign-in" button, and nothing fetched from outside loopback (the provider's pages import a
    web font from Google, which the provider script takes out)."""
    request = authorization_request(provider, CLIENT_ID, page)
    url, html = open_login_form(request, browser_opener())
    assert url.startswith(f"{provider.issuer}/interaction/")
    form = LoginForm(html)
    assert form.inputs == {"prompt": "login", "login": "", "password": ""}
    assert form.buttons == [LOGIN_BUTTON]
    assert "fonts.googleapis.com" not in html
    assert "@import" not in html


def test_the_code_flow_gives_a_jwt_for_the_service_and_a_refresh_token(
    provider: OidcProvider, page: str
) -> None:
    tokens = login_with_code_flow(provider, CLIENT_ID, page, "erin.example")
    assert tokens.token_type == "Bearer"
    assert tokens.expires_in == 20
    assert tokens.refresh_token
    assert tokens.access_token.count(".") == 2
    header = json.loads(unb64url(tokens.access_token.split(".")[0]))
    assert (header["alg"], header["typ"]) == ("RS256", "at+jwt")
    claims = jwt_claims(tokens.access_token)
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == "erin.example"
    assert claims["client_id"] == CLIENT_ID
    assert claims["exp"] - claims["iat"] == 20
    # What the page shows of the user, derived from the login.
    assert (claims["name"], claims["preferred_username"], claims["email"]) == (
        "Erin Example",
        "erin.example",
        "erin.example@example.test",
    )
    assert tokens.id_token is not None
    assert jwt_claims(tokens.id_token)["aud"] == CLIENT_ID


def test_the_service_takes_the_tokens_and_keeps_each_user_to_their_own(
    provider: OidcProvider, page: str, service: ServiceProcess
) -> None:
    alice, _ = sign_in(provider, page, "alice")
    bob, _ = sign_in(provider, page, "bob")
    assert history(service, alice) == []

    status, _, body = call(service, "POST", "/chat/message", alice, {"message": "alice's note"})
    assert status == 200, body

    assert history(service, alice) == ["alice's note"]
    assert history(service, bob) == []
    status, _, conversations = call(service, "GET", "/chat/conversations", bob)
    assert (status, conversations) == (200, [])


def test_a_refreshed_token_is_taken_and_the_spent_refresh_token_is_not(
    provider: OidcProvider, page: str, service: ServiceProcess
) -> None:
    access, refresh_token = sign_in(provider, page, "carol")
    call(service, "POST", "/chat/message", access, {"message": "before the refresh"})

    renewed = refresh(provider, CLIENT_ID, refresh_token)
    assert renewed.access_token != access
    assert jwt_claims(renewed.access_token)["sub"] == "carol"
    assert jwt_claims(renewed.access_token)["aud"] == AUDIENCE
    assert history(service, renewed.access_token) == ["before the refresh"]

    # Rotation: the answer holds the next refresh token, and the one used is spent.
    assert renewed.refresh_token not in (None, refresh_token)
    with pytest.raises(OidcFlowError, match="invalid_grant"):
        refresh(provider, CLIENT_ID, refresh_token)


def test_only_the_pages_origin_may_call_the_token_endpoint(
    provider: OidcProvider, page: str
) -> None:
    """CORS as the page needs it: the token endpoint answers its origin (a client's redirect
    URI's) and refuses any other; discovery and the key set answer any origin."""
    token_endpoint = provider.discovery()["token_endpoint"]
    _, refresh_token = sign_in(provider, page, "frank")
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLIENT_ID}
    elsewhere = "http://127.0.0.1:1"

    status, headers, body = http_request(token_endpoint, form, headers={"Origin": elsewhere})
    assert status == 400
    assert json.loads(body)["error_description"] == (
        f"origin {elsewhere} not allowed for client: {CLIENT_ID}"
    )
    assert "Access-Control-Allow-Origin" not in headers

    origin = page.rstrip("/")
    status, headers, body = http_request(token_endpoint, form, headers={"Origin": origin})
    assert status == 200, body  # the refresh token was not spent by the refused request
    assert headers["Access-Control-Allow-Origin"] == origin

    for path in ("/.well-known/openid-configuration", "/jwks"):
        _, headers, _ = http_request(provider.issuer + path, headers={"Origin": elsewhere})
        assert headers["Access-Control-Allow-Origin"] == elsewhere


@pytest.mark.parametrize("tampering", ["a signature byte", "the subject"])
def test_a_tampered_token_is_refused(
    provider: OidcProvider, page: str, service: ServiceProcess, tampering: str
) -> None:
    dave, _ = sign_in(provider, page, f"dave-{tampering.split()[-1]}")
    assert history(service, dave) == []  # the token as issued is fine
    header, payload, signature = dave.split(".")
    if tampering == "a signature byte":
        raw = bytearray(unb64url(signature))
        raw[len(raw) // 2] ^= 0x01
        forged = f"{header}.{payload}.{b64url(bytes(raw))}"
    else:
        claims = {**json.loads(unb64url(payload)), "sub": "alice"}
        forged = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"

    status, headers, body = call(service, "GET", "/chat/history", forged)
    assert status == 401, body
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]


def test_the_provider_stops_on_sigterm(page: str) -> None:
    """SIGTERM closes it at once, with exit code 0 (its own instance: the module's stays)."""
    with OidcProvider([OidcClient(CLIENT_ID, redirect_uris=(page,))]) as provider:
        provider.discovery()
        code = provider.stop()
        assert code == 0, provider.stderr()
        with pytest.raises(OSError, match="Connection refused"):
            provider.discovery()
