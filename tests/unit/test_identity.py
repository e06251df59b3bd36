"""Who is calling: API keys (auth.py) and the client a rate limit counts (ratelimit.py),
including the ways a caller could try to pass for someone else."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from chat_service.api.auth import ApiKeys, is_protected
from chat_service.api.errors import ApiError
from chat_service.api.ratelimit import TokenBuckets, client_address, parse_networks
from tests.unit.conftest import MakeClient

KEY = "alpha-key-0123456789"
OTHER = "omega-key-9876543210"
NGINX = "10.0.0.7"  # a trusted proxy's address
TRUSTED = parse_networks(["10.0.0.0/8"])


def key_id(key: str) -> str:
    """What a key is known as: a digest prefix, never the key."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]


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


def test_keys_are_known_by_a_digest_never_by_themselves() -> None:
    keys = ApiKeys((KEY, OTHER))
    assert keys.identify(KEY) == key_id(KEY)
    assert keys.identify(OTHER) == key_id(OTHER)
    assert key_id(KEY) != key_id(OTHER)
    assert KEY not in str(keys.identify(KEY))


@pytest.mark.parametrize(
    "token", [KEY[:-1], KEY + "x", KEY.upper(), " " + KEY, "", "alpha-key-\udcff"]
)
def test_only_the_exact_key_matches(token: str) -> None:
    assert ApiKeys((KEY,)).identify(token) is None


def test_no_keys_configured_is_falsy() -> None:
    assert not ApiKeys(())
    assert ApiKeys((KEY,))


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
def test_the_key_is_read_from_a_bearer_authorization(authorization: str, identified: bool) -> None:
    found = ApiKeys((KEY,)).identify_request(request(headers={"Authorization": authorization}))
    assert found == (key_id(KEY) if identified else None)


def test_a_request_without_authorization_is_nobody() -> None:
    assert ApiKeys((KEY,)).identify_request(request()) is None


@pytest.mark.parametrize(
    ("path", "metrics", "protected"),
    [
        ("/chat/history", False, True),
        ("/chat/message", False, True),
        ("/chat/", False, True),
        ("/chat", False, False),
        ("/chatter", False, False),
        ("/metrics", False, False),
        ("/metrics", True, True),
        ("/metrics/x", True, False),
        ("/healthz", True, False),
        ("/openapi.json", True, False),
        ("/", True, False),
    ],
)
def test_what_the_keys_protect(path: str, metrics: bool, protected: bool) -> None:
    assert is_protected(path, metrics=metrics) is protected


async def test_with_keys_the_chat_routes_need_one(make_client: MakeClient) -> None:
    client = await make_client(api_keys=(KEY,))
    refused = await client.get("/chat/history")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="chat-service"'
    assert await refused.json() == {"status": "error", "message": "A valid API key is required."}
    wrong = await client.get("/chat/history", headers={"Authorization": f"Bearer {OTHER}"})
    assert wrong.status == 401
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
