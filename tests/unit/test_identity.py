"""Who is calling: API keys, named or not (identity/api_keys.py), the principal the
identity middleware records (api/identity.py), and the caller a rate limit counts
(ratelimit.py), including the ways a caller could try to pass for someone else."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from chat_service.api.errors import ApiError
from chat_service.api.identity import Identity, client_address, parse_networks
from chat_service.api.ratelimit import TokenBuckets
from chat_service.config import Settings
from chat_service.identity.api_keys import ApiKeys, parse_api_key
from chat_service.identity.principal import ANONYMOUS, Principal, PrincipalKind
from tests.support.oidc_issuer import OidcIssuer
from tests.support.openapi import validate_response
from tests.support.service import free_port
from tests.support.store_faults import break_probes
from tests.unit.conftest import MakeClient

KEY = "alpha-key-0123456789"
OTHER = "omega-key-9876543210"
NGINX = "10.0.0.7"  # a trusted proxy's address
TRUSTED = parse_networks(["10.0.0.0/8"])


def key_principal(key: str) -> Principal:
    """What an unnamed key is known as: a digest prefix, never the key."""
    return Principal(PrincipalKind.API_KEY, "#" + hashlib.sha256(key.encode()).hexdigest()[:16])


class Transport:
    """Just enough of a transport for ``request.remote``: the peer's address."""

    def __init__(self, peer: str | None) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name != "peername" or self.peer is None:
            return default
        return (self.peer, 40000)


def request(peer: str | None = "192.0.2.1", headers: dict[str, str] | None = None) -> web.Request:
    return make_mocked_request("GET", "/chat/history", headers=headers, transport=Transport(peer))


# -- API keys ---------------------------------------------------------------------------


def test_an_api_error_reads_as_its_message() -> None:
    error = ApiError(429, "Too many requests; slow down.", headers={"Retry-After": "1"})
    assert (str(error), error.status, error.headers) == (
        "Too many requests; slow down.",
        429,
        {"Retry-After": "1"},
    )


def test_unnamed_keys_are_known_by_a_digest_never_by_themselves() -> None:
    keys = ApiKeys((KEY, OTHER))
    assert keys.identify(KEY) == key_principal(KEY)
    assert keys.identify(OTHER) == key_principal(OTHER)
    assert key_principal(KEY) != key_principal(OTHER)
    assert KEY not in repr(keys.identify(KEY))


def test_named_keys_are_their_names() -> None:
    keys = ApiKeys((f"alice:{KEY}", f"ci-bot.2:{OTHER}"))
    assert keys.identify(KEY) == Principal(PrincipalKind.API_KEY, "alice")
    assert keys.identify(OTHER) == Principal(PrincipalKind.API_KEY, "ci-bot.2")
    assert keys.identify(f"alice:{KEY}") is None, "the name is not part of the key"
    assert KEY not in repr(parse_api_key(f"alice:{KEY}"))


def test_a_key_of_exactly_16_characters_is_enough() -> None:
    assert ApiKeys(("k" * 16,)).identify("k" * 16) is not None
    with pytest.raises(ValueError, match="at least 16"):
        ApiKeys(("k" * 15,))


def test_a_named_key_may_hold_colons() -> None:
    parsed = parse_api_key("a:b:c-0123456789abcdef")
    assert (parsed.principal.name, parsed.secret) == ("a", b"b:c-0123456789abcdef")


