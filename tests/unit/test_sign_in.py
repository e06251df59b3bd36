"""How the page signs in (``GET /chat/auth``), who it signed in as (``GET /chat/me``), the
settings behind them, and the page's Content-Security-Policy admitting the issuer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chat_service.config import ConfigError, Settings
from chat_service.identity.oidc import display_name
from tests.support.oidc_issuer import OidcIssuer
from tests.unit.conftest import MakeClient

NAMED_KEY = "sk-alice-0123456789abcdef"
BARE_KEY = "sk-bare-0123456789abcdefgh"
KEYS = (f"alice:{NAMED_KEY}", BARE_KEY)
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types dompurify"
)


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(audience="chat-service") as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- GET /chat/auth -----------------------------------------------------------------------


async def test_an_open_service_says_anonymous(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/chat/auth")
    assert response.status == 200
    assert await response.json() == {
        "modes": ["anonymous"],
        "oidc": None,
        "caller": {"kind": "anonymous", "subject": None, "name": None},
    }


async def test_keys_alone_are_one_mode_and_the_answer_needs_no_key(
    make_client: MakeClient,
) -> None:
    client = await make_client(api_keys=KEYS)
    response = await client.get("/chat/auth")
    assert response.status == 200
    assert await response.json() == {"modes": ["api_key"], "oidc": None, "caller": None}
    # Everything else under /chat still asks for one, including paths that start alike.
    for path in ("/chat/me", "/chat/authx", "/chat/history"):
        assert (await client.get(path)).status == 401, path


async def test_keys_and_an_issuer_name_the_pages_client(
    make_client: MakeClient, issuer: OidcIssuer
) -> None:
    client = await make_client(
        api_keys=KEYS,
        oidc_issuer=issuer.url,
        oidc_audience="chat-service",
        oidc_client_id="chat-page",
        oidc_scopes="openid profile offline_access",
    )
    assert await (await client.get("/chat/auth")).json() == {
        "modes": ["api_key", "oidc"],
        "oidc": {
            "issuer": issuer.url,
            "client_id": "chat-page",
            "scopes": "openid profile offline_access",
            "audience": "chat-service",
        },
        "caller": None,
    }


async def test_an_issuer_without_a_client_has_no_client_id(
    make_client: MakeClient, issuer: OidcIssuer
) -> None:
    client = await make_client(oidc_issuer=issuer.url, oidc_audience="chat-service")
    body = await (await client.get("/chat/auth")).json()
    assert body["modes"] == ["oidc"]
    assert body["oidc"]["client_id"] is None
    assert body["oidc"]["scopes"] == "openid profile email"


async def test_the_sign_in_options_name_the_caller_a_credential_names(
    make_client: MakeClient, issuer: OidcIssuer
) -> None:
    """A page behind a proxy that adds the credential holds none itself: this tells it who
    it is signed in as. A credential the service refuses names nobody, and is no error."""
    client = await make_client(api_keys=KEYS, oidc_issuer=issuer.url, oidc_audience="chat-service")
    keyed = await (await client.get("/chat/auth", headers=bearer(NAMED_KEY))).json()
    assert keyed["caller"] == {"kind": "key", "subject": "alice", "name": "alice"}
    token = issuer.token({"sub": "u-1", "preferred_username": "ada"})
    signed = await (await client.get("/chat/auth", headers=bearer(token))).json()
    assert signed["caller"] == {"kind": "oidc", "subject": "u-1", "name": "ada"}
    refused = await client.get("/chat/auth", headers=bearer("sk-wrong-0123456789abcdef"))
    assert refused.status == 200
    assert (await refused.json())["caller"] is None


async def test_the_sign_in_options_are_rate_limited_like_the_api(
    make_client: MakeClient,
) -> None:
    client = await make_client(api_keys=KEYS, rate_limit_rps=0.001, rate_limit_burst=2)
    statuses = [(await client.get("/chat/auth")).status for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_the_sign_in_options_are_readable_from_the_listed_origins(
    make_client: MakeClient,
) -> None:
    client = await make_client(api_keys=KEYS, cors_origins=("https://app.example",))
    listed = await client.get("/chat/auth", headers={"Origin": "https://app.example"})
    assert listed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = await client.get("/chat/auth", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


# -- GET /chat/me -------------------------------------------------------------------------


async def test_me_is_the_key_that_called(make_client: MakeClient) -> None:
    client = await make_client(api_keys=KEYS)
    named = await client.get("/chat/me", headers=bearer(NAMED_KEY))
    assert named.status == 200
    assert await named.json() == {"kind": "key", "subject": "alice", "name": "alice"}
    bare = await (await client.get("/chat/me", headers=bearer(BARE_KEY))).json()
    assert bare["kind"] == "key"
    assert bare["subject"].startswith("#")
    assert len(bare["subject"]) == 17
    assert bare["name"] is None
    wrong = await client.get("/chat/me", headers=bearer("sk-wrong-0123456789abcdef"))
    assert wrong.status == 401


async def test_me_without_identity_is_anonymous(make_client: MakeClient) -> None:
    client = await make_client()
    assert await (await client.get("/chat/me")).json() == {
        "kind": "anonymous",
        "subject": None,
        "name": None,
    }


async def test_me_is_the_tokens_subject_with_its_name(
    make_client: MakeClient, issuer: OidcIssuer
) -> None:
    client = await make_client(oidc_issuer=issuer.url, oidc_audience="chat-service")
    token = issuer.token({"sub": "u-42", "name": "Ada Lovelace", "email": "ada@example.com"})
    me = await client.get("/chat/me", headers=bearer(token))
    assert me.status == 200
    assert await me.json() == {"kind": "oidc", "subject": "u-42", "name": "Ada Lovelace"}
    nameless = await client.get("/chat/me", headers=bearer(issuer.token({"sub": "u-7"})))
    assert await nameless.json() == {"kind": "oidc", "subject": "u-7", "name": None}
    # A tampered token names nobody.
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert (
        await client.get("/chat/me", headers=bearer(f"{head}.{payload}.{flipped}"))
    ).status == 401


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"name": "Ada", "preferred_username": "ada", "email": "a@x"}, "Ada"),
        ({"preferred_username": "ada", "email": "a@x"}, "ada"),
        ({"email": "ada@example.com"}, "ada@example.com"),
        ({}, None),
        # Not a string, or nothing left once cleaned: the next claim.
        ({"name": ["Ada"], "preferred_username": "ada"}, "ada"),
        ({"name": " \u202e\x00 ", "email": "a@x"}, "a@x"),
        ({"name": "\u200b"}, None),
        # Bidirectional overrides, controls and private-use characters go; spaces collapse.
        ({"name": "Ada\u202e \x07Love\ue000lace\n\tthe  First"}, "Ada Lovelace the First"),
        ({"name": "x" * 300}, "x" * 200),
        ({"name": "a" * 199 + " b"}, "a" * 199),
    ],
)
def test_the_display_name_comes_from_the_first_name_claim(
    claims: dict[str, Any], expected: str | None
) -> None:
    assert display_name(claims) == expected


# -- settings -----------------------------------------------------------------------------


def test_the_client_and_scopes_are_read_and_tidied() -> None:
    settings = Settings.from_env(
        {
            "CHAT_OIDC_ISSUER": "https://login.example",
            "CHAT_OIDC_AUDIENCE": "api",
            "CHAT_OIDC_CLIENT_ID": " chat-page ",
            "CHAT_OIDC_SCOPES": "  openid\tprofile   offline_access ",
        }
    )
    assert settings.oidc_client_id == "chat-page"
    assert settings.oidc_scopes == "openid profile offline_access"
    defaults = Settings.from_env({"CHAT_OIDC_CLIENT_ID": "", "CHAT_OIDC_SCOPES": " "})
    assert defaults.oidc_client_id is None
    assert defaults.oidc_scopes == "openid profile email"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CHAT_OIDC_CLIENT_ID": "chat-page"}, "CHAT_OIDC_CLIENT_ID is the page's client"),
        ({"CHAT_OIDC_SCOPES": "profile email"}, "CHAT_OIDC_SCOPES must include openid"),
        ({"CHAT_OIDC_SCOPES": 'openid "profile'}, "scope names separated by spaces"),
        ({"CHAT_OIDC_SCOPES": "openid pro\\file"}, "scope names separated by spaces"),
        ({"CHAT_OIDC_SCOPES": "openid pr\u00f6file"}, "scope names separated by spaces"),
    ],
)
def test_bad_client_or_scopes_stop_the_service(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


@pytest.mark.parametrize("client_id", ["chat page", "chat\u00e9", "x" * 256, "tab\there"])
def test_a_client_id_is_printable_ascii(client_id: str) -> None:
    oidc = Settings(oidc_issuer="https://login.example", oidc_audience="api")
    with pytest.raises(ConfigError, match="printable ASCII without spaces"):
        oidc.replace(oidc_client_id=client_id)
    for fine in ("c" * 255, "0oa1b2c3!~", "api://chat"):
        assert oidc.replace(oidc_client_id=fine).oidc_client_id == fine


# -- the page's Content-Security-Policy ---------------------------------------------------


@pytest.fixture
def page_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frontend"
    folder.mkdir()
    (folder / "frontend.html").write_text("<!doctype html><title>chat</title>")
    (folder / "docs.html").write_text("<!doctype html><title>docs</title>")
    (folder / "app.js").write_text("export {};")
    return folder


async def test_the_page_may_connect_to_the_issuers_origin_alone(
    make_client: MakeClient, page_folder: Path
) -> None:
    client = await make_client(
        frontend_dir=page_folder,
        oidc_issuer="https://login.example:8443/realms/team/",
        oidc_audience="chat-service",
    )
    expected = PAGE_POLICY.replace(
        "connect-src 'self';", "connect-src 'self' https://login.example:8443;"
    )
    for path in ("/", "/frontend.html"):
        assert (await client.get(path)).headers["Content-Security-Policy"] == expected, path
    # Only the page signs in: its scripts, the API and the docs keep 'self'.
    for path in ("/app.js", "/chat/auth", "/healthz"):
        assert (await client.get(path)).headers["Content-Security-Policy"] == PAGE_POLICY, path
    docs = (await client.get("/docs")).headers["Content-Security-Policy"]
    assert "connect-src 'self';" in docs
    assert "login.example" not in docs


async def test_without_an_issuer_the_page_connects_to_itself_only(
    make_client: MakeClient, page_folder: Path
) -> None:
    client = await make_client(frontend_dir=page_folder, api_keys=KEYS)
    assert (await client.get("/")).headers["Content-Security-Policy"] == PAGE_POLICY


@pytest.mark.parametrize(
    "issuer",
    [
        "https://a.example; script-src *",
        "https://a.example,b/",
        "https://a.example'/",
        "https://user:pass@a.example/",
        "https://a.example/?x=1",
        "https://a.example/#top",
        "https://a..example/",
        "https://-a.example/",
        "https://a_b.example/",
        "https:///realms/x",
        "https://a.example:99999/",
        "https://a.example\n/",
    ],
)
def test_an_issuer_that_could_write_into_the_pages_policy_stops_the_service(issuer: str) -> None:
    """The page's Content-Security-Policy quotes the issuer's origin: anything but a plain
    host (and port) could add sources or directives to it."""
    with pytest.raises(ConfigError, match="CHAT_OIDC_ISSUER"):
        Settings(oidc_issuer=issuer, oidc_audience="api")


@pytest.mark.parametrize(
    ("issuer", "origin"),
    [
        ("https://login.example/realms/team", "https://login.example"),
        ("https://LOGIN.Example:443/x/", "https://login.example"),
        ("https://login.microsoftonline.com/0a1b-2c/v2.0", "https://login.microsoftonline.com"),
        ("https://tenant.eu.auth0.com/", "https://tenant.eu.auth0.com"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://localhost:8080/", "http://localhost:8080"),
    ],
)
def test_the_pages_policy_names_the_issuers_origin(issuer: str, origin: str) -> None:
    from chat_service.api.security import page_content_security_policy

    Settings(oidc_issuer=issuer, oidc_audience="api")  # accepted
    policy = page_content_security_policy(issuer)
    assert f"connect-src 'self' {origin}; manifest-src" in policy


def test_a_page_cannot_sign_in_at_an_ipv6_issuer() -> None:
    """A Content-Security-Policy source cannot name an IPv6 address: the page's client would
    never reach it. Without a client for the page, the API still takes its tokens."""
    assert Settings(oidc_issuer="http://[::1]:9000", oidc_audience="api").oidc_issuer
    with pytest.raises(ConfigError, match="IPv6"):
        Settings(oidc_issuer="http://[::1]:9000", oidc_audience="api", oidc_client_id="page")
