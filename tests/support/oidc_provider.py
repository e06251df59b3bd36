"""A real OpenID Connect provider as a process: panva's oidc-provider (Node.js), started by
``oidc_provider.mjs`` on a free 127.0.0.1 port, for the sign-in of the page and of the tests.

Unlike ``oidc_issuer.py`` (keys and tokens made by the test itself), every token here comes out
of a real authorization server: a public client (no secret) signs a user in with the
authorization code flow and PKCE on the provider's own login form, where any login and any
password will do and the login is the subject::

    page = OidcClient("chat-page", redirect_uris=(f"{service.base_url}/",))
    with OidcProvider([page], access_token_ttl=20) as provider:
        tokens = login_with_code_flow(provider, "chat-page", f"{service.base_url}/", "alice")
        tokens.access_token   # a JWT for CHAT_OIDC_AUDIENCE=provider.audience
        refresh(provider, "chat-page", tokens.refresh_token)

A browser test signs in on the same form: the inputs ``login`` and ``password``, then the
button "Sign-in" (see ``LOGIN_FIELDS``). Needs ``node`` and ``npm ci`` in frontend/ (which make
runs): without them the test skips with the reason, and fails when ``CI`` is set.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import secrets
import selectors
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

from tests.support.binaries import in_ci, require_binary
from tests.support.service import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
PACKAGE = REPO / "frontend" / "node_modules" / "oidc-provider"
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0

# The provider's login form (oidc-provider's development interactions): what a browser test
# fills in and clicks. Its "Sign-in" heading is the page's only <h1>.
LOGIN_FIELDS = {"login": "input[name=login]", "password": "input[name=password]"}
LOGIN_BUTTON = "Sign-in"  # the submit button's text: page.get_by_role("button", name=...)
# RP-initiated logout (the end_session_endpoint) asks first; this button confirms.
LOGOUT_BUTTON = "Yes, sign me out"


# oidc-provider 9 warns on anything but an LTS from 22 on, and runs on 20 from 20.18: the newest
# APIs it calls are URL.parse (Node.js 20.18, 22.1) and crypto.hash (20.12).
MINIMUM_NODE = (20, 18)


@functools.cache
def _node_version(node: str) -> tuple[int, ...]:
    output = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    return tuple(int(part) for part in re.findall(r"\d+", output.stdout)[:3])  # v20.20.2


def require_oidc_provider() -> str:
    """The path of ``node``, once oidc-provider is installed and Node.js is recent enough for
    it; else skip (locally) or fail (in CI) the calling test, saying what is missing."""
    node = require_binary("node", package="nodejs")
    reason = None
    if _node_version(node) < MINIMUM_NODE:
        found = ".".join(map(str, _node_version(node)))
        wanted = ".".join(map(str, MINIMUM_NODE))
        reason = f"oidc-provider needs Node.js {wanted} or newer; {node} is {found}"
    elif not (PACKAGE / "package.json").is_file():
        reason = (
            f"{PACKAGE.relative_to(REPO)} is missing: run `npm ci` in frontend/ "
            "(make does when npm is installed)"
        )
    if reason is None:
        return node
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class OidcClient:
    """A public client of the provider (the page): its id and where it may be sent back to.
    ``metadata``: more client metadata for oidc-provider (``client_name``, ...)."""

    client_id: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def registration(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            **self.metadata,
        }


class OidcProvider:
    """oidc-provider on a free loopback port; ``start()``/``stop()`` or a context manager.

    ``audience``: the ``aud`` of its access tokens (what the service is configured with);
    ``access_token_ttl``, ``id_token_ttl``, ``refresh_token_ttl``: their lifetimes in seconds
    (a refresh token's counts from the sign-in: rotation does not extend it); ``accounts``:
    claims replacing the ones derived from a login (``{"alice": {"name": "Alice Liddell"}}``;
    None leaves the claim out). Derived from the login "bob.jones": name "Bob Jones",
    preferred_username "bob.jones", email "bob.jones@example.test" (a login with an "@" is its
    own email).
    """

    def __init__(
        self,
        clients: Iterable[OidcClient],
        *,
        audience: str = "chat-service",
        access_token_ttl: int = 20,
        id_token_ttl: int = 3600,
        refresh_token_ttl: int = 3600,
        accounts: Mapping[str, Mapping[str, str | None]] | None = None,
        port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.clients = {client.client_id: client for client in clients}
        self.audience = audience
        self.config: dict[str, Any] = {
            "clients": [client.registration() for client in self.clients.values()],
            "audience": audience,
            "access_token_ttl": access_token_ttl,
            "id_token_ttl": id_token_ttl,
            "refresh_token_ttl": refresh_token_ttl,
            "accounts": {login: dict(claims) for login, claims in (accounts or {}).items()},
        }
        self.port = port or free_port()
        # Where its stderr is written (None: a temporary folder, which leaving the ``with``
        # block removes).
        self.workdir = workdir
        self._own_workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        """The issuer identifier, exactly as discovery names it: ``CHAT_OIDC_ISSUER``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OidcProvider:
        if self._process is not None:
            raise RuntimeError("the provider is already started")
        node = require_oidc_provider()
        if self.workdir is None:
            self.workdir = self._own_workdir = Path(tempfile.mkdtemp(prefix="oidc-provider-"))
        with self.stderr_path.open("ab") as err:
            self._process = subprocess.Popen(
                [node, str(SCRIPT), str(self.port), json.dumps(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        try:
            line = self._ready_line()
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"oidc-provider {error}:\n{self.stderr()}") from None
        if line != self.issuer:
            self.stop()
            raise RuntimeError(f"oidc-provider announced {line!r}, not {self.issuer}")
        return self

    def _ready_line(self) -> str:
        """The line the script prints once it listens (its issuer), read without blocking
        past the deadline: it exits, or says nothing in time, and this raises."""
        assert self._process is not None
        assert self._process.stdout is not None
        out = self._process.stdout
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(out, selectors.EVENT_READ)
            while b"\n" not in received:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"not listening after {STARTUP_TIMEOUT_S}s")
                if selector.select(remaining):
                    chunk = os.read(out.fileno(), 4096)
                    if not chunk:
                        code = self._process.wait(STOP_TIMEOUT_S)
                        raise RuntimeError(f"exited with {code}")
                    received += chunk
        return received.decode().strip()

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within a few seconds: its exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    @property
    def stderr_path(self) -> Path:
        if self.workdir is None:
            raise RuntimeError("the provider was never started")
        return self.workdir / f"oidc-provider-{self.port}.stderr"

    def stderr(self) -> str:
        """What the provider wrote to stderr so far: notices, warnings, errors."""
        if self.workdir is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def discovery(self) -> dict[str, Any]:
        """The provider's ``/.well-known/openid-configuration``."""
        status, _, body = http_request(f"{self.issuer}/.well-known/openid-configuration")
        if status != 200:
            raise OidcFlowError(f"discovery answered {status}: {body!r}")
        document: dict[str, Any] = json.loads(body)
        return document

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_workdir is not None:
            shutil.rmtree(self._own_workdir, ignore_errors=True)
            self.workdir = self._own_workdir = None


class OidcFlowError(AssertionError):
    """A step of a sign-in answered otherwise than the flow expects."""


@dataclass(frozen=True)
class Tokens:
    """A token endpoint's answer."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None
    id_token: str | None
    scope: str | None
    raw: dict[str, Any]

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Tokens:
        return cls(
            access_token=body["access_token"],
            token_type=body["token_type"],
            expires_in=body["expires_in"],
            refresh_token=body.get("refresh_token"),
            id_token=body.get("id_token"),
            scope=body.get("scope"),
            raw=body,
        )


def jwt_claims(token: str) -> dict[str, Any]:
    """A JWT's payload, decoded and not verified (what a test reads of a token it was given)."""
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are answers to read, each step of the flow followed by hand."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def browser_opener(cookies: CookieJar | None = None) -> urllib.request.OpenerDirector:
    """An HTTP client that keeps cookies, as a browser would, and follows no redirect."""
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(cookies if cookies is not None else CookieJar()),
        _NoRedirects(),
    )


def http_request(
    url: str,
    form: Mapping[str, str] | None = None,
    *,
    opener: urllib.request.OpenerDirector | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    """GET ``url``, or POST ``form`` to it (urlencoded); redirects are not followed:
    (status, headers, body)."""
    data = None if form is None else urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    try:
        with (opener or browser_opener()).open(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read().decode()
    except urllib.error.HTTPError as error:  # 3xx (not followed) and 4xx/5xx alike
        body = error.read().decode(errors="replace")
        return error.code, dict(error.headers.items()), body


class LoginForm(HTMLParser):
    """The first form of a page: its action, its inputs (name: value) and the text of its
    buttons."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: dict[str, str] = {}
        self.buttons: list[str] = []
        self._in_form = self._in_button = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attributes.get("action") or ""
            self._in_form = True
        elif self._in_form and tag == "input" and attributes.get("name"):
            self.inputs[attributes["name"] or ""] = attributes.get("value") or ""
        elif self._in_form and tag == "button":
            self._in_button = True
            self.buttons.append("")

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.buttons[-1] += data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "button":
            self._in_button = False


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _without_query(url: str) -> str:
    return urllib.parse.urlsplit(url)._replace(query="", fragment="").geturl()


def _redirected(status: int, headers: Mapping[str, str], body: str, base: str, step: str) -> str:
    if status not in (302, 303) or "Location" not in headers:
        raise OidcFlowError(f"{step} answered {status}, not a redirect: {body[:500]!r}")
    return urllib.parse.urljoin(base, headers["Location"])


@dataclass(frozen=True)
class AuthorizationRequest:
    """A sign-in as a page begins it: the URL it sends the browser to, and what it keeps to
    finish (the PKCE verifier, the state)."""

    url: str
    client_id: str
    redirect_uri: str
    verifier: str
    state: str
    nonce: str


def authorization_request(
    provider: OidcProvider, client_id: str, redirect_uri: str, scope: str = "openid profile email"
) -> AuthorizationRequest:
    """A code flow request with a PKCE challenge (S256) and a fresh state and nonce."""
    verifier = secrets.token_urlsafe(48)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    query = urllib.parse.urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
    )
    url = f"{provider.discovery()['authorization_endpoint']}?{query}"
    return AuthorizationRequest(url, client_id, redirect_uri, verifier, state, nonce)


def open_login_form(
    request: AuthorizationRequest, opener: urllib.request.OpenerDirector
) -> tuple[str, str]:
    """Follow the authorization request to the provider's login form: (its URL, its HTML)."""
    interaction = _redirected(
        *http_request(request.url, opener=opener), request.url, "the authorization request"
    )
    status, _, page = http_request(interaction, opener=opener)
    if status != 200:
        raise OidcFlowError(f"the login form at {interaction} answered {status}: {page[:500]!r}")
    return interaction, page


def login_with_code_flow(
    provider: OidcProvider,
    client_id: str,
    redirect_uri: str,
    username: str,
    *,
    password: str = "any password",
    scope: str = "openid profile email",
) -> Tokens:
    """Sign ``username`` in as a page would, over HTTP: the authorization request with a PKCE
    challenge (S256), the provider's login form filled in and posted, the redirects followed
    back to ``redirect_uri``, then the code exchanged with the verifier and no secret."""
    request = authorization_request(provider, client_id, redirect_uri, scope)
    opener = browser_opener()  # the provider's interaction cookies, as a browser keeps
    interaction, page = open_login_form(request, opener)
    form = LoginForm(page)
    if form.action is None or form.inputs.get("prompt") != "login":
        raise OidcFlowError(f"no login form at {interaction}: {page[:500]!r}")
    fields = {**form.inputs, "login": username, "password": password}
    action = urllib.parse.urljoin(interaction, form.action)
    url = _redirected(*http_request(action, fields, opener=opener), action, "the login form")

    # Back to the authorization endpoint, which (consent granted by the provider itself)
    # sends the browser to the redirect URI with the code.
    for _ in range(5):
        if _without_query(url) == _without_query(redirect_uri):
            return exchange_code(provider, request, url)
        if url.startswith(f"{provider.issuer}/interaction/"):
            raise OidcFlowError(f"the provider asks for another interaction (consent?): {url}")
        url = _redirected(*http_request(url, opener=opener), url, f"GET {url}")
    raise OidcFlowError(f"never sent back to {redirect_uri}; last at {url}")


def exchange_code(provider: OidcProvider, request: AuthorizationRequest, landed_at: str) -> Tokens:
    """Finish a sign-in as the page does where the provider sent the browser back
    (``landed_at``: the redirect URI with the answer in its query): its state and issuer
    checked, the code exchanged with the PKCE verifier, no secret."""
    answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landed_at).query))
    if "code" not in answer:
        raise OidcFlowError(f"the redirect carries no code: {landed_at}")
    if answer.get("state") != request.state or answer.get("iss") != provider.issuer:
        raise OidcFlowError(f"the redirect's state or iss is not ours: {landed_at}")
    return _token_request(
        provider,
        {
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": request.redirect_uri,
            "client_id": request.client_id,
            "code_verifier": request.verifier,
        },
    )


def refresh(provider: OidcProvider, client_id: str, refresh_token: str) -> Tokens:
    """The refresh token grant, as a public client makes it (no secret). Refresh tokens are
    rotated: the answer holds the next one, and this one is spent."""
    return _token_request(
        provider,
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id},
    )


def _token_request(provider: OidcProvider, form: Mapping[str, str]) -> Tokens:
    status, _, body = http_request(provider.discovery()["token_endpoint"], form)
    if status != 200:
        raise OidcFlowError(f"the token endpoint answered {status}: {body}")
    return Tokens.parse(json.loads(body))