@pytest.mark.parametrize(
    "entry",
    [
        ":leading-colon-0123456789",  # an empty name is no name
        "-dash:0123456789abcdefgh",  # a name starts with a letter or digit
    ],
)
def test_an_entry_that_is_not_name_and_key_is_one_bare_key(entry: str) -> None:
    parsed = parse_api_key(entry)
    assert parsed.principal == key_principal(entry)
    assert parsed.secret == entry.encode()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ((f"alice:{KEY}", f"alice:{OTHER}"), "names must be unique: alice$"),
        (
            (f"alice:{KEY}", f"bob:{OTHER}", f"alice:{KEY}x", f"bob:{OTHER}x"),
            "names must be unique: alice, bob$",
        ),
        ((f"alice:{KEY}", f"bob:{KEY}"), "^the same API key is configured under two names$"),
        (("alice:short",), "^the API key named 'alice' is too short or has spaces"),
        (
            ("short",),
            "^API keys must be at least 16 printable characters without spaces, optionally "
            "preceded by a name and a colon \\(name: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit\\)$",
        ),
        ((f"alice:{KEY} x",), "at least 16 printable characters"),
    ],
)
def test_bad_key_lists_are_refused_without_showing_a_key(
    entries: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        ApiKeys(entries)
    assert KEY not in str(refused.value)


@pytest.mark.parametrize(
    "token", [KEY[:-1], KEY + "x", KEY.upper(), " " + KEY, "", "alpha-key-\udcff"]
)
def test_only_the_exact_key_matches(token: str) -> None:
    assert ApiKeys((KEY,)).identify(token) is None


def test_no_keys_configured_is_falsy() -> None:
    assert not ApiKeys(())
    assert ApiKeys((KEY,))


def test_the_anonymous_namespace_is_empty_and_others_are_qualified_by_kind() -> None:
    assert ANONYMOUS.namespace == ""
    assert Principal(PrincipalKind.API_KEY, "alice").namespace == "key:alice"
    assert Principal(PrincipalKind.OIDC, "alice").namespace == "oidc:alice"


@pytest.mark.parametrize(
    ("authorization", "identified"),
    [
        (f"Bearer {KEY}", True),
        (f"bearer {KEY}", True),  # the scheme is case-insensitive
        (f"Bearer   {KEY}  ", True),
        (f"Basic {KEY}", False),
        (KEY, False),
        ("Bearer", False),
        ("Bearer ", False),
        (f"Bearer {OTHER}", False),
    ],
)
async def test_the_key_is_read_from_a_bearer_authorization(
    authorization: str, identified: bool
) -> None:
    identity = Identity(ApiKeys((KEY,)))
    presented = request(headers={"Authorization": authorization})
    if identified:
        assert await identity.principal(presented) == key_principal(KEY)
        return
    with pytest.raises(ApiError) as refused:
        await identity.principal(presented)
    assert refused.value.status == 401


@pytest.mark.parametrize(
    ("path", "metrics", "protected"),
    [
        ("/chat/history", False, True),
        ("/chat/message", False, True),
        ("/chat/conversations", False, True),
        ("/chat/", False, True),
        ("/chat", False, True),  # the /chat mount, though no route is there
        ("/chat/unknown", False, True),  # a caller learns nothing of the routes without a key
        ("/chatter", False, False),
        ("/metrics", False, False),
        ("/metrics", True, True),
        ("/healthz", True, False),
        ("/readyz", True, False),
        ("/openapi.json", True, False),
        ("/", True, False),
    ],
)
async def test_what_the_keys_protect(
    make_client: MakeClient, path: str, metrics: bool, protected: bool
) -> None:
    """By mount: everything under /chat, and /metrics when asked to; nothing else."""
    client = await make_client(api_keys=(KEY,), metrics_require_key=metrics)
    refused = await client.get(path)
    assert (refused.status == 401) is protected, refused.status
    if protected:
        allowed = await client.get(path, headers={"Authorization": f"Bearer {KEY}"})
        assert allowed.status != 401
    open_client = await make_client()
    assert (await open_client.get(path)).status != 401, "no keys: nothing to check"


async def test_with_keys_the_chat_routes_need_one(make_client: MakeClient) -> None:
    client = await make_client(api_keys=(KEY,))
    refused = await client.get("/chat/history")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="chat-service"'
    assert await refused.json() == {"status": "error", "message": "A valid API key is required."}
    wrong = await client.get("/chat/history", headers={"Authorization": f"Bearer {OTHER}"})
    assert wrong.status == 401
    assert await wrong.json() == {"status": "error", "message": "A valid API key is required."}
    allowed = await client.get("/chat/history", headers={"Authorization": f"Bearer {KEY}"})
    assert allowed.status == 200
    for open_path in ("/healthz", "/metrics", "/openapi.json"):
        assert (await client.get(open_path)).status == 200, open_path


async def test_metrics_can_be_put_behind_the_keys(make_client: MakeClient) -> None:
    client = await make_client(api_keys=(KEY,), metrics_require_key=True)
    assert (await client.get("/metrics")).status == 401
    headers = {"Authorization": f"Bearer {KEY}"}
    assert (await client.get("/metrics", headers=headers)).status == 200
    assert (await client.get("/healthz")).status == 200


# -- token buckets -------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0, "another client has its own bucket"
    clock.now += 0.5
    assert buckets.take("a") == 0, "half a second at 2/s: one token back"
    # Empty again; at 2 tokens a second the next one is half a second away.
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 0.25
    assert buckets.take("a") == pytest.approx(0.25), "half a token there: half the wait"
    clock.now += 100
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0], "refills up to the burst only"
    assert buckets.take("a") == pytest.approx(0.5)


