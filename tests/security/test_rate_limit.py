"""Rate limits on the real process: 429 with Retry-After, clients told apart the right way.

The token buckets themselves are unit-tested in tests/unit/test_identity.py."""

from __future__ import annotations

from tests.conftest import StartService
from tests.support.service import ServiceProcess

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"


def burst(service: ServiceProcess, count: int, headers: dict[str, str] | None = None) -> list[int]:
    return [service.request("GET", "/chat/history", headers=headers)[0] for _ in range(count)]


def test_over_the_limit_is_429_with_retry_after(start_service: StartService) -> None:
    service = start_service(env={"CHAT_RATE_LIMIT_RPS": "1", "CHAT_RATE_LIMIT_BURST": "5"})
    assert burst(service, 5) == [200] * 5
    status, headers, body = service.request("GET", "/chat/history")
    assert status == 429
    assert body == {"status": "error", "message": "Too many requests; slow down."}
    # One token a second, and the bucket is empty: the next request may come in a second.
    assert headers["Retry-After"] == "1"
    # Probes and metrics are never limited.
    assert service.request("GET", "/readyz")[0] == 200
    assert service.request("GET", "/metrics")[0] == 200


def test_forwarded_for_counts_only_from_trusted_proxies(start_service: StartService) -> None:
    limits = {"CHAT_RATE_LIMIT_RPS": "0.5", "CHAT_RATE_LIMIT_BURST": "3"}
    untrusted = start_service(env=limits)
    spoofed = [
        untrusted.request("GET", "/chat/history", headers={"X-Forwarded-For": f"10.0.0.{i}"})[0]
        for i in range(4)
    ]
    assert spoofed == [200, 200, 200, 429], "a direct caller cannot choose its identity"

    behind_proxy = start_service(env={**limits, "CHAT_TRUSTED_PROXIES": "127.0.0.1/32"})
    # NGINX appends the address it saw; that last entry is the one it vouches for.
    for user in ("203.0.113.7", "192.168.1.20"):
        statuses = burst(behind_proxy, 4, {"X-Forwarded-For": user})
        assert statuses == [200, 200, 200, 429], f"{user} has a bucket of its own"


def test_entries_a_client_adds_before_the_proxys_are_ignored(start_service: StartService) -> None:
    service = start_service(
        env={
            "CHAT_RATE_LIMIT_RPS": "0.5",
            "CHAT_RATE_LIMIT_BURST": "3",
            "CHAT_TRUSTED_PROXIES": "127.0.0.1/32",
        }
    )
    # The client wrote "spoof-i, 10.9.9.i"; NGINX appended the client's real (private)
    # address. Rotating the written part must not buy new buckets.
    statuses = [
        service.request(
            "GET",
            "/chat/history",
            headers={"X-Forwarded-For": f"spoof-{i}, 10.9.9.{i}, 192.168.1.20"},
        )[0]
        for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    # Not an address at all: the header is ignored and the peer (the proxy) is the client.
    assert service.request("GET", "/chat/history", headers={"X-Forwarded-For": "junk"})[0] == 200


def test_api_keys_are_separate_clients(start_service: StartService) -> None:
    service = start_service(
        env={
            "CHAT_RATE_LIMIT_RPS": "0.5",
            "CHAT_RATE_LIMIT_BURST": "2",
            "CHAT_API_KEYS": f"{KEY_A},{KEY_B}",
        }
    )
    assert burst(service, 3, {"Authorization": f"Bearer {KEY_A}"}) == [200, 200, 429]
    assert burst(service, 3, {"Authorization": f"Bearer {KEY_B}"}) == [200, 200, 429]