def test_bucket_memory_is_bounded_and_forgets_the_least_recently_seen() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=1, burst=1, clock=clock, max_clients=3)
    for client in ("a", "b", "c"):
        assert buckets.take(client) == 0  # each spends its only token
    assert buckets.take("a") == pytest.approx(1), "a is empty, and now the most recent"
    assert buckets.take("d") == 0  # a fourth client: the least recently seen (b) goes
    # A forgotten client starts again with a full bucket; the ones kept are still empty.
    assert buckets.take("b") == 0, "b was forgotten"
    assert buckets.take("a") == pytest.approx(1), "a was kept"
    assert buckets.take("d") == pytest.approx(1), "d was kept"


def test_a_bucket_with_exactly_one_token_allows_one_request() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=1, burst=1, clock=clock)
    assert buckets.take("a") == 0
    clock.now += 1  # exactly one token again
    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(1)


def test_a_bucket_tells_what_is_left_and_when_it_is_full_again() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2, burst=3, clock=clock)
    buckets.take("a")
    assert buckets.standing("a") == (2, 0.5)
    buckets.take("a")
    buckets.take("a")
    assert buckets.standing("a") == (0, 1.5)
    clock.now += 0.25
    buckets.take("a")  # refused: half a token back is not enough
    assert buckets.standing("a") == (0, 1.25)


async def test_a_policy_window_under_a_second_is_one_second(make_client: MakeClient) -> None:
    client = await make_client(rate_limit_rps=100, rate_limit_burst=40)
    response = await client.get("/chat/history")
    assert response.headers["RateLimit-Policy"] == '"per-caller";q=40;w=1'


# -- the client a rate limit counts -------------------------------------------------------


def test_without_trusted_proxies_the_client_is_the_peer() -> None:
    spoofing = request("192.0.2.1", {"X-Forwarded-For": "198.51.100.9"})
    assert client_address(spoofing, ()) == "192.0.2.1"


def test_an_untrusted_peer_cannot_name_itself_in_x_forwarded_for() -> None:
    spoofing = request("192.0.2.1", {"X-Forwarded-For": "198.51.100.9"})
    assert client_address(spoofing, TRUSTED) == "192.0.2.1"


def test_a_trusted_proxy_vouches_for_the_entry_it_appended() -> None:
    # The client wrote "1.1.1.1" itself; NGINX appended the address it saw.
    forwarded = request(NGINX, {"X-Forwarded-For": "1.1.1.1, 198.51.100.9"})
    assert client_address(forwarded, TRUSTED) == "198.51.100.9"


def test_the_last_of_several_x_forwarded_for_headers_counts() -> None:
    headers = [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "198.51.100.9")]
    forwarded = make_mocked_request(
        "GET", "/chat/history", headers=headers, transport=Transport(NGINX)
    )
    assert client_address(forwarded, TRUSTED) == "198.51.100.9"


@pytest.mark.parametrize("value", ["", " , ", "not-an-address", "198.51.100.9, evil.example"])
def test_a_trusted_proxy_with_no_usable_entry_leaves_the_peer(value: str) -> None:
    assert client_address(request(NGINX, {"X-Forwarded-For": value}), TRUSTED) == NGINX


def test_forwarded_addresses_are_normalised() -> None:
    forwarded = request(NGINX, {"X-Forwarded-For": "2001:DB8:0:0::1"})
    assert client_address(forwarded, TRUSTED) == "2001:db8::1"


def test_a_peer_that_is_not_an_address_is_not_trusted() -> None:
    claim = {"X-Forwarded-For": "198.51.100.9"}
    assert client_address(request("unix-socket", claim), TRUSTED) == "unix-socket"


def test_a_peer_without_an_address_is_one_unknown_client() -> None:
    assert client_address(request(None), TRUSTED) == "unknown"


def test_a_trusted_proxy_without_x_forwarded_for_is_the_client() -> None:
    assert client_address(request(NGINX), TRUSTED) == NGINX


def test_a_peer_is_judged_against_the_networks_asked_about() -> None:
    """The verdicts are remembered: per peer and networks, never per peer alone."""
    claim = {"X-Forwarded-For": "198.51.100.9"}
    assert client_address(request(NGINX, claim), TRUSTED) == "198.51.100.9"
    elsewhere = parse_networks(["192.168.0.0/16"])
    assert client_address(request(NGINX, claim), elsewhere) == NGINX
    assert client_address(request(NGINX, claim), TRUSTED) == "198.51.100.9"


def test_entries_are_split_on_commas_even_without_spaces() -> None:
    forwarded = request(NGINX, {"X-Forwarded-For": "1.1.1.1,198.51.100.9"})
    assert client_address(forwarded, TRUSTED) == "198.51.100.9"


def test_trusted_proxies_are_networks_or_addresses() -> None:
    assert parse_networks(["10.1.2.3/8", " 192.0.2.5 ", "", "2001:db8::/32"]) == (
        ipaddress.ip_network("10.0.0.0/8"),  # host bits given are tolerated
        ipaddress.ip_network("192.0.2.5/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    with pytest.raises(ValueError, match="does not appear to be"):
        parse_networks(["nginx"])


async def test_the_limit_counts_each_key_on_its_own(make_client: MakeClient) -> None:
    client = await make_client(api_keys=(KEY, OTHER), rate_limit_rps=0.001, rate_limit_burst=2)
    first = {"Authorization": f"Bearer {KEY}"}
    second = {"Authorization": f"Bearer {OTHER}"}
    assert [(await client.get("/chat/history", headers=first)).status for _ in range(3)] == [
        200,
        200,
        429,
    ]
    # Same address, another key: another client, with its own bucket.
    assert (await client.get("/chat/history", headers=second)).status == 200
    # Probes and scrapes are never limited.
    assert (await client.get("/healthz")).status == 200
    limited = await client.get("/chat/history", headers=first)
    assert limited.status == 429
    assert await limited.json() == {"status": "error", "message": "Too many requests; slow down."}
    # At 0.001 tokens a second, the next one is 1,000 s away.
    assert limited.headers["Retry-After"] == "1000"


# -- OpenID Connect bearer tokens, through the middleware ---------------------------------


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(audience="chat-service") as running:
        yield running


async def oidc_client(make_client: MakeClient, issuer: OidcIssuer, **changes: Any) -> Any:
    return await make_client(oidc_issuer=issuer.url, oidc_audience="chat-service", **changes)


async def test_a_valid_token_names_its_subject(make_client: MakeClient, issuer: OidcIssuer) -> None:
    client = await oidc_client(make_client, issuer)
    token = {"Authorization": f"Bearer {issuer.token({'sub': 'carol'})}"}
    response = await client.post("/chat/message", json={"message": "hi"}, headers=token)
    assert response.status == 200
    assert (await client.get("/chat/history", headers=token)).status == 200
    # The page and the probes stay open; without a token the chat routes do not.
    assert (await client.get("/healthz")).status == 200
    refused = await client.get("/chat/history")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="chat-service"'
    assert await refused.json() == {"status": "error", "message": "A bearer token is required."}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": 1_000_000_000}, "token expired"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"iss": "http://127.0.0.1:1"}, "wrong issuer"),
    ],
)
async def test_an_invalid_token_is_a_401_that_says_invalid_token(
    make_client: MakeClient, issuer: OidcIssuer, overrides: dict[str, Any], reason: str
) -> None:
    client = await oidc_client(make_client, issuer)
    bad = {"Authorization": f"Bearer {issuer.token(overrides)}"}
    refused = await client.get("/chat/history", headers=bad)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == (
        'Bearer realm="chat-service", error="invalid_token"'
    )
    assert await refused.json() == {
        "status": "error",
        "message": f"The bearer token is not valid: {reason}.",
    }


async def test_an_unreachable_issuer_is_a_503_not_a_bad_token(
    make_client: MakeClient, issuer: OidcIssuer
) -> None:
    issuer.go_down()
    client = await oidc_client(make_client, issuer)
    token = {"Authorization": f"Bearer {issuer.token()}"}
    response = await client.get("/chat/history", headers=token)
    assert response.status == 503
    assert await response.json() == {
        "status": "error",
        "message": "Bearer tokens cannot be verified right now; try again shortly.",
    }
    assert int(response.headers["Retry-After"]) >= 1
    assert "WWW-Authenticate" not in response.headers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def readiness(client: Any) -> tuple[int, Any]:
    """``/readyz``'s status and body, checked against the OpenAPI document."""
    response = await client.get("/readyz")
    body = await response.json()
    validate_response("/readyz", "GET", response.status, body)
    return response.status, body


def not_ready(issuer_url: str, failure: str) -> tuple[int, Any]:
    message = f"OpenID Connect issuer {issuer_url} is not usable: {failure}."
    return 503, {"status": "error", "message": message}


async def test_a_usable_issuer_is_ready(make_client: MakeClient, issuer: OidcIssuer) -> None:
    client = await oidc_client(make_client, issuer)
    assert await readiness(client) == (200, {"status": "ready"})


@pytest.mark.parametrize("case", ["trailing slash", "another host"])
async def test_an_issuer_named_otherwise_than_it_names_itself_is_not_ready(
    make_client: MakeClient, issuer: OidcIssuer, case: str
) -> None:
    """/readyz says why, and the chat routes go on answering 503: no token can be checked
    against the keys of an issuer that is not the one configured."""
    configured = (
        issuer.url + "/"
        if case == "trailing slash"
        else issuer.url.replace("127.0.0.1", "localhost")
    )
    client = await make_client(oidc_issuer=configured, oidc_audience="chat-service")
    assert await readiness(client) == not_ready(
        configured,
        f"it names itself '{issuer.url}' in its discovery document; "
        "set CHAT_OIDC_ISSUER to exactly that",
    )
    for iss in (configured, issuer.url):
        refused = await client.get("/chat/history", headers=bearer(issuer.token({"iss": iss})))
        assert refused.status == 503
        assert int(refused.headers["Retry-After"]) >= 1
    assert issuer.jwks_requests == 0
    assert (await client.get("/healthz")).status == 200


async def test_an_unreachable_issuer_is_not_ready(make_client: MakeClient) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = await make_client(oidc_issuer=url, oidc_audience="chat-service")
    assert await readiness(client) == not_ready(url, "discovery: ClientConnectorError")


async def test_a_down_issuer_is_not_ready(make_client: MakeClient, issuer: OidcIssuer) -> None:
    issuer.go_down()
    client = await oidc_client(make_client, issuer)
    assert await readiness(client) == not_ready(issuer.url, "discovery answered HTTP 503")


@pytest.mark.parametrize("keys", ["none", "unusable"])
async def test_an_issuer_without_usable_keys_is_not_ready(
    make_client: MakeClient, issuer: OidcIssuer, keys: str
) -> None:
    for key in issuer.published:
        issuer.remove_key(key.kid)
    if keys == "unusable":  # a symmetric key, whose "k" is a secret anyone could read
        issuer.extra_jwks = [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]
    client = await oidc_client(make_client, issuer)
    assert await readiness(client) == not_ready(issuer.url, "key set has no usable signing key")


async def test_the_store_is_checked_before_the_issuer(
    make_client: MakeClient, issuer: OidcIssuer, settings: Settings
) -> None:
    """Both unusable: the store's answer, unchanged, as without an issuer."""
    issuer.go_down()
    client = await oidc_client(make_client, issuer)
    await break_probes(settings)
    assert await readiness(client) == (
        503,
        {"status": "error", "message": "The store is not available."},
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/chat/history"),
        ("POST", "/chat/message"),
        ("GET", "/chat/events"),
        ("GET", "/chat/conversation-events"),
        ("GET", "/chat/conversations"),
        ("POST", "/chat/conversations"),
    ],
)
async def test_a_subject_that_is_not_text_is_a_401(
    make_client: MakeClient,
    issuer: OidcIssuer,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
) -> None:
    """A lone surrogate (``"sub": "\\ud800"`` in the token's JSON) cannot be stored, logged
    or traced as text: the token names nobody, so it is refused before anything uses it."""
    client = await oidc_client(make_client, issuer)
    token = issuer.token({"sub": "\ud800"})
    body = {"json": {"message": "hi"}} if method == "POST" else {}
    refused = await client.request(method, path, headers=bearer(token), **body)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == (
        'Bearer realm="chat-service", error="invalid_token"'
    )
    assert await refused.json() == {
        "status": "error",
        "message": "The bearer token is not valid: invalid subject.",
    }
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


async def test_keys_and_tokens_together_each_name_their_own(
    make_client: MakeClient, issuer: OidcIssuer
) -> None:
    client = await oidc_client(make_client, issuer, api_keys=(f"alice:{KEY}",))
    as_key = {"Authorization": f"Bearer {KEY}"}
    as_token = {"Authorization": f"Bearer {issuer.token({'sub': 'alice'})}"}
    await client.post("/chat/message", json={"message": "from the key"}, headers=as_key)
    history = await client.get("/chat/history", headers=as_token)
    assert await history.json() == [], "key alice and subject alice are two principals"
    refused = await client.get("/chat/history", headers={"Authorization": "Bearer nonsense"})
    assert refused.status == 401
    message = "A valid API key or bearer token is required."
    missing = await client.get("/chat/history")
    assert await missing.json() == {"status": "error", "message": message}


async def test_only_an_api_key_opens_protected_metrics(
    make_client: MakeClient, issuer: OidcIssuer
) -> None:
    client = await oidc_client(make_client, issuer, api_keys=(KEY,), metrics_require_key=True)
    token = {"Authorization": f"Bearer {issuer.token()}"}
    assert (await client.get("/metrics", headers=token)).status == 401
    assert (await client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})).status == 200


# -- rate limits per principal, and the headers that tell where a caller stands -----------


async def test_the_limit_counts_each_subject_on_its_own_and_says_so(
    make_client: MakeClient, issuer: OidcIssuer
) -> None:
    client = await oidc_client(make_client, issuer, rate_limit_rps=0.5, rate_limit_burst=3)
    carol = {"Authorization": f"Bearer {issuer.token({'sub': 'carol'})}"}
    dave = {"Authorization": f"Bearer {issuer.token({'sub': 'dave'})}"}
    answers = [await client.get("/chat/history", headers=carol) for _ in range(4)]
    assert [answer.status for answer in answers] == [200, 200, 200, 429]
    # Three tokens refilled at 0.5/s: the window is 6 s.
    assert {answer.headers["RateLimit-Policy"] for answer in answers} == {'"per-caller";q=3;w=6'}
    remaining = [answer.headers["RateLimit"] for answer in answers]
    assert [value.split(";")[1] for value in remaining] == ["r=2", "r=1", "r=0", "r=0"]
    assert remaining[0].startswith('"per-caller";r=2;t=')
    assert int(remaining[0].rsplit("t=", 1)[1]) in (1, 2), "one token short: 2 s to refill"
    assert answers[3].headers["Retry-After"] == "2"
    # Another subject from the same address has its own bucket.
    assert (await client.get("/chat/history", headers=dave)).status == 200
    # Bad credentials are throttled by address, before they are refused.
    bad = {"Authorization": "Bearer not-a-token"}
    statuses = [(await client.get("/chat/history", headers=bad)).status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert "RateLimit" not in (await client.get("/healthz")).headers
